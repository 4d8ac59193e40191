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


def _replies(*bodies: str) -> repo.Replies:
    return repo.Replies("notifier.cmd.send.3", [{"command_id": b, "body": b} for b in bodies])


async def test_a_turn_stores_state_message_id_and_replies_in_one_statement(
    pool: asyncpg.Pool,
) -> None:
    wa_id, wamid = f"62812{secrets.randbelow(10**8):08d}", f"wamid.{secrets.token_hex(8)}"
    start = await repo.begin_turn(pool, wamid, wa_id)
    assert start == repo.TurnStart(Conversation(), version=0)  # a new user
    conv = Conversation(Step.ASK_SUFFIX, "en", {"attempts": 1})
    assert await repo.end_turn(pool, wa_id, start, conv, wamid, _replies("a", "b", "c"))

    again = await repo.begin_turn(pool, wamid, wa_id)  # the same message delivered again
    assert again.seen and again.replies == _replies("a", "b", "c")  # its replies, in order
    following = await repo.begin_turn(pool, f"{wamid}.next", wa_id)
    assert following == repo.TurnStart(conv, version=1)


async def test_an_older_message_delivered_again_has_nothing_to_resend(pool: asyncpg.Pool) -> None:
    wa_id, first = f"62812{secrets.randbelow(10**8):08d}", f"wamid.{secrets.token_hex(8)}"
    start = await repo.begin_turn(pool, first, wa_id)
    await repo.end_turn(pool, wa_id, start, Conversation(Step.ASK_NAKES), first, _replies("1"))
    second = await repo.begin_turn(pool, "wamid.second", wa_id)
    await repo.end_turn(
        pool, wa_id, second, Conversation(Step.ASK_SUFFIX), "wamid.second", _replies("2")
    )
    old = await repo.begin_turn(pool, first, wa_id)
    assert old.seen and old.replies is None  # its replies left: the next turn began after them


async def test_a_turn_whose_conversation_changed_meanwhile_stores_nothing(
    pool: asyncpg.Pool,
) -> None:
    wa_id, wamid = f"62812{secrets.randbelow(10**8):08d}", f"wamid.{secrets.token_hex(8)}"
    start = await repo.begin_turn(pool, wamid, wa_id)
    await repo.end_turn(pool, wa_id, start, Conversation(Step.VERIFIED), wamid, _replies("x"))
    late = await repo.begin_turn(pool, f"{wamid}.late", wa_id)
    async with pool.acquire() as conn:  # an operator's decision lands during the turn
        await repo.save_conversation(conn, wa_id, Conversation(Step.IDLE, "id", {"by": "operator"}))
    assert not await repo.end_turn(
        pool, wa_id, late, Conversation(Step.ELIGIBLE), f"{wamid}.late", _replies("y")
    )
    now = await repo.begin_turn(pool, f"{wamid}.late", wa_id)
    assert not now.seen  # the message id was not stored either: its turn runs again
    assert now.conversation == Conversation(Step.IDLE, "id", {"by": "operator"})


async def test_two_new_turns_of_a_new_user_store_one(pool: asyncpg.Pool) -> None:
    wa_id = f"62812{secrets.randbelow(10**8):08d}"
    a = await repo.begin_turn(pool, "wamid.a", wa_id)
    b = await repo.begin_turn(pool, "wamid.b", wa_id)
    assert await repo.end_turn(pool, wa_id, a, Conversation(Step.ASK_NAKES), "wamid.a", _replies())
    assert not await repo.end_turn(
        pool, wa_id, b, Conversation(Step.ASK_NAKES), "wamid.b", _replies()
    )
