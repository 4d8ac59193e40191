"""The ingress's SQL: processed message ids and conversation state (schema `ingress`)."""

from __future__ import annotations

import asyncpg

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


async def purge_processed(pool: asyncpg.Pool, older_than_days: int = 30) -> int:
    """Forget message ids long past Meta's 7-day retry horizon; returns how many."""
    status = await pool.execute(
        "DELETE FROM ingress.processed_message WHERE processed_at < now() - make_interval(days => $1)",
        older_than_days,
    )
    return int(status.split()[-1])
