"""The ingress's SQL: processed message ids and conversation state (schema `ingress`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import asyncpg

from services.common import outbox
from services.common.contracts.notifier import SendMessage
from services.ingress.dialog import Conversation, Step

Executor = asyncpg.Connection | asyncpg.Pool  # a turn's statements need no connection of their own


async def mark_processed(conn: asyncpg.Connection, wamid: str) -> bool:
    """Record the message id; False if it was processed before (a duplicate delivery)."""
    status = await conn.execute(
        "INSERT INTO ingress.processed_message (wamid) VALUES ($1) ON CONFLICT DO NOTHING", wamid
    )
    return status == "INSERT 0 1"


async def load_conversation(conn: asyncpg.Connection, wa_id: str) -> Conversation:
    """The user's conversation, row-locked until the transaction ends."""
    row = await conn.fetchrow(
        "SELECT step, lang, data FROM ingress.conversation WHERE wa_id = $1 FOR UPDATE", wa_id
    )
    if row is None:
        return Conversation()
    return Conversation(Step(row["step"]), row["lang"], row["data"])


async def save_conversation(conn: asyncpg.Connection, wa_id: str, conv: Conversation) -> None:
    """Store the conversation outside a turn (a new version: a turn begun before it runs again)."""
    await conn.execute(
        """INSERT INTO ingress.conversation AS conv (wa_id, step, lang, data, updated_at, version)
           VALUES ($1, $2, $3, $4, now(), 1)
           ON CONFLICT (wa_id) DO UPDATE
           SET step = excluded.step, lang = excluded.lang, data = excluded.data,
               updated_at = now(), version = conv.version + 1""",
        wa_id,
        conv.step.value,
        conv.lang,
        conv.data,
    )


# A turn is two statements and no transaction: the first reads the conversation (and whether the
# message was handled before), the second stores the new state, the message id and the replies,
# on condition that nobody changed the conversation meanwhile (its version). The replies are then
# published by the dialog itself, and the message acknowledged: a crash before that delivers the
# message again, and the turn's stored replies are sent again (the notifier drops a command id it
# has). Four round trips and a relay's two fewer per turn than a locking transaction with an
# outbox, with the same guarantees.
_BEGIN_TURN = """
    SELECT EXISTS (SELECT FROM ingress.processed_message WHERE wamid = $1) AS seen,
           conv.step, conv.lang, conv.data, coalesce(conv.version, 0) AS version,
           CASE WHEN conv.last_wamid = $1 THEN conv.last_replies END AS replies
    FROM (VALUES (1)) AS one LEFT JOIN ingress.conversation AS conv ON conv.wa_id = $2"""

_END_TURN = """
    WITH saved AS (
        INSERT INTO ingress.conversation AS conv
            (wa_id, step, lang, data, updated_at, version, last_wamid, last_replies, channel)
        VALUES ($1, $2, $3, $4, now(), 1, $6, $7, $8)
        ON CONFLICT (wa_id) DO UPDATE
        SET step = excluded.step, lang = excluded.lang, data = excluded.data, updated_at = now(),
            version = conv.version + 1, last_wamid = excluded.last_wamid,
            last_replies = excluded.last_replies, channel = excluded.channel
        WHERE conv.version = $5
        RETURNING 1
    ), fresh AS (
        INSERT INTO ingress.processed_message (wamid)
        SELECT $6 WHERE EXISTS (SELECT FROM saved)
        ON CONFLICT DO NOTHING
    )
    SELECT EXISTS (SELECT FROM saved)"""


@dataclass(frozen=True)
class TurnStart:
    """What a turn starts from: the conversation and its version, or, for a message handled
    before, `seen` and (when it was the conversation's last turn) the replies it queued."""

    conversation: Conversation
    version: int
    seen: bool = False
    replies: Replies | None = None


@dataclass(frozen=True)
class Replies:
    """A turn's replies as stored with it: the notifier subject and the commands, in order."""

    subject: str
    commands: list[dict[str, Any]]


async def begin_turn(conn: Executor, wamid: str, wa_id: str) -> TurnStart:
    """The user's conversation as the turn of message `wamid` finds it (no lock is taken)."""
    row = await conn.fetchrow(_BEGIN_TURN, wamid, wa_id)
    stored = row["replies"]
    replies = Replies(stored["subject"], stored["commands"]) if stored else None
    if row["step"] is None:
        conv = Conversation()
    else:
        conv = Conversation(Step(row["step"]), row["lang"], row["data"])
    return TurnStart(conv, row["version"], row["seen"], replies)


async def end_turn(
    conn: Executor,
    wa_id: str,
    start: TurnStart,
    conv: Conversation,
    wamid: str,
    replies: Replies,
    channel: str = "whatsapp",
) -> bool:
    """Store the conversation, the message id, the replies and the channel the message came by,
    unless the conversation changed since `start` (False: nothing was stored; the turn must run
    again on what is there now)."""
    stored = {"subject": replies.subject, "commands": replies.commands}
    return bool(
        await conn.fetchval(
            _END_TURN,
            wa_id,
            conv.step.value,
            conv.lang,
            conv.data,
            start.version,
            wamid,
            stored,
            channel,
        )
    )


async def channel_of(conn: Executor, wa_id: str) -> str:
    """The channel of the number's last message (`whatsapp` for a number never seen)."""
    found = await conn.fetchval("SELECT channel FROM ingress.conversation WHERE wa_id = $1", wa_id)
    return str(found or "whatsapp")


async def enqueue_notice(
    conn: asyncpg.Connection, message: SendMessage, lang: str, partitions: int
) -> None:
    """A message nobody asked for (an operator's decision, a re-screen reminder), leaving with
    this transaction by the channel of the user's last message."""
    channel = await channel_of(conn, message.to)
    await outbox.enqueue_notice(conn, "ingress", channel, message, lang, partitions)


async def purge_processed(pool: asyncpg.Pool, older_than_days: int = 30) -> int:
    """Forget message ids long past Meta's 7-day retry horizon; returns how many."""
    status = await pool.execute(
        "DELETE FROM ingress.processed_message WHERE processed_at < now() - make_interval(days => $1)",
        older_than_days,
    )
    return int(status.split()[-1])


async def claim_due_rescreen_reminders(
    conn: asyncpg.Connection, today: date, limit: int = 500
) -> list[tuple[str, str, date]]:
    """(wa_id, lang, rescreen_on) of postponed users whose re-screen date has come and who were not
    reminded of it yet, each claimed (recorded as reminded) in the caller's transaction."""
    rows = await conn.fetch(
        """WITH due AS (
               SELECT wa_id, lang, (data ->> 'rescreen_on')::date AS rescreen_on
               FROM ingress.conversation c
               WHERE step = 'postponed' AND data ->> 'rescreen_on' <= $1
                 AND NOT EXISTS (
                     SELECT 1 FROM ingress.rescreen_reminder r
                     WHERE r.wa_id = c.wa_id
                       AND r.rescreen_on = (c.data ->> 'rescreen_on')::date)
               ORDER BY data ->> 'rescreen_on' LIMIT $2),
           claimed AS (
               INSERT INTO ingress.rescreen_reminder (wa_id, rescreen_on)
               SELECT wa_id, rescreen_on FROM due
               ON CONFLICT DO NOTHING
               RETURNING wa_id, rescreen_on)
           SELECT due.wa_id, due.lang, due.rescreen_on
           FROM due JOIN claimed USING (wa_id, rescreen_on)""",
        today.isoformat(),
        limit,
    )
    return [(r["wa_id"], r["lang"], r["rescreen_on"]) for r in rows]


async def stats(pool: asyncpg.Pool) -> dict[str, int]:
    """The counts of `vaksin stats`: conversations, and by step in the order of the dialog (the
    steps that have any)."""
    rows = await pool.fetch("SELECT step, count(*) AS n FROM ingress.conversation GROUP BY step")
    by_step = {r["step"]: r["n"] for r in rows}
    order = [s.value for s in Step]
    steps = sorted(by_step, key=lambda s: order.index(s) if s in order else len(order))
    return {"conversations": sum(by_step.values()), **{f"step.{s}": by_step[s] for s in steps}}
