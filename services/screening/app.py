"""Wiring of the screening service: its broker with the rpc router and the declared
screening.evt.completed channel (which also creates the SCREENING stream), the outbox relay, and
the shipped rule sets loaded into the table at startup when missing."""

from __future__ import annotations

from services.common.contracts.screening import ScreeningCompleted
from services.common.contracts.streams import SCREENING
from services.common.contracts.subjects import SCREENING_EVT_COMPLETED
from services.common.service import ServiceHost, make_broker
from services.common.settings import Settings
from services.screening.handlers import build_router
from services.screening.store import RuleSetStore, ensure_shipped

DEFAULT_HEALTH_PORT = 8082


async def _load_rule_sets(host: ServiceHost) -> None:
    assert host.pool is not None
    async with host.pool.acquire() as conn:
        await ensure_shipped(conn)
    host.broker.context.set_global("rule_sets", RuleSetStore())


def build_host(settings: Settings) -> ServiceHost:
    broker = make_broker(settings, "screening", build_router())
    # Sent through the outbox with `broker.publish`; this object describes the channel in the
    # AsyncAPI document and makes the broker declare the stream when it starts.
    broker.publisher(
        SCREENING_EVT_COMPLETED,
        stream=SCREENING,
        title="completed",
        schema=ScreeningCompleted,
        description="A screening was stored (outcome and re-screen date); via the outbox",
    )
    return ServiceHost(
        "screening",
        settings,
        broker,
        port=settings.health_port or DEFAULT_HEALTH_PORT,
        outbox_schema="screening",
        on_startup=[_load_rule_sets],
    )
