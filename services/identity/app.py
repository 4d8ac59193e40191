"""Wiring of the identity service: its broker with the rpc router, hosted by `ServiceHost`."""

from __future__ import annotations

from services.common.periodic import periodic
from services.common.service import ServiceHost, make_broker
from services.common.settings import Settings
from services.identity.handlers import build_router
from services.identity.repository import purge_answers

DEFAULT_HEALTH_PORT = 8081


def build_host(settings: Settings) -> ServiceHost:
    broker = make_broker(settings, "identity", build_router())
    start_purge, stop_purge = periodic("purge-verify-answers", purge_answers, 3600.0)
    return ServiceHost(
        "identity",
        settings,
        broker,
        port=settings.health_port or DEFAULT_HEALTH_PORT,
        on_startup=[start_purge],
        on_shutdown=[stop_purge],
    )
