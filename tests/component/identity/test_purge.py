"""Old verify answers (idempotency keys) are purged; recent ones kept."""

from __future__ import annotations

import secrets

import asyncpg

from services.identity.repository import purge_answers, save_answer


async def test_purge_forgets_only_old_verify_answers(pool: asyncpg.Pool) -> None:
    old, recent = f"old.{secrets.token_hex(6)}", f"new.{secrets.token_hex(6)}"
    async with pool.acquire() as conn:
        await save_answer(conn, old, {"outcome": "mismatch"})
        await save_answer(conn, recent, {"outcome": "mismatch"})
    await pool.execute(
        "UPDATE identity.verify_request SET created_at = now() - interval '40 days' "
        "WHERE request_id = $1",
        old,
    )
    assert await purge_answers(pool) >= 1
    left = await pool.fetch(
        "SELECT request_id FROM identity.verify_request WHERE request_id = any($1::text[])",
        [old, recent],
    )
    assert [r["request_id"] for r in left] == [recent]
