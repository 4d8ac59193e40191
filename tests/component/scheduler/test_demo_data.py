"""`vaksin demo-data` loads facilities for the demo registry's health workers (and others in the
same regencies) and sessions for the next 14 days, so the schedule step can be tried at once;
loading it again adds nothing."""

from __future__ import annotations

import asyncpg
import pytest

from services.common.contracts.scheduler import NearbyRequest
from services.common.settings import Settings
from services.devtools.demo import DAYS, load_demo_data

from .conftest import Person, Place, Scheduler, in_days, today

pytestmark = pytest.mark.servers

ASSIGNED = ("F3201001", "F3273002", "F3578003")  # the facility codes of demo_registry.csv


async def test_demo_data_gives_every_demo_facility_sessions_for_two_weeks(
    settings: Settings, scheduler: Scheduler, pool: asyncpg.Pool, capsys: pytest.CaptureFixture
) -> None:
    assert await load_demo_data(settings) == 0
    assert await load_demo_data(settings) == 0
    printed = capsys.readouterr().out
    assert "imported 7 facilities: 0 new, 0 updated, 7 unchanged" in printed
    rows = await pool.fetch(
        """SELECT f.code, f.regency, min(s.day) AS first, max(s.day) AS last, count(*) AS n
           FROM scheduler.facility f JOIN scheduler.session s ON s.facility_code = f.code
           WHERE f.code = any($1::text[]) GROUP BY f.code""",
        list(ASSIGNED),
    )
    assert {r["code"] for r in rows} == set(ASSIGNED)
    for r in rows:
        assert r["first"] >= today() and r["last"] <= in_days(DAYS - 1)
    for code in ASSIGNED:
        nearby = await scheduler.ask(NearbyRequest(facility_code=code, on=in_days(1)))
        assert nearby.facilities[0].code == code and len(nearby.facilities) >= 2
    siti = Person()
    held = await scheduler.ask(Place(pool, code="F3201001").offer(siti, on=in_days(1)))
    assert held.error is None and held.hold.facility.name == "Puskesmas Cibinong"
