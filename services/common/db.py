"""The asyncpg pool: one per process, JSON codecs installed, plus the `Pool` handler dependency."""

from __future__ import annotations

import json

import asyncpg


async def _init_connection(conn: asyncpg.Connection) -> None:
    for typename in ("json", "jsonb"):
        await conn.set_type_codec(
            typename, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )


async def _keep_session(_conn: asyncpg.Connection) -> None:
    """Nothing to undo when a connection goes back to the pool: no service changes session state
    (no SET, LISTEN, cursors or session-level advisory locks: the ones taken are transaction
    locks), and asyncpg rolls back an open transaction itself. asyncpg's default reset is one
    more round trip for every acquire (measured: a third of the notifier's database time, and
    2 of 5 round trips of a booking)."""


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        reset=_keep_session,
        command_timeout=30,
    )
