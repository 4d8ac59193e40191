"""The only SQL of the notifier: the `notifier.outbound_message` table (see migrations)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import asyncpg

from services.notifier.domain import FAILED, FAILED_OVERRIDES, STATUS_ORDER


@dataclass(frozen=True)
class Outbound:
    command_id: str
    status: str
    wamid: str | None
    attempts: int
    last_error_code: int | None


_COLUMNS = "command_id, status, wamid, attempts, last_error_code"


def _outbound(row: asyncpg.Record) -> Outbound:
    return Outbound(**dict(row))


async def claim(
    pool: asyncpg.Pool, command_id: str, recipient: str, kind: str, payload: dict[str, Any]
) -> Outbound:
    """The row of this command: created as `pending` on first sight, else the existing one.

    Both halves run in one statement: when the INSERT conflicts, the SELECT sees the row that
    was already there (it cannot see the one this statement would have inserted)."""
    row = await pool.fetchrow(
        f"""WITH inserted AS (
                INSERT INTO notifier.outbound_message (command_id, recipient, kind, payload)
                VALUES ($1, $2, $3, $4)
                ON CONFLICT (command_id) DO NOTHING
                RETURNING {_COLUMNS})
            SELECT {_COLUMNS} FROM inserted
            UNION ALL
            SELECT {_COLUMNS} FROM notifier.outbound_message WHERE command_id = $1
            LIMIT 1""",
        command_id,
        recipient,
        kind,
        payload,
    )
    assert row is not None
    return _outbound(row)


async def record_accepted(pool: asyncpg.Pool, command_id: str, wamid: str) -> None:
    await pool.execute(
        """UPDATE notifier.outbound_message
           SET wamid = $2, status = 'accepted', attempts = attempts + 1, updated_at = now()
           WHERE command_id = $1 AND wamid IS NULL""",
        command_id,
        wamid,
    )


async def record_retry(pool: asyncpg.Pool, command_id: str, error_code: int | None) -> None:
    """A transient failure: the command stays pending and JetStream delivers it again."""
    await pool.execute(
        """UPDATE notifier.outbound_message
           SET attempts = attempts + 1, last_error_code = $2, updated_at = now()
           WHERE command_id = $1 AND wamid IS NULL""",
        command_id,
        error_code,
    )


async def record_failed(pool: asyncpg.Pool, command_id: str, error_code: int | None) -> None:
    await pool.execute(
        """UPDATE notifier.outbound_message
           SET status = 'failed', attempts = attempts + 1, last_error_code = $2,
               updated_at = now()
           WHERE command_id = $1 AND wamid IS NULL""",
        command_id,
        error_code,
    )


class StatusOutcome(StrEnum):
    APPLIED = "applied"
    STALE = "stale"  # known message, but the status would move it backwards (or repeats it)
    UNKNOWN = "unknown"  # no message with this wamid (not ours, or not recorded yet)


async def apply_status(
    pool: asyncpg.Pool, wamid: str, status: str, error_code: int | None = None
) -> StatusOutcome:
    """Move a message to `status` unless that would move it backwards (see domain ranking).

    `status` must already be normalized (domain.normalize_status)."""
    row = await pool.fetchrow(
        """WITH updated AS (
               UPDATE notifier.outbound_message
               SET status = $2, last_error_code = coalesce($3, last_error_code),
                   updated_at = now()
               WHERE wamid = $1
                 AND CASE WHEN $2 = $4 THEN status = any($5::text[])
                          ELSE array_position($6::text[], status)
                               < array_position($6::text[], $2::text) END
               RETURNING 1)
           SELECT (SELECT count(*) FROM updated) AS applied,
                  EXISTS (SELECT 1 FROM notifier.outbound_message WHERE wamid = $1) AS known""",
        wamid,
        status,
        error_code,
        FAILED,
        list(FAILED_OVERRIDES),
        list(STATUS_ORDER),
    )
    assert row is not None
    if row["applied"]:
        return StatusOutcome.APPLIED
    return StatusOutcome.STALE if row["known"] else StatusOutcome.UNKNOWN


async def fetch(pool: asyncpg.Pool, command_id: str) -> Outbound | None:
    row = await pool.fetchrow(
        f"SELECT {_COLUMNS} FROM notifier.outbound_message WHERE command_id = $1", command_id
    )
    return _outbound(row) if row else None
