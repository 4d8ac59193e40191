"""The ingress's SQL on a real Postgres: processed ids, conversation state, and their purge."""

from __future__ import annotations

import secrets

import asyncpg
import pytest

from services.ingress import repository as repo
from services.ingress.dialog import Conversation, Step

pytestmark = pytest.mark.servers


async def test_a_message_id_is_processed_once(pool: asyncpg.Pool) -> None:
    wamid = f"wamid.{secrets.token_hex(8)}"
    async with pool.acquire() as conn:
        assert await repo.mark_processed(conn, wamid) is True
        assert await repo.mark_processed(conn, wamid) is False


async def test_conversation_round_trip_and_default(pool: asyncpg.Pool) -> None:
    wa_id = f"62812{secrets.randbelow(10**8):08d}"
    async with pool.acquire() as conn, conn.transaction():
        assert await repo.load_conversation(conn, wa_id) == Conversation()
        conv = Conversation(Step.VERIFIED, "en", {"name": "S*** R***"})
        await repo.save_conversation(conn, wa_id, conv)
        assert await repo.load_conversation(conn, wa_id) == conv


async def test_purge_forgets_only_old_message_ids(pool: asyncpg.Pool) -> None:
    old, recent = f"wamid.old.{secrets.token_hex(6)}", f"wamid.new.{secrets.token_hex(6)}"
    await pool.execute(
        "INSERT INTO ingress.processed_message (wamid, processed_at) "
        "VALUES ($1, now() - interval '31 days'), ($2, now() - interval '6 days')",
        old,
        recent,
    )
    assert await repo.purge_processed(pool) >= 1
    left = await pool.fetch(
        "SELECT wamid FROM ingress.processed_message WHERE wamid = any($1::text[])", [old, recent]
    )
    assert [r["wamid"] for r in left] == [recent]
