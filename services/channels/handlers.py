"""The channels' consumers and rpc:

- `channels.cmd.ussd.<p>` (durables `channels-ussd-p<p>`, one command at a time per partition):
  the dialog's replies to a USSD message; once a turn's parts are all here they become the
  number's screen (pages, options, whether it ends the session), which the waiting callback (or
  the next dial) shows.
- `channels.cmd.sms.<p>` (durables `channels-sms-p<p>`): replies to an SMS, and messages sent
  unasked to a number reached by SMS (tickets, reminders); rendered and queued for the gateway,
  the menu kept for the number's next answer.

Which channel reaches a number unasked is the dialog's to say (`ingress.rpc.route`): it stores
the channel of each turn's message.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Annotated, Any

import structlog
from faststream.nats import NatsRouter
from pydantic import TypeAdapter

from services.channels import render
from services.channels import repository as repo
from services.common import consumers
from services.common.contracts.channels import (
    CHANNEL_CMD_SEND,
    CHANNELS_RPC_SMS_STATS,
    CHANNELS_RPC_USSD_STATS,
    ChannelSend,
)
from services.common.contracts.notifier import OutboundMessage
from services.common.contracts.streams import CHANNELS
from services.common.deps import Context, Pool
from services.common.stats import add_stats_responder

log = structlog.get_logger(__name__)

MAX_DELIVER = 12  # a partition: 1, 2, 3, then 5 s apart (consumers.py)
QUEUE = "channels"
_MESSAGE = TypeAdapter(OutboundMessage)

# Steps of the dialog that wait for an answer: a USSD session goes on (CON); after any other the
# session ends (END) and the next dial carries on.
AWAITING_STEPS = frozenset(
    {
        "ask_nakes", "ask_suffix", "intake_offer", "intake_nik", "intake_name",
        "intake_profession", "intake_facility", "intake_confirm", "screening_summary",
        "screening_question", "location", "location_list", "slot", "slot_list",
    }
)  # fmt: skip


class Waiters:
    """Callbacks of this process waiting for a turn's screen: woken as soon as it is stored
    here (another replica's callback finds it by polling)."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}

    def event(self, inbound_id: str) -> asyncio.Event:
        return self._events.setdefault(inbound_id, asyncio.Event())

    def done(self, inbound_id: str) -> None:
        self._events.pop(inbound_id, None)

    def wake(self, inbound_id: str) -> None:
        event = self._events.get(inbound_id)
        if event is not None:
            event.set()


WaitersDep = Annotated[Waiters, Context("waiters")]
SenderWake = Annotated[Any, Context("sender_wake")]


def _screen(parts: list[repo.Part]) -> render.Screen:
    return render.compose([_MESSAGE.validate_python(p.message) for p in parts])


def _options(screen: render.Screen) -> list[dict[str, str]]:
    return [asdict(o) for o in screen.options]


async def on_ussd_send(cmd: ChannelSend, pool: Pool, waiters: WaitersDep) -> None:
    async with pool.acquire() as conn, conn.transaction():
        parts = await repo.add_part(conn, cmd.model_dump(mode="json"))
        if parts is None or cmd.in_reply_to is None:
            return  # USSD only answers; what is sent unasked goes by SMS
        screen = _screen(parts)
        final = parts[-1].step not in AWAITING_STEPS and not screen.options
        pages = render.ussd_pages(screen, parts[-1].lang)
        await repo.set_screen(conn, cmd.to, cmd.in_reply_to, pages, _options(screen), final)
        await repo.set_menu(conn, "ussd", cmd.to, _options(screen))
    waiters.wake(cmd.in_reply_to)


def sms_messages(screen: render.Screen, lang: str) -> list[repo.Sms]:
    messages = []
    for content in render.sms_texts(screen, lang):
        size = render.sms_size(content)
        messages.append(repo.Sms(content, size.coding, size.parts))
    return messages


async def on_sms_send(cmd: ChannelSend, pool: Pool, wake: SenderWake) -> None:
    async with pool.acquire() as conn, conn.transaction():
        parts = await repo.add_part(conn, cmd.model_dump(mode="json"))
        if parts is None:
            return
        screen = _screen(parts)
        if cmd.in_reply_to is not None:  # an answer: its menu is what a number typed next means
            await repo.set_menu(conn, "sms", cmd.to, _options(screen))
        key = cmd.in_reply_to or cmd.command_id
        queued = await repo.queue_sms(conn, key, cmd.to, sms_messages(screen, parts[-1].lang))
    if queued:
        wake()


def _partitioned(router: NatsRouter, channel: str, partitions: int, handler: Any) -> None:
    consumers.partition_subscribers(
        router,
        CHANNEL_CMD_SEND.replace("{channel}", channel),
        stream=CHANNELS,
        durable=f"channels-{channel}-p{{partition}}",
        partitions=partitions,
        max_deliver=MAX_DELIVER,
        handler=handler,
    )


def ussd_router(partitions: int) -> NatsRouter:
    router = consumers.router()
    _partitioned(router, "ussd", partitions, on_ussd_send)
    add_stats_responder(
        router, CHANNELS_RPC_USSD_STATS, queue="ussd", service="ussd", count=repo.ussd_stats
    )
    return router


def sms_router(partitions: int) -> NatsRouter:
    router = consumers.router()
    _partitioned(router, "sms", partitions, on_sms_send)
    add_stats_responder(
        router, CHANNELS_RPC_SMS_STATS, queue="sms", service="sms", count=repo.sms_stats
    )
    return router
