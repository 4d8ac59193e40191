"""The ingress's SQL: processed message ids and conversation state (schema `ingress`)."""

from __future__ import annotations

from datetime import date

import asyncpg
from pydantic import BaseModel

from services.common.outbox import payloads, queue_in_order
from services.ingress.dialog import Conversation, Step


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
    await conn.execute(
        """INSERT INTO ingress.conversation (wa_id, step, lang, data, updated_at)
           VALUES ($1, $2, $3, $4, now())
           ON CONFLICT (wa_id) DO UPDATE
           SET step = excluded.step, lang = excluded.lang, data = excluded.data,
               updated_at = now()""",
        wa_id,
        conv.step.value,
        conv.lang,
        conv.data,
    )


# A turn is one transaction of two statements around the dialog's decision: the first records
# the message id and locks the user's conversation, the second stores the new state and queues the
# replies. (Each used to be two or three statements: a round trip each, a third of the dialog's
# database work.)
_BEGIN_TURN = """
    WITH fresh AS (
        INSERT INTO ingress.processed_message (wamid) VALUES ($1)
        ON CONFLICT DO NOTHING RETURNING wamid
    ), conv AS (
        SELECT step, lang, data FROM ingress.conversation WHERE wa_id = $2 FOR UPDATE
    )
    SELECT EXISTS (SELECT FROM fresh) AS fresh, conv.step, conv.lang, conv.data
    FROM (VALUES (1)) AS one LEFT JOIN conv ON true"""

_END_TURN = f"""
    WITH saved AS (
        INSERT INTO ingress.conversation (wa_id, step, lang, data, updated_at)
        VALUES ($1, $2, $3, $4, now())
        ON CONFLICT (wa_id) DO UPDATE
        SET step = excluded.step, lang = excluded.lang, data = excluded.data, updated_at = now()
    )
    {queue_in_order("ingress", "$5", "$6", "$7")}"""


async def begin_turn(conn: asyncpg.Connection, wamid: str, wa_id: str) -> Conversation | None:
    """Record the message id and lock the user's conversation until the transaction ends: the
    conversation, or None when the message was processed before (a duplicate delivery)."""
    row = await conn.fetchrow(_BEGIN_TURN, wamid, wa_id)
    if not row["fresh"]:
        return None
    if row["step"] is None:
        return Conversation()
    return Conversation(Step(row["step"]), row["lang"], row["data"])


async def end_turn(
    conn: asyncpg.Connection,
    wa_id: str,
    conv: Conversation,
    subject: str,
    stream: str,
    replies: list[BaseModel],
) -> None:
    """Store the conversation and queue the replies (outbox rows, in this order)."""
    await conn.execute(
        _END_TURN, wa_id, conv.step.value, conv.lang, conv.data, subject, stream, payloads(replies)
    )


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
               FROM ingress.conversation
               WHERE step = 'postponed' AND data ->> 'rescreen_on' <= $1
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
