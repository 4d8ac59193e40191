"""The newcomer's path through the facility desk, on the whole system: a health worker books in
the chat, an operator adds a desk with `vaksin desk add` (the facility checked with the running
scheduler), the tablet trades the printed code for its credential, scans the ticket sent in the
chat and checks the person in with the dose, and dose 2 follows in the chat as it does for
`vaksin checkin`."""

from __future__ import annotations

import argparse
import io
from datetime import timedelta
from pathlib import Path

import pytest

from services.ticketing import desk_cli
from tests.e2e.conftest import System
from tests.e2e.test_ticket_flow import TOMORROW, booked, desk, desk_day, offline_claims, qr_token

pytestmark = pytest.mark.servers


async def test_vaksin_desk_add_then_the_app_checks_the_chat_ticket_in_and_dose_2_follows(
    system: System, tmp_path: Path
) -> None:
    dose_2_day = TOMORROW + timedelta(days=14)
    nakes, facility = await booked(system, tmp_path, [(dose_2_day, "09:00", "11:00", 5)])
    token = qr_token(system, (await system.sent_of_type(nakes.phone, "image", 1))[0])

    url = f"http://127.0.0.1:{system.hosts['ticketing'].port}/desk/"
    parser = argparse.ArgumentParser()
    desk_cli.add_parsers(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["desk", "add", "--facility", facility, "--name", "Meja 1", "--url", url]
    )
    out = io.StringIO()
    assert await desk_cli.run_desk(system.settings, args, out, io.StringIO()) == 0
    code = out.getvalue().split("enrolment code")[1].split()[0]
    assert f"Puskesmas {facility}" in out.getvalue() and f"{url}#enrol={code}" in out.getvalue()

    status, enrolled = await desk(system, "/desk/api/enrol", {"code": code}, token=None)
    assert status == 201
    credential = enrolled["credential"]
    desk_day(system, TOMORROW)
    status, check = await desk(system, "/desk/api/verify", {"token": token}, token=credential)
    assert (status, check["status"]) == (200, "valid")
    body = {"token": token, "dose_given": True, "temperature_c": 36.5, "blood_pressure": "120/80"}
    status, done = await desk(system, "/desk/api/checkin", body, token=credential)
    assert (status, done["status"], done["redeemed_by"]) == (200, "redeemed", "Meja 1")

    [_, dose_2] = await system.sent_of_type(nakes.phone, "image", 2)
    claims = await offline_claims(system, qr_token(system, dose_2))
    assert (claims["dose"], claims["day"], claims["fac"]) == (2, dose_2_day.isoformat(), facility)
