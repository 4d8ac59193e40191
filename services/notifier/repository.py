"""The only SQL of the notifier: the send queue (`notifier.outbound_message`), the per-user
window and pair budget (`notifier.recipient`), the shared throughput budget
(`notifier.rate_budget`), uploaded media (`notifier.media`), the outbox (see migrations), and the
purge of finished messages and expired media."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import asyncpg

from services.common import outbox
from services.common.contracts.notifier import DeadLetter, SendFailed
from services.common.contracts.streams import NOTIFIER, NOTIFIER_DLQ
from services.common.contracts.subjects import NOTIFIER_DLQ_SEND, NOTIFIER_EVT_SEND_FAILED
from services.notifier.domain import FAILED, FAILED_OVERRIDES, FINISHED, SKIPPED, STATUS_ORDER

SCHEMA = "notifier"


@dataclass(frozen=True)
class Outbound:
    """A command's row as tests and operators see it."""

    command_id: str
    status: str
    wamid: str | None
    attempts: int
    last_error_code: int | None
    queued: bool
    sent_as: str | None
    leased_by: str | None
    in_doubt: bool
    origin: str | None
    payload: dict[str, Any]


_COLUMNS = (
    "command_id, status, wamid, attempts, last_error_code, queued, sent_as, leased_by, in_doubt,"
    " origin, payload"
)


# --- intake -------------------------------------------------------------------------------------


async def enqueue(
    pool: asyncpg.Pool,
    command_id: str,
    recipient: str,
    kind: str,
    command_json: str,
    trace_context: str | None = None,
) -> bool:
    """Queue a command (its JSON as received) once; False when it was already known.
    `trace_context`: the command's traceparent, for the send's spans (tracing on).

    A row left `pending` without its command by the notifier before this queue existed is
    queued again when its command is redelivered."""
    row = await pool.fetchrow(
        """INSERT INTO notifier.outbound_message
               (command_id, recipient, kind, payload, command, queued, trace_context)
           VALUES ($1, $2, $3, '{}'::jsonb, $4::text::jsonb, true, $5)
           ON CONFLICT (command_id) DO UPDATE
               SET command = EXCLUDED.command, queued = true, next_attempt_at = now()
               WHERE outbound_message.command IS NULL AND outbound_message.wamid IS NULL
                 AND outbound_message.status = 'pending'
           RETURNING id""",
        command_id,
        recipient,
        kind,
        command_json,
        trace_context,
    )
    return row is not None


# --- leasing the heads of the users' queues -------------------------------------------------------


@dataclass(frozen=True)
class Leased:
    id: int
    command_id: str
    origin: str | None
    recipient: str
    command: dict[str, Any]
    attempts: int
    use_template: bool
    in_doubt: bool
    last_inbound_at: datetime | None
    pair_tat: datetime | None
    db_now: datetime
    trace_context: str | None = None  # the command's traceparent (tracing on)
    created_at: datetime | None = None

    @property
    def sender_command_id(self) -> str:
        """The command id the sender gave (a re-send has its own row id)."""
        return self.origin or self.command_id


# A row is the head of its user's queue when no other queued row of that user has an attempt
# open (leased, or in doubt) and, unless it has one open itself, none comes before it. At most one
# row per user is ever leased, so a user's messages go out one after the other, in `seq` order.
_LEASE = """
WITH heads AS (
    SELECT m.id
    FROM notifier.outbound_message m
    WHERE m.queued
      AND m.next_attempt_at <= now()
      AND (m.lease_until IS NULL OR m.lease_until < now())
      AND NOT EXISTS (
          SELECT 1 FROM notifier.outbound_message e
          WHERE e.queued AND e.recipient = m.recipient AND e.id <> m.id
            AND (e.lease_until IS NOT NULL OR e.in_doubt
                 OR (m.lease_until IS NULL AND NOT m.in_doubt
                     AND (e.seq, e.id) < (m.seq, m.id))))
    ORDER BY m.seq, m.id
    LIMIT $1
    FOR UPDATE OF m SKIP LOCKED
)
UPDATE notifier.outbound_message m
SET lease_until = now() + make_interval(secs => $2),
    leased_by = $3,
    -- A lease that ran out: its holder vanished mid-attempt, which may have reached Meta.
    in_doubt = m.in_doubt OR m.lease_until IS NOT NULL
FROM heads
WHERE m.id = heads.id
RETURNING m.id, m.command_id, m.origin, m.recipient, m.command, m.attempts, m.use_template,
          m.in_doubt, m.seq, m.trace_context, m.created_at,
          (SELECT r.last_inbound_at FROM notifier.recipient r WHERE r.wa_id = m.recipient)
              AS last_inbound_at,
          (SELECT r.pair_tat FROM notifier.recipient r WHERE r.wa_id = m.recipient) AS pair_tat,
          now() AS db_now
"""


async def lease(pool: asyncpg.Pool, limit: int, seconds: float, holder: str) -> list[Leased]:
    """Lease up to `limit` sendable heads (oldest first) for `seconds`, for `holder`."""
    rows = await pool.fetch(_LEASE, limit, seconds, holder)
    rows = sorted(rows, key=lambda r: (r["seq"], r["id"]))
    return [
        Leased(
            id=r["id"],
            command_id=r["command_id"],
            origin=r["origin"],
            recipient=r["recipient"],
            command=r["command"],
            attempts=r["attempts"],
            use_template=r["use_template"],
            in_doubt=r["in_doubt"],
            last_inbound_at=r["last_inbound_at"],
            pair_tat=r["pair_tat"],
            db_now=r["db_now"],
            trace_context=r["trace_context"],
            created_at=r["created_at"],
        )
        for r in rows
    ]


async def extend_leases(pool: asyncpg.Pool, ids: list[int], seconds: float) -> None:
    await pool.execute(
        """UPDATE notifier.outbound_message
           SET lease_until = now() + make_interval(secs => $2)
           WHERE id = any($1::bigint[]) AND queued""",
        ids,
        seconds,
    )


async def release(pool: asyncpg.Pool, until: list[tuple[int, datetime | None]]) -> None:
    """Give leases back without an attempt; each row waits until its time (None: now)."""
    await pool.execute(
        """UPDATE notifier.outbound_message m
           SET lease_until = NULL, next_attempt_at = coalesce(r.at, now())
           FROM unnest($1::bigint[], $2::timestamptz[]) AS r(id, at)
           WHERE m.id = r.id AND m.queued""",
        [i for i, _ in until],
        [at for _, at in until],
    )


# --- results of attempts --------------------------------------------------------------------------


@dataclass(frozen=True)
class Accepted:
    id: int
    recipient: str
    wamid: str
    payload: dict[str, Any]
    sent_as: str


# The user's pair budget spent by one message, for each recipient of the rows in `{rows}`.
_SPEND_PAIR_BUDGET = """
INSERT INTO notifier.recipient AS r (wa_id, last_sent_at, pair_tat)
SELECT DISTINCT recipient, now(), now() + make_interval(secs => {interval}) FROM {rows}
ON CONFLICT (wa_id) DO UPDATE
SET last_sent_at = now(),
    pair_tat = greatest(coalesce(r.pair_tat, now()), now()) + make_interval(secs => {interval})
"""


async def record_accepted(
    pool: asyncpg.Pool, accepted: list[Accepted], pair_interval: float
) -> None:
    """Meta accepted these: out of the queue, and each user's pair budget spent by one (at most
    one row per user is ever in flight)."""
    if not accepted:
        return
    # One statement: the user's pair budget is spent in the same transaction. A row whose status
    # webhook came first was recorded by it (`claim_unknown_wamid`), pair budget included: only
    # what was sent is added. Were the claim to commit while this runs, neither update matches
    # it any more, and the claim's record stands.
    await pool.execute(
        """WITH a AS (
               SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[])
                   AS a(id, wamid, payload, sent_as)),
           recorded AS (
               UPDATE notifier.outbound_message m
               SET queued = false, wamid = a.wamid,
                   status = CASE WHEN m.status = 'pending' THEN 'accepted' ELSE m.status END,
                   attempts = m.attempts + 1,
                   payload = a.payload::jsonb, sent_as = a.sent_as,
                   sent_at = coalesce(m.sent_at, now()), lease_until = NULL, in_doubt = false,
                   updated_at = now()
               FROM a
               WHERE m.id = a.id AND m.wamid IS NULL
               RETURNING m.recipient),
           claimed AS (
               UPDATE notifier.outbound_message m
               SET payload = a.payload::jsonb, sent_as = a.sent_as, updated_at = now()
               FROM a
               WHERE m.id = a.id AND m.wamid = a.wamid)
        """
        + _SPEND_PAIR_BUDGET.format(rows="recorded", interval="$5"),
        [a.id for a in accepted],
        [a.wamid for a in accepted],
        [json.dumps(a.payload) for a in accepted],
        [a.sent_as for a in accepted],
        pair_interval,
    )


async def record_retry(
    pool: asyncpg.Pool,
    row_id: int,
    delay: float,
    error: dict[str, Any],
    *,
    in_doubt: bool = False,
    use_template: bool | None = None,
    count_attempt: bool = True,
) -> None:
    """The attempt failed for now: the row stays the head of its user's queue and waits."""
    await pool.execute(
        """UPDATE notifier.outbound_message
           SET next_attempt_at = now() + make_interval(secs => $2), lease_until = NULL,
               attempts = attempts + $6::int, last_error_code = ($3::jsonb ->> 'code')::int,
               last_error = $3::jsonb, in_doubt = in_doubt OR $4,
               use_template = coalesce($5, use_template), updated_at = now()
           WHERE id = $1 AND queued""",
        row_id,
        delay,
        error,
        in_doubt,
        use_template,
        1 if count_attempt else 0,
    )


async def record_failed(
    pool: asyncpg.Pool,
    row_id: int,
    error: dict[str, Any] | None,
    dead_letter: DeadLetter,
    failed: SendFailed,
    *,
    count_attempt: bool = True,
) -> bool:
    """Failed for good: out of the queue, with its dead letter and send_failed fact in the same
    transaction (outbox). False if the row was no longer queued (nothing recorded)."""
    async with pool.acquire() as conn, conn.transaction():
        done = await _finish(conn, row_id, "failed", error, count_attempt)
        if done is None:
            return False
        await _dead_letter(conn, dead_letter.model_copy(update={"attempts": done}), failed)
    return True


async def _dead_letter(
    conn: asyncpg.Connection, dead_letter: DeadLetter, failed: SendFailed
) -> None:
    await outbox.enqueue(conn, SCHEMA, NOTIFIER_DLQ_SEND, dead_letter, NOTIFIER_DLQ.name)
    await outbox.enqueue(conn, SCHEMA, NOTIFIER_EVT_SEND_FAILED, failed, NOTIFIER.name)


async def record_skipped(
    pool: asyncpg.Pool, row_id: int, error: dict[str, Any] | None, *, count_attempt: bool
) -> bool:
    """An optional message not sent (the user's window is closed): out of the queue, neither
    sent nor failed. False if the row was no longer queued (nothing recorded)."""
    async with pool.acquire() as conn:
        return await _finish(conn, row_id, "skipped", error, count_attempt) is not None


async def _finish(
    conn: asyncpg.Connection,
    row_id: int,
    status: str,
    error: dict[str, Any] | None,
    count_attempt: bool,
) -> int | None:
    """Take a queued row out of the queue for good with this status; its attempts, or None if
    it was no longer queued."""
    return await conn.fetchval(
        """UPDATE notifier.outbound_message
           SET queued = false, status = $4, lease_until = NULL,
               attempts = attempts + $3::int,
               last_error_code = coalesce(($2::jsonb ->> 'code')::int, last_error_code),
               last_error = coalesce($2::jsonb, last_error), updated_at = now()
           WHERE id = $1 AND queued
           RETURNING attempts""",
        row_id,
        error,
        1 if count_attempt else 0,
        status,
    )


async def dead_letter_unqueued(
    pool: asyncpg.Pool, dead_letter: DeadLetter, failed: SendFailed | None
) -> None:
    """A command that never made it into the queue (malformed): its dead letter only."""
    async with pool.acquire() as conn, conn.transaction():
        await outbox.enqueue(conn, SCHEMA, NOTIFIER_DLQ_SEND, dead_letter, NOTIFIER_DLQ.name)
        if failed is not None:
            await outbox.enqueue(conn, SCHEMA, NOTIFIER_EVT_SEND_FAILED, failed, NOTIFIER.name)


# --- the shared throughput budget (GCRA) --------------------------------------------------------


async def reserve_slots(
    pool: asyncpg.Pool, phone_number_id: str, count: int, interval: float
) -> float:
    """Reserve `count` consecutive send slots `interval` apart; return the seconds from the
    database's now to the first one. One row per number serializes every replica's
    reservations, so together they never get more than one slot per interval. Inbound messages
    take their slots here too (their delay unused): the sends after them wait."""
    delay = await pool.fetchval(
        """WITH clock AS (SELECT clock_timestamp() AS t)
           INSERT INTO notifier.rate_budget AS b (phone_number_id, tat)
           SELECT $1, clock.t + make_interval(secs => $2::int * $3::float8) FROM clock
           ON CONFLICT (phone_number_id) DO UPDATE
           SET tat = greatest(b.tat, (SELECT t FROM clock))
                     + make_interval(secs => $2::int * $3::float8)
           RETURNING extract(epoch FROM (tat - (SELECT t FROM clock)))::float8
                     - $2::int * $3::float8""",
        phone_number_id,
        count,
        interval,
    )
    return max(float(delay), 0.0)


async def pause_budget(pool: asyncpg.Pool, phone_number_id: str, seconds: float) -> None:
    """No slot for anyone before `seconds` from now (Meta answered 130429)."""
    await pool.execute(
        """INSERT INTO notifier.rate_budget AS b (phone_number_id, tat)
           VALUES ($1, clock_timestamp() + make_interval(secs => $2))
           ON CONFLICT (phone_number_id) DO UPDATE
           SET tat = greatest(b.tat, clock_timestamp() + make_interval(secs => $2))""",
        phone_number_id,
        seconds,
    )


# --- the 24-hour window, from inbound messages --------------------------------------------------


async def record_inbound(
    pool: asyncpg.Pool, latest: dict[str, datetime]
) -> dict[str, datetime | None]:
    """The users wrote at these times: their windows (re)open. Returns each user's last send."""
    if not latest:
        return {}
    rows = await pool.fetch(
        """INSERT INTO notifier.recipient AS r (wa_id, last_inbound_at)
           SELECT * FROM unnest($1::text[], $2::timestamptz[])
           ON CONFLICT (wa_id) DO UPDATE
           SET last_inbound_at = greatest(r.last_inbound_at, EXCLUDED.last_inbound_at)
           RETURNING wa_id, last_sent_at""",
        list(latest),
        list(latest.values()),
    )
    return {r["wa_id"]: r["last_sent_at"] for r in rows}


# --- media ------------------------------------------------------------------------------------------

# Meta keeps an uploaded file 30 days: a cached id is reused for a day less, and forgotten after.
MEDIA_KEPT_BY_META_DAYS = 30
MEDIA_REUSE_DAYS = MEDIA_KEPT_BY_META_DAYS - 1


async def cached_media(pool: asyncpg.Pool, sha256: str) -> str | None:
    return await pool.fetchval(
        """SELECT media_id FROM notifier.media
           WHERE sha256 = $1 AND uploaded_at > now() - make_interval(days => $2)""",
        sha256,
        MEDIA_REUSE_DAYS,
    )


async def store_media(pool: asyncpg.Pool, sha256: str, media_id: str, mime_type: str) -> None:
    await pool.execute(
        """INSERT INTO notifier.media (sha256, media_id, mime_type) VALUES ($1, $2, $3)
           ON CONFLICT (sha256) DO UPDATE
           SET media_id = EXCLUDED.media_id, mime_type = EXCLUDED.mime_type, uploaded_at = now()""",
        sha256,
        media_id,
        mime_type,
    )


async def forget_media(pool: asyncpg.Pool, sha256: str, media_id: str) -> None:
    await pool.execute(
        "DELETE FROM notifier.media WHERE sha256 = $1 AND media_id = $2", sha256, media_id
    )


# --- delivery statuses ------------------------------------------------------------------------------


class StatusOutcome(StrEnum):
    APPLIED = "applied"
    STALE = "stale"  # known message, but the status would move it backwards (or repeats it)
    UNKNOWN = "unknown"  # no message with this wamid (not ours, or not recorded yet)


async def apply_statuses(pool: asyncpg.Pool, statuses: dict[str, str]) -> dict[str, StatusOutcome]:
    """Move messages forward to these (non-failed, normalized) statuses, by wamid, in one
    statement; a status that would move a message backwards is stale."""
    if not statuses:
        return {}
    rows = await pool.fetch(
        """WITH s AS (SELECT * FROM unnest($1::text[], $2::text[]) AS s(wamid, status)),
           updated AS (
               UPDATE notifier.outbound_message m
               SET status = s.status, updated_at = now()
               FROM s
               WHERE m.wamid = s.wamid
                 AND array_position($3::text[], m.status) < array_position($3::text[], s.status)
               RETURNING m.wamid)
           SELECT s.wamid,
                  EXISTS (SELECT 1 FROM updated u WHERE u.wamid = s.wamid) AS applied,
                  EXISTS (SELECT 1 FROM notifier.outbound_message m WHERE m.wamid = s.wamid)
                      AS known
           FROM s""",
        list(statuses),
        list(statuses.values()),
        list(STATUS_ORDER),
    )
    return {
        r["wamid"]: StatusOutcome.APPLIED
        if r["applied"]
        else (StatusOutcome.STALE if r["known"] else StatusOutcome.UNKNOWN)
        for r in rows
    }


@dataclass(frozen=True)
class Claimed:
    command_id: str
    in_doubt: bool  # its sender had died or timed out (else: the answer is still on its way)


async def claim_unknown_wamid(
    db: asyncpg.Pool | asyncpg.Connection, wamid: str, recipient: str, pair_interval: float
) -> Claimed | None:
    """A status for a wamid we never recorded, for this user: it can only be the user's one open
    attempt (sends to a user go one at a time, and each is recorded before the next), whose
    answer was lost (crash, timeout) or is not recorded yet. Record it as accepted, spending the
    user's pair budget as its sender would (a live sender's own record then only completes it,
    and the user's next message, now the head, waits for the budget all the same); None if the
    user has no open attempt."""
    try:
        row = await _claim(db, wamid, recipient, pair_interval)
    except asyncpg.UniqueViolationError:
        return None  # recorded meanwhile by its sender (on the row before)
    return Claimed(row["command_id"], row["doubtful"]) if row else None


async def _claim(
    db: asyncpg.Pool | asyncpg.Connection, wamid: str, recipient: str, pair_interval: float
) -> asyncpg.Record | None:
    return await db.fetchrow(
        """WITH target AS (
               SELECT id, in_doubt OR lease_until < now() AS doubtful
               FROM notifier.outbound_message
               WHERE queued AND recipient = $2 AND (lease_until IS NOT NULL OR in_doubt)
                 AND NOT EXISTS (SELECT 1 FROM notifier.outbound_message WHERE wamid = $1)
               ORDER BY seq, id LIMIT 1
               FOR UPDATE),
           claimed AS (
               UPDATE notifier.outbound_message m
               SET wamid = $1, queued = false, lease_until = NULL, in_doubt = false,
                   status = CASE WHEN m.status = 'pending' THEN 'accepted' ELSE m.status END,
                   attempts = m.attempts + 1, sent_at = coalesce(m.sent_at, now()),
                   sent_as = coalesce(m.sent_as,
                                      CASE WHEN m.use_template THEN 'template' ELSE 'message' END),
                   updated_at = now()
               FROM target
               WHERE m.id = target.id AND m.wamid IS NULL
               RETURNING m.command_id, m.recipient, target.doubtful),
           spent AS ("""
        + _SPEND_PAIR_BUDGET.format(rows="claimed", interval="$3")
        + """)
           SELECT command_id, doubtful FROM claimed""",
        wamid,
        recipient,
        pair_interval,
    )


@dataclass(frozen=True)
class FailedMessage:
    """A sent message that a `failed` status webhook just marked failed."""

    id: int
    command_id: str
    origin: str | None
    recipient: str
    command: dict[str, Any] | None
    attempts: int
    seq: int
    sent_as: str | None
    use_template: bool


async def mark_failed_by_status(
    conn: asyncpg.Connection, wamid: str, error_code: int | None
) -> tuple[StatusOutcome, FailedMessage | None]:
    """Apply a `failed` status (only over statuses that do not prove delivery)."""
    row = await conn.fetchrow(
        """UPDATE notifier.outbound_message
           SET status = 'failed', last_error_code = coalesce($2, last_error_code),
               updated_at = now()
           WHERE wamid = $1 AND status = any($3::text[])
           RETURNING id, command_id, origin, recipient, command, attempts, seq, sent_as,
                     use_template""",
        wamid,
        error_code,
        list(FAILED_OVERRIDES),
    )
    if row is None:
        known = await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM notifier.outbound_message WHERE wamid = $1)", wamid
        )
        return (StatusOutcome.STALE if known else StatusOutcome.UNKNOWN), None
    return StatusOutcome.APPLIED, FailedMessage(**dict(row))


async def queue_resend(
    conn: asyncpg.Connection, failed: FailedMessage, *, use_template: bool, error_code: int | None
) -> str:
    """Send a failed message again, as a new row in its old place in the user's queue (same
    seq, so before the user's messages still waiting). Returns the new row's command id."""
    origin = failed.origin or failed.command_id
    command_id = f"{origin}#{failed.attempts + 1}"
    await conn.execute(
        """INSERT INTO notifier.outbound_message
               (command_id, recipient, kind, payload, command, queued, seq, attempts,
                use_template, origin, last_error_code)
           SELECT $1, recipient, kind, '{}'::jsonb, command, true, seq, attempts, $3, $4, $5
           FROM notifier.outbound_message WHERE id = $2
           ON CONFLICT (command_id) DO NOTHING""",
        command_id,
        failed.id,
        use_template,
        origin,
        error_code,
    )
    return command_id


async def mark_skipped(conn: asyncpg.Connection, row_id: int) -> None:
    """An optional message Meta did not deliver because the window was closed (131047): skipped
    rather than failed (in the transaction that just marked it failed)."""
    await conn.execute(
        """UPDATE notifier.outbound_message SET status = 'skipped', updated_at = now()
           WHERE id = $1 AND status = 'failed'""",
        row_id,
    )


async def dead_letter_failed(
    conn: asyncpg.Connection, dead_letter: DeadLetter, failed: SendFailed
) -> None:
    await _dead_letter(conn, dead_letter, failed)


# --- housekeeping -----------------------------------------------------------------------------------

# Rows deleted by one statement: short transactions, few row locks, whatever the backlog.
PURGE_BATCH = 1000


async def purge_finished(pool: asyncpg.Pool, retention_days: int, batch: int = PURGE_BATCH) -> int:
    """Delete messages out of the queue in a finished status and unchanged for `retention_days`
    (never queued, leased or pending ones), oldest first, `batch` rows per statement; returns
    how many. Replicas purging at once skip each other's rows."""
    return await _delete_in_batches(
        pool,
        """DELETE FROM notifier.outbound_message
           WHERE id IN (
               SELECT id FROM notifier.outbound_message
               WHERE created_at < now() - make_interval(days => $1)
                 AND updated_at < now() - make_interval(days => $1)
                 AND NOT queued AND status = any($2::text[])
               ORDER BY created_at
               LIMIT $3
               FOR UPDATE SKIP LOCKED)""",
        batch,
        retention_days,
        list(FINISHED),
    )


async def purge_expired_media(pool: asyncpg.Pool, batch: int = PURGE_BATCH) -> int:
    """Forget media ids Meta no longer keeps; returns how many."""
    return await _delete_in_batches(
        pool,
        """DELETE FROM notifier.media
           WHERE sha256 IN (
               SELECT sha256 FROM notifier.media
               WHERE uploaded_at < now() - make_interval(days => $1)
               ORDER BY uploaded_at
               LIMIT $2
               FOR UPDATE SKIP LOCKED)""",
        batch,
        MEDIA_KEPT_BY_META_DAYS,
    )


async def _delete_in_batches(pool: asyncpg.Pool, sql: str, batch: int, *args: Any) -> int:
    """Run `sql`, a DELETE of at most `batch` rows (its last parameter), each in its own
    transaction, until one deletes fewer; returns the rows deleted."""
    total = 0
    while True:
        status = await pool.execute(sql, *args, batch)
        deleted = int(status.split()[-1])
        total += deleted
        if deleted < batch:
            return total


# --- views --------------------------------------------------------------------------------------------


async def queue_depth(pool: asyncpg.Pool) -> tuple[int, int]:
    """(queued commands, of which ready to send now)."""
    row = await pool.fetchrow(
        """SELECT count(*) AS queued,
                  count(*) FILTER (WHERE next_attempt_at <= now()) AS ready
           FROM notifier.outbound_message WHERE queued"""
    )
    assert row is not None
    return int(row["queued"]), int(row["ready"])


async def oldest_ready_age(pool: asyncpg.Pool) -> float:
    """Seconds since the oldest message that may be sent now was queued (0 when none): how long
    the queue makes a user wait."""
    age = await pool.fetchval(
        """SELECT coalesce(extract(epoch FROM now() - min(created_at)), 0)
           FROM notifier.outbound_message WHERE queued AND next_attempt_at <= now()"""
    )
    return float(age or 0)


async def stats(pool: asyncpg.Pool) -> dict[str, int]:
    """The counts of `vaksin stats`, in two statements: the queue (`queue_depth`), and the
    messages of the last 24 hours by status (every status, 0 too) with their dead letters.

    Dead letters are not kept in this schema (they leave through the outbox to NOTIFIER_DLQ), but
    every `failed` row was either dead-lettered or sent again as exactly one new row naming it
    (`origin`), so they are the failed rows less the re-sends. Not counted: malformed commands,
    which never became a row (the `notifier_dead_letters_total` metric has them)."""
    queued, ready = await queue_depth(pool)
    rows = await pool.fetch(
        """SELECT status, count(*) AS n, count(*) FILTER (WHERE origin IS NOT NULL) AS resends
           FROM notifier.outbound_message WHERE created_at > now() - interval '24 hours'
           GROUP BY status"""
    )
    by_status = {r["status"]: r["n"] for r in rows}
    resends = sum(r["resends"] for r in rows)
    return {
        "queued": queued,
        "queued_ready": ready,
        "last_24h": sum(by_status.values()),
        **{f"last_24h.{s}": by_status.get(s, 0) for s in (*STATUS_ORDER, FAILED, SKIPPED)},
        "dead_letters_24h": max(by_status.get(FAILED, 0) - resends, 0),
    }


async def fetch(pool: asyncpg.Pool, command_id: str) -> Outbound | None:
    row = await pool.fetchrow(
        f"SELECT {_COLUMNS} FROM notifier.outbound_message WHERE command_id = $1", command_id
    )
    return Outbound(**dict(row)) if row else None


async def rows_of(pool: asyncpg.Pool, recipient: str) -> list[Outbound]:
    """Every row of one user, in queue order (re-sends included)."""
    rows = await pool.fetch(
        f"""SELECT {_COLUMNS} FROM notifier.outbound_message WHERE recipient = $1
            ORDER BY seq, id""",
        recipient,
    )
    return [Outbound(**dict(r)) for r in rows]
