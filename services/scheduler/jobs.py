"""What the scheduler does on its own: book dose 2 when dose 1 was given, move the bookings of a
cancelled session, keep trying (daily) when no seat is free, send the day-before reminders, and
give back the seats of lapsed holds. Every replica runs the periodic jobs; each claims its rows
with row locks, so two replicas never do the same work twice."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import asyncpg
import structlog

from services.common.clock import WIB
from services.common.contracts.notifier import SendMessage
from services.common.contracts.scheduler import Facility
from services.common.contracts.ticketing import DoseGiven
from services.common.settings import Settings
from services.scheduler import domain, notices
from services.scheduler import repository as repo
from services.scheduler.booking import CANDIDATES, in_transaction
from services.scheduler.metrics import AUTOMATIC_BOOKINGS, REMINDERS

log = structlog.get_logger(__name__)

REMINDER_BATCH = 200
PLAN_BATCH = 100


class Attempt(StrEnum):
    BOOKED = "booked"
    WAITING = "waiting"  # no seat in the window yet: tried again after SCHEDULER_RETRY_HOURS
    MISSED = "missed"  # the window is over
    SUPERSEDED = "superseded"  # the person has an active booking of that dose already
    SKIPPED = "skipped"  # another replica has the plan, or it is no longer waiting


# --- dose 2 --------------------------------------------------------------------------------------


async def record_dose_given(pool: asyncpg.Pool, event: DoseGiven, settings: Settings) -> int | None:
    """The booking is done; after dose 1, a dose-2 plan in the vaccine's window. Returns the new
    plan's id; None for a repeated event, a dose 2, or a booking we do not know."""

    async def work(conn: asyncpg.Connection) -> int | None:
        booking = await repo.lock_booking(conn, event.booking_id)
        if booking is None or booking.person_id != event.person_id:
            log.warning("dose given for a booking we do not have", booking_id=event.booking_id)
            return None
        if booking.dose != event.dose:
            log.warning(
                "dose given differs from the booking's", booking_id=booking.id, dose=event.dose
            )
        await repo.mark_done(conn, booking.id)
        if booking.dose != 1:
            return None
        interval = domain.interval_for(booking.vaccine, settings.scheduler_dose_intervals)
        window = domain.dose2_window(event.given_on, interval)
        return await repo.add_plan(
            conn, source=f"dose2:{booking.id}", kind="dose2", booking=booking, window=window
        )

    return await in_transaction(pool, work)


# --- automatic bookings ------------------------------------------------------------------------


async def attempt_plan(
    pool: asyncpg.Pool, plan_id: int, settings: Settings, now: datetime
) -> Attempt:
    """Try once to book a waiting plan, and tell the person what came of it."""

    async def work(conn: asyncpg.Connection) -> tuple[str, Attempt]:
        plan = await repo.lock_plan(conn, plan_id)
        if plan is None:
            return "", Attempt.SKIPPED
        return plan.kind, await _attempt(conn, plan, settings, now)

    kind, outcome = await in_transaction(pool, work)
    if outcome is not Attempt.SKIPPED:
        AUTOMATIC_BOOKINGS.labels(kind, outcome.value).inc()
        log.info("automatic booking attempted", plan_id=plan_id, kind=kind, outcome=outcome.value)
    return outcome


async def _attempt(
    conn: asyncpg.Connection, plan: repo.Plan, settings: Settings, now: datetime
) -> Attempt:
    partitions = settings.notifier_partitions
    if await repo.active_booking(conn, plan.person_id, plan.dose) is not None:
        await repo.finish_plan(conn, plan.id, Attempt.SUPERSEDED)
        return Attempt.SUPERSEDED
    today = now.astimezone(WIB).date()
    cutoff = domain.later_of(domain.earliest_start(today, now), plan.earliest)
    booking_id = await _book_first_free(conn, plan, cutoff) if cutoff.day <= plan.latest else None
    if booking_id == 0:
        await repo.finish_plan(conn, plan.id, Attempt.SUPERSEDED)
        return Attempt.SUPERSEDED
    if booking_id is not None:
        await repo.enqueue_booked(conn, [booking_id])
        await repo.finish_plan(conn, plan.id, Attempt.BOOKED, booking_id)
        booked = await repo.booking_by_id(conn, booking_id)
        assert booked is not None
        notice = notices.booked(plan.kind, booked, plan.wa_id, plan.lang)
        await repo.enqueue_notice(conn, notice, plan.lang, partitions)
        return Attempt.BOOKED
    facility = await repo.facility(conn, plan.facility_code)
    assert facility is not None
    if today >= plan.latest:
        await repo.finish_plan(conn, plan.id, Attempt.MISSED)
        notice = notices.missed(plan.kind, plan.id, facility, plan.latest, plan.wa_id, plan.lang)
        await repo.enqueue_notice(conn, notice, plan.lang, partitions)
        return Attempt.MISSED
    if not plan.told_waiting:
        await repo.enqueue_notice(conn, _waiting(plan, facility), plan.lang, partitions)
    await repo.retry_plan_later(conn, plan.id, settings.scheduler_retry_hours)
    return Attempt.WAITING


def _waiting(plan: repo.Plan, facility: Facility) -> SendMessage:
    return notices.waiting(
        plan.kind, plan.id, facility, plan.earliest, plan.latest, plan.wa_id, plan.lang
    )


async def _book_first_free(
    conn: asyncpg.Connection, plan: repo.Plan, cutoff: domain.Cutoff
) -> int | None:
    """A booking in the earliest session with a free seat in the plan's window: its id; None
    when there is none; 0 when the person got an active booking of the dose meanwhile."""
    slots = await repo.free_sessions(
        conn,
        plan.facility_code,
        cutoff,
        latest=plan.latest,
        vaccine=plan.vaccine,
        person_id=None,
        limit=CANDIDATES,
    )
    for slot in slots:
        try:
            async with conn.transaction():  # a savepoint: the seat and the booking, or neither
                if not await repo.take_seat(conn, slot.session_id, cutoff):
                    continue
                return await repo.insert_booking(
                    conn,
                    request_id=f"auto:{plan.id}",
                    hold_id=None,
                    person_id=plan.person_id,
                    wa_id=plan.wa_id,
                    lang=plan.lang,
                    dose=plan.dose,
                    session_id=slot.session_id,
                )
        except asyncpg.UniqueViolationError as e:
            if e.constraint_name == repo.UNIQUE_ONE_ACTIVE:
                return 0
            raise
    return None


async def run_due_plans(pool: asyncpg.Pool, settings: Settings, now: datetime) -> int:
    """Try every plan that is due (new ones, and waiting ones once a retry interval passed)."""
    async with pool.acquire() as conn:
        due = await repo.due_plans(conn, PLAN_BATCH)
    tried = 0
    for plan_id in due:
        if await attempt_plan(pool, plan_id, settings, now) is not Attempt.SKIPPED:
            tried += 1
    return tried


# --- a cancelled session -----------------------------------------------------------------------


@dataclass(frozen=True)
class SessionCancellation:
    session: repo.SessionInfo
    facility: Facility
    bookings: int
    outcomes: list[Attempt]


async def cancel_session(
    pool: asyncpg.Pool, session_id: int, settings: Settings, now: datetime
) -> SessionCancellation | None:
    """Cancel an open session (an operator's decision): its bookings are cancelled (seats and
    BookingCancelled facts), each person is told, and each booking gets an automatic booking in
    the same facility over the next SCHEDULER_REBOOK_DAYS days (for dose 2, up to the end of its
    window if later), tried at once and then daily until found; the person is told the new time
    (which UBAH changes and BATAL cancels) or that we keep looking."""
    today = now.astimezone(WIB).date()

    async def work(conn: asyncpg.Connection) -> tuple[repo.CancelledSession, list[int]] | None:
        cancelled = await repo.cancel_session(conn, session_id)
        if cancelled is None:
            return None
        info, plans = cancelled.info, []
        for b in cancelled.bookings:
            notice = notices.session_cancelled(
                b.id, cancelled.facility, info.day, info.starts, info.ends, b.wa_id, b.lang
            )
            await repo.enqueue_notice(conn, notice, b.lang, settings.notifier_partitions)
            window = domain.rebook_window(info.day, today, settings.scheduler_rebook_days)
            dose2 = await repo.dose2_window_of(conn, b.person_id) if b.dose == 2 else None
            if dose2 is not None and dose2.latest > window.latest:
                window = domain.Window(window.earliest, dose2.latest)
            plan_id = await repo.add_plan(
                conn, source=f"rebook:{b.id}", kind="rebook", booking=b, window=window
            )
            if plan_id is not None:
                plans.append(plan_id)
        return cancelled, plans

    done = await in_transaction(pool, work)
    if done is None:
        return None
    cancelled, plans = done
    outcomes = [await attempt_plan(pool, plan_id, settings, now) for plan_id in plans]
    return SessionCancellation(
        cancelled.info, cancelled.facility, len(cancelled.bookings), outcomes
    )


# --- reminders and holds -----------------------------------------------------------------------


async def send_reminders(pool: asyncpg.Pool, settings: Settings, now: datetime) -> int:
    """The day-before reminders that are due, each queued once (see repository.claim_reminders)."""
    day = domain.reminder_day(now, settings.scheduler_reminder_time)
    if day is None:
        return 0
    sent = 0
    while True:
        async with pool.acquire() as conn, conn.transaction():
            due = await repo.claim_reminders(conn, day, REMINDER_BATCH)
            for r in due:
                notice = notices.reminder(r.booking, r.wa_id, r.lang)
                await repo.enqueue_notice(conn, notice, r.lang, settings.notifier_partitions)
        sent += len(due)
        REMINDERS.inc(len(due))
        if len(due) < REMINDER_BATCH:
            return sent


async def sweep_holds(pool: asyncpg.Pool) -> int:
    """Seats of lapsed holds back to their sessions (taking a seat does this too, per session)."""
    async with pool.acquire() as conn:
        return await repo.sweep_lapsed_holds(conn)
