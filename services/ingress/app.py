"""Wiring of the ingress's two processes: the webhook edge (`vaksin service ingress`: HTTP in,
JetStream out, no database, so it acknowledges Meta in about a millisecond) and the dialog engine
(`vaksin service dialog`: consumes WA_INBOUND, talks to the domain services, replies through the
outbox). They scale separately: the edge with HTTP traffic, the dialog with consumer lag."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

from services.common.clock import jakarta_today
from services.common.contracts.channels import CHANNEL_CMD_SEND, ChannelSend
from services.common.contracts.deadletters import DeadMessage
from services.common.contracts.notifier import SendMessage
from services.common.contracts.streams import CHANNELS, DEAD_LETTERS, NOTIFIER, WA_INBOUND
from services.common.contracts.subjects import (
    DEADLETTER_WEBHOOK,
    NOTIFIER_CMD_SEND,
    WA_INBOUND_MESSAGE,
    WA_INBOUND_STATUS,
)
from services.common.contracts.whatsapp import DeliveryStatus, InboundMessage
from services.common.periodic import periodic
from services.common.service import ServiceHost, make_broker
from services.common.settings import Settings
from services.ingress.delivery_failures import add_delivery_failure_subscriber
from services.ingress.handlers import build_router
from services.ingress.http import add_webhook_routes
from services.ingress.intake_decisions import add_intake_subscriber
from services.ingress.reminders import send_rescreen_reminders
from services.ingress.repository import purge_processed

HOUR = 3600.0
REMINDER_EVERY = 600.0
DIALOG_HEALTH_PORT = 8086


def build_host(settings: Settings) -> ServiceHost:
    """The webhook edge."""
    broker = make_broker(settings, "ingress")
    # Declared publishers: they document the channels and make the edge declare WA_INBOUND (and
    # DEAD_LETTERS, for poison bodies), so it can accept webhooks before any consumer has started.
    broker.publisher(
        WA_INBOUND_MESSAGE,
        stream=WA_INBOUND,
        title="inbound-message",
        schema=InboundMessage,
        description="A user's message; partition = crc32(wa_id) % DIALOG_PARTITIONS",
    )
    broker.publisher(
        WA_INBOUND_STATUS,
        stream=WA_INBOUND,
        title="inbound-status",
        schema=DeliveryStatus,
        description="Delivery status of a message we sent",
    )
    broker.publisher(
        DEADLETTER_WEBHOOK,
        stream=DEAD_LETTERS,
        title="webhook-dead-letter",
        schema=DeadMessage,
        description="A signed webhook body that could never be stored, acknowledged to Meta",
    )
    return ServiceHost(
        "ingress",
        settings,
        broker,
        port=settings.ingress_port,
        add_routes=lambda web_app: add_webhook_routes(web_app, broker, settings),
        uses_postgres=False,
    )


def build_dialog_host(settings: Settings) -> ServiceHost:
    """The dialog engine."""
    router = build_router(settings)
    add_intake_subscriber(router)
    add_delivery_failure_subscriber(router)
    broker = make_broker(settings, "dialog", router)
    broker.context.set_global("clock", jakarta_today)
    broker.publisher(
        NOTIFIER_CMD_SEND,
        stream=NOTIFIER,
        title="send",
        schema=SendMessage,
        description="A reply, through the outbox; partitioned by recipient like the inbound",
    )
    broker.publisher(
        CHANNEL_CMD_SEND,
        stream=CHANNELS,
        title="channel-send",
        schema=ChannelSend,
        description="A reply to a message that came by SMS or USSD, for its channel adapter",
    )
    start_purge, stop_purge = periodic("purge-processed-messages", purge_processed, HOUR)

    async def remind(pool: asyncpg.Pool) -> int:
        sent = await send_rescreen_reminders(pool, settings.notifier_partitions, now())
        if sent and host.relay:
            host.relay.wake()
        return sent

    start_remind, stop_remind = periodic("rescreen-reminders", remind, REMINDER_EVERY)
    host = ServiceHost(
        "dialog",
        settings,
        broker,
        port=settings.health_port or DIALOG_HEALTH_PORT,
        outbox_schema="ingress",
        on_startup=[start_purge, start_remind],
        on_shutdown=[stop_purge, stop_remind],
    )
    return host


def now() -> datetime:
    return datetime.now(UTC)
