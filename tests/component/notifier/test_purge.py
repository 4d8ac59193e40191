"""Housekeeping: finished messages older than the retention are deleted in bounded batches, and
media ids Meta no longer keeps (30 days) are forgotten; what is still queued, leased or pending,
and what finished recently, stays."""

from __future__ import annotations

import secrets

import asyncpg
import pytest

from services.notifier import repository
from tests.component.notifier.conftest import Harness, eventually, recipient

pytestmark = pytest.mark.servers


async def message(
    pool: asyncpg.Pool,
    status: str,
    *,
    days_old: float,
    changed_days_ago: float | None = None,
    queued: bool = False,
    leased: bool = False,
) -> str:
    """A row of the send queue as it would be after `days_old` days; returns its command id."""
    command_id = f"purge-{status}-{secrets.token_hex(6)}"
    await pool.execute(
        """INSERT INTO notifier.outbound_message
               (command_id, recipient, kind, payload, status, queued, lease_until, created_at,
                updated_at)
           VALUES ($1, $2, 'text', '{}'::jsonb, $3, $4,
                   CASE WHEN $5 THEN now() + interval '1 minute' END,
                   now() - make_interval(secs => $6 * 86400),
                   now() - make_interval(secs => $7 * 86400))""",
        command_id,
        recipient(),
        status,
        queued,
        leased,
        days_old,
        days_old if changed_days_ago is None else changed_days_ago,
    )
    return command_id


async def media(pool: asyncpg.Pool, *, days_old: float) -> str:
    sha256 = secrets.token_hex(32)
    await pool.execute(
        """INSERT INTO notifier.media (sha256, media_id, mime_type, uploaded_at)
           VALUES ($1, $2, 'image/png', now() - make_interval(secs => $3 * 86400))""",
        sha256,
        str(secrets.randbelow(10**15)),
        days_old,
    )
    return sha256


async def kept(pool: asyncpg.Pool, command_ids: list[str]) -> set[str]:
    rows = await pool.fetch(
        "SELECT command_id FROM notifier.outbound_message WHERE command_id = any($1::text[])",
        command_ids,
    )
    return {r["command_id"] for r in rows}


async def media_kept(pool: asyncpg.Pool, digests: list[str]) -> set[str]:
    rows = await pool.fetch(
        "SELECT sha256 FROM notifier.media WHERE sha256 = any($1::text[])", digests
    )
    return {r["sha256"] for r in rows}


async def test_old_finished_messages_go_and_recent_or_unfinished_ones_stay(
    pool: asyncpg.Pool,
) -> None:
    old_finished = [
        await message(pool, status, days_old=40)
        for status in ("accepted", "sent", "delivered", "read", "failed", "skipped")
    ]
    staying = [
        await message(pool, "delivered", days_old=2),
        # Created long ago, but its last status came three days ago.
        await message(pool, "read", days_old=40, changed_days_ago=3),
        await message(pool, "pending", days_old=40, queued=True),
        await message(pool, "pending", days_old=40, queued=True, leased=True),
        # Waiting for a retry after a failed attempt, still in the queue.
        await message(pool, "failed", days_old=40, queued=True),
        await message(pool, "pending", days_old=40),  # never queued: its command may come back
    ]

    # Batches of two: several statements, each deleting a few rows.
    purged = await repository.purge_finished(pool, retention_days=30, batch=2)

    assert purged == len(old_finished)
    assert await kept(pool, old_finished) == set()
    assert await kept(pool, staying) == set(staying)


async def test_media_ids_meta_no_longer_keeps_are_forgotten(pool: asyncpg.Pool) -> None:
    expired = [await media(pool, days_old=days) for days in (30.5, 31, 90)]
    valid = [await media(pool, days_old=days) for days in (0, 29.5)]

    assert await repository.purge_expired_media(pool, batch=2) == len(expired)
    assert await media_kept(pool, expired + valid) == set(valid)


async def test_the_notifier_purges_by_itself_with_the_configured_retention(
    harness: Harness,
) -> None:
    pool = harness.pool
    beyond = await message(pool, "delivered", days_old=12)
    within = await message(pool, "delivered", days_old=8)
    queued = await message(pool, "pending", days_old=12, queued=True)
    expired_media = await media(pool, days_old=31)

    await harness.start_notifier(notifier_retention_days=10)

    await eventually(
        lambda: _gone(pool, beyond, expired_media), what="old message and media purged"
    )
    assert await kept(pool, [beyond, within, queued]) == {within, queued}


async def _gone(pool: asyncpg.Pool, command_id: str, sha256: str) -> bool:
    return not await kept(pool, [command_id]) and not await media_kept(pool, [sha256])
