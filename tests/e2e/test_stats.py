"""`vaksin stats` against the whole system: each service answers `<owner>.rpc.stats` with the
counts of its own schema, so a booking made through the chat shows in every one of them; a
service that is down is named "not answering" and makes the command fail. The database is shared
by the whole test session, so the counts are compared before and after, never as absolutes."""

from __future__ import annotations

import io
import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.stats_cli import SOURCES, run_stats
from tests.e2e.channels import channels_fixture  # noqa: F401 (the fixture)
from tests.e2e.conftest import System
from tests.e2e.test_booking_flow import eligible_with_offer, facility_code

# Every source of `vaksin stats` runs, the SMS and USSD adapters included.
pytestmark = [pytest.mark.servers, pytest.mark.usefixtures("channels")]

TOMORROW = date.today() + timedelta(days=1)


async def stats(system: System, *, as_json: bool = False) -> tuple[int, str]:
    """The exit code and output of `vaksin stats` (the services log to stdout: not captured)."""
    out = io.StringIO()
    code = await run_stats(system.settings, as_json=as_json, out=out)
    return code, out.getvalue()


async def stats_json(system: System) -> dict[str, Any]:
    code, out = await stats(system, as_json=True)
    assert code == 0, out
    return json.loads(out)


async def test_stats_show_what_a_booking_through_the_chat_changed(
    system: System, tmp_path: Path
) -> None:
    before = await stats_json(system)
    assert list(before) == list(SOURCES)
    assert all(answer["error"] is None for answer in before.values())

    facility = facility_code()
    sessions = [
        (TOMORROW, "08:00", "12:00", 5),
        (TOMORROW + timedelta(days=2), "13:00", "15:00", 5),
    ]
    await system.add_facility(facility, tmp_path, sessions)
    nakes = await eligible_with_offer(system, tmp_path, facility)  # screened, a seat held
    await system.turn(nakes.phone, "", "slot.ok")  # and booked
    await system.ticket_sent(nakes.phone)
    after = await stats_json(system)

    def delta(service: str, key: str) -> int:
        return after[service]["counts"].get(key, 0) - before[service]["counts"].get(key, 0)

    assert delta("identity", "people") == 1
    assert delta("identity", "people_from_intake") == 0
    assert delta("identity", "intake.open") == 0
    assert delta("screening", "screenings") == 1
    assert delta("screening", "outcome.eligible") == 1
    assert delta("scheduler", "facilities") == 1
    assert delta("scheduler", "sessions_ahead") == 2
    assert delta("scheduler", "free_seats_ahead") == 10 - 1
    assert delta("scheduler", "bookings_active.dose_1") == 1
    assert delta("scheduler", "bookings_active.dose_2") == 0
    assert delta("ticketing", "tickets_issued") == 1
    assert delta("ticketing", "tickets_usable") == 1
    assert delta("ticketing", "tickets_redeemed") == 0
    assert delta("dialog", "conversations") == 1
    assert delta("dialog", "step.booked") == 1
    sent = len(system.fake.messages_to(nakes.phone))
    assert delta("notifier", "last_24h") >= sent > 0

    code, text = await stats(system)
    assert code == 0
    assert "people in the registry" in text and "active bookings, dose 1" in text
    assert "not answering" not in text


async def test_a_stopped_service_is_not_answering_and_the_command_fails(system: System) -> None:
    async with system.stopped("screening"):
        code, text = await stats(system)
        json_code, out = await stats(system, as_json=True)
    assert code == json_code == 1
    answers = json.loads(out)
    assert "screening: not answering" in text
    assert "people in the registry" in text  # the others answered all the same
    assert answers["screening"]["error"] == "not answering"
    assert answers["identity"]["error"] is None
    assert await stats_json(system)  # back: every service answers again
