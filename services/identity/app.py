"""Wiring of the identity service: its broker with the rpc router, hosted by `ServiceHost`."""

from __future__ import annotations

from services.common.service import ServiceHost, make_broker
from services.common.settings import Settings
from services.identity.handlers import build_router

DEFAULT_HEALTH_PORT = 8081


def build_host(settings: Settings) -> ServiceHost:
    broker = make_broker(settings, "identity", build_router())
    return ServiceHost(
        "identity", settings, broker, port=settings.health_port or DEFAULT_HEALTH_PORT
    )
