"""Wiring of the ingress process: the webhook edge and the dialog engine share one broker."""

from __future__ import annotations

from faststream import FastStream
from faststream.specification import AsyncAPI

from services.common.periodic import periodic
from services.common.service import ServiceHost, make_broker
from services.common.settings import Settings
from services.ingress.handlers import build_router
from services.ingress.http import add_webhook_routes
from services.ingress.repository import purge_processed

HOUR = 3600.0


def build_host(settings: Settings) -> ServiceHost:
    broker = make_broker(settings, "ingress", build_router(settings))
    start_purge, stop_purge = periodic("purge-processed-messages", purge_processed, HOUR)
    return ServiceHost(
        "ingress",
        settings,
        broker,
        port=settings.ingress_port,
        outbox_schema="ingress",
        add_routes=lambda web_app: add_webhook_routes(web_app, broker, settings),
        on_startup=[start_purge],
        on_shutdown=[stop_purge],
    )


def asyncapi_app(settings: Settings) -> FastStream:
    """For `faststream docs gen`: the broker's subscribers and publishers as AsyncAPI."""
    host = build_host(settings)
    return FastStream(host.broker, specification=AsyncAPI(title="ingress", version="0.1.0"))
