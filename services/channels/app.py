"""Wiring of the channel adapters' two processes, each its own Deployment:

- `ussd` (`vaksin service ussd`): `POST /ussd` for the aggregator, and the consumers of
  `channels.cmd.ussd.<p>` that store each turn's screen.
- `sms` (`vaksin service sms`): `/sms/inbound` and `/sms/dlr` for the Jasmin gateway, the
  consumers of `channels.cmd.sms.<p>` and the sender.

Both keep their state in the schema `channels`; the k8s Ingress sends `/ussd` and `/sms/` to
them on the same host as the webhook."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
from aiohttp import web

from services.channels.handlers import Waiters, sms_router, ussd_router
from services.channels.repository import purge
from services.channels.settings import ChannelSettings, load_channel_settings
from services.channels.sms import SmsEdge, SmsSender, add_sms_routes
from services.channels.ussd import UssdEdge, add_ussd_routes
from services.common.contracts.channels import ChannelSend
from services.common.contracts.streams import CHANNELS, WA_INBOUND
from services.common.contracts.subjects import WA_INBOUND_MESSAGE
from services.common.contracts.whatsapp import InboundMessage
from services.common.periodic import periodic
from services.common.service import ServiceHost, make_broker
from services.common.settings import Settings

HOUR = 3600.0


async def _purge(pool: asyncpg.Pool) -> int:
    return await purge(pool, datetime.now(UTC))


def _declare_inbound(broker: object) -> None:
    broker.publisher(  # type: ignore[attr-defined]
        WA_INBOUND_MESSAGE,
        stream=WA_INBOUND,
        title="inbound-message",
        schema=InboundMessage,
        description="What a person sent by SMS or USSD (channel sms / ussd), on the number's "
        "partition like a WhatsApp message",
    )


def build_ussd_host(settings: Settings, channel: ChannelSettings | None = None) -> ServiceHost:
    channel = channel or load_channel_settings(settings.data_dir)
    waiters = Waiters()
    broker = make_broker(settings, "ussd", ussd_router(settings.notifier_partitions))
    broker.context.set_global("waiters", waiters)
    _declare_inbound(broker)
    host = ServiceHost("ussd", settings, broker, port=settings.health_port or channel.ussd_port)

    def routes(app: web.Application) -> None:
        assert host.pool is not None
        add_ussd_routes(app, UssdEdge(host.pool, broker, settings, channel, waiters))

    host.add_routes = routes
    return host


def build_sms_host(settings: Settings, channel: ChannelSettings | None = None) -> ServiceHost:
    channel = channel or load_channel_settings(settings.data_dir)
    broker = make_broker(settings, "sms", sms_router(settings.notifier_partitions))
    _declare_inbound(broker)
    broker.publisher(
        "channels.cmd.sms.{partition}",
        stream=CHANNELS,
        title="sms-send",
        schema=ChannelSend,
        description="Declared so that the CHANNELS stream exists before the first command",
    )
    sender: list[SmsSender] = []

    def wake() -> None:
        if sender:
            sender[0].wake()

    broker.context.set_global("sender_wake", wake)

    async def start_sender(host: ServiceHost) -> None:
        assert host.pool is not None
        sender.append(SmsSender(host.pool, channel))
        await sender[0].start()

    async def stop_sender(_host: ServiceHost) -> None:
        if sender:
            await sender.pop().stop()

    start_purge, stop_purge = periodic("purge-channels", _purge, HOUR)
    host = ServiceHost(
        "sms",
        settings,
        broker,
        port=settings.health_port or channel.sms_port,
        on_startup=[start_sender, start_purge],
        on_shutdown=[stop_sender, stop_purge],
    )

    def routes(app: web.Application) -> None:
        assert host.pool is not None
        add_sms_routes(app, SmsEdge(host.pool, broker, settings, channel, wake))

    host.add_routes = routes
    return host
