"""The scheduler's durable consumer (`scheduler-dose-given`) against the real server: a dose given
whose handling fails once is delivered again after a delay (services/common/consumers.py), and
dose 2 is booked once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest
from prometheus_client import REGISTRY

from services.scheduler import jobs
from services.scheduler.handlers import DOSE_GIVEN_DURABLE

from .conftest import Person, Place, Scheduler, in_days, today, wait_for
from .test_dose2 import booked_dose_1, dose_2_of, dose_given

pytestmark = pytest.mark.servers


class FailsOnce:
    """Wraps an async function: its first call about our message raises, as a Postgres blip
    would, and the next ones run the real function; the calls' times show when it came back."""

    def __init__(self, real: Callable[..., Awaitable[Any]], concerns: Callable[..., bool]) -> None:
        self.real = real
        self.concerns = concerns
        self.calls: list[float] = []

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not self.concerns(*args, **kwargs):
            return await self.real(*args, **kwargs)
        self.calls.append(time.monotonic())
        if len(self.calls) == 1:
            raise ConnectionResetError("injected: the first try fails")
        return await self.real(*args, **kwargs)

    @property
    def redelivered_after(self) -> float:
        assert len(self.calls) >= 2, f"not delivered again ({len(self.calls)} call(s))"
        return self.calls[1] - self.calls[0]


def redeliveries(consumer: str) -> float:
    return REGISTRY.get_sample_value("vaksin_redeliveries_total", {"consumer": consumer}) or 0.0


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
