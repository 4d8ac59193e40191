"""Reminders on the re-screen date: due ones only, from 08:00 Jakarta time, and exactly once."""

from __future__ import annotations

import asyncio
import secrets
from datetime import date, datetime

import asyncpg
import pytest

from services.common.clock import WIB
from services.ingress import repository as repo
from services.ingress.dialog import Conversation, Step
from services.ingress.reminders import send_rescreen_reminders

pytestmark = pytest.mark.servers

# Dates long before anything else the shared test database holds, so only ours are due.
DUE_ON = date(1999, 12, 31)


async def postponed(pool: asyncpg.Pool, rescreen_on: date, lang: str = "id") -> str:
    wa_id = f"62813{secrets.randbelow(10**8):08d}"
    conv = Conversation(Step.POSTPONED, lang, {"rescreen_on": rescreen_on.isoformat()})
    async with pool.acquire() as conn:
        await repo.save_conversation(conn, wa_id, conv)
    return wa_id


async def reminders_to(pool: asyncpg.Pool, wa_id: str) -> list[dict]:
    rows = await pool.fetch("SELECT payload FROM ingress.outbox WHERE payload ->> 'to' = $1", wa_id)
    return [r["payload"] for r in rows]


async def test_due_users_are_reminded_once_from_eight_in_the_morning(pool: asyncpg.Pool) -> None:
    due = await postponed(pool, DUE_ON, "en")
    later = await postponed(pool, date(2000, 1, 2))
    early = datetime(1999, 12, 31, 7, 59, tzinfo=WIB)
    await send_rescreen_reminders(pool, 4, early)
    assert await reminders_to(pool, due) == []

    await send_rescreen_reminders(pool, 4, datetime(1999, 12, 31, 8, 0, tzinfo=WIB))
    [sent] = await reminders_to(pool, due)
    assert sent["template"] == {"name": "rescreen_reminder", "lang": "en", "params": ["31-12-1999"]}
    assert "31-12-1999" in sent["message"]["body"] and "VAKSIN" in sent["message"]["body"]
    assert await reminders_to(pool, later) == []

    await send_rescreen_reminders(pool, 4, datetime(1999, 12, 31, 20, 0, tzinfo=WIB))
    assert len(await reminders_to(pool, due)) == 1


async def test_concurrent_replicas_send_each_reminder_once(pool: asyncpg.Pool) -> None:
    users = [await postponed(pool, DUE_ON) for _ in range(5)]
    at = datetime(1999, 12, 31, 9, 0, tzinfo=WIB)
    await asyncio.gather(*(send_rescreen_reminders(pool, 4, at) for _ in range(4)))
    assert [len(await reminders_to(pool, u)) for u in users] == [1] * 5


async def test_a_user_no_longer_postponed_is_not_reminded(pool: asyncpg.Pool) -> None:
    wa_id = await postponed(pool, DUE_ON)
    async with pool.acquire() as conn:
        await repo.save_conversation(conn, wa_id, Conversation(Step.ELIGIBLE))
    await send_rescreen_reminders(pool, 4, datetime(1999, 12, 31, 9, 0, tzinfo=WIB))
    assert await reminders_to(pool, wa_id) == []


async def test_users_reminded_already_never_crowd_out_the_ones_due_after_them(
    pool: asyncpg.Pool,
) -> None:
    """A batch takes the oldest dates first: the reminded who never came back (still postponed)
    must not fill every batch, or nobody due later would ever be reminded."""
    oldest = [await postponed(pool, date(1999, 11, 1)) for _ in range(3)]
    async with pool.acquire() as conn, conn.transaction():
        claimed = await repo.claim_due_rescreen_reminders(conn, DUE_ON, limit=3)
    assert {wa_id for wa_id, _, _ in claimed} == set(oldest)
    newer = await postponed(pool, DUE_ON)
    async with pool.acquire() as conn, conn.transaction():
        claimed = await repo.claim_due_rescreen_reminders(conn, DUE_ON, limit=3)
    assert newer in {wa_id for wa_id, _, _ in claimed}
