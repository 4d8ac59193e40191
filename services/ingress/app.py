"""Wiring of the ingress process: the webhook edge and the dialog engine share one broker."""

from __future__ import annotations

from faststream.nats import NatsBroker

from services.common.contracts.notifier import SendMessage
from services.common.contracts.subjects import (
    NOTIFIER_CMD_SEND,
    WA_INBOUND_MESSAGE,
    WA_INBOUND_STATUS,
)
from services.common.contracts.whatsapp import DeliveryStatus, InboundMessage
from services.common.periodic import periodic
from services.common.service import ServiceHost, make_broker
from services.common.settings import Settings
from services.ingress.handlers import build_router
from services.ingress.http import add_webhook_routes
from services.ingress.repository import purge_processed

HOUR = 3600.0


def _declare_outputs(broker: NatsBroker) -> None:
    """What the ingress publishes, for its AsyncAPI document (sent through `broker.publish` with
    per-partition subjects and the outbox, so these objects only describe the channels)."""
    broker.publisher(
        WA_INBOUND_MESSAGE,
        title="inbound-message",
        schema=InboundMessage,
        description="A user's message; partition = crc32(wa_id) % DIALOG_PARTITIONS",
    )
    broker.publisher(
        WA_INBOUND_STATUS,
        title="inbound-status",
        schema=DeliveryStatus,
        description="Delivery status of a message we sent",
    )
    broker.publisher(
        NOTIFIER_CMD_SEND,
        title="send",
        schema=SendMessage,
        description="A reply, via the ingress outbox; partitioned like the inbound",
    )


def build_host(settings: Settings) -> ServiceHost:
    broker = make_broker(settings, "ingress", build_router(settings))
    _declare_outputs(broker)
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
