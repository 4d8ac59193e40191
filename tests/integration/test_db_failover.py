"""A service's one asyncpg pool (services.common.db) rides through a Postgres failover without
being recreated: the old primary going away and coming back, and CloudNativePG moving `pg-rw`
to a new primary while the old one turns read-only.

`pg-rw` is played by a TCP forwarder whose target can move: as with a Kubernetes Service, a
connection stays with the server it was opened to, only new connections go to the new target.
The demoted primary is played by a server made read-only at run time
(`default_transaction_read_only`): its writes fail as a standby's do (SQLSTATE 25006), and,
unlike a real demotion (which restarts the server and so closes every connection), it leaves the
pooled connections open: the harder case."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from services.common.db import create_pool
from services.common.embedded import EmbeddedPostgres, free_port

pytestmark = pytest.mark.servers

POOL_SIZE = 3


class Service:
    """A TCP forwarder on a loopback port to whichever server `target` names now."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Service:
        self._server = await asyncio.start_server(self._forward, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for pipe in self._pipes:
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    def url(self, database: str = "vaksin") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    async def _forward(
        self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter
    ) -> None:
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            client_w.close()
            return
        for reader, writer in ((client_r, server_w), (server_r, client_w)):
            pipe = asyncio.create_task(self._pipe(reader, writer))
            self._pipes.add(pipe)
            pipe.add_done_callback(self._pipes.discard)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()


async def _started(root: Path) -> EmbeddedPostgres:
    server = EmbeddedPostgres(root, durable=False)
    await asyncio.to_thread(server.start)
    conn = await asyncpg.connect(server.url())
    try:
        await conn.execute("CREATE TABLE fact (n int PRIMARY KEY, body jsonb)")
    finally:
        await conn.close()
    return server


@contextlib.asynccontextmanager
async def _servers(tmp_path: Path, count: int) -> AsyncIterator[list[EmbeddedPostgres]]:
    servers = list(await asyncio.gather(*(_started(tmp_path / f"pg{i}") for i in range(count))))
    try:
        yield servers
    finally:
        for server in servers:
            await asyncio.to_thread(server.stop)


async def _write(pool: asyncpg.Pool, n: int) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("INSERT INTO fact VALUES ($1, $2)", n, {"n": n})


async def _facts(server: EmbeddedPostgres) -> list[int]:
    conn = await asyncpg.connect(server.url())
    try:
        return [row["n"] for row in await conn.fetch("SELECT n FROM fact ORDER BY n")]
    finally:
        await conn.close()


async def _set_read_only(server: EmbeddedPostgres, on: bool) -> None:
    conn = await asyncpg.connect(server.url())
    try:
        await conn.execute(
            f"ALTER SYSTEM SET default_transaction_read_only = {'on' if on else 'off'}"
        )
        assert await conn.fetchval("SELECT pg_reload_conf()")
    finally:
        await conn.close()


async def _fill(pool: asyncpg.Pool) -> None:
    """Every connection of the pool opened and back in the pool, idle."""
    held = [await pool.acquire() for _ in range(POOL_SIZE)]
    for conn in held:
        await pool.release(conn)
    assert pool.get_size() == POOL_SIZE


async def test_the_pool_comes_back_after_its_primary_shuts_down_and_returns(
    tmp_path: Path,
) -> None:
    async with _servers(tmp_path, 1) as (primary,):
        pool = await create_pool(primary.url(), min_size=1, max_size=POOL_SIZE)
        try:
            await _fill(pool)
            await _write(pool, 1)
            busy = asyncio.create_task(pool.fetchval("SELECT pg_sleep(30)"))
            await asyncio.sleep(0.3)

            # A fast shutdown, as the operator stops a primary it demotes: every session is
            # told (AdminShutdownError) and closed, the query in flight fails.
            await asyncio.to_thread(primary.stop)
            with pytest.raises((asyncpg.AdminShutdownError, asyncpg.ConnectionDoesNotExistError)):
                await busy
            # While no primary answers, asking fails (the caller retries later), and that
            # leaves nothing broken behind in the pool.
            for _ in range(POOL_SIZE + 1):
                with pytest.raises(OSError):
                    await _write(pool, 2)

            await asyncio.to_thread(primary.restart)
            # The same pool: new connections, with the JSON codecs of its init.
            await asyncio.gather(*(_write(pool, n) for n in range(2, 2 + 2 * POOL_SIZE)))
            assert await pool.fetchval("SELECT body FROM fact WHERE n = 2") == {"n": 2}
        finally:
            await pool.close()
        assert await _facts(primary) == list(range(1, 2 + 2 * POOL_SIZE))


async def test_after_a_failover_the_pool_writes_to_the_new_primary(tmp_path: Path) -> None:
    async with _servers(tmp_path, 2) as (old, new), Service(old.port) as pg_rw:
        pool = await create_pool(pg_rw.url(), min_size=1, max_size=POOL_SIZE)
        try:
            await _fill(pool)
            await _write(pool, 1)

            # The failover: the old primary takes no more writes, pg-rw leads to the new one.
            # Every pooled connection still goes to the old one.
            await _set_read_only(old, True)
            pg_rw.target = new.port

            # Each pooled connection fails at most once (the write on it is refused and it is
            # dropped as it goes back); the caller's retries then reach the new primary.
            refused = 0
            for n in range(2, 12):
                while True:
                    try:
                        await _write(pool, n)
                        break
                    except asyncpg.ReadOnlySQLTransactionError:
                        refused += 1
                        assert refused <= POOL_SIZE, "a connection stayed on the read-only server"
            assert await _facts(new) == list(range(2, 12))
            assert await _facts(old) == [1]
        finally:
            await pool.close()


async def test_no_connection_is_opened_to_a_server_that_takes_no_writes(tmp_path: Path) -> None:
    # pg-rw may still lead to the old primary for a moment after it turned read-only: the pool
    # refuses such a connection (the caller retries) instead of keeping it.
    async with _servers(tmp_path, 1) as (old,), Service(old.port) as pg_rw:
        await _set_read_only(old, True)
        pool = await create_pool(pg_rw.url(), min_size=0, max_size=POOL_SIZE)
        try:
            with pytest.raises(asyncpg.TargetServerAttributeNotMatched):
                await pool.fetchval("SELECT 1")
            assert pool.get_size() == 0

            await _set_read_only(old, False)  # (or: pg-rw moved to the new primary)
            await _write(pool, 1)
            assert await _facts(old) == [1]
        finally:
            await pool.close()
