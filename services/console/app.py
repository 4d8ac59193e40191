"""Wiring of the operators' console: a broker that asks the owners over NATS (and answers only
console.rpc.stats, its own counts), its own pool on the `console` schema (accounts, sessions,
throttle, audit), the pages under /console/ next to the health routes, and an hourly purge of
ended sessions, hosted by `ServiceHost`."""

from __future__ import annotations

from aiohttp import web
from faststream.nats import NatsRouter

from services.common import consumers
from services.common.contracts.subjects import CONSOLE_RPC_STATS
from services.common.periodic import periodic
from services.common.service import ServiceHost, make_broker
from services.common.settings import Settings
from services.common.stats import add_stats_responder
from services.console.repository import purge_sessions, stats
from services.console.rpc import Services
from services.console.security import Passwords
from services.console.web import add_console_routes

DEFAULT_HEALTH_PORT = 8088


def build_router() -> NatsRouter:
    """Only its counts: the console asks, it is never asked anything else."""
    router = consumers.router()
    add_stats_responder(router, CONSOLE_RPC_STATS, queue="console", service="console", count=stats)
    return router


def build_host(settings: Settings, passwords: Passwords | None = None) -> ServiceHost:
    broker = make_broker(settings, "console", build_router())
    start_purge, stop_purge = periodic("console-purge-sessions", purge_sessions, 3600.0)
    host = ServiceHost(
        "console",
        settings,
        broker,
        port=settings.health_port or DEFAULT_HEALTH_PORT,
        on_startup=[start_purge],
        on_shutdown=[stop_purge],
    )

    def routes(app: web.Application) -> None:
        assert host.pool is not None
        add_console_routes(
            app, host.pool, Services(broker), host.settings, passwords or Passwords()
        )

    host.add_routes = routes
    return host
