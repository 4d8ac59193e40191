"""Wiring of the ticketing service: its broker with the booking consumers and the tickets rpc,
the declared channels it publishes to through its outbox (ticketing.evt.dose_given, which also
makes the broker declare the TICKETING stream, and notifier.cmd.send), the signing key, and the
desk's HTTP API next to the health routes."""

from __future__ import annotations

from aiohttp import web

from services.common.contracts.channels import CHANNEL_CMD_SEND, ChannelSend
from services.common.contracts.notifier import SendMessage
from services.common.contracts.streams import CHANNELS, NOTIFIER, TICKETING
from services.common.contracts.subjects import NOTIFIER_CMD_SEND, TICKETING_EVT_DOSE_GIVEN
from services.common.contracts.ticketing import DoseGiven
from services.common.service import ServiceHost, make_broker
from services.common.settings import Settings
from services.ticketing.desk_api import add_desk_routes
from services.ticketing.handlers import build_router
from services.ticketing.token import InvalidSigningKey, load_signing_key

DEFAULT_HEALTH_PORT = 8087


def build_host(settings: Settings) -> ServiceHost:
    try:
        key = load_signing_key(settings.ticket_signing_key)
    except InvalidSigningKey as e:
        raise SystemExit(str(e)) from None
    broker = make_broker(settings, "ticketing", build_router())
    broker.context.set_global("ticket_key", key)
    broker.publisher(
        TICKETING_EVT_DOSE_GIVEN,
        stream=TICKETING,
        title="dose_given",
        schema=DoseGiven,
        description="Staff recorded a dose as given at check-in; via the outbox. The scheduler "
        "books dose 2 from it",
    )
    broker.publisher(
        NOTIFIER_CMD_SEND,
        stream=NOTIFIER,
        title="send",
        schema=SendMessage,
        description="A new ticket's QR image (with the ticket_ready template for a closed "
        "24-hour window) and the vaccine video (optional); via the outbox, by recipient",
    )
    broker.publisher(
        CHANNEL_CMD_SEND,
        stream=CHANNELS,
        title="channel-send",
        schema=ChannelSend,
        description="A new ticket's code by SMS, for a person who writes by SMS or USSD "
        "(ingress.rpc.route); via the outbox, by recipient",
    )
    host = ServiceHost(
        "ticketing",
        settings,
        broker,
        port=settings.health_port or DEFAULT_HEALTH_PORT,
        outbox_schema="ticketing",
    )

    def desk_routes(app: web.Application) -> None:
        assert host.pool is not None and host.relay is not None
        add_desk_routes(app, host.pool, key, settings.operator_token, host.relay.wake)

    host.add_routes = desk_routes
    return host
