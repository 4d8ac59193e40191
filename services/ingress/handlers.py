"""The dialog engine's consumers: one durable consumer per partition of WA_INBOUND, each handling
one message at a time (max_ack_pending=1), so one user's messages are processed in order while
users in other partitions proceed in parallel. A turn's message id, new conversation state and
replies are stored by one statement, together or not at all; the replies are then published and
only then is the message acknowledged (`take_turn`)."""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Annotated

import asyncpg
import structlog
from faststream.nats import NatsBroker, NatsRouter
from pydantic import BaseModel

from services.common import consumers, tracing
from services.common.contracts.channels import (
    RouteReply,
    RouteRequest,
    channel_replies,
    stream_of,
)
from services.common.contracts.identity import (
    CheckNikRequest,
    CheckNikResult,
    IntakeSubmitRequest,
    IntakeSubmitResult,
    NumberStatus,
    NumberStatusRequest,
    VerifyRequest,
    VerifyResult,
)
from services.common.contracts.notifier import SendMessage
from services.common.contracts.scheduler import (
    AlternativesReply,
    AlternativesRequest,
    BookingReply,
    BookingsReply,
    BookingsRequest,
    CancelRequest,
    ConfirmRequest,
    FacilityReply,
    FacilityRequest,
    FacilitySearchReply,
    FacilitySearchRequest,
    HoldReply,
    HoldRequest,
    NearbyReply,
    NearbyRequest,
    OfferRequest,
)
from services.common.contracts.screening import (
    EvaluateRequest,
    EvaluateResult,
    Questionnaire,
    QuestionnaireRequest,
)
from services.common.contracts.streams import WA_INBOUND
from services.common.contracts.subjects import (
    IDENTITY_RPC_CHECK_NIK,
    IDENTITY_RPC_INTAKE_SUBMIT,
    IDENTITY_RPC_NUMBER_STATUS,
    IDENTITY_RPC_VERIFY,
    INGRESS_RPC_ROUTE,
    INGRESS_RPC_STATS,
    SCHEDULER_RPC_ALTERNATIVES,
    SCHEDULER_RPC_BOOKINGS,
    SCHEDULER_RPC_CANCEL,
    SCHEDULER_RPC_CONFIRM,
    SCHEDULER_RPC_FACILITIES_NEARBY,
    SCHEDULER_RPC_FACILITIES_SEARCH,
    SCHEDULER_RPC_FACILITY,
    SCHEDULER_RPC_HOLD,
    SCHEDULER_RPC_OFFER,
    SCREENING_RPC_EVALUATE,
    SCREENING_RPC_QUESTIONNAIRE,
    TICKETING_RPC_TICKETS,
    WA_INBOUND_MESSAGE,
    send_subject,
)
from services.common.contracts.ticketing import TicketsReply, TicketsRequest
from services.common.contracts.whatsapp import InboundMessage
from services.common.deps import AppSettings, Broker, Context, Message, Pool
from services.common.jetstream import publish_durably
from services.common.outbox import payloads
from services.common.settings import Settings
from services.common.stats import add_stats_responder
from services.ingress import dialog, figures
from services.ingress import repository as repo
from services.ingress.metrics import (
    DIALOG_DUPLICATES,
    DIALOG_GIVEN_UP,
    DIALOG_TURN_SECONDS,
    DIALOG_TURNS,
)

log = structlog.get_logger(__name__)

# A partition's delays, 1, 2, 3 then 5 s between them (consumers.py): 46 s in all, so a restart
# of the service a turn waits for is ridden through; only then does the user hear "busy, send it
# again".
MAX_DELIVER = 12
_REPLYABLE = re.compile(r"^\d{6,15}$")  # a wa_id we can send to (placeholders are not)
RPC_TIMEOUT = 5.0
QUEUE = "dialog"  # core request/reply: ingress.rpc.stats (the edge has no database)

# The date rules apply to: Jakarta's today, replaceable in tests that replay January 2021.
Clock = Annotated[Callable[[], date], Context("clock")]


# Every request the dialog may ask, with where it goes and what comes back.
ROUTES: dict[type[BaseModel], tuple[str, type[BaseModel]]] = {
    NumberStatusRequest: (IDENTITY_RPC_NUMBER_STATUS, NumberStatus),
    VerifyRequest: (IDENTITY_RPC_VERIFY, VerifyResult),
    CheckNikRequest: (IDENTITY_RPC_CHECK_NIK, CheckNikResult),
    IntakeSubmitRequest: (IDENTITY_RPC_INTAKE_SUBMIT, IntakeSubmitResult),
    QuestionnaireRequest: (SCREENING_RPC_QUESTIONNAIRE, Questionnaire),
    EvaluateRequest: (SCREENING_RPC_EVALUATE, EvaluateResult),
    FacilityRequest: (SCHEDULER_RPC_FACILITY, FacilityReply),
    FacilitySearchRequest: (SCHEDULER_RPC_FACILITIES_SEARCH, FacilitySearchReply),
    NearbyRequest: (SCHEDULER_RPC_FACILITIES_NEARBY, NearbyReply),
    OfferRequest: (SCHEDULER_RPC_OFFER, HoldReply),
    HoldRequest: (SCHEDULER_RPC_HOLD, HoldReply),
    AlternativesRequest: (SCHEDULER_RPC_ALTERNATIVES, AlternativesReply),
    ConfirmRequest: (SCHEDULER_RPC_CONFIRM, BookingReply),
    CancelRequest: (SCHEDULER_RPC_CANCEL, BookingReply),
    BookingsRequest: (SCHEDULER_RPC_BOOKINGS, BookingsReply),
    TicketsRequest: (TICKETING_RPC_TICKETS, TicketsReply),
}
MAX_ASKS_PER_TURN = 6  # e.g. confirm -> expired -> offer -> full -> nearby; more means a loop


async def _ask(broker: NatsBroker, request: BaseModel) -> BaseModel:
    subject, reply = ROUTES[type(request)]
    response = await broker.request(request, subject, timeout=RPC_TIMEOUT)
    return reply.model_validate(await response.decode())


async def _decide(
    conv: dialog.Conversation, message: InboundMessage, broker: NatsBroker, today: date
) -> dialog.Turn:
    user = dialog.UserInput(message.text or "", message.reply_id, message.type)
    ctx = dialog.Context(today=today, wa_id=message.wa_id, channel=message.channel)
    decision = dialog.handle(conv, user, request_id=message.wamid, ctx=ctx)
    for _ in range(MAX_ASKS_PER_TURN):
        if isinstance(decision, dialog.Turn):
            return dialog.Turn(decision.conversation, dialog.coalesce(decision.replies))
        decision = decision.then(await _ask(broker, decision.request))
    raise RuntimeError("dialog asked too many questions in one turn")


def _replies(message: InboundMessage, turn: dialog.Turn, settings: Settings) -> repo.Replies:
    """The turn's replies as notifier commands, on the subject of the user's partition, with ids
    from the wamid (so a repeated turn could never send twice)."""
    if message.channel != "whatsapp":  # SMS or USSD: rendered by its adapter (contracts/channels)
        conv = turn.conversation
        subject, sends = channel_replies(
            message, turn.replies, lang=conv.lang, step=conv.step.value,
            partitions=settings.notifier_partitions,
        )  # fmt: skip
        return repo.Replies(subject, sends)
    commands = [
        SendMessage(command_id=f"{message.wamid}:{i}", to=message.wa_id, message=reply)
        for i, reply in enumerate(turn.replies)
    ]
    return repo.Replies(
        send_subject(message.wa_id, settings.notifier_partitions), payloads(commands)
    )


async def _send(broker: NatsBroker, replies: repo.Replies) -> None:
    """Publish a stored turn's replies, in order, each once: JetStream drops a command id it saw
    in its duplicate window, the notifier one it has."""
    for command in replies.commands:
        await publish_durably(
            broker.publish,
            command,
            replies.subject,
            stream=stream_of(replies.subject),
            headers={"Nats-Msg-Id": command["command_id"]},
            timeout=RPC_TIMEOUT,
        )


class ConversationChanged(Exception):
    """Someone else changed the conversation during the turn (an operator's decision, a
    delivery failure): the message is delivered again and its turn runs on the new state."""


async def take_turn(
    message: InboundMessage,
    pool: asyncpg.Pool,
    broker: NatsBroker,
    settings: Settings,
    decide: Callable[[dialog.Conversation], Awaitable[dialog.Turn]],
) -> dialog.Turn | None:
    """One turn: read the conversation, decide, store the new state with its replies, send them.
    None for a message handled before (its replies are sent again if they may not have left)."""
    start = await repo.begin_turn(pool, message.wamid, message.wa_id)
    if start.seen:
        DIALOG_DUPLICATES.inc()
        if start.replies is not None:
            await _send(broker, start.replies)
        return None
    turn = await decide(start.conversation)
    replies = _replies(message, turn, settings)
    if not await repo.end_turn(
        pool, message.wa_id, start, turn.conversation, message.wamid, replies, message.channel
    ):
        raise ConversationChanged
    await _send(broker, replies)
    return turn


async def on_inbound_message(
    message: InboundMessage,
    msg: Message,
    pool: Pool,
    broker: Broker,
    settings: AppSettings,
    clock: Clock,
) -> None:
    if not _REPLYABLE.match(message.wa_id):
        log.info("ignoring message from a sender we cannot answer", type=message.type)
        return

    async def decide(conv: dialog.Conversation) -> dialog.Turn:
        return await _decide(conv, message, broker, clock())

    async def busy(conv: dialog.Conversation) -> dialog.Turn:
        return dialog.busy(conv)

    started = time.perf_counter()
    try:
        with tracing.span("dialog turn", {"vaksin.wamid": message.wamid}) as span:
            turn = await take_turn(message, pool, broker, settings, decide)
            if span is not None and turn is not None:
                span.set_attribute("vaksin.dialog.step", turn.conversation.step.value)
                span.set_attribute("vaksin.dialog.replies", len(turn.replies))
    except Exception:
        if not consumers.is_last_delivery(msg):
            raise  # delivered again after a delay (consumers.py); the partition waits: in order
        log.exception("inbound message failed on every delivery; telling the user")
        # Never leave a user in silence: answer "busy, send it again" and keep their state.
        DIALOG_GIVEN_UP.inc()
        await take_turn(message, pool, broker, settings, busy)
        return
    if turn is not None:
        step = turn.conversation.step.value
        DIALOG_TURNS.labels(step=step).inc()
        DIALOG_TURN_SECONDS.labels(step=step).observe(time.perf_counter() - started)


async def route(request: RouteRequest, pool: Pool) -> RouteReply:
    """`ingress.rpc.route`: the channel that reaches a number unasked, the one of its last
    message; USSD cannot reach a phone unasked, so its users are reached by SMS."""
    try:
        channel = await repo.channel_of(pool, request.number)
    except (asyncpg.PostgresError, OSError) as exc:
        return RouteReply(error=f"unavailable: {type(exc).__name__}")
    return RouteReply(channel="whatsapp" if channel == "whatsapp" else "sms")


def build_router(settings: Settings) -> NatsRouter:
    router = consumers.router()
    router.subscriber(INGRESS_RPC_ROUTE, queue=QUEUE, title="route")(route)
    add_stats_responder(
        router,
        INGRESS_RPC_STATS,
        queue=QUEUE,
        service="dialog",
        count=repo.stats,
        tables=figures.tables,
    )
    consumers.partition_subscribers(
        router,
        WA_INBOUND_MESSAGE,
        stream=WA_INBOUND,
        durable="ingress-dialog-p{partition}",
        partitions=settings.dialog_partitions,
        max_deliver=MAX_DELIVER,
        handler=on_inbound_message,
        title="dialog-p{partition}",
    )
    return router
