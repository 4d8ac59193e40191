"""Wiring of the notifier process: broker with the send and status subscribers, one aiohttp
session (and the Graph client on it) for the life of the process, and the health server."""

from __future__ import annotations

import aiohttp
import structlog

from services.common.service import ServiceHost, make_broker
from services.common.settings import Settings
from services.notifier.graph import GraphClient
from services.notifier.handlers import build_router

log = structlog.get_logger(__name__)

DEFAULT_HEALTH_PORT = 8085


def build_host(settings: Settings) -> ServiceHost:
    broker = make_broker(settings, "notifier", build_router(settings))
    sessions: list[aiohttp.ClientSession] = []

    async def open_graph(host: ServiceHost) -> None:
        if not settings.whatsapp_access_token:
            log.warning("WHATSAPP_ACCESS_TOKEN is empty: Graph will refuse every send")
        session = aiohttp.ClientSession()
        sessions.append(session)
        host.broker.context.set_global(
            "graph",
            GraphClient(
                settings.whatsapp_api_base,
                settings.whatsapp_phone_number_id,
                settings.whatsapp_access_token,
                session,
            ),
        )

    async def close_graph(_host: ServiceHost) -> None:
        while sessions:
            await sessions.pop().close()

    return ServiceHost(
        "notifier",
        settings,
        broker,
        port=settings.health_port or DEFAULT_HEALTH_PORT,
        on_startup=[open_graph],
        on_shutdown=[close_graph],
    )
