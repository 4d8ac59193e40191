"""Hosting one service process: broker, pool, outbox relay and the HTTP server, started and stopped
in the right order. `run()` is what `vaksin service <name>` calls; tests use `start()` / `stop()`."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import structlog
from aiohttp import web
from faststream import AckPolicy
from faststream.nats import NatsBroker, NatsRouter

from services.common import tracing
from services.common.consumers import Redelivery
from services.common.contracts.deadletters import DeadMessage
from services.common.contracts.streams import DEAD_LETTERS
from services.common.contracts.subjects import DEADLETTER_CONSUMER
from services.common.db import create_pool
from services.common.health import ReadyCheck, add_health_routes, http_ready_check
from services.common.jetstream import declare_streams
from services.common.outbox import OutboxRelay
from services.common.settings import Settings
from services.common.watch import Watcher

log = structlog.get_logger(__name__)

Hook = Callable[["ServiceHost"], Awaitable[None]]


class Broker(NatsBroker):
    """FastStream's NATS broker, declaring every stream itself before it starts
    (`jetstream.declare_streams`: NATS_STREAM_REPLICAS copies, never fewer than a stream has)."""

    def __init__(self, *args: Any, stream_replicas: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stream_replicas = stream_replicas

    async def start(self) -> None:
        connection = await self.connect()
        await declare_streams(connection.jetstream(), self.stream_replicas)
        await super().start()


def make_broker(settings: Settings, name: str, *routers: NatsRouter) -> NatsBroker:
    """The process's broker. Its routers come from `consumers.router()`: the ack policy and the
    redelivery set here reach only subscribers declared on the broker itself."""
    broker = Broker(
        settings.nats_servers,
        stream_replicas=settings.stream_replicas,
        name=f"vaksin-{name}",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        middlewares=broker_middlewares(name),
        graceful_timeout=10.0,
        logger=structlog.get_logger(f"faststream.{name}"),
        # "Received"/"Processed" for every message: useful when debugging, a flood otherwise.
        log_level=logging.DEBUG,
        routers=routers,
        max_reconnect_attempts=-1,
        # nats-py waits 2 s between attempts by default; `vaksin up` brings a killed nats-server
        # back in about 0.2 s, and every second here is a second of 503s at the webhook.
        reconnect_time_wait=1,
    )
    # Every process may dead-letter a message (consumers.py); declaring the channel makes the
    # broker create the stream when it starts, and documents it.
    broker.publisher(
        DEADLETTER_CONSUMER,
        stream=DEAD_LETTERS,
        title="dead-letter",
        schema=DeadMessage,
        description="A message that failed on every delivery, with its last error",
    )
    return broker


def broker_middlewares(name: str) -> list[Any]:
    """Outermost first. Tracing (FastStream's OpenTelemetry middleware: W3C trace context in
    the NATS headers, a span per publish, request and processed message) only when it is on,
    so that off it costs nothing per message; then redelivery, which also counts and times
    every handled message (`vaksin_messages_handled_total`, `vaksin_message_handling_seconds`:
    FastStream's Prometheus middleware did the same for about 55 us a message, 6 % of a first
    turn's CPU, measured for issue 13)."""
    middlewares: list[Any] = []
    provider = tracing.tracer_provider()
    if provider is not None:
        from faststream.nats.opentelemetry import NatsTelemetryMiddleware

        middlewares.append(NatsTelemetryMiddleware(tracer_provider=provider))
    middlewares.append(Redelivery)
    return middlewares


class ServiceHost:
    def __init__(
        self,
        name: str,
        settings: Settings,
        broker: NatsBroker,
        *,
        port: int,
        outbox_schema: str | None = None,
        add_routes: Callable[[web.Application], None] | None = None,
        extra_ready: dict[str, ReadyCheck] | None = None,
        on_startup: list[Hook] | None = None,
        on_shutdown: list[Hook] | None = None,
        uses_postgres: bool = True,
    ) -> None:
        self.name = name
        self.settings = settings
        self.broker = broker
        self.port = port
        self.outbox_schema = outbox_schema
        self.add_routes = add_routes
        self.extra_ready = extra_ready or {}
        # on_startup hooks run after the pool exists and before the broker starts consuming;
        # on_shutdown hooks run after the broker has stopped.
        self.on_startup = on_startup or []
        self.on_shutdown = on_shutdown or []
        self.uses_postgres = uses_postgres
        self.pool: asyncpg.Pool | None = None
        self.relay: OutboxRelay | None = None
        self.watcher: Watcher | None = None
        self.web_app = web.Application(client_max_size=3 * 1024 * 1024)
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        settings = self.settings.require_urls()
        if self.uses_postgres:
            self.pool = await create_pool(settings.database_url or "")
            self.broker.context.set_global("pool", self.pool)
        self.broker.context.set_global("settings", settings)
        if self.outbox_schema and self.pool:
            self.relay = OutboxRelay(self.pool, self.broker, self.outbox_schema)
            self.broker.context.set_global("outbox", self.relay)
        for hook in self.on_startup:
            await hook(self)
        await self.broker.start()
        # The server has our subscriptions once this round trip is done: only then ready.
        await self.broker.connection.flush(timeout=5)
        if self.relay:
            self.relay.start()
        self.watcher = Watcher(self.broker, self.pool)
        self.watcher.start()
        checks: dict[str, ReadyCheck] = {"nats": self._nats_ready}
        if self.pool:
            checks["postgres"] = self._pg_ready
        checks.update(self.extra_ready)
        for i, url in enumerate(u for u in settings.readyz_depends.split(",") if u.strip()):
            checks[f"depends_{i}"] = http_ready_check(url.strip())
        add_health_routes(self.web_app, checks)
        if self.add_routes:
            self.add_routes(self.web_app)
        self._runner = web.AppRunner(self.web_app, access_log=None, shutdown_timeout=5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "0.0.0.0", self.port)
        await site.start()
        log.info("service started", port=self.port)

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()
        if self.watcher:
            await self.watcher.stop()
        if self.relay:
            await self.relay.stop()
        try:
            await self.broker.stop()
        except Exception:  # a drain that times out must not keep the pool and hooks open
            log.exception("broker did not stop cleanly")
        for hook in self.on_shutdown:
            await hook(self)
        if self.pool:
            await self.pool.close()
        log.info("service stopped")

    async def run(self) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()

    async def _nats_ready(self) -> bool:
        return await self.broker.ping(timeout=1.5)

    async def _pg_ready(self) -> bool:
        assert self.pool is not None
        async with self.pool.acquire(timeout=1.5) as conn:
            return await conn.fetchval("SELECT 1") == 1
