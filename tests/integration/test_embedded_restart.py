"""The embedded servers come back from a SIGKILL with their data on the same port, and the clients
the services use (an asyncpg pool from services.common.db, nats-py) carry on by themselves."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import nats
import pytest
from nats.js.api import ConsumerConfig

from services.common.db import create_pool
from services.common.embedded import EmbeddedNats, EmbeddedPostgres, _processes_in

pytestmark = pytest.mark.servers

RESTART_WITHIN = 5.0


async def _killed(server: EmbeddedNats | EmbeddedPostgres) -> None:
    assert server.pid is not None
    os.kill(server.pid, signal.SIGKILL)
    # Waits for the exit without reaping the process: that is left to restart().
    await asyncio.to_thread(os.waitid, os.P_PID, server.pid, os.WEXITED | os.WNOWAIT)
    assert not server.running()


async def _restart(server: EmbeddedNats | EmbeddedPostgres) -> None:
    started = time.monotonic()
    await asyncio.to_thread(server.restart)
    assert time.monotonic() - started < RESTART_WITHIN


async def test_postgres_comes_back_over_a_busy_backend_and_the_pool_recovers(
    tmp_path: Path,
) -> None:
    pg = EmbeddedPostgres(tmp_path, durable=False)
    url = pg.start()
    pool = await create_pool(url, min_size=2, max_size=4)
    try:
        await pool.execute("CREATE TABLE doc (body jsonb)")
        await pool.execute("INSERT INTO doc VALUES ($1)", {"kept": True})
        # A backend busy computing does not notice its postmaster die and keeps the shared
        # memory attached: a new postmaster refuses to start until it is gone.
        busy = asyncio.create_task(
            pool.fetchval("SELECT count(*) FROM generate_series(1, 10000000000)")
        )
        await asyncio.sleep(0.5)

        await _killed(pg)
        assert _processes_in(pg.pgdata, "postgres"), "the busy backend outlived its postmaster"
        # The dead postmaster's pid may belong to another process of the server's user by now:
        # Postgres would take the stale lock file for a live server and refuse to start.
        squatter = await asyncio.create_subprocess_exec("sleep", "60", user=pg.pgdata.stat().st_uid)
        lock = pg.pgdata / "postmaster.pid"
        lock.write_text("\n".join([str(squatter.pid), *lock.read_text().splitlines()[1:]]) + "\n")
        try:
            await _restart(pg)
        finally:
            squatter.kill()
            await squatter.wait()

        assert pg.url() == url
        with pytest.raises(Exception, match="closed"):
            await busy
        # Every pooled connection died; new ones come with the JSON codecs (the pool's init).
        answers = await asyncio.gather(*(pool.fetchval("SELECT body FROM doc") for _ in range(8)))
        assert answers == [{"kept": True}] * 8
    finally:
        await pool.close()
        pg.stop()
    assert _processes_in(pg.pgdata, "postgres") == []


async def test_nats_server_comes_back_with_its_streams_and_consumers(tmp_path: Path) -> None:
    server = EmbeddedNats(tmp_path)
    url = server.start()
    nc = await nats.connect(url, max_reconnect_attempts=-1, reconnect_time_wait=0.1)
    try:
        js = nc.jetstream()
        await js.add_stream(name="KEPT", subjects=["kept.>"])
        await js.add_consumer("KEPT", ConsumerConfig(durable_name="kept-reader", ack_wait=30))
        reader = await js.pull_subscribe_bind(durable="kept-reader", stream="KEPT")
        for body in (b"one", b"two"):
            await js.publish("kept.x", body)
        [first] = await reader.fetch(1, timeout=2)
        await first.ack_sync()

        await _killed(server)
        await _restart(server)
        assert server.url == url

        # The same subscription goes on where the consumer stood. "one" was acknowledged, but
        # nats-server writes a consumer's state to disk lazily, so after a SIGKILL it may come
        # once more (at least once: every consumer of ours makes a repeat a no-op); "two" must.
        deadline = time.monotonic() + 10
        delivered: list[bytes] = []
        while b"two" not in delivered:
            try:
                [message] = await reader.fetch(1, timeout=1)
            except (nats.errors.TimeoutError, nats.errors.ConnectionClosedError):
                assert time.monotonic() < deadline, "the consumer does not deliver after restart"
                continue
            delivered.append(message.data)
            await message.ack_sync()
        assert delivered in ([b"two"], [b"one", b"two"])
        info = await js.stream_info("KEPT")
        assert (info.state.messages, info.state.consumer_count) == (2, 1)
    finally:
        await nc.close()
        server.stop()
