"""scheduler.rpc.* over a real NATS server and Postgres, one verb after the other: what each
answers, what it changes (the seat counter always equals live holds plus active bookings), the
facts it leaves in the SCHEDULER stream, and refusals that are answered, never raised."""

from __future__ import annotations

from datetime import time

import asyncpg
import pytest

from services.common.contracts.scheduler import (
    AlternativesRequest,
    Booking,
    BookingCancelled,
    BookingConfirmed,
    BookingRescheduled,
    BookingsRequest,
    BookingStatus,
    CancelReason,
    CancelRequest,
    ErrorCode,
    FacilityRequest,
    NearbyRequest,
    error_code,
)

from .conftest import (
    Person,
    Place,
    Scheduler,
    confirm_request,
    hold_request,
    in_days,
    rid,
    seats,
    today,
    utc_at,
)

pytestmark = pytest.mark.servers


async def book(scheduler: Scheduler, place: Place, person: Person, **offer: object) -> Booking:
    held = await scheduler.ask(place.offer(person, **offer))
    assert held.error is None, held.error
    booked = await scheduler.ask(confirm_request(person, held.hold.hold_id))
    assert booked.error is None, booked.error
    return booked.booking


async def test_facility_by_code_or_not_found(scheduler: Scheduler, place: Place) -> None:
    found = await scheduler.ask(FacilityRequest(code=place.code))
    assert found.error is None
    assert (found.facility.code, found.facility.regency) == (place.code, place.regency)
    missing = await scheduler.ask(FacilityRequest(code="NOPE-404"))
    assert (missing.facility, error_code(missing.error)) == (None, ErrorCode.NOT_FOUND)


async def test_nearby_lists_the_regency_with_free_seats_assigned_first(
    scheduler: Scheduler, pool: asyncpg.Pool, place: Place
) -> None:
    early = await Place(pool, regency=place.regency, name="A early").create()
    full = await Place(pool, regency=place.regency, name="B full").create()
    elsewhere = await Place(pool, name="C other regency").create()
    await place.session(in_days(5))  # the assigned one: later than `early`, yet listed first
    await early.session(in_days(2))
    await early.session(in_days(3))
    await full.session(in_days(1), capacity=0)
    await elsewhere.session(in_days(1))
    reply = await scheduler.ask(NearbyRequest(facility_code=place.code, on=today()))
    assert reply.error is None
    assert [(f.code, f.earliest_date, f.free_seats) for f in reply.facilities] == [
        (place.code, in_days(5), 10),
        (early.code, in_days(2), 20),
    ]
    by_regency = await scheduler.ask(NearbyRequest(regency=place.regency.upper(), on=in_days(4)))
    assert [f.code for f in by_regency.facilities] == [place.code]
    limited = await scheduler.ask(NearbyRequest(regency=place.regency, on=today(), limit=1))
    assert [f.code for f in limited.facilities] == [early.code]
    unknown = await scheduler.ask(NearbyRequest(facility_code="NOPE-404", on=today()))
    assert error_code(unknown.error) is ErrorCode.NOT_FOUND
    neither = await scheduler.ask(NearbyRequest(on=today()))
    assert error_code(neither.error) is ErrorCode.INVALID


async def test_offer_holds_a_seat_in_the_earliest_session_not_yet_started(
    scheduler: Scheduler, place: Place
) -> None:
    started = await place.session(today(), "08:00")
    later_today = await place.session(today(), "13:00")
    await place.session(in_days(1), "08:00")
    person = Person()
    reply = await scheduler.ask(place.offer(person, now=utc_at(today(), 10)))
    assert reply.error is None
    held = reply.hold
    assert (held.session_id, held.date, held.start, held.end) == (
        later_today,
        today(),
        time(13),
        time(17),
    )
    assert (held.facility.code, held.vaccine, held.dose) == (place.code, "CoronaVac", 1)
    assert (await seats(scheduler.pool, later_today))["reserved"] == 1
    assert (await seats(scheduler.pool, started))["reserved"] == 0


async def test_offer_is_idempotent_and_a_new_offer_releases_the_previous_hold(
    scheduler: Scheduler, place: Place, pool: asyncpg.Pool
) -> None:
    first_session = await place.session(in_days(1), capacity=1)
    second_session = await place.session(in_days(2))
    person = Person()
    request = place.offer(person)
    first = await scheduler.ask(request)
    again = await scheduler.ask(request)
    assert again.hold == first.hold
    assert (await seats(pool, first_session))["reserved"] == 1
    # A new offer (a new message) releases the first hold, whose seat it then takes again.
    renewed = await scheduler.ask(place.offer(person))
    assert renewed.hold.session_id == first_session
    assert renewed.hold.hold_id != first.hold.hold_id
    assert (await seats(pool, first_session))["reserved"] == 1
    statuses = await pool.fetch(
        "SELECT status FROM scheduler.hold WHERE person_id = $1 ORDER BY id", person.person_id
    )
    assert [r["status"] for r in statuses] == ["released", "held"]
    # Someone else gets the next session: the only seat of the first is held.
    other = await scheduler.ask(place.offer(Person()))
    assert other.hold.session_id == second_session


async def test_offer_answers_full_not_found_and_already_booked(
    scheduler: Scheduler, place: Place
) -> None:
    await place.session(in_days(1), capacity=1)
    person = Person()
    booking = await book(scheduler, place, person)
    full = await scheduler.ask(place.offer(Person()))
    assert (full.hold, error_code(full.error)) == (None, ErrorCode.FULL)
    again = await scheduler.ask(place.offer(person))
    assert error_code(again.error) is ErrorCode.ALREADY_BOOKED
    assert again.booking == booking
    unknown = await scheduler.ask(
        Place(scheduler.pool, code="NOPE-404").offer(Person())  # a facility that does not exist
    )
    assert error_code(unknown.error) is ErrorCode.NOT_FOUND


async def test_alternatives_list_sessions_with_free_seats_earliest_first(
    scheduler: Scheduler, place: Place
) -> None:
    ids = [await place.session(in_days(d), start) for d in (1, 2) for start in ("08:00", "13:00")]
    await place.session(in_days(1), "10:00", capacity=0)  # full: never listed
    booked_by_person = await place.session(in_days(3))
    for d in range(4, 15):
        await place.session(in_days(d))
    person = Person()
    await scheduler.ask(hold_request(person, booked_by_person))
    reply = await scheduler.ask(
        AlternativesRequest(person_id=person.person_id, facility_code=place.code, on=today())
    )
    assert reply.error is None and reply.facility.code == place.code
    assert len(reply.sessions) == 10
    assert [s.session_id for s in reply.sessions[:4]] == ids
    assert [s.free_seats for s in reply.sessions[:5]] == [10, 10, 10, 10, 9]
    assert all(len(f"slot.{s.session_id}") <= 200 for s in reply.sessions)
    short = await scheduler.ask(
        AlternativesRequest(person_id="x", facility_code=place.code, on=in_days(2), limit=2)
    )
    assert [s.session_id for s in short.sessions] == ids[2:]


async def test_hold_a_chosen_session_or_be_told_why_not(
    scheduler: Scheduler, place: Place, pool: asyncpg.Pool
) -> None:
    chosen = await place.session(in_days(2), capacity=1)
    past = await place.session(in_days(-1))
    person = Person()
    reply = await scheduler.ask(hold_request(person, chosen))
    assert reply.error is None and reply.hold.session_id == chosen
    assert (await seats(pool, chosen))["held"] == 1
    full = await scheduler.ask(hold_request(Person(), chosen))
    assert error_code(full.error) is ErrorCode.FULL
    for session_id in (past, 99_999_999):
        refused = await scheduler.ask(hold_request(Person(), session_id))
        assert error_code(refused.error) is ErrorCode.NOT_FOUND


async def test_confirm_books_the_held_seat_and_publishes_booked(
    scheduler: Scheduler, place: Place, pool: asyncpg.Pool
) -> None:
    session_id = await place.session(in_days(3), "09:30", capacity=2)
    person = Person(lang="en")
    held = (await scheduler.ask(place.offer(person))).hold
    reply = await scheduler.ask(confirm_request(person, held.hold_id))
    assert reply.error is None
    booking = reply.booking
    assert (booking.session_id, booking.dose, booking.status) == (session_id, 1, "active")
    assert (booking.date, booking.start, booking.facility.code) == (
        in_days(3),
        time(9, 30),
        place.code,
    )
    assert await seats(pool, session_id) == {"capacity": 2, "reserved": 1, "held": 0, "booked": 1}
    [event] = await scheduler.events(booking.booking_id)
    assert event.subject == "scheduler.evt.booked"
    assert event.headers["Nats-Msg-Id"].startswith("scheduler-outbox-")
    fact = BookingConfirmed.model_validate(event.body)
    assert (fact.person_id, fact.wa_id, fact.lang, fact.vaccine) == (
        person.person_id,
        person.wa_id,
        "en",
        "CoronaVac",
    )
    assert (fact.date, fact.start, fact.facility.name) == (in_days(3), time(9, 30), place.name)
    status = await scheduler.ask(BookingsRequest(person_id=person.person_id))
    assert status.bookings == [booking]


async def test_confirm_of_an_unknown_or_someone_elses_hold_is_not_found(
    scheduler: Scheduler, place: Place
) -> None:
    await place.session(in_days(1))
    owner = Person()
    held = (await scheduler.ask(place.offer(owner))).hold
    for who, hold_id in ((Person(), held.hold_id), (owner, 99_999_999)):
        reply = await scheduler.ask(confirm_request(who, hold_id))
        assert (reply.booking, error_code(reply.error)) == (None, ErrorCode.NOT_FOUND)


async def test_reschedule_holds_the_new_seat_then_swaps_in_one_step(
    scheduler: Scheduler, place: Place, pool: asyncpg.Pool
) -> None:
    old_session = await place.session(in_days(1), capacity=1)
    new_session = await place.session(in_days(4), capacity=1)
    person = Person()
    old = await book(scheduler, place, person)
    # UBAH: the offer skips the session booked already and holds the new seat first.
    offer = place.offer(person, replaces_booking_id=old.booking_id)
    held = (await scheduler.ask(offer)).hold
    assert (held.session_id, held.replaces_booking_id) == (new_session, old.booking_id)
    assert (await seats(pool, old_session))["booked"] == 1
    assert (await seats(pool, new_session))["held"] == 1
    reply = await scheduler.ask(confirm_request(person, held.hold_id))
    assert reply.error is None
    assert (reply.booking.session_id, reply.booking.replaces_booking_id) == (
        new_session,
        old.booking_id,
    )
    assert reply.previous.booking_id == old.booking_id
    assert reply.previous.status is BookingStatus.RESCHEDULED
    assert await seats(pool, old_session) == {"capacity": 1, "reserved": 0, "held": 0, "booked": 0}
    assert await seats(pool, new_session) == {"capacity": 1, "reserved": 1, "held": 0, "booked": 1}
    events = await scheduler.events(old.booking_id, count=2)
    assert [e.subject for e in events] == ["scheduler.evt.booked", "scheduler.evt.rescheduled"]
    moved = BookingRescheduled.model_validate(events[1].body)
    assert (moved.booking_id, moved.session_id) == (reply.booking.booking_id, new_session)
    assert (moved.previous.booking_id, moved.previous.session_id) == (old.booking_id, old_session)
    assert [
        b.booking_id
        for b in (await scheduler.ask(BookingsRequest(person_id=person.person_id))).bookings
    ] == [reply.booking.booking_id]
    # A reschedule must name the person's active booking.
    stale = await scheduler.ask(place.offer(person, replaces_booking_id=old.booking_id))
    assert error_code(stale.error) is ErrorCode.NO_BOOKING


async def test_cancel_returns_the_seat_once_and_publishes_cancelled(
    scheduler: Scheduler, place: Place, pool: asyncpg.Pool
) -> None:
    session_id = await place.session(in_days(2), capacity=1)
    person = Person()
    booking = await book(scheduler, place, person)
    request = CancelRequest(request_id=rid(), person_id=person.person_id)
    reply = await scheduler.ask(request)
    assert reply.error is None
    assert (reply.booking.booking_id, reply.booking.status) == (booking.booking_id, "cancelled")
    assert (await scheduler.ask(request)).booking == reply.booking  # a repeat: the same answer
    assert await seats(pool, session_id) == {"capacity": 1, "reserved": 0, "held": 0, "booked": 0}
    events = await scheduler.events(booking.booking_id, count=2)
    assert [e.subject for e in events] == ["scheduler.evt.booked", "scheduler.evt.cancelled"]
    assert BookingCancelled.model_validate(events[1].body).reason is CancelReason.USER
    nothing = await scheduler.ask(CancelRequest(request_id=rid(), person_id=person.person_id))
    assert error_code(nothing.error) is ErrorCode.NO_BOOKING
    assert (await scheduler.ask(BookingsRequest(person_id=person.person_id))).bookings == []
    # The returned seat is anyone's again.
    assert (await scheduler.ask(place.offer(Person()))).hold.session_id == session_id
