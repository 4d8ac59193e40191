"""The scheduler's durable consumer (`scheduler-dose-given`) against the real server: a dose given
whose handling fails once is delivered again after a delay (services/common/consumers.py), and
dose 2 is booked once."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from services.scheduler import jobs
from services.scheduler.handlers import DOSE_GIVEN_DURABLE
from tests.faults import FailsOnce, redeliveries

from .conftest import Person, Place, Scheduler, in_days, today, wait_for
from .test_dose2 import booked_dose_1, dose_2_of, dose_given

pytestmark = pytest.mark.servers


async def test_a_dose_given_that_fails_once_books_dose_2_once(
    scheduler: Scheduler, pool: asyncpg.Pool, place: Place, monkeypatch: pytest.MonkeyPatch
) -> None:
    await place.session(in_days(1))
    await place.session(in_days(14), capacity=5)
    person = Person()
    dose_1 = await booked_dose_1(scheduler, place, person)
    record = FailsOnce(
        jobs.record_dose_given, lambda _pool, event, _settings: event.booking_id == dose_1
    )
    monkeypatch.setattr(jobs, "record_dose_given", record)
    before = redeliveries(DOSE_GIVEN_DURABLE)

    await dose_given(scheduler, dose_1, person, given_on=today())
    found = await wait_for(lambda: dose_2_of(pool, person), lambda row: row is not None)
    assert found is not None, "dose 2 was never booked"
    [announced] = await scheduler.sends(f"scheduler:dose2.booked:{found['id']}")
    assert announced.body["to"] == person.wa_id
    await asyncio.sleep(1.5)  # a further delivery would have come by now

    assert len(record.calls) == 2  # delivered again once, and not after it succeeded
    assert record.redelivered_after >= 0.8  # the first delay is 1 s, not an instant NAK
    assert redeliveries(DOSE_GIVEN_DURABLE) == before + 1
    counts = await pool.fetchrow(
        """SELECT (SELECT count(*) FROM scheduler.booking
                   WHERE person_id = $1 AND dose = 2) AS bookings,
                  (SELECT count(*) FROM scheduler.auto_booking WHERE person_id = $1) AS plans""",
        person.person_id,
    )
    assert dict(counts) == {"bookings": 1, "plans": 1}
    assert len(await scheduler.sends(f"scheduler:dose2.booked:{found['id']}")) == 1
