"""All SQL of the scheduler schema: facilities, sessions and their seat counter, holds, bookings,
automatic bookings, reminders and the outbox (see migrations/0001_scheduler.sql for the model).

A seat is taken only by `_TAKE_SEAT`: one statement that first gives back the seats of the
session's lapsed holds, then locks the session row and takes a seat if `reserved < capacity` on
its latest version, so a seat that does not exist is never taken, and a lapsed hold is free to
anyone without waiting for the sweep. Booking
facts are built here, in SQL, from the booking, session and facility rows, in the statement or
transaction that changes the booking; `BookingFact` (contracts) is their shape.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import astuple, dataclass
from datetime import date, time
from typing import Any

import asyncpg

from services.common import outbox, tracing
from services.common.contracts.notifier import SendMessage
from services.common.contracts.scheduler import (
    Booking,
    Facility,
    Hold,
    NearbyFacility,
    SessionSlot,
)
from services.common.contracts.streams import SCHEDULER
from services.common.contracts.subjects import (
    SCHEDULER_EVT_BOOKED,
    SCHEDULER_EVT_CANCELLED,
    SCHEDULER_EVT_RESCHEDULED,
)
from services.scheduler.domain import Cutoff, FacilityRow, SessionRow, Window

SCHEMA = "scheduler"
UNIQUE_ONE_ACTIVE = "booking_one_active_per_dose"
UNIQUE_ONE_HOLD = "hold_one_live_per_person"

_FACILITY = "f.code, f.name, f.address, f.regency, f.province"
_SESSION = f"s.id AS session_id, s.day, s.starts, s.ends, s.vaccine, {_FACILITY}"
_BOOKING = f"b.id AS booking_id, b.person_id, b.dose, b.status, b.replaces_booking_id, {_SESSION}"
_HOLD = f"h.id AS hold_id, h.dose, h.expires_at, h.replaces_booking_id, {_SESSION}"


def _joined(alias: str) -> str:
    return (
        f"JOIN scheduler.session s ON s.id = {alias}.session_id "
        "JOIN scheduler.facility f ON f.code = s.facility_code"
    )


# A session has a free seat when its counter says so or one of its holds has lapsed.
_LAPSED_IN_S = """(SELECT count(*) FROM scheduler.hold lh
                   WHERE lh.session_id = s.id AND lh.status = 'held' AND lh.expires_at <= now())"""
_FREE_SEATS = f"(s.capacity - s.reserved + {_LAPSED_IN_S})::int"
_NOT_STARTED = "(s.day, s.starts) >= ($2::date, $3::time)"

# CTEs `lapsed`, `n`, `cur`, `seat` ($1 session, $2/$3 the cutoff): `seat` has a row with `usable`
# when a seat was taken; a row without `usable` only gave lapsed seats back. Locks are taken in
# one order everywhere: the session's holds, then the session. `cur` locks the session row and,
# under Read Committed, reads its latest version (after waiting for a concurrent writer): the
# decision is made on that, never on the statement's snapshot, which may still count seats that
# a concurrent statement has just given back.
_TAKE_SEAT = f"""
    lapsed AS (
        UPDATE scheduler.hold SET status = 'expired'
        WHERE session_id = $1 AND status = 'held' AND expires_at <= now()
        RETURNING id
    ), n AS (SELECT count(*)::int AS n FROM lapsed),
    cur AS (
        SELECT s.id, n.n AS returned, s.reserved - n.n AS reserved,
               s.status = 'open' AND {_NOT_STARTED} AND s.reserved - n.n < s.capacity AS gained
        FROM scheduler.session s, n WHERE s.id = $1
        FOR UPDATE OF s
    ), seat AS (
        UPDATE scheduler.session s SET reserved = cur.reserved + cur.gained::int
        FROM cur
        WHERE s.id = cur.id AND (cur.returned > 0 OR cur.gained)
        RETURNING s.id, cur.gained AS usable
    )"""


def _facility_json(f: str) -> str:
    """Facility `f` as contracts Facility, in SQL."""
    return (
        f"jsonb_build_object('code', {f}.code, 'name', {f}.name, 'address', {f}.address, "
        f"'regency', {f}.regency, 'province', {f}.province)"
    )


# The facts of booking `b` in session `s` at facility `f` (contracts BookingFact).
_FACT = f"""jsonb_build_object(
        'booking_id', b.id, 'person_id', b.person_id, 'wa_id', b.wa_id, 'lang', b.lang,
        'dose', b.dose, 'vaccine', s.vaccine, 'session_id', s.id, 'facility', {_facility_json("f")},
        'date', s.day, 'start', s.starts, 'end', s.ends, 'occurred_at', now())"""


def _facility(row: Any) -> Facility:
    return Facility(
        code=row["code"],
        name=row["name"],
        address=row["address"],
        regency=row["regency"],
        province=row["province"],
    )


def _booking(row: Any) -> Booking:
    return Booking(
        booking_id=row["booking_id"],
        person_id=row["person_id"],
        session_id=row["session_id"],
        facility=_facility(row),
        date=row["day"],
        start=row["starts"],
        end=row["ends"],
        vaccine=row["vaccine"],
        dose=row["dose"],
        status=row["status"],
        replaces_booking_id=row["replaces_booking_id"],
    )


def _hold(row: Any) -> Hold:
    return Hold(
        hold_id=row["hold_id"],
        session_id=row["session_id"],
        facility=_facility(row),
        date=row["day"],
        start=row["starts"],
        end=row["ends"],
        vaccine=row["vaccine"],
        dose=row["dose"],
        expires_at=row["expires_at"],
        replaces_booking_id=row["replaces_booking_id"],
    )


# --- facilities and sessions ---------------------------------------------------------------------


async def facility(conn: asyncpg.Connection, code: str) -> Facility | None:
    row = await conn.fetchrow(
        f"SELECT {_FACILITY} FROM scheduler.facility f WHERE f.code = $1", code
    )
    return _facility(row) if row else None


async def search_normalize(conn: asyncpg.Connection, query: str) -> str:
    """What the user typed in the canonical form of `facility.search_text` (migrations/0003)."""
    return await conn.fetchval("SELECT scheduler.search_normalize($1)", query)


async def search_facilities(
    conn: asyncpg.Connection,
    patterns: Sequence[str],
    *,
    optional: Sequence[str] = (),
    exact: str,
    regency: str | None,
    limit: int,
) -> tuple[list[Facility], int]:
    """Facilities whose canonical text matches every LIKE pattern: the one named `exact` first,
    then those matching more of the `optional` patterns, then by name; and how many matched
    before `limit`."""
    # One condition per word, not `LIKE ALL($n)`: a GIN index cannot answer an array operator.
    matches = " AND ".join(f"f.search_text LIKE ${i}" for i in range(5, 5 + len(patterns)))
    rows = await conn.fetch(
        f"""SELECT {_FACILITY}, count(*) OVER () AS total
            FROM scheduler.facility f
            WHERE {matches} AND ($2::text IS NULL OR lower(f.regency) = lower($2))
            ORDER BY scheduler.search_normalize(f.name) = $1 DESC,
                     (SELECT count(*) FROM unnest($4::text[]) p WHERE f.search_text LIKE p) DESC,
                     f.name, f.code
            LIMIT $3""",
        exact,
        regency,
        limit,
        list(optional),
        *patterns,
    )
    return [_facility(r) for r in rows], rows[0]["total"] if rows else 0


async def similar_facilities(
    conn: asyncpg.Connection,
    words: Sequence[str],
    *,
    threshold: float,
    regency: str | None,
    limit: int,
) -> list[Facility]:
    """Facilities whose canonical text has, for every word, an extent similar to it (pg_trgm word
    similarity at least `threshold`): the most similar first. Run in a transaction: the
    threshold is set for it alone."""
    await conn.execute(f"SET LOCAL pg_trgm.word_similarity_threshold = {float(threshold)}")
    # `<%` (not word_similarity() >= x) so that the trigram index answers it.
    close = " AND ".join(f"${i} <% f.search_text" for i in range(3, 3 + len(words)))
    score = " + ".join(f"word_similarity(${i}, f.search_text)" for i in range(3, 3 + len(words)))
    rows = await conn.fetch(
        f"""SELECT {_FACILITY}
            FROM scheduler.facility f
            WHERE {close} AND ($1::text IS NULL OR lower(f.regency) = lower($1))
            ORDER BY {score} DESC, f.name, f.code
            LIMIT $2""",
        regency,
        limit,
        *words,
    )
    return [_facility(r) for r in rows]


async def nearby(
    conn: asyncpg.Connection,
    regency: str,
    cutoff: Cutoff,
    *,
    first: str | None,
    vaccine: str | None,
    limit: int,
) -> list[NearbyFacility]:
    """Facilities of the regency with a free seat from the cutoff on; `first` leads if listed."""
    rows = await conn.fetch(
        f"""SELECT {_FACILITY}, min(s.day) AS earliest_date, sum(free.seats)::int AS free_seats
            FROM scheduler.facility f
            JOIN scheduler.session s ON s.facility_code = f.code
            CROSS JOIN LATERAL (SELECT {_FREE_SEATS} AS seats) free
            WHERE lower(f.regency) = lower($1) AND s.status = 'open' AND {_NOT_STARTED}
              AND ($4::text IS NULL OR s.vaccine = $4) AND free.seats > 0
            GROUP BY f.code
            ORDER BY f.code = $5 DESC, earliest_date, f.name, f.code
            LIMIT $6""",
        regency,
        cutoff.day,
        cutoff.start,
        vaccine,
        first,
        limit,
    )
    return [
        NearbyFacility(
            **_facility(r).model_dump(),
            earliest_date=r["earliest_date"],
            free_seats=r["free_seats"],
        )
        for r in rows
    ]


async def free_sessions(
    conn: asyncpg.Connection,
    facility_code: str,
    cutoff: Cutoff,
    *,
    latest: date | None,
    vaccine: str | None,
    person_id: str | None,
    limit: int,
) -> list[SessionSlot]:
    """Sessions of the facility with a free seat, earliest first, from the cutoff to `latest`;
    without those the person is booked in already (nothing to move to)."""
    rows = await conn.fetch(
        f"""SELECT * FROM (
                SELECT s.id AS session_id, s.day, s.starts, s.ends, s.vaccine,
                       {_FREE_SEATS} AS free_seats
                FROM scheduler.session s
                WHERE s.facility_code = $1 AND s.status = 'open' AND {_NOT_STARTED}
                  AND ($4::date IS NULL OR s.day <= $4)
                  AND ($5::text IS NULL OR s.vaccine = $5)
                  AND NOT EXISTS (SELECT 1 FROM scheduler.booking b
                                  WHERE b.session_id = s.id AND b.person_id = $6
                                    AND b.status = 'active')
            ) open_sessions
            WHERE free_seats > 0
            ORDER BY day, starts, session_id
            LIMIT $7""",
        facility_code,
        cutoff.day,
        cutoff.start,
        latest,
        vaccine,
        person_id,
        limit,
    )
    return [
        SessionSlot(
            session_id=r["session_id"],
            date=r["day"],
            start=r["starts"],
            end=r["ends"],
            vaccine=r["vaccine"],
            free_seats=r["free_seats"],
        )
        for r in rows
    ]


@dataclass(frozen=True)
class SessionInfo:
    id: int
    facility_code: str
    day: date
    starts: time
    ends: time
    vaccine: str
    capacity: int
    reserved: int
    status: str


async def session_info(conn: asyncpg.Connection, session_id: int) -> SessionInfo | None:
    row = await conn.fetchrow(
        """SELECT id, facility_code, day, starts, ends, vaccine, capacity, reserved, status
           FROM scheduler.session WHERE id = $1""",
        session_id,
    )
    return SessionInfo(**dict(row)) if row else None


# --- the person's state ------------------------------------------------------------------------


@dataclass(frozen=True)
class PersonState:
    hold_for_request: Hold | None
    active: Booking | None  # of the requested dose
    given: bool  # the requested dose was given already
    has_live_hold: bool
    dose2_window: Window | None  # from the dose-2 plan, when dose 1 was given here
    session: SessionInfo | None  # the session asked about, if any


async def person_state(
    conn: asyncpg.Connection,
    request_id: str,
    person_id: str,
    dose: int,
    session_id: int | None = None,
) -> PersonState:
    """Everything a hold request is checked against, in one round trip."""
    row = await conn.fetchrow(
        """SELECT (SELECT id FROM scheduler.hold WHERE request_id = $1) AS hold_id,
                  (SELECT id FROM scheduler.booking
                   WHERE person_id = $2 AND dose = $3 AND status = 'active') AS active_id,
                  EXISTS (SELECT 1 FROM scheduler.booking
                          WHERE person_id = $2 AND dose = $3 AND status = 'done') AS given,
                  EXISTS (SELECT 1 FROM scheduler.hold
                          WHERE person_id = $2 AND status = 'held') AS live_hold,
                  w.earliest, w.latest,
                  s.id, s.facility_code, s.day, s.starts, s.ends, s.vaccine, s.capacity,
                  s.reserved, s.status
           FROM (SELECT 1) one
           LEFT JOIN LATERAL (
               SELECT earliest, latest FROM scheduler.auto_booking
               WHERE person_id = $2 AND kind = 'dose2' AND $3 = 2
               ORDER BY id DESC LIMIT 1) w ON true
           LEFT JOIN scheduler.session s ON s.id = $4""",
        request_id,
        person_id,
        dose,
        session_id,
    )
    held = await hold_by_id(conn, row["hold_id"]) if row["hold_id"] is not None else None
    active = await booking_by_id(conn, row["active_id"]) if row["active_id"] is not None else None
    window = Window(row["earliest"], row["latest"]) if row["earliest"] is not None else None
    session = None
    if row["id"] is not None:
        session = SessionInfo(**{f: row[f] for f in SessionInfo.__dataclass_fields__})
    return PersonState(held, active, row["given"], row["live_hold"], window, session)


async def release_live_holds(conn: asyncpg.Connection, person_id: str) -> int:
    """Give back the seat of the person's unconfirmed hold (a new offer replaces it)."""
    status = await conn.execute(
        """WITH released AS (
               UPDATE scheduler.hold SET status = 'released'
               WHERE person_id = $1 AND status = 'held'
               RETURNING session_id)
           UPDATE scheduler.session s SET reserved = s.reserved - released.n
           FROM (SELECT session_id, count(*)::int AS n FROM released GROUP BY session_id) released
           WHERE s.id = released.session_id""",
        person_id,
    )
    return int(status.split()[-1])


# --- holds -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HoldFor:
    request_id: str
    person_id: str
    wa_id: str
    lang: str
    dose: int
    replaces_booking_id: int | None
    seconds: float
    channel: str = "whatsapp"


async def take_hold(
    conn: asyncpg.Connection, session_id: int, cutoff: Cutoff, who: HoldFor
) -> Hold | None:
    """One seat of the session held for the person, or None when it has none free (or is
    cancelled or started). One statement: the seat and the hold, or neither."""
    row = await conn.fetchrow(
        f"""WITH {_TAKE_SEAT},
            h AS (
                INSERT INTO scheduler.hold (request_id, person_id, wa_id, lang, dose, session_id,
                                            replaces_booking_id, expires_at)
                SELECT $4, $5, $6, $7, $8, seat.id, $9, now() + make_interval(secs => $10)
                FROM seat WHERE seat.usable
                RETURNING *)
            SELECT {_HOLD} FROM h {_joined("h")}""",
        session_id,
        cutoff.day,
        cutoff.start,
        who.request_id,
        who.person_id,
        who.wa_id,
        who.lang,
        who.dose,
        who.replaces_booking_id,
        who.seconds,
    )
    return _hold(row) if row else None


async def take_seat(conn: asyncpg.Connection, session_id: int, cutoff: Cutoff) -> bool:
    """One seat of the session taken (for a booking made in the same transaction)."""
    usable = await conn.fetchval(
        f"WITH {_TAKE_SEAT} SELECT usable FROM seat", session_id, cutoff.day, cutoff.start
    )
    return bool(usable)


async def hold_by_id(conn: asyncpg.Connection, hold_id: int) -> Hold | None:
    row = await conn.fetchrow(
        f"SELECT {_HOLD} FROM scheduler.hold h {_joined('h')} WHERE h.id = $1", hold_id
    )
    return _hold(row) if row else None


@dataclass(frozen=True)
class HoldRow:
    id: int
    person_id: str
    wa_id: str
    lang: str
    dose: int
    session_id: int
    replaces_booking_id: int | None
    status: str


async def lock_hold(conn: asyncpg.Connection, hold_id: int) -> HoldRow | None:
    row = await conn.fetchrow(
        """SELECT id, person_id, wa_id, lang, dose, session_id, replaces_booking_id, status
           FROM scheduler.hold WHERE id = $1 FOR UPDATE""",
        hold_id,
    )
    return HoldRow(**dict(row)) if row else None


async def mark_hold_confirmed(conn: asyncpg.Connection, hold_id: int) -> None:
    await conn.execute("UPDATE scheduler.hold SET status = 'confirmed' WHERE id = $1", hold_id)


# The seats of one session's lapsed holds given back ($1 the session): how many.
_RETURN_LAPSED = """
    WITH lapsed AS (
        UPDATE scheduler.hold SET status = 'expired'
        WHERE session_id = $1 AND status = 'held' AND expires_at <= now()
        RETURNING id
    ), n AS (SELECT count(*)::int AS n FROM lapsed)
    UPDATE scheduler.session s SET reserved = s.reserved - n.n
    FROM n WHERE s.id = $1 AND n.n > 0
    RETURNING n.n"""


async def sweep_lapsed_holds(conn: asyncpg.Connection, batch: int = 500) -> int:
    """Give back the seats of lapsed holds, one session per statement (the same lock order as
    taking a seat: the session's holds, then the session)."""
    sessions = await conn.fetch(
        """SELECT DISTINCT session_id FROM scheduler.hold
           WHERE status = 'held' AND expires_at <= now() LIMIT $1""",
        batch,
    )
    returned = 0
    for r in sessions:
        returned += await conn.fetchval(_RETURN_LAPSED, r["session_id"]) or 0
    return returned


# --- bookings ------------------------------------------------------------------------------------


async def confirm_held(
    conn: asyncpg.Connection, hold_id: int, person_id: str, request_id: str
) -> Booking | None:
    """The common confirmation in one statement: the person's counted hold (not a reschedule)
    becomes a booking, with its BookingConfirmed in the outbox. None when the hold is in any
    other state; raises UniqueViolationError when the person has an active booking of the dose
    or the request id was used (nothing is then changed)."""
    row = await conn.fetchrow(
        f"""WITH h AS (
                UPDATE scheduler.hold SET status = 'confirmed'
                WHERE id = $1 AND person_id = $2 AND status = 'held'
                  AND replaces_booking_id IS NULL
                RETURNING id, person_id, wa_id, lang, dose, session_id
            ), b AS (
                INSERT INTO scheduler.booking (request_id, hold_id, person_id, wa_id, lang, dose,
                                               session_id)
                SELECT $3, id, person_id, wa_id, lang, dose, session_id FROM h
                RETURNING *
            ), event AS (
                INSERT INTO scheduler.outbox (subject, stream, payload, trace_context)
                SELECT $4, $5, {_FACT}, $6::text FROM b {_joined("b")}
            )
            SELECT {_BOOKING} FROM b {_joined("b")}""",
        hold_id,
        person_id,
        request_id,
        SCHEDULER_EVT_BOOKED,
        SCHEDULER.name,
        tracing.current_traceparent(),
    )
    return _booking(row) if row else None


async def insert_booking(
    conn: asyncpg.Connection,
    *,
    request_id: str,
    hold_id: int | None,
    person_id: str,
    wa_id: str,
    lang: str,
    dose: int,
    session_id: int,
    replaces_booking_id: int | None = None,
) -> int:
    return await conn.fetchval(
        """INSERT INTO scheduler.booking (request_id, hold_id, person_id, wa_id, lang, dose,
                                          session_id, replaces_booking_id)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id""",
        request_id,
        hold_id,
        person_id,
        wa_id,
        lang,
        dose,
        session_id,
        replaces_booking_id,
    )


async def _one_booking(conn: asyncpg.Connection, where: str, *args: object) -> Booking | None:
    row = await conn.fetchrow(
        f"SELECT {_BOOKING} FROM scheduler.booking b {_joined('b')} WHERE {where}", *args
    )
    return _booking(row) if row else None


async def booking_by_id(conn: asyncpg.Connection, booking_id: int) -> Booking | None:
    return await _one_booking(conn, "b.id = $1", booking_id)


async def booking_by_request(conn: asyncpg.Connection, request_id: str) -> Booking | None:
    return await _one_booking(conn, "b.request_id = $1", request_id)


async def booking_by_hold(conn: asyncpg.Connection, hold_id: int) -> Booking | None:
    return await _one_booking(conn, "b.hold_id = $1", hold_id)


async def booking_by_cancel_request(conn: asyncpg.Connection, request_id: str) -> Booking | None:
    return await _one_booking(conn, "b.cancel_request_id = $1", request_id)


async def active_booking(conn: asyncpg.Connection, person_id: str, dose: int) -> Booking | None:
    return await _one_booking(
        conn, "b.person_id = $1 AND b.dose = $2 AND b.status = 'active'", person_id, dose
    )


async def active_bookings(conn: asyncpg.Connection, person_id: str) -> list[Booking]:
    rows = await conn.fetch(
        f"""SELECT {_BOOKING} FROM scheduler.booking b {_joined("b")}
            WHERE b.person_id = $1 AND b.status = 'active' ORDER BY b.dose, b.id""",
        person_id,
    )
    return [_booking(r) for r in rows]


@dataclass(frozen=True)
class BookingRow:
    id: int
    person_id: str
    wa_id: str
    lang: str
    dose: int
    session_id: int
    status: str
    day: date
    vaccine: str
    facility_code: str


async def lock_booking(conn: asyncpg.Connection, booking_id: int) -> BookingRow | None:
    row = await conn.fetchrow(
        """SELECT b.id, b.person_id, b.wa_id, b.lang, b.dose, b.session_id, b.status,
                  s.day, s.vaccine, s.facility_code
           FROM scheduler.booking b JOIN scheduler.session s ON s.id = b.session_id
           WHERE b.id = $1 FOR UPDATE OF b""",
        booking_id,
    )
    return BookingRow(**dict(row)) if row else None


async def retire_booking(conn: asyncpg.Connection, booking_id: int) -> bool:
    """A booking replaced by another (reschedule): void, and its seat returned."""
    return bool(
        await conn.fetchval(
            """WITH b AS (
                   UPDATE scheduler.booking SET status = 'rescheduled', ended_at = now()
                   WHERE id = $1 AND status = 'active' RETURNING session_id)
               UPDATE scheduler.session s SET reserved = s.reserved - 1
               FROM b WHERE s.id = b.session_id RETURNING true""",
            booking_id,
        )
    )


async def cancel_booking(
    conn: asyncpg.Connection, person_id: str, booking_id: int | None, request_id: str
) -> int | None:
    """Cancel the person's active booking (the given one, or the lowest dose), return its seat and
    put BookingCancelled in the outbox; the cancelled booking's id, or None."""
    cancelled = await conn.fetchval(
        """WITH b AS (
               UPDATE scheduler.booking
               SET status = 'cancelled', cancel_reason = 'user', cancel_request_id = $3,
                   ended_at = now()
               WHERE id = (SELECT id FROM scheduler.booking
                           WHERE person_id = $1 AND status = 'active'
                             AND ($2::bigint IS NULL OR id = $2)
                           ORDER BY dose, id LIMIT 1)
                 AND status = 'active'
               RETURNING id, session_id)
           UPDATE scheduler.session s SET reserved = s.reserved - 1
           FROM b WHERE s.id = b.session_id RETURNING b.id""",
        person_id,
        booking_id,
        request_id,
    )
    if cancelled is not None:
        await enqueue_cancelled(conn, [cancelled])
    return cancelled


async def mark_done(conn: asyncpg.Connection, booking_id: int) -> bool:
    """The dose of this booking was given: it is no longer active (and keeps its seat)."""
    status = await conn.execute(
        """UPDATE scheduler.booking SET status = 'done', ended_at = now()
           WHERE id = $1 AND status = 'active'""",
        booking_id,
    )
    return status.endswith(" 1")


# --- booking facts -------------------------------------------------------------------------------


async def _enqueue_facts(
    conn: asyncpg.Connection, subject: str, booking_ids: Sequence[int], extra: str = "'{}'::jsonb"
) -> None:
    await conn.execute(
        f"""INSERT INTO scheduler.outbox (subject, stream, payload, trace_context)
            SELECT $1, $2, {_FACT} || {extra}, $4::text
            FROM scheduler.booking b {_joined("b")}
            WHERE b.id = any($3::bigint[]) ORDER BY b.id""",
        subject,
        SCHEDULER.name,
        list(booking_ids),
        tracing.current_traceparent(),
    )


async def enqueue_booked(conn: asyncpg.Connection, booking_ids: Sequence[int]) -> None:
    await _enqueue_facts(conn, SCHEDULER_EVT_BOOKED, booking_ids)


async def enqueue_cancelled(conn: asyncpg.Connection, booking_ids: Sequence[int]) -> None:
    await _enqueue_facts(
        conn, SCHEDULER_EVT_CANCELLED, booking_ids, "jsonb_build_object('reason', b.cancel_reason)"
    )


async def enqueue_rescheduled(conn: asyncpg.Connection, booking_id: int) -> None:
    await _enqueue_facts(
        conn,
        SCHEDULER_EVT_RESCHEDULED,
        [booking_id],
        f"""(SELECT jsonb_build_object('previous', jsonb_build_object(
                'booking_id', p.id, 'session_id', ps.id, 'date', ps.day, 'start', ps.starts,
                'end', ps.ends, 'facility', {_facility_json("pf")}))
            FROM scheduler.booking p JOIN scheduler.session ps ON ps.id = p.session_id
            JOIN scheduler.facility pf ON pf.code = ps.facility_code
            WHERE p.id = b.replaces_booking_id)""",
    )


async def enqueue_notice(
    conn: asyncpg.Connection, message: SendMessage, lang: str, partitions: int
) -> None:
    """A message nobody asked for (reminder, dose 2, a cancelled session), leaving with this
    transaction by the channel the person held their seat by (`scheduler.reach`)."""
    channel = await conn.fetchval(
        "SELECT channel FROM scheduler.reach WHERE wa_id = $1", message.to
    )
    await outbox.enqueue_notice(conn, SCHEMA, channel or "whatsapp", message, lang, partitions)


async def set_reach(conn: asyncpg.Connection, wa_id: str, channel: str) -> None:
    """The channel the person holding a seat wrote by: where their notices go."""
    await conn.execute(
        """INSERT INTO scheduler.reach (wa_id, channel) VALUES ($1, $2)
           ON CONFLICT (wa_id) DO UPDATE SET channel = excluded.channel, updated_at = now()
           WHERE scheduler.reach.channel <> excluded.channel""",
        wa_id,
        channel,
    )


# --- automatic bookings (dose 2, moves) ---------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    id: int
    kind: str
    person_id: str
    wa_id: str
    lang: str
    dose: int
    facility_code: str
    vaccine: str
    earliest: date
    latest: date
    told_waiting: bool


_PLAN = """id, kind, person_id, wa_id, lang, dose, facility_code, vaccine, earliest, latest,
           told_waiting"""


async def add_plan(
    conn: asyncpg.Connection,
    *,
    source: str,
    kind: str,
    booking: BookingRow,
    window: Window,
) -> int | None:
    """A new automatic booking, or None when one exists for this source (a repeated event)."""
    return await conn.fetchval(
        """INSERT INTO scheduler.auto_booking (source, kind, person_id, wa_id, lang, dose,
                                               facility_code, vaccine, earliest, latest)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
           ON CONFLICT (source) DO NOTHING RETURNING id""",
        source,
        kind,
        booking.person_id,
        booking.wa_id,
        booking.lang,
        booking.dose + 1 if kind == "dose2" else booking.dose,
        booking.facility_code,
        booking.vaccine,
        window.earliest,
        window.latest,
    )


async def due_plans(conn: asyncpg.Connection, limit: int) -> list[int]:
    rows = await conn.fetch(
        """SELECT id FROM scheduler.auto_booking
           WHERE status = 'waiting' AND next_attempt_at <= now()
           ORDER BY next_attempt_at, id LIMIT $1""",
        limit,
    )
    return [r["id"] for r in rows]


async def lock_plan(conn: asyncpg.Connection, plan_id: int) -> Plan | None:
    """The plan, locked for this transaction, if it is waiting and due; None otherwise (or when
    another replica has it)."""
    row = await conn.fetchrow(
        f"""SELECT {_PLAN} FROM scheduler.auto_booking
            WHERE id = $1 AND status = 'waiting' AND next_attempt_at <= now()
            FOR UPDATE SKIP LOCKED""",
        plan_id,
    )
    return Plan(**dict(row)) if row else None


async def finish_plan(
    conn: asyncpg.Connection, plan_id: int, status: str, booking_id: int | None = None
) -> None:
    await conn.execute(
        "UPDATE scheduler.auto_booking SET status = $2, booking_id = $3 WHERE id = $1",
        plan_id,
        status,
        booking_id,
    )


async def retry_plan_later(conn: asyncpg.Connection, plan_id: int, hours: float) -> None:
    await conn.execute(
        """UPDATE scheduler.auto_booking
           SET told_waiting = true, next_attempt_at = now() + make_interval(secs => $2)
           WHERE id = $1""",
        plan_id,
        hours * 3600,
    )


async def dose2_window_of(conn: asyncpg.Connection, person_id: str) -> Window | None:
    row = await conn.fetchrow(
        """SELECT earliest, latest FROM scheduler.auto_booking
           WHERE person_id = $1 AND kind = 'dose2' ORDER BY id DESC LIMIT 1""",
        person_id,
    )
    return Window(row["earliest"], row["latest"]) if row else None


async def wake_plans(conn: asyncpg.Connection, facility_codes: Iterable[str]) -> int:
    """Waiting plans of these facilities try again now (new sessions were imported)."""
    status = await conn.execute(
        """UPDATE scheduler.auto_booking SET next_attempt_at = now()
           WHERE status = 'waiting' AND facility_code = any($1::text[])""",
        list(facility_codes),
    )
    return int(status.split()[-1])


# --- reminders -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reminder:
    booking: Booking
    wa_id: str
    lang: str


async def claim_reminders(conn: asyncpg.Connection, day: date, limit: int) -> list[Reminder]:
    """Active bookings of `day` not yet reminded, marked reminded in this transaction. A row is
    claimed by one transaction only (row lock, and `reminded_at IS NULL` re-checked), so with
    the outbox row written in the same transaction a reminder is queued once, ever."""
    rows = await conn.fetch(
        f"""WITH due AS (
                SELECT b.id FROM scheduler.booking b
                JOIN scheduler.session s ON s.id = b.session_id
                WHERE s.day = $1 AND s.status = 'open' AND b.status = 'active'
                  AND b.reminded_at IS NULL
                ORDER BY b.id LIMIT $2
                FOR UPDATE OF b SKIP LOCKED
            ), b AS (
                UPDATE scheduler.booking b SET reminded_at = now()
                FROM due WHERE b.id = due.id AND b.reminded_at IS NULL
                RETURNING b.*
            )
            SELECT {_BOOKING}, b.wa_id, b.lang FROM b {_joined("b")} ORDER BY b.id""",
        day,
        limit,
    )
    return [Reminder(_booking(r), r["wa_id"], r["lang"]) for r in rows]


# --- operator: session cancellation --------------------------------------------------------------


@dataclass(frozen=True)
class CancelledSession:
    info: SessionInfo
    facility: Facility
    bookings: list[BookingRow]


async def cancel_session(conn: asyncpg.Connection, session_id: int) -> CancelledSession | None:
    """Close the session, release its holds and cancel its bookings (seats back to zero), with a
    BookingCancelled per booking in the outbox. None when there is no open session of that id."""
    row = await conn.fetchrow(
        """UPDATE scheduler.session SET status = 'cancelled', reserved = 0, updated_at = now()
           WHERE id = $1 AND status = 'open'
           RETURNING id, facility_code, day, starts, ends, vaccine, capacity, reserved, status""",
        session_id,
    )
    if row is None:
        return None
    info = SessionInfo(**dict(row))
    await conn.execute(
        """UPDATE scheduler.hold SET status = 'released'
           WHERE session_id = $1 AND status = 'held'""",
        session_id,
    )
    rows = await conn.fetch(
        """UPDATE scheduler.booking b
           SET status = 'cancelled', cancel_reason = 'session_cancelled', ended_at = now()
           FROM scheduler.session s
           WHERE b.session_id = $1 AND b.status = 'active' AND s.id = b.session_id
           RETURNING b.id, b.person_id, b.wa_id, b.lang, b.dose, b.session_id, b.status, s.day,
                     s.vaccine, s.facility_code""",
        session_id,
    )
    bookings = sorted((BookingRow(**dict(r)) for r in rows), key=lambda b: b.id)
    await enqueue_cancelled(conn, [b.id for b in bookings])
    fac = await facility(conn, info.facility_code)
    assert fac is not None
    return CancelledSession(info, fac, bookings)


# --- imports -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Counts:
    new: int
    updated: int
    unchanged: int


_FACILITY_COLUMNS = ("code", "name", "address", "regency", "province")


async def upsert_facilities(conn: asyncpg.Connection, rows: Sequence[FacilityRow]) -> Counts:
    """Insert or update (by code) every facility of a file, in the caller's transaction."""
    columns = ", ".join(_FACILITY_COLUMNS)
    await conn.execute(
        f"CREATE TEMP TABLE facility_batch ON COMMIT DROP AS "
        f"SELECT {columns} FROM scheduler.facility WITH NO DATA"
    )
    await conn.copy_records_to_table(
        "facility_batch", records=[astuple(r)[1:] for r in rows], columns=_FACILITY_COLUMNS
    )
    row = await conn.fetchrow(
        f"""WITH before AS (
                SELECT code FROM scheduler.facility f
                WHERE EXISTS (SELECT 1 FROM facility_batch n WHERE n.code = f.code)
            ), merged AS (
                INSERT INTO scheduler.facility ({columns})
                SELECT {columns} FROM facility_batch
                ON CONFLICT (code) DO UPDATE
                SET name = EXCLUDED.name, address = EXCLUDED.address,
                    regency = EXCLUDED.regency, province = EXCLUDED.province, updated_at = now()
                WHERE (facility.name, facility.address, facility.regency, facility.province)
                      IS DISTINCT FROM
                      (EXCLUDED.name, EXCLUDED.address, EXCLUDED.regency, EXCLUDED.province)
                RETURNING code)
            SELECT (SELECT count(*) FROM merged m
                    WHERE NOT EXISTS (SELECT 1 FROM before b WHERE b.code = m.code)) AS new,
                   (SELECT count(*) FROM merged m
                    WHERE EXISTS (SELECT 1 FROM before b WHERE b.code = m.code)) AS updated"""
    )
    return Counts(row["new"], row["updated"], len(rows) - row["new"] - row["updated"])


async def known_facilities(conn: asyncpg.Connection, codes: Iterable[str]) -> set[str]:
    rows = await conn.fetch(
        "SELECT code FROM scheduler.facility WHERE code = any($1::text[])", list(set(codes))
    )
    return {r["code"] for r in rows}


_SESSION_COLUMNS = ("facility_code", "day", "starts", "ends", "capacity", "vaccine", "line")


@dataclass(frozen=True)
class ExistingSession:
    line: int
    id: int
    capacity: int
    reserved: int
    booked: int


async def stage_sessions(conn: asyncpg.Connection, rows: Sequence[SessionRow]) -> None:
    """The file's sessions in a temporary table of this transaction."""
    await conn.execute(
        """CREATE TEMP TABLE session_batch (
               facility_code text, day date, starts time, ends time, capacity integer,
               vaccine text, line integer) ON COMMIT DROP"""
    )
    await conn.copy_records_to_table(
        "session_batch",
        records=[
            (r.facility_code, r.day, r.start, r.end, r.capacity, r.vaccine, r.line) for r in rows
        ],
        columns=_SESSION_COLUMNS,
    )


async def lock_existing_sessions(conn: asyncpg.Connection) -> list[ExistingSession]:
    """The staged sessions that exist already, with their seats and bookings after giving back
    lapsed holds, locked (no seat is taken from them until the import ends). Lapsed seats are
    returned session by session, holds before the session, the order every booking statement
    locks in."""
    rows = await conn.fetch(
        """SELECT n.line, s.id FROM session_batch n
           JOIN scheduler.session s ON (s.facility_code, s.day, s.starts, s.vaccine)
                                       = (n.facility_code, n.day, n.starts, n.vaccine)
           ORDER BY s.id"""
    )
    if not rows:
        return []
    ids = [r["id"] for r in rows]
    for session_id in ids:
        await conn.execute(_RETURN_LAPSED, session_id)
    counted = await conn.fetch(
        """SELECT s.id, s.capacity, s.reserved,
                  (SELECT count(*)::int FROM scheduler.booking b
                   WHERE b.session_id = s.id AND b.status = 'active') AS booked
           FROM scheduler.session s WHERE s.id = any($1::bigint[])
           ORDER BY s.id FOR UPDATE OF s""",
        ids,
    )
    by_id = {r["id"]: r for r in counted}
    return [
        ExistingSession(
            r["line"],
            r["id"],
            by_id[r["id"]]["capacity"],
            by_id[r["id"]]["reserved"],
            by_id[r["id"]]["booked"],
        )
        for r in rows
    ]


async def merge_sessions(conn: asyncpg.Connection) -> Counts:
    """Insert the staged sessions or update their end time and capacity (checked before)."""
    row = await conn.fetchrow(
        """WITH merged AS (
               INSERT INTO scheduler.session (facility_code, day, starts, ends, capacity, vaccine)
               SELECT facility_code, day, starts, ends, capacity, vaccine FROM session_batch
               ON CONFLICT (facility_code, day, starts, vaccine) DO UPDATE
               SET ends = EXCLUDED.ends, capacity = EXCLUDED.capacity, updated_at = now()
               WHERE (session.ends, session.capacity) IS DISTINCT FROM
                     (EXCLUDED.ends, EXCLUDED.capacity)
               RETURNING (xmax = 0) AS inserted)
           SELECT count(*) FILTER (WHERE inserted) AS new,
                  count(*) FILTER (WHERE NOT inserted) AS updated
           FROM merged"""
    )
    total = await conn.fetchval("SELECT count(*) FROM session_batch")
    return Counts(row["new"], row["updated"], total - row["new"] - row["updated"])


async def stats(pool: asyncpg.Pool, today: date) -> dict[str, int]:
    """The counts of `vaksin stats`, in one statement: facilities; open sessions from `today` on
    and their free seats (neither booked nor held); active bookings by dose; bookings done (the
    dose was given)."""
    row = await pool.fetchrow(
        """SELECT (SELECT count(*) FROM scheduler.facility) AS facilities,
                  s.sessions_ahead, s.free_seats_ahead,
                  b."bookings_active.dose_1", b."bookings_active.dose_2", b.bookings_done
           FROM (SELECT count(*) AS sessions_ahead,
                        coalesce(sum(capacity - reserved), 0)::bigint AS free_seats_ahead
                 FROM scheduler.session WHERE day >= $1 AND status = 'open') s,
                (SELECT count(*) FILTER (WHERE status = 'active' AND dose = 1)
                            AS "bookings_active.dose_1",
                        count(*) FILTER (WHERE status = 'active' AND dose = 2)
                            AS "bookings_active.dose_2",
                        count(*) FILTER (WHERE status = 'done') AS bookings_done
                 FROM scheduler.booking) b""",
        today,
    )
    assert row is not None
    return dict(row)


# --- the operators' console ----------------------------------------------------------------------


async def list_sessions(
    conn: asyncpg.Connection,
    *,
    date_from: date,
    date_to: date,
    facility: str | None,
    regency: str | None,
    include_cancelled: bool,
    limit: int,
) -> list[asyncpg.Record]:
    """Sessions by day and time with their seats: booked (active bookings, from the partial index
    booking_session_idx), held (the rest of `reserved`: live holds, and lapsed ones not yet given
    back) and free."""
    return await conn.fetch(
        """SELECT s.id AS session_id, s.facility_code, f.name AS facility_name, f.regency,
                  s.day AS date, s.starts AS start, s.ends AS "end", s.vaccine, s.capacity,
                  b.booked, greatest(s.reserved - b.booked, 0) AS held,
                  s.capacity - s.reserved AS free, s.status
           FROM scheduler.session s
           JOIN scheduler.facility f ON f.code = s.facility_code
           CROSS JOIN LATERAL (SELECT count(*)::int AS booked FROM scheduler.booking bk
                               WHERE bk.session_id = s.id AND bk.status = 'active') b
           WHERE s.day BETWEEN $1 AND $2
             AND ($3::text IS NULL OR s.facility_code = $3)
             AND ($4::text IS NULL OR lower(f.regency) = lower($4))
             AND ($5 OR s.status = 'open')
           ORDER BY s.day, f.regency, f.name, s.starts, s.id
           LIMIT $6""",
        date_from,
        date_to,
        facility,
        regency,
        include_cancelled,
        limit,
    )


async def figures(pool: asyncpg.Pool, since: date) -> tuple[list[asyncpg.Record], ...]:
    """Bookings made (scheduler.figure) by day from `since`, and by facility with its regency
    (all time); and the seats of open sessions by day from `since` on (session_day_idx)."""
    async with pool.acquire() as conn:
        by_day = await conn.fetch(
            """SELECT day, metric, sum(n)::bigint AS n FROM scheduler.figure WHERE day >= $1
               GROUP BY day, metric ORDER BY day""",
            since,
        )
        by_facility = await conn.fetch(
            """SELECT g.facility, coalesce(f.regency, '?') AS regency, g.metric, g.n
               FROM (SELECT facility, metric, sum(n)::bigint AS n FROM scheduler.figure
                     GROUP BY facility, metric) g
               LEFT JOIN scheduler.facility f ON f.code = g.facility
               ORDER BY regency, g.facility"""
        )
        seats = await conn.fetch(
            """SELECT day, count(*) AS sessions, sum(capacity)::bigint AS capacity,
                      sum(capacity - reserved)::bigint AS free
               FROM scheduler.session WHERE day >= $1 AND status = 'open'
               GROUP BY day ORDER BY day LIMIT 60""",
            since,
        )
    return by_day, by_facility, seats
