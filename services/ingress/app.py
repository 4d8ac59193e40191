"""Wiring of the ingress process: the webhook edge and the dialog engine share one broker."""

from __future__ import annotations

from faststream import FastStream
from faststream.specification import AsyncAPI

from services.common.service import ServiceHost, make_broker
from services.common.settings import Settings
from services.ingress.handlers import build_router
from services.ingress.http import add_webhook_routes


def build_host(settings: Settings) -> ServiceHost:
    broker = make_broker(settings, "ingress", build_router(settings))
    return ServiceHost(
        "ingress",
        settings,
        broker,
        port=settings.ingress_port,
        outbox_schema="ingress",
        add_routes=lambda web_app: add_webhook_routes(web_app, broker, settings),
    )


def asyncapi_app(settings: Settings) -> FastStream:
    """For `faststream docs gen`: the broker's subscribers and publishers as AsyncAPI."""
    host = build_host(settings)
    return FastStream(host.broker, specification=AsyncAPI(title="ingress", version="0.1.0"))
