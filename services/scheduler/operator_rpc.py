"""scheduler.rpc.facilities_import|sessions_import|sessions|session_cancel: facilities and
sessions for the operators' console, over NATS (queue group `scheduler`). The same checks and
statements as `vaksin facilities|sessions import` and `vaksin sessions cancel` (domain's
parsers, imports.py, jobs.cancel_session): line-numbered problems and nothing imported, a
cancelled session's people told and moved. The CSV text travels in the request (at most
MAX_CSV_BYTES: NATS' max_payload is 1 MiB). And the figures of scheduler.rpc.stats (`tables`).

None of these raises: a failure is a reply with `error`.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import asyncpg
import structlog
from faststream.nats import NatsRouter

from services.common.clock import jakarta_today
from services.common.contracts.operations import (
    MAX_ROW_ERRORS,
    CsvImportReply,
    CsvImportRequest,
    OperatorError,
    RowProblem,
    SessionCancelReply,
    SessionCancelRequest,
    SessionRow,
    SessionsReply,
    SessionsRequest,
)
from services.common.contracts.stats import StatsTable
from services.common.contracts.subjects import (
    SCHEDULER_RPC_FACILITIES_IMPORT,
    SCHEDULER_RPC_SESSION_CANCEL,
    SCHEDULER_RPC_SESSIONS,
    SCHEDULER_RPC_SESSIONS_IMPORT,
)
from services.common.deps import AppSettings, Pool, Relay
from services.common.stats import counter_table
from services.scheduler import domain, imports, jobs
from services.scheduler import repository as repo

log = structlog.get_logger(__name__)

UNAVAILABLE = f"{OperatorError.UNAVAILABLE}: the scheduler is temporarily unavailable, try again"
FIGURE_DAYS = 30
MAX_SPAN_DAYS = 62


def _refused(errors: list[domain.RowError]) -> CsvImportReply:
    ordered = sorted(errors, key=lambda p: p.line)
    bad = len({p.line for p in errors})
    return CsvImportReply(
        errors=[RowProblem(line=p.line, reason=p.reason) for p in ordered[:MAX_ROW_ERRORS]],
        bad_rows=bad,
        error=f"{OperatorError.REFUSED}: {bad} bad row(s); nothing imported",
    )


def _done(rows: int, stored: imports.Stored) -> CsvImportReply:
    c = stored.counts
    return CsvImportReply(
        rows=rows, new=c.new, updated=c.updated, unchanged=c.unchanged, woken=stored.woken
    )


async def facilities_import(body: CsvImportRequest, pool: Pool) -> CsvImportReply:
    rows, errors = domain.parse_facilities_csv(body.csv)
    if errors:
        return _refused(errors)
    try:
        stored = await imports.store_facilities(pool, rows)
    except Exception:
        log.exception("facilities import failed")
        return CsvImportReply(error=UNAVAILABLE)
    log.info("facilities imported", rows=len(rows), operator=body.by, channel="console")
    return _done(len(rows), stored)


async def sessions_import(body: CsvImportRequest, pool: Pool) -> CsvImportReply:
    rows, errors = domain.parse_sessions_csv(body.csv)
    if errors:
        return _refused(errors)
    try:
        stored = await imports.store_sessions(pool, rows)
    except imports.Refused as refused:
        return _refused(refused.errors)
    except Exception:
        log.exception("sessions import failed")
        return CsvImportReply(error=UNAVAILABLE)
    log.info("sessions imported", rows=len(rows), operator=body.by, channel="console")
    return _done(len(rows), stored)


async def sessions(body: SessionsRequest, pool: Pool) -> SessionsReply:
    """Sessions in a date range (at most MAX_SPAN_DAYS), by day, with seats booked, held, free."""
    if body.date_to < body.date_from or body.date_to - body.date_from > timedelta(MAX_SPAN_DAYS):
        return SessionsReply(
            error=f"{OperatorError.INVALID}: a range of 0-{MAX_SPAN_DAYS} days, from <= to"
        )
    try:
        async with pool.acquire() as conn:
            rows = await repo.list_sessions(
                conn,
                date_from=body.date_from,
                date_to=body.date_to,
                facility=(body.facility or "").strip() or None,
                regency=(body.regency or "").strip() or None,
                include_cancelled=body.include_cancelled,
                limit=body.limit + 1,
            )
    except Exception:
        log.exception("sessions listing failed")
        return SessionsReply(error=UNAVAILABLE)
    found = [SessionRow(**dict(r)) for r in rows[: body.limit]]
    return SessionsReply(sessions=found, truncated=len(rows) > body.limit)


async def session_cancel(
    body: SessionCancelRequest, pool: Pool, settings: AppSettings, relay: Relay
) -> SessionCancelReply:
    """Cancel a session as `vaksin sessions cancel` does: bookings cancelled, people told, each
    moved to the earliest free session of the facility (or told we keep looking)."""
    try:
        done = await jobs.cancel_session(pool, body.session_id, settings, datetime.now(UTC))
        if done is None:
            async with pool.acquire() as conn:
                info = await repo.session_info(conn, body.session_id)
    except Exception:
        log.exception("session cancel failed", session_id=body.session_id)
        return SessionCancelReply(error=UNAVAILABLE)
    if done is None:
        if info is None:
            return SessionCancelReply(
                error=f"{OperatorError.NOT_FOUND}: no session {body.session_id}"
            )
        return SessionCancelReply(
            error=f"{OperatorError.NOT_OPEN}: session {body.session_id} is cancelled already"
        )
    relay.wake()
    s, f = done.session, done.facility
    outcomes = Counter(done.outcomes)
    log.info(
        "session cancelled",
        session_id=s.id,
        bookings=done.bookings,
        operator=body.by,
        channel="console",
    )
    return SessionCancelReply(
        session=SessionRow(
            session_id=s.id,
            facility_code=f.code,
            facility_name=f.name,
            regency=f.regency,
            date=s.day,
            start=s.starts,
            end=s.ends,
            vaccine=s.vaccine,
            capacity=s.capacity,
            booked=0,
            held=0,
            free=s.capacity,
            status="cancelled",
        ),
        bookings=done.bookings,
        moved=outcomes[jobs.Attempt.BOOKED],
        waiting=outcomes[jobs.Attempt.WAITING],
        superseded=outcomes[jobs.Attempt.SUPERSEDED],
    )


async def tables(pool: asyncpg.Pool) -> dict[str, StatsTable]:
    """The console's breakdowns: bookings made by day and by facility (maintained counters),
    seats of open sessions by day."""
    since = jakarta_today() - timedelta(days=FIGURE_DAYS - 1)
    by_day, by_facility, seats = await repo.figures(pool, since)
    booked = ("booked_dose_1", "booked_dose_2")
    return {
        "bookings_by_day": counter_table("Bookings made by day", by_day, ("day",), booked),
        "bookings_by_facility": counter_table(
            "Bookings made by regency and facility", by_facility, ("regency", "facility"), booked
        ),
        "seats_by_day": StatsTable(
            title="Open sessions and their seats by day",
            columns=["day", "sessions", "capacity", "free"],
            rows=[
                [r["day"].isoformat(), int(r["sessions"]), int(r["capacity"]), int(r["free"])]
                for r in seats
            ],
        ),
    }


def register(router: NatsRouter, queue: str) -> None:
    router.subscriber(SCHEDULER_RPC_FACILITIES_IMPORT, queue=queue)(facilities_import)
    router.subscriber(SCHEDULER_RPC_SESSIONS_IMPORT, queue=queue)(sessions_import)
    router.subscriber(SCHEDULER_RPC_SESSIONS, queue=queue)(sessions)
    router.subscriber(SCHEDULER_RPC_SESSION_CANCEL, queue=queue)(session_cancel)
