"""The only SQL of the ticketing service: tickets (`ticketing.ticket`), void bookings
(`ticketing.void_booking`), facility desks and their check-ins (`ticketing.desk`,
`ticketing.desk_checkin`) and the outbox (see migrations)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date, datetime, time
from typing import Any

import asyncpg
from pydantic import BaseModel

from services.common import tracing
from services.common.outbox import queue_in_order
from services.ticketing.domain import Measurements, TicketState


@dataclass(frozen=True)
class NewTicket:
    ticket_id: str
    code: str
    booking_id: int
    person_id: str
    dose: int
    vaccine: str
    facility_code: str
    facility_name: str
    facility_address: str
    session_date: date
    start_time: time
    end_time: time
    masked_name: str
    masked_nik: str | None
    token: str
    qr_png: bytes
    expires_at: datetime


@dataclass(frozen=True)
class Ticket(NewTicket):
    issued_at: datetime
    revoked_at: datetime | None
    revoked_reason: str | None
    redeemed_at: datetime | None
    redeemed_by: str | None
    redeemed_via: str | None
    temperature_c: float | None
    systolic: int | None
    diastolic: int | None
    dose_given_at: datetime | None
    dose_given_by: str | None
    redeemed_desk_id: int | None
    dose_given_desk_id: int | None

    @property
    def state(self) -> TicketState:
        return TicketState(self.session_date, self.expires_at, self.revoked_at, self.redeemed_at)


_NEW_COLUMNS = [f.name for f in fields(NewTicket)]
_COLUMNS = ", ".join(f.name for f in fields(Ticket))


def _ticket(row: asyncpg.Record) -> Ticket:
    values = dict(row)
    if values["temperature_c"] is not None:
        values["temperature_c"] = float(values["temperature_c"])
    return Ticket(**values)


# Advisory lock class of ticketing's per-booking locks (the key is the booking id, folded).
_BOOKING_LOCK = 0x7469636B  # "tick"


async def lock_booking(conn: asyncpg.Connection, booking_id: int) -> None:
    """Serialize issuing and voiding one booking until the transaction ends. Without it a void
    could run while a ticket's insert is uncommitted, revoke nothing, and leave that ticket good
    for a cancelled booking."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock($1, ($2::bigint % 2147483647)::int)",
        _BOOKING_LOCK,
        booking_id,
    )


async def settled(conn: asyncpg.Connection | asyncpg.Pool, booking_id: int) -> bool:
    """The booking has its ticket already, or is void: nothing to issue."""
    return await conn.fetchval(
        """SELECT EXISTS (SELECT 1 FROM ticketing.ticket WHERE booking_id = $1)
               OR EXISTS (SELECT 1 FROM ticketing.void_booking WHERE booking_id = $1)""",
        booking_id,
    )


# One statement for the ticket and its messages: the outbox rows exist only if the ticket was
# inserted, and take their ids in the order given (the image before the video).
_N = len(_NEW_COLUMNS)
_QUEUE = queue_in_order(
    "ticketing", f"${_N + 1}", f"${_N + 2}", f"${_N + 3}", "EXISTS (SELECT FROM new)", f"${_N + 4}"
)
_INSERT_TICKET = f"""
    WITH new AS (
        INSERT INTO ticketing.ticket ({", ".join(_NEW_COLUMNS)})
        SELECT {", ".join(f"${i}" for i in range(1, _N + 1))}
        WHERE NOT EXISTS (SELECT 1 FROM ticketing.void_booking
                          WHERE booking_id = ${_NEW_COLUMNS.index("booking_id") + 1})
        ON CONFLICT DO NOTHING
        RETURNING {_COLUMNS}
    ), queued AS (
        {_QUEUE}
    )
    SELECT * FROM new"""


async def insert_ticket(
    conn: asyncpg.Connection,
    ticket: NewTicket,
    subject: str,
    stream: str,
    messages: list[dict[str, Any]],
) -> Ticket | None:
    """Store a new ticket and queue its messages (outbox rows, in this order) in one statement;
    the ticket as stored, or None when nothing was stored: its booking has a ticket already or
    is void (`settled`), or (rarely) its code is taken. Run it holding `lock_booking`: the void
    check reads what was committed before the statement began."""
    values = [getattr(ticket, name) for name in _NEW_COLUMNS]
    row = await conn.fetchrow(
        _INSERT_TICKET, *values, subject, stream, messages, tracing.current_traceparent()
    )
    return _ticket(row) if row else None


async def void_booking(
    conn: asyncpg.Connection, booking_id: int, reason: str, now: datetime
) -> Ticket | None:
    """Mark a booking void and revoke its ticket if it has one; the ticket revoked now, if any."""
    await lock_booking(conn, booking_id)
    await conn.execute(
        """INSERT INTO ticketing.void_booking (booking_id, reason, voided_at) VALUES ($1, $2, $3)
           ON CONFLICT (booking_id) DO NOTHING""",
        booking_id,
        reason,
        now,
    )
    row = await conn.fetchrow(
        f"""UPDATE ticketing.ticket SET revoked_at = $3, revoked_reason = $2
            WHERE booking_id = $1 AND revoked_at IS NULL RETURNING {_COLUMNS}""",
        booking_id,
        reason,
        now,
    )
    return _ticket(row) if row else None


async def find(conn: asyncpg.Connection | asyncpg.Pool, ticket_id: str) -> Ticket | None:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM ticketing.ticket WHERE ticket_id = $1", ticket_id
    )
    return _ticket(row) if row else None


async def find_by_code(conn: asyncpg.Connection | asyncpg.Pool, code: str) -> Ticket | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM ticketing.ticket WHERE code = $1", code)
    return _ticket(row) if row else None


async def find_by_booking(conn: asyncpg.Connection, booking_id: int) -> Ticket | None:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM ticketing.ticket WHERE booking_id = $1", booking_id
    )
    return _ticket(row) if row else None


async def usable_tickets(pool: asyncpg.Pool, person_id: str, now: datetime) -> list[Ticket]:
    """The person's tickets that can still be used (not revoked, not used, not expired)."""
    rows = await pool.fetch(
        f"""SELECT {_COLUMNS} FROM ticketing.ticket
            WHERE person_id = $1 AND revoked_at IS NULL AND redeemed_at IS NULL
              AND expires_at > $2
            ORDER BY dose, session_date""",
        person_id,
        now,
    )
    return [_ticket(r) for r in rows]


async def redeem(
    conn: asyncpg.Connection,
    ticket_id: str,
    *,
    by: str,
    via: str,
    measured: Measurements,
    dose_given: bool,
    now: datetime,
    desk_id: int | None = None,
) -> Ticket | None:
    """The single use: one conditional UPDATE. None when it was not redeemable (already used,
    revoked or expired), including when a concurrent check-in won."""
    row = await conn.fetchrow(
        f"""UPDATE ticketing.ticket
            SET redeemed_at = $2, redeemed_by = $3, redeemed_via = $4,
                temperature_c = $5, systolic = $6, diastolic = $7,
                dose_given_at = CASE WHEN $8 THEN $2 END,
                dose_given_by = CASE WHEN $8 THEN $3 END,
                redeemed_desk_id = $9,
                dose_given_desk_id = CASE WHEN $8 THEN $9::bigint END
            WHERE ticket_id = $1 AND redeemed_at IS NULL AND revoked_at IS NULL
              AND expires_at > $2
            RETURNING {_COLUMNS}""",
        ticket_id,
        now,
        by,
        via,
        measured.temperature_c,
        measured.systolic,
        measured.diastolic,
        dose_given,
        desk_id,
    )
    return _ticket(row) if row else None


async def record_dose_given(
    conn: asyncpg.Connection,
    ticket_id: str,
    *,
    by: str,
    now: datetime,
    desk_id: int | None = None,
) -> Ticket | None:
    """The dose given to a person checked in earlier without it: once, and never on a revoked
    ticket (its booking was cancelled or moved after the check-in)."""
    row = await conn.fetchrow(
        f"""UPDATE ticketing.ticket
            SET dose_given_at = $2, dose_given_by = $3, dose_given_desk_id = $4
            WHERE ticket_id = $1 AND redeemed_at IS NOT NULL AND dose_given_at IS NULL
              AND revoked_at IS NULL
            RETURNING {_COLUMNS}""",
        ticket_id,
        now,
        by,
        desk_id,
    )
    return _ticket(row) if row else None


async def stats(pool: asyncpg.Pool, now: datetime) -> dict[str, int]:
    """The counts of `vaksin stats`, in one statement: tickets issued, usable now (not revoked,
    used or expired), redeemed at a desk, with the dose given, revoked."""
    row = await pool.fetchrow(
        """SELECT count(*) AS tickets_issued,
                  count(*) FILTER (WHERE revoked_at IS NULL AND redeemed_at IS NULL
                                   AND expires_at > $1) AS tickets_usable,
                  count(*) FILTER (WHERE redeemed_at IS NOT NULL) AS tickets_redeemed,
                  count(*) FILTER (WHERE dose_given_at IS NOT NULL) AS doses_given,
                  count(*) FILTER (WHERE revoked_at IS NOT NULL) AS tickets_revoked
           FROM ticketing.ticket""",
        now,
    )
    assert row is not None
    return dict(row)


# --- facility desks -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Desk:
    desk_id: int
    facility_code: str
    facility_name: str
    name: str
    enrolment_expires_at: datetime
    enrolled_at: datetime | None
    created_at: datetime
    created_by: str
    revoked_at: datetime | None
    revoked_by: str | None
    last_seen_at: datetime | None


_DESK_COLUMNS = ", ".join(f.name for f in fields(Desk))


async def add_desk(
    pool: asyncpg.Pool,
    *,
    facility_code: str,
    facility_name: str,
    name: str,
    enrolment_hash: bytes,
    expires_at: datetime,
    by: str,
    now: datetime,
) -> Desk:
    row = await pool.fetchrow(
        f"""INSERT INTO ticketing.desk (facility_code, facility_name, name, enrolment_hash,
                                        enrolment_expires_at, created_by, created_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {_DESK_COLUMNS}""",
        facility_code,
        facility_name,
        name,
        enrolment_hash,
        expires_at,
        by,
        now,
    )
    assert row is not None
    return Desk(**dict(row))


async def enrol_desk(
    pool: asyncpg.Pool, enrolment_hash: bytes, credential_hash: bytes, now: datetime
) -> tuple[Desk | None, Desk | None]:
    """Trade an enrolment code for a credential, once: (the desk enrolled now, None), or
    (None, the desk the code was for, if any) to tell why not (used, expired, revoked)."""
    row = await pool.fetchrow(
        f"""UPDATE ticketing.desk SET enrolled_at = $3, credential_hash = $2, last_seen_at = $3
            WHERE enrolment_hash = $1 AND enrolled_at IS NULL AND revoked_at IS NULL
              AND enrolment_expires_at > $3
            RETURNING {_DESK_COLUMNS}""",
        enrolment_hash,
        credential_hash,
        now,
    )
    if row is not None:
        return Desk(**dict(row)), None
    row = await pool.fetchrow(
        f"SELECT {_DESK_COLUMNS} FROM ticketing.desk WHERE enrolment_hash = $1", enrolment_hash
    )
    return None, Desk(**dict(row)) if row else None


async def desk_by_credential(
    pool: asyncpg.Pool, credential_hash: bytes, now: datetime
) -> Desk | None:
    """The desk a credential belongs to (revoked ones included: the caller tells them apart),
    noting that it was seen."""
    row = await pool.fetchrow(
        f"""UPDATE ticketing.desk SET last_seen_at = $2
            WHERE credential_hash = $1 RETURNING {_DESK_COLUMNS}""",
        credential_hash,
        now,
    )
    return Desk(**dict(row)) if row else None


@dataclass(frozen=True)
class DeskListing:
    desk: Desk
    checkins: int
    last_checkin_at: datetime | None


async def list_desks(
    pool: asyncpg.Pool, facility_code: str | None, with_revoked: bool
) -> list[DeskListing]:
    rows = await pool.fetch(
        f"""SELECT {", ".join(f"d.{c}" for c in _DESK_COLUMNS.split(", "))},
                   count(t.ticket_id) AS checkins, max(t.redeemed_at) AS last_checkin_at
            FROM ticketing.desk d
            LEFT JOIN ticketing.ticket t ON t.redeemed_desk_id = d.desk_id
            WHERE ($1::text IS NULL OR d.facility_code = $1)
              AND ($2 OR d.revoked_at IS NULL)
            GROUP BY d.desk_id
            ORDER BY d.facility_code, d.desk_id""",
        facility_code,
        with_revoked,
    )
    listings = []
    for row in rows:
        values = dict(row)
        checkins, last = values.pop("checkins"), values.pop("last_checkin_at")
        listings.append(DeskListing(Desk(**values), checkins, last))
    return listings


async def revoke_desk(
    pool: asyncpg.Pool, desk_id: int, by: str, now: datetime
) -> tuple[Desk | None, bool]:
    """(the desk, whether this call revoked it); (None, False) for an unknown id."""
    row = await pool.fetchrow(
        f"""UPDATE ticketing.desk SET revoked_at = $3, revoked_by = $2
            WHERE desk_id = $1 AND revoked_at IS NULL RETURNING {_DESK_COLUMNS}""",
        desk_id,
        by,
        now,
    )
    if row is not None:
        return Desk(**dict(row)), True
    row = await pool.fetchrow(
        f"SELECT {_DESK_COLUMNS} FROM ticketing.desk WHERE desk_id = $1", desk_id
    )
    return (Desk(**dict(row)) if row else None), False


async def claim_desk_checkin(
    conn: asyncpg.Connection, desk_id: int, client_id: str, scanned_at: datetime, now: datetime
) -> dict[str, Any] | None:
    """Claim a desk's check-in by the device's id for it. None when this call claimed it (go
    on, then `answer_desk_checkin`); else the answer given the first time. A twin sent at the
    same moment waits here for the first one's transaction, then reads its answer."""
    claimed = await conn.fetchval(
        """INSERT INTO ticketing.desk_checkin
               (desk_id, client_id, status, scanned_at, received_at, answer)
           VALUES ($1, $2, 'pending', $3, $4, '{}') ON CONFLICT DO NOTHING RETURNING true""",
        desk_id,
        client_id,
        scanned_at,
        now,
    )
    if claimed:
        return None
    answer = await conn.fetchval(
        "SELECT answer FROM ticketing.desk_checkin WHERE desk_id = $1 AND client_id = $2",
        desk_id,
        client_id,
    )
    return answer


async def answer_desk_checkin(
    conn: asyncpg.Connection, desk_id: int, client_id: str, answer: BaseModel
) -> None:
    values = answer.model_dump(mode="json")
    await conn.execute(
        """UPDATE ticketing.desk_checkin SET ticket_id = $3, status = $4, answer = $5
           WHERE desk_id = $1 AND client_id = $2""",
        desk_id,
        client_id,
        values.get("ticket_id"),
        values["status"],
        values,
    )


async def figures(pool: asyncpg.Pool, since: date) -> tuple[list[asyncpg.Record], ...]:
    """Check-ins and doses given (ticketing.figure): by day from `since`, by facility (all time)."""
    async with pool.acquire() as conn:
        by_day = await conn.fetch(
            """SELECT day, metric, sum(n)::bigint AS n FROM ticketing.figure WHERE day >= $1
               GROUP BY day, metric ORDER BY day""",
            since,
        )
        by_facility = await conn.fetch(
            """SELECT facility, metric, sum(n)::bigint AS n FROM ticketing.figure
               GROUP BY facility, metric ORDER BY facility"""
        )
    return by_day, by_facility
