"""What a process reports about the things it depends on, for /metrics: its durable consumers'
backlog and age (how far behind they are, in messages and in seconds), and whether NATS and
Postgres answer. Polled every WATCH_SECONDS in the background, off every message's path.

- `vaksin_consumer_pending_messages{stream,consumer}`: in the stream and not yet acknowledged
  by the consumer (not delivered yet, plus delivered and awaiting their ack);
- `vaksin_consumer_ack_pending_messages{stream,consumer}`: of which delivered, awaiting an ack;
- `vaksin_consumer_oldest_pending_seconds{stream,consumer}`: the age of the oldest message the
  consumer has not acknowledged (0 when none): the lag as a user feels it;
- `vaksin_dependency_up{dependency}`: 1 when NATS (a round trip) and Postgres (`SELECT 1`)
  answered the last poll, else 0.

Every replica reports the consumers it declares (the values are the server's, the same for
all): dashboards and alerts take the max per consumer.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Any

import asyncpg
import structlog
from faststream.nats import NatsBroker
from prometheus_client import Gauge

log = structlog.get_logger(__name__)

WATCH_SECONDS = 10.0

PENDING = Gauge(
    "vaksin_consumer_pending_messages",
    "Messages of the stream the durable consumer has not acknowledged yet",
    ["stream", "consumer"],
)
ACK_PENDING = Gauge(
    "vaksin_consumer_ack_pending_messages",
    "Messages delivered to the durable consumer and awaiting their ack",
    ["stream", "consumer"],
)
OLDEST_PENDING = Gauge(
    "vaksin_consumer_oldest_pending_seconds",
    "Age of the oldest message the durable consumer has not acknowledged (0 when none)",
    ["stream", "consumer"],
)
DEPENDENCY_UP = Gauge(
    "vaksin_dependency_up", "1 when the dependency answered the last poll", ["dependency"]
)


def durables(broker: NatsBroker) -> list[tuple[str, str, str]]:
    """(stream, durable, filter subject) of every durable consumer the broker declares."""
    found = []
    for subscriber in broker.subscribers:
        stream = getattr(subscriber, "stream", None)
        config = getattr(subscriber, "config", None)
        durable = getattr(config, "durable_name", None)
        if stream is None or not durable:
            continue
        subject = getattr(config, "filter_subject", None) or str(
            getattr(subscriber, "subject", "") or ""
        )
        found.append((stream.name, durable, subject))
    return found


class Watcher:
    def __init__(self, broker: NatsBroker, pool: asyncpg.Pool | None) -> None:
        self.broker = broker
        self.pool = pool
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="watch-dependencies")

    async def stop(self) -> None:
        # The flag as well as the cancel: on Python 3.11 a cancel that lands as a NATS request
        # gets its answer is swallowed (asyncio.wait_for inside nats-py), and the loop went on.
        self._stopping = True
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self.poll()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("could not watch the consumers", error=repr(exc))
            if not self._stopping:
                await asyncio.sleep(WATCH_SECONDS)

    async def poll(self) -> None:
        nats_up = await self._nats_up()
        DEPENDENCY_UP.labels("nats").set(1 if nats_up else 0)
        if self.pool is not None:
            DEPENDENCY_UP.labels("postgres").set(1 if await self._postgres_up() else 0)
        if not nats_up:
            return
        js = self.broker.connection.jetstream()
        for stream, durable, subject in durables(self.broker):
            with contextlib.suppress(Exception):  # not created yet, or NATS went away meanwhile
                await self._consumer(js, stream, durable, subject)

    async def _consumer(self, js: Any, stream: str, durable: str, subject: str) -> None:
        info = await js.consumer_info(stream, durable, timeout=2.0)
        ack_pending = info.num_ack_pending or 0
        pending = (info.num_pending or 0) + ack_pending
        PENDING.labels(stream, durable).set(pending)
        ACK_PENDING.labels(stream, durable).set(ack_pending)
        age = 0.0
        if pending:
            floor = info.ack_floor.stream_seq if info.ack_floor else 0
            oldest = await js.get_msg(stream, seq=floor + 1, subject=subject or None, next=True)
            if oldest.time is not None:
                age = max(0.0, (datetime.now(UTC) - oldest.time).total_seconds())
        OLDEST_PENDING.labels(stream, durable).set(age)

    async def _nats_up(self) -> bool:
        try:
            return bool(await self.broker.ping(timeout=2.0))
        except Exception:
            return False

    async def _postgres_up(self) -> bool:
        assert self.pool is not None
        try:
            async with self.pool.acquire(timeout=2.0) as conn:
                return bool(await conn.fetchval("SELECT 1") == 1)
        except Exception:
            return False
