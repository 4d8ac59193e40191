"""Wiring of the identity service: its broker with the rpc router and the declared intake facts
(which also create the IDENTITY stream), the outbox relay, and the operator HTTP API next to the
health routes, hosted by `ServiceHost`."""

from __future__ import annotations

from aiohttp import web

from services.common.contracts.identity import IntakeDecided, IntakeSubmitted
from services.common.contracts.streams import IDENTITY
from services.common.contracts.subjects import (
    IDENTITY_EVT_INTAKE_DECIDED,
    IDENTITY_EVT_INTAKE_SUBMITTED,
)
from services.common.periodic import periodic
from services.common.service import ServiceHost, make_broker
from services.common.settings import Settings
from services.identity.handlers import build_router
from services.identity.operator_api import add_operator_routes
from services.identity.repository import purge_answers

DEFAULT_HEALTH_PORT = 8081


def _operator_routes(host: ServiceHost, app: web.Application) -> None:
    assert host.pool is not None and host.relay is not None
    add_operator_routes(app, host.pool, host.settings.operator_token, host.relay.wake)


def build_host(settings: Settings) -> ServiceHost:
    broker = make_broker(settings, "identity", build_router())
    # Sent through the outbox with `broker.publish`; these objects describe the channels in the
    # AsyncAPI document and make the broker declare the stream when it starts.
    broker.publisher(
        IDENTITY_EVT_INTAKE_SUBMITTED,
        stream=IDENTITY,
        title="intake_submitted",
        schema=IntakeSubmitted,
        description="An unlisted health worker's request entered the verification queue",
    )
    broker.publisher(
        IDENTITY_EVT_INTAKE_DECIDED,
        stream=IDENTITY,
        title="intake_decided",
        schema=IntakeDecided,
        description="An operator approved (person added to the registry, bound to the number) "
        "or rejected (with a reason) an intake request; the dialog tells the user",
    )
    start_purge, stop_purge = periodic("purge-verify-answers", purge_answers, 3600.0)
    host = ServiceHost(
        "identity",
        settings,
        broker,
        port=settings.health_port or DEFAULT_HEALTH_PORT,
        outbox_schema="identity",
        on_startup=[start_purge],
        on_shutdown=[stop_purge],
    )
    host.add_routes = lambda app: _operator_routes(host, app)
    return host
