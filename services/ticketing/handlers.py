"""The ticketing service's consumers and its rpc:

- scheduler.evt.booked / .rescheduled / .cancelled: durable pull consumers that issue a ticket for
  a new booking (and send it with the video) and revoke the ticket of a booking that is void.
  Each is idempotent (one ticket per booking; a void booking stays void), and they commute: a
  cancellation handled before its booking leaves the booking without a ticket.
- ticketing.rpc.tickets: a person's usable tickets with their images, for TIKET in the chat.

A failed issue is retried with a growing delay (identity may be restarting) for about half an
hour; after that the fact is dead-lettered (DEAD_LETTERS) and the failure logged and counted.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated

import asyncpg
import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from faststream.nats import NatsBroker, NatsRouter

from services.common import consumers
from services.common.contracts.channels import route
from services.common.contracts.identity import PersonCard, PersonRequest
from services.common.contracts.scheduler import (
    BookingCancelled,
    BookingConfirmed,
    BookingFact,
    BookingRescheduled,
)
from services.common.contracts.streams import SCHEDULER
from services.common.contracts.subjects import (
    IDENTITY_RPC_PERSON,
    SCHEDULER_EVT_BOOKED,
    SCHEDULER_EVT_CANCELLED,
    SCHEDULER_EVT_RESCHEDULED,
    TICKETING_RPC_STATS,
    TICKETING_RPC_TICKETS,
)
from services.common.contracts.ticketing import TicketsReply, TicketsRequest
from services.common.deps import AppSettings, Broker, Context, Message, Pool, Relay
from services.common.outbox import OutboxRelay
from services.common.settings import Settings
from services.common.stats import add_stats_responder
from services.ticketing import operator_rpc, repository, tickets
from services.ticketing.metrics import ISSUE_FAILURES, TICKETS

log = structlog.get_logger(__name__)

QUEUE = "ticketing"
# With consumers.py's delays (1, 2, 5, 10, 30, 60, 120, 300 s, ...): about 25 minutes of retries.
MAX_DELIVER = 12
UNAVAILABLE = "unavailable: ticketing is temporarily unavailable, try again"
IDENTITY_TIMEOUT = 5.0

TicketKey = Annotated[Ed25519PrivateKey, Context("ticket_key")]


def utcnow() -> datetime:
    return datetime.now(UTC)


async def _person(broker: NatsBroker, person_id: str) -> PersonCard:
    reply = await broker.request(
        PersonRequest(person_id=person_id), IDENTITY_RPC_PERSON, timeout=IDENTITY_TIMEOUT
    )
    card = PersonCard.model_validate(await reply.decode())
    if card.error:
        raise RuntimeError(f"identity could not answer: {card.error}")
    return card


async def _issue(
    fact: BookingFact,
    broker: NatsBroker,
    pool: Pool,
    settings: Settings,
    key: Ed25519PrivateKey,
    relay: OutboxRelay,
) -> None:
    # No check for a settled booking first: that is a round trip on every fact for the few that
    # are redelivered or void, which `tickets.issue` recognises anyway (and returns None).
    try:
        card = await _person(broker, fact.person_id)
        channel = await route(broker, fact.wa_id)  # by SMS to who writes by SMS or USSD
    except Exception:
        if await tickets.settled(pool, fact.booking_id):
            return  # nothing to issue: such a fact need not wait for identity or the dialog
        raise
    delivery = tickets.Delivery(
        fact.wa_id, fact.lang, settings.vaccine_video_url, settings.notifier_partitions,
        channel=channel,
    )  # fmt: skip
    issued = await tickets.issue(pool, fact, card, key, delivery, utcnow())
    if issued is not None:
        TICKETS.labels("issued").inc()
        log.info("ticket issued", ticket_id=issued.ticket_id, booking_id=fact.booking_id)
        relay.wake()


async def _retrying(
    msg: Message, what: str, booking_id: int, work: Callable[[], Awaitable[None]]
) -> None:
    """Run `work`; a failure is delivered again after a growing delay (consumers.py), and the
    last one is counted here before it is dead-lettered."""
    try:
        await work()
    except Exception:
        if consumers.is_last_delivery(msg):
            ISSUE_FAILURES.inc()
            log.exception("giving up on a booking fact", fact=what, booking_id=booking_id)
        raise


async def on_booked(
    body: BookingConfirmed,
    msg: Message,
    broker: Broker,
    pool: Pool,
    settings: AppSettings,
    key: TicketKey,
    relay: Relay,
) -> None:
    await _retrying(
        msg, "booked", body.booking_id, lambda: _issue(body, broker, pool, settings, key, relay)
    )


async def on_rescheduled(
    body: BookingRescheduled,
    msg: Message,
    broker: Broker,
    pool: Pool,
    settings: AppSettings,
    key: TicketKey,
    relay: Relay,
) -> None:
    """The previous booking's ticket is revoked first: a person never holds two good tickets."""

    async def work() -> None:
        if await tickets.void(pool, body.previous.booking_id, "rescheduled", utcnow()):
            TICKETS.labels("revoked").inc()
        await _issue(body, broker, pool, settings, key, relay)

    await _retrying(msg, "rescheduled", body.booking_id, work)


async def on_cancelled(body: BookingCancelled, msg: Message, pool: Pool) -> None:
    async def work() -> None:
        if await tickets.void(pool, body.booking_id, f"cancelled: {body.reason}", utcnow()):
            TICKETS.labels("revoked").inc()

    await _retrying(msg, "cancelled", body.booking_id, work)


async def usable_tickets(body: TicketsRequest, pool: Pool) -> TicketsReply:
    try:
        return TicketsReply(tickets=await tickets.usable(pool, body.person_id, body.lang, utcnow()))
    except Exception:
        log.exception("tickets lookup failed")
        return TicketsReply(error=UNAVAILABLE)


async def stats(pool: asyncpg.Pool) -> dict[str, int]:
    return await repository.stats(pool, utcnow())


def build_router() -> NatsRouter:
    """A fresh router per broker: FastStream lets a router belong to one broker only."""
    router = consumers.router()
    router.subscriber(TICKETING_RPC_TICKETS, queue=QUEUE)(usable_tickets)
    operator_rpc.register(router, QUEUE)
    add_stats_responder(
        router,
        TICKETING_RPC_STATS,
        queue=QUEUE,
        service="ticketing",
        count=stats,
        tables=operator_rpc.tables,
    )
    for subject, durable, handler in (
        (SCHEDULER_EVT_BOOKED, "ticketing-booked", on_booked),
        (SCHEDULER_EVT_RESCHEDULED, "ticketing-rescheduled", on_rescheduled),
        (SCHEDULER_EVT_CANCELLED, "ticketing-cancelled", on_cancelled),
    ):
        consumers.durable_subscriber(
            router,
            subject,
            stream=SCHEDULER,
            durable=durable,
            max_deliver=MAX_DELIVER,
            ack_wait=60,
            batch_size=10,
            title=durable.removeprefix("ticketing-"),
        )(handler)
    return router
