"""The ingress's SQL on a real Postgres: processed ids, conversation state, and their purge."""

from __future__ import annotations

import secrets

import asyncpg
import pytest

from services.common.contracts.notifier import TextMessage
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


async def test_a_turn_begins_once_per_message_and_ends_with_state_and_replies_in_order(
    pool: asyncpg.Pool,
) -> None:
    wa_id, wamid = f"62812{secrets.randbelow(10**8):08d}", f"wamid.{secrets.token_hex(8)}"
    replies = [TextMessage(body=f"reply {i}") for i in range(3)]
    async with pool.acquire() as conn, conn.transaction():
        assert await repo.begin_turn(conn, wamid, wa_id) == Conversation()  # a new user
        conv = Conversation(Step.ASK_SUFFIX, "en", {"attempts": 1})
        await repo.end_turn(conn, wa_id, conv, "notifier.cmd.send.3", "NOTIFIER", replies)
    rows = await pool.fetch(
        "SELECT subject, stream, payload FROM ingress.outbox "
        "WHERE payload ->> 'body' LIKE 'reply %' ORDER BY id DESC LIMIT 3"
    )
    assert [r["payload"]["body"] for r in reversed(rows)] == ["reply 0", "reply 1", "reply 2"]
    assert {(r["subject"], r["stream"]) for r in rows} == {("notifier.cmd.send.3", "NOTIFIER")}
    async with pool.acquire() as conn, conn.transaction():
        assert await repo.begin_turn(conn, wamid, wa_id) is None  # the same message again
        assert await repo.begin_turn(conn, f"{wamid}.next", wa_id) == conv  # the next one


async def test_a_turn_holds_the_conversation_until_it_ends(pool: asyncpg.Pool) -> None:
    wa_id = f"62812{secrets.randbelow(10**8):08d}"
    async with pool.acquire() as first, first.transaction():
        await repo.begin_turn(first, f"wamid.{secrets.token_hex(8)}", wa_id)
        await repo.end_turn(first, wa_id, Conversation(Step.VERIFIED), "s", "NOTIFIER", [])
    async with pool.acquire() as first, pool.acquire() as second, first.transaction():
        await repo.begin_turn(first, f"wamid.{secrets.token_hex(8)}", wa_id)
        async with second.transaction():
            await second.execute("SET LOCAL lock_timeout = '200ms'")
            with pytest.raises(asyncpg.exceptions.LockNotAvailableError):
                await repo.begin_turn(second, f"wamid.{secrets.token_hex(8)}", wa_id)
