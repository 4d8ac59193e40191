"""SMS and USSD (services/channels): what leaves for a user of those channels, and where.

The dialog's replies are channel-neutral already (`OutboundMessage`: text, buttons, list, image,
video); for a message that came by SMS or USSD the dialog publishes them as `ChannelSend`
commands on `channels.cmd.<channel>.<p>` (stream CHANNELS) instead of `notifier.cmd.send.<p>`,
and the channel adapter renders them for what that channel can show (services/channels/render.py).

Messages nobody asked for (a new ticket, reminders, dose 2) go where the number last wrote from:
the dialog, which stores the channel with each turn, answers `ingress.rpc.route` with `sms` for a
number whose last message came by SMS or USSD (USSD cannot reach a phone unasked, so its users
get SMS), `whatsapp` otherwise; `as_channel_send` turns the notifier command into the SMS one.
(No consumer of every WhatsApp message is needed to notice a user coming back to WhatsApp: the
turn of that message records it.)
"""

from __future__ import annotations

import time
from typing import Any, Literal

from faststream.nats import NatsBroker
from pydantic import BaseModel, Field

from services.common.contracts.notifier import OutboundMessage, SendMessage
from services.common.contracts.streams import CHANNELS, NOTIFIER
from services.common.contracts.subjects import INGRESS_RPC_ROUTE, partition_of, send_subject
from services.common.contracts.whatsapp import Channel, InboundMessage

# One user's commands land on one partition (like the notifier's), consumed one at a time.
CHANNEL_CMD_SEND = "channels.cmd.{channel}.{partition}"
CHANNEL_CMD_SEND_ALL = "channels.cmd.{channel}.*"
# Each process's counts, for `vaksin stats` (queue groups `ussd` and `sms`).
CHANNELS_RPC_USSD_STATS = "channels.rpc.ussd_stats"
CHANNELS_RPC_SMS_STATS = "channels.rpc.sms_stats"

AdapterChannel = Literal["sms", "ussd"]
ROUTE_TIMEOUT = 2.0


class ChannelSend(BaseModel):
    """One neutral message to one user of SMS or USSD. `command_id` is the idempotency key.

    A turn's replies are `count` commands sharing `in_reply_to` (the inbound id), numbered by
    `index`: the adapter shows them together (one USSD screen, one SMS) once all are there."""

    command_id: str = Field(min_length=1, max_length=300)
    channel: AdapterChannel
    to: str = Field(pattern=r"^\d{6,15}$")
    lang: str = Field(default="id", description="the user's language: id or en")
    message: OutboundMessage
    in_reply_to: str | None = Field(
        default=None, description="the inbound message id this answers; None: sent unasked"
    )
    index: int = Field(default=0, ge=0)
    count: int = Field(default=1, ge=1)
    step: str | None = Field(
        default=None,
        description="the dialog step after the turn, so that USSD knows whether an answer is "
        "awaited (CON) or the session ends (END)",
    )


class RouteRequest(BaseModel):
    number: str


class RouteReply(BaseModel):
    channel: Channel = "whatsapp"
    error: str | None = None


def adapter_message(
    channel: AdapterChannel, message_id: str, number: str, text: str, reply_id: str | None
) -> InboundMessage:
    """What an SMS or a USSD input becomes for the dialog: an inbound message like WhatsApp's,
    a tap when the text picked an option of the menu shown (`reply_id`)."""
    return InboundMessage(
        wamid=message_id,
        wa_id=number,
        phone_number_id=channel,
        timestamp=int(time.time()),
        type="interactive" if reply_id else "text",
        text=text,
        reply_id=reply_id,
        channel=channel,
    )


def channel_subject(channel: str, to: str, partitions: int) -> str:
    return CHANNEL_CMD_SEND.format(channel=channel, partition=partition_of(to, partitions))


def channel_replies(
    message: InboundMessage,
    replies: list[OutboundMessage],
    *,
    lang: str,
    step: str,
    partitions: int,
) -> tuple[str, list[dict[str, Any]]]:
    """A turn's replies to a message that came by SMS or USSD: the subject and the commands, with
    ids from the inbound id (a repeated turn never sends twice)."""
    assert message.channel != "whatsapp"
    commands = [
        ChannelSend(
            command_id=f"{message.wamid}:{i}",
            channel=message.channel,
            to=message.wa_id,
            lang=lang,
            message=reply,
            in_reply_to=message.wamid,
            index=i,
            count=len(replies),
            step=step,
        ).model_dump(mode="json")
        for i, reply in enumerate(replies)
    ]
    return channel_subject(message.channel, message.wa_id, partitions), commands


def stream_of(subject: str) -> str:
    """The stream a stored send subject belongs to (a turn's replies keep their subject)."""
    return CHANNELS.name if subject.startswith("channels.") else NOTIFIER.name


def as_channel_send(command: SendMessage, lang: str) -> ChannelSend:
    """A notifier command for a number reached by SMS: the same message, the same id."""
    return ChannelSend(
        command_id=command.command_id,
        channel="sms",
        to=command.to,
        lang=lang,
        message=command.message,
    )


def outbound(
    channel: Channel, command: SendMessage, lang: str, partitions: int
) -> tuple[str, str, dict[str, Any]]:
    """(subject, stream, payload) of a message sent unasked, by the number's channel."""
    if channel == "whatsapp":
        return send_subject(command.to, partitions), NOTIFIER.name, command.model_dump(mode="json")
    sms = as_channel_send(command, lang)
    return (
        channel_subject("sms", command.to, partitions),
        CHANNELS.name,
        sms.model_dump(mode="json"),
    )


async def route(broker: NatsBroker, number: str) -> Channel:
    """The channel that reaches `number` unasked, as the dialog knows it. The dialog runs in
    every deployment: no answer (no responders, a timeout) raises, to be tried again later
    rather than guessed."""
    response = await broker.request(
        RouteRequest(number=number), INGRESS_RPC_ROUTE, timeout=ROUTE_TIMEOUT
    )
    reply = RouteReply.model_validate(await response.decode())
    if reply.error:
        raise RuntimeError(f"the dialog could not answer: {reply.error}")
    return reply.channel
