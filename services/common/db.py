"""The asyncpg pool: one per process, JSON codecs installed, plus the `Pool` handler dependency.

It rides through a Postgres failover (CloudNativePG moving the `pg-rw` Service to a promoted
standby) without being recreated:
- a connection the old primary closed (fast shutdown: `AdminShutdownError`; a crash: the socket
  drops) is dropped by asyncpg, and the pool opens a new one when it is next needed;
- a new connection is only accepted from a server that takes writes
  (`target_session_attrs="read-write"`): while the Service still points at the old primary,
  already restarting as a standby, connecting fails (the caller retries, as for any database
  error) instead of a pooled connection being pinned to a read-only server;
- a connection whose server has turned read-only under it is dropped when it goes back to the
  pool (see `_drop_if_read_only`).
The server reports both facts on its own (ParameterStatus, PostgreSQL 14+), so none of this costs
a round trip.
"""

from __future__ import annotations

import json

import asyncpg


async def _init_connection(conn: asyncpg.Connection) -> None:
    for typename in ("json", "jsonb"):
        await conn.set_type_codec(
            typename, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )


# What the server reports to a session (ParameterStatus) when it takes no writes: a standby, or a
# primary made read-only (reported to every open session as it changes).
_READ_ONLY_REPORTS = ("in_hot_standby", "default_transaction_read_only")


async def _drop_if_read_only(conn: asyncpg.Connection) -> None:
    """The pool's reset, run as a connection goes back to the pool. Nothing to undo: no service
    changes session state (no SET, LISTEN, cursors or session-level advisory locks: the ones
    taken are transaction locks), and asyncpg rolls back an open transaction itself; asyncpg's
    default reset is one more round trip for every acquire (measured: a third of the notifier's
    database time, and 2 of 5 round trips of a booking).

    A connection to a server that has become read-only is terminated instead: every write on it
    would fail with `ReadOnlySQLTransactionError` for as long as it lives, while `pg-rw` already
    leads new connections to the new primary. The holder reconnects on its next acquire. It is
    terminated here rather than by raising (which asyncpg also answers with a termination)
    because a raise would replace the caller's own error, or fail a read that succeeded."""
    settings = conn.get_settings()
    if any(getattr(settings, name, "off") == "on" for name in _READ_ONLY_REPORTS):
        conn.terminate()


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        reset=_drop_if_read_only,
        command_timeout=30,
        target_session_attrs="read-write",
    )
