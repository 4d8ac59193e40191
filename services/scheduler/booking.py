"""What scheduler.rpc.* do: find facilities and free sessions, hold a seat (offer: the earliest
one at a facility; hold: a chosen session), confirm a hold into a booking (or a reschedule:
book the new seat, void the old booking and return its seat in one transaction), cancel, list.

Refusals raise `SchedulerError`; the handlers turn them into replies. Requests that change
something are idempotent on their request id (the inbound wamid): a repeat gets the first answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

import asyncpg

from services.common.clock import WIB
from services.common.contracts.scheduler import (
    AlternativesRequest,
    Booking,
    CancelRequest,
    ConfirmRequest,
    ErrorCode,
    Facility,
    FacilitySearchRequest,
    Hold,
    HoldRequest,
    NearbyFacility,
    NearbyRequest,
    OfferRequest,
    SessionSlot,
)
from services.scheduler import domain, search
from services.scheduler import repository as repo
from services.scheduler.domain import ConfirmStep, Cutoff, SchedulerError

CANDIDATES = 3  # sessions tried per look-up: the next ones are there when a seat is taken meanwhile
LOOKUPS = 3
RETRIES = 3  # a transaction that locks two sessions (a reschedule) may meet a deadlock

T = TypeVar("T")


async def in_transaction(
    pool: asyncpg.Pool, work: Callable[[asyncpg.Connection], Awaitable[T]]
) -> T:
    """`work` in one transaction, run again when Postgres broke a deadlock by aborting it."""
    for attempt in range(RETRIES):
        async with pool.acquire() as conn:
            try:
                async with conn.transaction():
                    return await work(conn)
            except asyncpg.DeadlockDetectedError:
                if attempt == RETRIES - 1:
                    raise
    raise AssertionError("unreachable")


def _not_found(what: str) -> SchedulerError:
    return SchedulerError(ErrorCode.NOT_FOUND, what)


async def facility(pool: asyncpg.Pool, code: str) -> Facility:
    async with pool.acquire() as conn:
        found = await repo.facility(conn, code)
    if found is None:
        raise _not_found(f"no facility {code}")
    return found


async def search_facilities(
    pool: asyncpg.Pool, req: FacilitySearchRequest
) -> tuple[list[Facility], int, bool]:
    """The facilities having every word typed (`total` of them), else the few closest ones
    (`approximate`); see search.py."""
    query = search.checked(req.query)
    regency = (req.regency or "").strip() or None
    async with pool.acquire() as conn:
        terms = search.terms(await repo.search_normalize(conn, query))
        found, total = await repo.search_facilities(
            conn,
            [search.like_pattern(w) for w in terms.required],
            optional=[search.like_pattern(w) for w in terms.optional],
            exact=terms.exact,
            regency=regency,
            limit=req.limit,
        )
        if total:
            return found, total, False
        async with conn.transaction():
            similar = await repo.similar_facilities(
                conn,
                terms.required,
                threshold=search.SIMILARITY,
                regency=regency,
                limit=min(req.limit, search.SIMILAR_ROWS),
            )
        return similar, len(similar), True


async def nearby(pool: asyncpg.Pool, req: NearbyRequest, now: datetime) -> list[NearbyFacility]:
    if not req.facility_code and not (req.regency or "").strip():
        raise SchedulerError(ErrorCode.INVALID, "give facility_code or regency")
    async with pool.acquire() as conn:
        regency = (req.regency or "").strip()
        if req.facility_code:
            assigned = await repo.facility(conn, req.facility_code)
            if assigned is None:
                raise _not_found(f"no facility {req.facility_code}")
            regency = assigned.regency
        return await repo.nearby(
            conn,
            regency,
            domain.earliest_start(req.on, now),
            first=req.facility_code,
            vaccine=req.vaccine,
            limit=req.limit,
        )


async def alternatives(
    pool: asyncpg.Pool, req: AlternativesRequest, now: datetime
) -> tuple[Facility, list[SessionSlot]]:
    async with pool.acquire() as conn:
        found = await repo.facility(conn, req.facility_code)
        if found is None:
            raise _not_found(f"no facility {req.facility_code}")
        cutoff = domain.earliest_start(req.on, now)
        window = await repo.dose2_window_of(conn, req.person_id) if req.dose == 2 else None
        slots = await repo.free_sessions(
            conn,
            req.facility_code,
            domain.later_of(cutoff, window.earliest if window else None),
            latest=window.latest if window else None,
            vaccine=req.vaccine,
            person_id=req.person_id,
            limit=req.limit,
        )
    return found, slots


# --- holds ---------------------------------------------------------------------------------------


async def _check_person(
    conn: asyncpg.Connection,
    request_id: str,
    person_id: str,
    dose: int,
    replaces: int | None,
    session_id: int | None = None,
) -> repo.PersonState:
    state = await repo.person_state(conn, request_id, person_id, dose, session_id)
    if state.hold_for_request is not None:
        return state
    if state.given:
        raise SchedulerError(ErrorCode.ALREADY_GIVEN, f"dose {dose} was given already")
    if replaces is None and state.active is not None:
        raise SchedulerError(
            ErrorCode.ALREADY_BOOKED,
            f"booking {state.active.booking_id} is active for dose {dose}",
            booking=state.active,
        )
    if replaces is not None and (state.active is None or state.active.booking_id != replaces):
        raise SchedulerError(
            ErrorCode.NO_BOOKING, f"booking {replaces} is not your active dose-{dose} booking"
        )
    return state


async def _take(
    conn: asyncpg.Connection, session_id: int, cutoff: Cutoff, who: repo.HoldFor
) -> Hold | None:
    for _ in range(RETRIES):
        try:
            held = await repo.take_hold(conn, session_id, cutoff, who)
            if held is not None:
                await repo.set_reach(conn, who.wa_id, who.channel)
            return held
        except asyncpg.DeadlockDetectedError:
            continue  # only concurrent offers of one person meet like this; one statement: retry
        except asyncpg.UniqueViolationError as e:
            if e.constraint_name == repo.UNIQUE_ONE_HOLD:
                # Another offer of this person got in between: the newest one wins.
                await repo.release_live_holds(conn, who.person_id)
                continue
            # The same request handled concurrently (another replica): its hold is the answer.
            state = await repo.person_state(conn, who.request_id, who.person_id, who.dose)
            if state.hold_for_request is None:
                raise
            return state.hold_for_request
    return None


def _holder(req: OfferRequest | HoldRequest, hold_seconds: float) -> repo.HoldFor:
    return repo.HoldFor(
        request_id=req.request_id,
        person_id=req.person_id,
        wa_id=req.wa_id,
        lang=req.lang,
        dose=req.dose,
        replaces_booking_id=req.replaces_booking_id,
        seconds=hold_seconds,
        channel=req.channel,
    )


async def offer(pool: asyncpg.Pool, req: OfferRequest, now: datetime, hold_seconds: float) -> Hold:
    """A seat held in the earliest session with a free seat at the facility."""
    async with pool.acquire() as conn:
        state = await _check_person(
            conn, req.request_id, req.person_id, req.dose, req.replaces_booking_id
        )
        if state.hold_for_request is not None:
            return state.hold_for_request
        if state.has_live_hold:
            await repo.release_live_holds(conn, req.person_id)
        window = state.dose2_window
        cutoff = domain.later_of(
            domain.earliest_start(req.on, now), window.earliest if window else None
        )
        who = _holder(req, hold_seconds)
        for _ in range(LOOKUPS):
            slots = await repo.free_sessions(
                conn,
                req.facility_code,
                cutoff,
                latest=window.latest if window else None,
                vaccine=req.vaccine,
                person_id=req.person_id,  # a reschedule does not offer the session booked
                limit=CANDIDATES,
            )
            for slot in slots:
                held = await _take(conn, slot.session_id, cutoff, who)
                if held is not None:
                    return held
            if len(slots) < CANDIDATES:
                break
        if await repo.facility(conn, req.facility_code) is None:
            raise _not_found(f"no facility {req.facility_code}")
    raise SchedulerError(ErrorCode.FULL, f"no free seat at {req.facility_code} from {req.on}")


async def hold(pool: asyncpg.Pool, req: HoldRequest, now: datetime, hold_seconds: float) -> Hold:
    """A seat held in the chosen session."""
    async with pool.acquire() as conn:
        state = await _check_person(
            conn, req.request_id, req.person_id, req.dose, req.replaces_booking_id, req.session_id
        )
        if state.hold_for_request is not None:
            return state.hold_for_request
        session = state.session
        if session is None or session.status != "open":
            raise _not_found(f"no open session {req.session_id}")
        cutoff = domain.earliest_start(now.astimezone(WIB).date(), now)
        if (session.day, session.starts) < (cutoff.day, cutoff.start):
            raise _not_found(f"session {req.session_id} has started")
        window = state.dose2_window
        if window is not None and not window.contains(session.day):
            raise SchedulerError(
                ErrorCode.OUTSIDE_WINDOW,
                f"dose 2 is given from {window.earliest} to {window.latest}",
            )
        if state.active is not None and state.active.session_id == req.session_id:
            raise SchedulerError(ErrorCode.INVALID, "that is the session booked already")
        if state.has_live_hold:
            await repo.release_live_holds(conn, req.person_id)
        held = await _take(conn, req.session_id, cutoff, _holder(req, hold_seconds))
    if held is None:
        raise SchedulerError(ErrorCode.FULL, f"session {req.session_id} has no free seat")
    return held


# --- confirmation --------------------------------------------------------------------------------


async def _after_conflict(
    conn: asyncpg.Connection, error: asyncpg.UniqueViolationError, req: ConfirmRequest
) -> tuple[Booking, Booking | None]:
    """A unique key refused the booking (and the statement changed nothing)."""
    if error.constraint_name == repo.UNIQUE_ONE_ACTIVE:
        held = await repo.hold_by_id(conn, req.hold_id)
        assert held is not None
        active = await repo.active_booking(conn, req.person_id, held.dose)
        raise SchedulerError(
            ErrorCode.ALREADY_BOOKED,
            f"an active dose-{held.dose} booking exists",
            booking=active,
        )
    # The same request id or the same hold, booked by a concurrent confirmation.
    booked = await repo.booking_by_request(conn, req.request_id) or await repo.booking_by_hold(
        conn, req.hold_id
    )
    if booked is None:
        raise error
    return await _with_previous(conn, booked)


async def _with_previous(
    conn: asyncpg.Connection, booking: Booking
) -> tuple[Booking, Booking | None]:
    if booking.replaces_booking_id is None:
        return booking, None
    return booking, await repo.booking_by_id(conn, booking.replaces_booking_id)


async def confirm(
    pool: asyncpg.Pool, req: ConfirmRequest, now: datetime
) -> tuple[Booking, Booking | None]:
    """The held seat booked; with a reschedule hold, also the booking it replaced."""
    async with pool.acquire() as conn:
        try:
            booked = await repo.confirm_held(conn, req.hold_id, req.person_id, req.request_id)
        except asyncpg.UniqueViolationError as e:
            return await _after_conflict(conn, e, req)
        if booked is not None:
            return booked, None

    async def slow(conn: asyncpg.Connection) -> tuple[Booking, Booking | None]:
        return await _confirm(conn, req, now)

    try:
        return await in_transaction(pool, slow)
    except asyncpg.UniqueViolationError as e:
        async with pool.acquire() as conn:
            return await _after_conflict(conn, e, req)


async def _confirm(
    conn: asyncpg.Connection, req: ConfirmRequest, now: datetime
) -> tuple[Booking, Booking | None]:
    """Every case but the common one, in one transaction: a repeat, a lapsed hold whose seat must
    be found again, a reschedule."""
    repeated = await repo.booking_by_request(conn, req.request_id)
    if repeated is not None:
        return await _with_previous(conn, repeated)
    held = await repo.lock_hold(conn, req.hold_id)
    if held is None or held.person_id != req.person_id:
        raise _not_found(f"no hold {req.hold_id}")
    step = domain.confirm_step(held.status)
    if step is ConfirmStep.RETURN_BOOKING:
        booked = await repo.booking_by_hold(conn, held.id)
        assert booked is not None
        return await _with_previous(conn, booked)
    previous = None
    if held.replaces_booking_id is not None:
        old = await repo.lock_booking(conn, held.replaces_booking_id)
        if old is not None and old.status == "active" and old.person_id == held.person_id:
            previous = old
    if step is ConfirmStep.RETAKE_SEAT:
        cutoff = domain.earliest_start(now.astimezone(WIB).date(), now)
        if not await repo.take_seat(conn, held.session_id, cutoff):
            raise SchedulerError(
                ErrorCode.HOLD_EXPIRED, f"hold {held.id} expired and its seat was taken"
            )
    await repo.mark_hold_confirmed(conn, held.id)
    if previous is not None:
        await repo.retire_booking(conn, previous.id)
    booking_id = await repo.insert_booking(
        conn,
        request_id=req.request_id,
        hold_id=held.id,
        person_id=held.person_id,
        wa_id=held.wa_id,
        lang=held.lang,
        dose=held.dose,
        session_id=held.session_id,
        replaces_booking_id=previous.id if previous else None,
    )
    if previous is not None:
        await repo.enqueue_rescheduled(conn, booking_id)
    else:
        await repo.enqueue_booked(conn, [booking_id])
    booked = await repo.booking_by_id(conn, booking_id)
    assert booked is not None
    return await _with_previous(conn, booked)


# --- cancellation and status ----------------------------------------------------------------------


async def cancel(pool: asyncpg.Pool, req: CancelRequest) -> Booking:
    async with pool.acquire() as conn:
        repeated = await repo.booking_by_cancel_request(conn, req.request_id)
        if repeated is not None:
            return repeated
        try:
            async with conn.transaction():
                await repo.cancel_booking(conn, req.person_id, req.booking_id, req.request_id)
        except asyncpg.UniqueViolationError:
            pass  # the same request id, cancelled concurrently: answered below
        found = await repo.booking_by_cancel_request(conn, req.request_id)
    if found is None:
        which = f"booking {req.booking_id}" if req.booking_id else "booking"
        raise SchedulerError(ErrorCode.NO_BOOKING, f"no active {which} to cancel")
    return found


async def bookings(pool: asyncpg.Pool, person_id: str) -> list[Booking]:
    async with pool.acquire() as conn:
        return await repo.active_bookings(conn, person_id)
