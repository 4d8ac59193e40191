"""`vaksin desk add|list|revoke` on a real database: the facility is checked first, the one-time
code and its enrolment link are printed with a QR code that decodes to the link, the list shows
each desk's state, and a revoked desk's credential stops working."""

from __future__ import annotations

import argparse
import io
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
import zxingcpp
from PIL import Image

from services.common.contracts.scheduler import Facility
from services.common.settings import Settings
from services.ticketing import desk_cli, desks

pytestmark = pytest.mark.servers


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    desk_cli.add_parsers(parser.add_subparsers(dest="command"))
    return parser.parse_args(["desk", *argv])


async def known(settings: Settings, code: str) -> Facility | None:
    if code != "F3201001":
        return None
    return Facility(
        code=code, name="Puskesmas Cibinong", address="-", regency="Kab. Bogor", province="-"
    )


async def unreachable(settings: Settings, code: str) -> Facility | None:
    raise desk_cli.LookupFailed("the scheduler did not answer (TimeoutError)")


async def run(settings: Settings, *argv: str, lookup=known) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = await desk_cli.run_desk(settings, parse(*argv), out, err, lookup=lookup)
    return code, out.getvalue(), err.getvalue()


async def test_desk_add_prints_a_one_time_code_with_its_link_and_qr_then_list_and_revoke(
    settings: Settings, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    png = tmp_path / "enrol.png"
    url = "https://vaksin.example.org/desk/"
    exit_code, out, _ = await run(
        settings, "add", "--facility", "f3201001", "--name", " Meja  1 ", "--url", url,
        "--png", str(png),
    )  # fmt: skip
    assert exit_code == 0
    code = out.split("enrolment code")[1].split()[0]
    assert len(code) == 14 and f"{url}#enrol={code}" in out
    assert "Puskesmas Cibinong (F3201001)" in out and '"Meja 1"' in out
    [read] = zxingcpp.read_barcodes(Image.open(png))
    assert read.text == f"{url}#enrol={code}"
    qr_lines = [line for line in out.splitlines() if "█" in line or "▀" in line]
    assert len(qr_lines) > 10  # the QR code in the terminal

    enrolled = await desks.enrol(pool, code, datetime.now(UTC))
    assert isinstance(enrolled, desks.Enrolled)
    desk_id = enrolled.desk.desk_id
    exit_code, listing, _ = await run(settings, "list", "--facility", "F3201001")
    row = next(line for line in listing.splitlines() if line.split()[0] == str(desk_id))
    assert "Meja 1" in row and "enrolled" in row

    exit_code, out, _ = await run(settings, "revoke", str(desk_id), "--by", "ops")
    assert exit_code == 0 and "revoked" in out
    refused = await desks.authenticate(pool, enrolled.credential, datetime.now(UTC))
    assert refused is desks.Refusal.DESK_REVOKED
    _, listing, _ = await run(settings, "list", "--facility", "F3201001")
    assert not any(line.split()[0] == str(desk_id) for line in listing.splitlines()[1:])
    _, listing, _ = await run(settings, "list", "--facility", "F3201001", "--all")
    assert any(
        line.split()[0] == str(desk_id) and "revoked" in line for line in listing.splitlines()
    )
    exit_code, out, _ = await run(settings, "revoke", str(desk_id))
    assert exit_code == 0 and "was revoked" in out


async def test_desk_add_refuses_an_unknown_facility_a_silent_scheduler_and_a_bad_name(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    before = await pool.fetchval("SELECT count(*) FROM ticketing.desk")
    exit_code, _, err = await run(settings, "add", "--facility", "F9999999", "--name", "Meja 1")
    assert exit_code == 1 and "no facility" in err
    exit_code, _, err = await run(
        settings, "add", "--facility", "F3201001", "--name", "Meja 1", lookup=unreachable
    )
    assert exit_code == 1 and "did not answer" in err
    exit_code, _, err = await run(settings, "add", "--facility", "F3201001", "--name", "x" * 61)
    assert exit_code == 1 and "--name" in err
    exit_code, _, err = await run(settings, "revoke", "987654321")
    assert exit_code == 1 and "no desk" in err
    assert await pool.fetchval("SELECT count(*) FROM ticketing.desk") == before
