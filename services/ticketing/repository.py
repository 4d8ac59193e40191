"""The only SQL of the ticketing service: tickets (`ticketing.ticket`), void bookings
(`ticketing.void_booking`) and the outbox (see migrations)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date, datetime, time
from typing import Any

import asyncpg

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
_INSERT_TICKET = f"""
    WITH new AS (
        INSERT INTO ticketing.ticket ({", ".join(_NEW_COLUMNS)})
        SELECT {", ".join(f"${i}" for i in range(1, _N + 1))}
        WHERE NOT EXISTS (SELECT 1 FROM ticketing.void_booking
                          WHERE booking_id = ${_NEW_COLUMNS.index("booking_id") + 1})
        ON CONFLICT DO NOTHING
        RETURNING {_COLUMNS}
    ), queued AS (
        {queue_in_order("ticketing", f"${_N + 1}", f"${_N + 2}", f"${_N + 3}", "EXISTS (SELECT FROM new)")}
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
    row = await conn.fetchrow(_INSERT_TICKET, *values, subject, stream, messages)
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
) -> Ticket | None:
    """The single use: one conditional UPDATE. None when it was not redeemable (already used,
    revoked or expired), including when a concurrent check-in won."""
    row = await conn.fetchrow(
        f"""UPDATE ticketing.ticket
            SET redeemed_at = $2, redeemed_by = $3, redeemed_via = $4,
                temperature_c = $5, systolic = $6, diastolic = $7,
                dose_given_at = CASE WHEN $8 THEN $2 END,
                dose_given_by = CASE WHEN $8 THEN $3 END
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
    )
    return _ticket(row) if row else None


async def record_dose_given(
    conn: asyncpg.Connection, ticket_id: str, *, by: str, now: datetime
) -> Ticket | None:
    """The dose given to a person checked in earlier without it: once, and never on a revoked
    ticket (its booking was cancelled or moved after the check-in)."""
    row = await conn.fetchrow(
        f"""UPDATE ticketing.ticket SET dose_given_at = $2, dose_given_by = $3
            WHERE ticket_id = $1 AND redeemed_at IS NOT NULL AND dose_given_at IS NULL
              AND revoked_at IS NULL
            RETURNING {_COLUMNS}""",
        ticket_id,
        now,
        by,
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
