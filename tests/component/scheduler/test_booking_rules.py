"""The booking rules on real Postgres with real concurrent connections: never a seat that does not
exist, one active booking per person and dose, an expired hold frees its seat by itself, a
duplicate confirmation books once, and cancel and reschedule keep the seat counter right."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest

from services.common.contracts.scheduler import (
    CancelRequest,
    ConfirmRequest,
    ErrorCode,
    HoldRequest,
    OfferRequest,
)
from services.common.db import create_pool
from services.common.settings import Settings
from services.scheduler import booking, domain, jobs
from services.scheduler import repository as repo
from services.scheduler.domain import SchedulerError

from .conftest import (
    Person,
    Place,
    Scheduler,
    confirm_request,
    hold_request,
    in_days,
    lapse,
    rid,
    seats,
    today,
)

pytestmark = pytest.mark.servers

HOLD_SECONDS = 600.0
CONNECTIONS = 40


@pytest.fixture
async def wide_pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    """Many connections, so that concurrent requests really meet in Postgres."""
    pool = await create_pool(
        settings.database_url or "", min_size=CONNECTIONS, max_size=CONNECTIONS
    )
    yield pool
    await pool.close()


def now() -> datetime:
    return datetime.now(UTC)


def offer_for(place: Place, person: Person, **extra: object) -> OfferRequest:
    return place.offer(person, **extra)


async def outcome(work: object) -> object:
    """The result of a use case, or the code it was refused with."""
    try:
        return await work  # type: ignore[misc]
    except SchedulerError as e:
        return e.code


async def test_200_concurrent_confirmations_for_the_last_10_seats_book_exactly_10(
    wide_pool: asyncpg.Pool, place: Place
) -> None:
    session_id = await place.session(in_days(2), capacity=200)
    holders = [Person() for _ in range(200)]
    holds = await asyncio.gather(
        *(booking.offer(wide_pool, offer_for(place, p), now(), HOLD_SECONDS) for p in holders)
    )
    assert await seats(wide_pool, session_id) == {
        "capacity": 200,
        "reserved": 200,
        "held": 200,
        "booked": 0,
    }
    # Every hold lapses; 190 other people take 190 of the seats; 10 are left.
    await lapse(wide_pool, *(h.hold_id for h in holds))
    others = [Person() for _ in range(190)]
    others_held = await asyncio.gather(
        *(booking.offer(wide_pool, offer_for(place, p), now(), HOLD_SECONDS) for p in others)
    )
    assert {h.session_id for h in others_held} == {session_id}
    await asyncio.gather(
        *(
            booking.confirm(wide_pool, confirm_request(p, h.hold_id), now())
            for p, h in zip(others, others_held, strict=True)
        )
    )
    assert (await seats(wide_pool, session_id))["booked"] == 190
    # The 200 first holders confirm at once: their seats went back, only 10 are free.
    results = await asyncio.gather(
        *(
            outcome(booking.confirm(wide_pool, confirm_request(p, h.hold_id), now()))
            for p, h in zip(holders, holds, strict=True)
        )
    )
    refused = Counter(r for r in results if isinstance(r, ErrorCode))
    assert refused == {ErrorCode.HOLD_EXPIRED: 190}
    assert sum(1 for r in results if not isinstance(r, ErrorCode)) == 10
    assert await seats(wide_pool, session_id) == {
        "capacity": 200,
        "reserved": 200,
        "held": 0,
        "booked": 200,
    }


async def test_200_concurrent_holds_for_the_last_10_seats_hold_exactly_10(
    wide_pool: asyncpg.Pool, place: Place
) -> None:
    session_id = await place.session(in_days(1), capacity=10)
    results = await asyncio.gather(
        *(
            outcome(booking.hold(wide_pool, hold_request(Person(), session_id), now(), 60))
            for _ in range(200)
        )
    )
    assert Counter(r for r in results if isinstance(r, ErrorCode)) == {ErrorCode.FULL: 190}
    assert await seats(wide_pool, session_id) == {
        "capacity": 10,
        "reserved": 10,
        "held": 10,
        "booked": 0,
    }


async def test_a_person_cannot_hold_two_dose_1_bookings(
    wide_pool: asyncpg.Pool, scheduler: Scheduler, place: Place
) -> None:
    sessions = [await place.session(in_days(d)) for d in range(1, 21)]
    person = Person()
    # Twenty offers of one person at once (one per session), then every answer confirmed at once.
    holds = await asyncio.gather(
        *(
            outcome(booking.hold(wide_pool, hold_request(person, s), now(), HOLD_SECONDS))
            for s in sessions
        )
    )
    held = [h for h in holds if not isinstance(h, ErrorCode)]
    assert held, holds
    # Each offer released the one before; racing each other, the last may have lost its seat too.
    assert (
        await wide_pool.fetchval(
            "SELECT count(*) FROM scheduler.hold WHERE person_id = $1 AND status = 'held'",
            person.person_id,
        )
        <= 1
    )
    results = await asyncio.gather(
        *(
            outcome(booking.confirm(wide_pool, confirm_request(person, h.hold_id), now()))
            for h in held
        )
    )
    booked = [r for r in results if not isinstance(r, ErrorCode)]
    assert len(booked) == 1
    assert {r for r in results if isinstance(r, ErrorCode)} <= {ErrorCode.ALREADY_BOOKED}
    assert (
        await wide_pool.fetchval(
            "SELECT count(*) FROM scheduler.booking WHERE person_id = $1 AND status = 'active'",
            person.person_id,
        )
        == 1
    )
    for s in sessions:
        await seats(wide_pool, s)  # every counter still equals its holds and bookings
    # The database itself refuses a second active booking of the same dose.
    with pytest.raises(asyncpg.UniqueViolationError, match=repo.UNIQUE_ONE_ACTIVE):
        await wide_pool.execute(
            """INSERT INTO scheduler.booking (request_id, person_id, wa_id, lang, dose, session_id)
               VALUES ($1, $2, '6281200000000', 'id', 1, $3)""",
            rid(),
            person.person_id,
            sessions[-1],
        )
    # Through the service: an offer or hold answers already_booked with the booking.
    reply = await scheduler.ask(hold_request(person, sessions[-1]))
    assert reply.error.startswith("already_booked: ")
    assert reply.booking.booking_id == booked[0][0].booking_id


async def test_an_expired_hold_frees_its_seat_by_itself(
    scheduler: Scheduler, pool: asyncpg.Pool, place: Place
) -> None:
    session_id = await place.session(in_days(1), capacity=1)
    first, second = Person(), Person()
    cutoff = domain.earliest_start(today(), now())
    # A one-second hold, really waited out.
    who = repo.HoldFor(rid(), first.person_id, first.wa_id, "id", 1, None, seconds=1.0)
    async with pool.acquire() as conn:
        first_hold = await repo.take_hold(conn, session_id, cutoff, who)
    assert first_hold is not None
    assert (await scheduler.ask(hold_request(second, session_id))).error.startswith("full: ")
    await asyncio.sleep(1.1)
    # No sweep has run: the next hold on the session gives the lapsed seat back and takes it.
    second_hold = (await scheduler.ask(hold_request(second, session_id))).hold
    assert second_hold is not None
    assert await seats(pool, session_id) == {"capacity": 1, "reserved": 1, "held": 1, "booked": 0}
    late = await scheduler.ask(confirm_request(first, first_hold.hold_id))
    assert late.error.startswith("hold_expired: ")
    assert (await scheduler.ask(confirm_request(second, second_hold.hold_id))).error is None


async def test_a_lapsed_hold_nobody_took_still_books_and_the_sweep_returns_the_rest(
    scheduler: Scheduler, pool: asyncpg.Pool, place: Place
) -> None:
    session_id = await place.session(in_days(1), capacity=2)
    late, gone = Person(), Person()
    late_hold = (await scheduler.ask(hold_request(late, session_id))).hold
    gone_hold = (await scheduler.ask(hold_request(gone, session_id))).hold
    await lapse(pool, late_hold.hold_id, gone_hold.hold_id)
    # Past its expiry but its seat still counted: confirming it books that seat.
    assert (await scheduler.ask(confirm_request(late, late_hold.hold_id))).error is None
    assert await seats(pool, session_id) == {"capacity": 2, "reserved": 2, "held": 1, "booked": 1}
    assert await jobs.sweep_holds(pool) >= 1
    assert await seats(pool, session_id) == {"capacity": 2, "reserved": 1, "held": 0, "booked": 1}
    status = await pool.fetchval(
        "SELECT status FROM scheduler.hold WHERE id = $1", gone_hold.hold_id
    )
    assert status == "expired"


async def test_a_duplicate_confirmation_books_once(
    wide_pool: asyncpg.Pool, scheduler: Scheduler, place: Place
) -> None:
    session_id = await place.session(in_days(1), capacity=5)
    person = Person()
    held = (await scheduler.ask(hold_request(person, session_id))).hold
    request = confirm_request(person, held.hold_id)
    # The same wamid delivered ten times at once, and once more later.
    results = await asyncio.gather(*(booking.confirm(wide_pool, request, now()) for _ in range(10)))
    assert len({b.booking_id for b, _ in results}) == 1
    again = await scheduler.ask(request)
    assert again.booking == results[0][0]
    # Another message confirming the same hold (a double tap) gets the same booking too.
    tapped = await scheduler.ask(confirm_request(person, held.hold_id))
    assert tapped.booking == results[0][0]
    assert await seats(wide_pool, session_id) == {
        "capacity": 5,
        "reserved": 1,
        "held": 0,
        "booked": 1,
    }
    events = await scheduler.events(results[0][0].booking_id)
    await asyncio.sleep(0.5)  # anything more would have been relayed by now
    assert len(await scheduler.events(results[0][0].booking_id)) == len(events) == 1


async def test_concurrent_cancels_and_reschedules_keep_the_counts_right(
    wide_pool: asyncpg.Pool, place: Place
) -> None:
    first = await place.session(in_days(1), capacity=30)
    second = await place.session(in_days(2), capacity=10)
    people = [Person() for _ in range(30)]
    holds = await asyncio.gather(
        *(booking.hold(wide_pool, hold_request(p, first), now(), HOLD_SECONDS) for p in people)
    )
    booked = await asyncio.gather(
        *(
            booking.confirm(wide_pool, confirm_request(p, h.hold_id), now())
            for p, h in zip(people, holds, strict=True)
        )
    )
    cancelling, moving = people[:10], people[10:25]

    async def move(person: Person, booking_id: int) -> object:
        held = await outcome(
            booking.hold(
                wide_pool,
                HoldRequest(
                    request_id=rid(),
                    person_id=person.person_id,
                    wa_id=person.wa_id,
                    session_id=second,
                    replaces_booking_id=booking_id,
                ),
                now(),
                HOLD_SECONDS,
            )
        )
        if isinstance(held, ErrorCode):
            return held
        return await outcome(
            booking.confirm(
                wide_pool,
                ConfirmRequest(request_id=rid(), hold_id=held.hold_id, person_id=person.person_id),
                now(),
            )
        )

    results = await asyncio.gather(
        *(
            booking.cancel(wide_pool, CancelRequest(request_id=rid(), person_id=p.person_id))
            for p in cancelling
        ),
        *(move(p, b.booking_id) for p, (b, _) in zip(moving, booked[10:25], strict=True)),
    )
    moved = [r for r in results[10:] if not isinstance(r, ErrorCode)]
    assert len(moved) == 10  # the second session has 10 seats for 15 people wanting to move
    assert Counter(r for r in results[10:] if isinstance(r, ErrorCode)) == {ErrorCode.FULL: 5}
    assert await seats(wide_pool, first) == {
        "capacity": 30,
        "reserved": 10,
        "held": 0,
        "booked": 10,
    }
    assert await seats(wide_pool, second) == {
        "capacity": 10,
        "reserved": 10,
        "held": 0,
        "booked": 10,
    }
    statuses = await wide_pool.fetch(
        """SELECT status, count(*)::int AS n FROM scheduler.booking
           WHERE session_id = any($1::bigint[]) GROUP BY status""",
        [first, second],
    )
    assert {r["status"]: r["n"] for r in statuses} == {
        "active": 20,
        "cancelled": 10,
        "rescheduled": 10,
    }
