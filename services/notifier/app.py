"""Wiring of the notifier process: the broker (status and inbound subscribers, the declared send
partitions, the send_failed and dead-letter channels), the outbox relay, one aiohttp session and
Graph client for the life of the process, the send engine, the hourly purge of finished messages
and expired media ids, and the health server."""

from __future__ import annotations

import aiohttp
import asyncpg
import structlog
from nats.aio.msg import Msg

from services.common.contracts.notifier import DeadLetter, SendFailed
from services.common.contracts.streams import NOTIFIER, NOTIFIER_DLQ, WA_INBOUND
from services.common.contracts.subjects import NOTIFIER_DLQ_SEND, NOTIFIER_EVT_SEND_FAILED
from services.common.db import create_pool
from services.common.periodic import periodic
from services.common.service import ServiceHost, make_broker
from services.common.settings import Settings
from services.notifier import repository as repo
from services.notifier.engine import READ_CONCURRENCY, SendEngine
from services.notifier.graph import GraphClient
from services.notifier.handlers import (
    apply_delivery_statuses,
    build_router,
    inbound_consumer_config,
    status_consumer_config,
    track_inbound_messages,
)

log = structlog.get_logger(__name__)

DEFAULT_HEALTH_PORT = 8085
ENGINE_POOL_SIZE = 20  # intake loops, dispatcher, writer, batch consumers, failing sends
PURGE_EVERY_SECONDS = 3600.0


async def create_engine_pool(dsn: str) -> asyncpg.Pool:
    return await create_pool(dsn, min_size=2, max_size=ENGINE_POOL_SIZE)


def build_host(settings: Settings) -> ServiceHost:
    broker = make_broker(settings, "notifier", build_router(settings))
    # Sent through the outbox with `broker.publish`; these objects describe the channels in the
    # AsyncAPI document and make the broker declare the streams when it starts.
    broker.publisher(
        NOTIFIER_EVT_SEND_FAILED,
        stream=NOTIFIER,
        title="send_failed",
        schema=SendFailed,
        description="A command that will not reach its user (dead-lettered); via the outbox",
    )
    broker.publisher(
        NOTIFIER_DLQ_SEND,
        stream=NOTIFIER_DLQ,
        title="dead_letter",
        schema=DeadLetter,
        description="The dead-lettered command and its last error; via the outbox",
    )
    running: list[tuple[SendEngine, aiohttp.ClientSession]] = []

    async def start_engine(host: ServiceHost) -> None:
        if not host.settings.whatsapp_access_token:
            log.warning("WHATSAPP_ACCESS_TOKEN is empty: Graph will refuse every send")
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=host.settings.notifier_max_in_flight + READ_CONCURRENCY + 4
            )
        )
        graph = GraphClient(
            host.settings.whatsapp_api_base,
            host.settings.whatsapp_phone_number_id,
            host.settings.whatsapp_access_token,
            session,
        )
        pool = await create_engine_pool(host.settings.database_url or "")
        engine = SendEngine(host.settings.require_urls(), pool, graph, host.relay)

        async def statuses(batch: list[Msg]) -> None:
            await apply_delivery_statuses(batch, pool, engine)

        async def inbound(batch: list[Msg]) -> None:
            await track_inbound_messages(batch, pool, engine)

        engine.consume(WA_INBOUND, status_consumer_config(), statuses)
        engine.consume(WA_INBOUND, inbound_consumer_config(), inbound)
        running.append((engine, session))
        await engine.start()

    async def stop_engine(_host: ServiceHost) -> None:
        while running:
            engine, session = running.pop()
            await engine.stop()
            await session.close()
            await engine.pool.close()

    async def engine_ready() -> bool:
        return bool(running) and all(engine.ready() for engine, _ in running)

    async def purge(pool: asyncpg.Pool) -> int:
        messages = await repo.purge_finished(pool, settings.notifier_retention_days)
        return messages + await repo.purge_expired_media(pool)

    start_purge, stop_purge = periodic("purge-finished-messages", purge, PURGE_EVERY_SECONDS)

    return ServiceHost(
        "notifier",
        settings,
        broker,
        port=settings.health_port or DEFAULT_HEALTH_PORT,
        outbox_schema="notifier",
        extra_ready={"send_engine": engine_ready},
        on_startup=[start_engine, start_purge],
        on_shutdown=[stop_purge, stop_engine],
    )
