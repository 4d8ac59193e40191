"""An operator's decision on an intake request reaches the user: `identity.evt.intake_decided`
updates their conversation (approved: verified, so VAKSIN goes straight to the screening) and
sends the news, as a template when the 24-hour window has closed. Once per decision: the event's
id is recorded like an inbound message's, in the same transaction."""

from __future__ import annotations

import asyncpg
import structlog
from faststream.nats import NatsRouter

from services.common import consumers
from services.common.contracts.identity import IntakeDecided
from services.common.contracts.notifier import SendMessage, TemplateFallback, TextMessage
from services.common.contracts.streams import IDENTITY
from services.common.contracts.subjects import IDENTITY_EVT_INTAKE_DECIDED
from services.common.deps import AppSettings, Pool, Relay
from services.ingress import repository as repo
from services.ingress.catalog import t
from services.ingress.dialog import Conversation, Step
from services.ingress.dialog.registration import verified_conversation

log = structlog.get_logger(__name__)


def decided(event: IntakeDecided) -> tuple[Conversation, SendMessage]:
    """The user's new conversation and the message that tells them (pure)."""
    lang = event.lang
    if event.approved:
        conv = verified_conversation(lang, event)
        body, params = t(lang, "intake_approved"), []
    else:
        conv = Conversation(Step.IDLE, lang)
        reason = event.reason or "-"
        body, params = t(lang, "intake_rejected", reason=reason), [reason]
    name = "intake_approved" if event.approved else "intake_rejected"
    message = SendMessage(
        command_id=f"intake-decided:{event.intake_id}",
        to=event.wa_id,
        message=TextMessage(body=body),
        template=TemplateFallback(name=name, lang=lang, params=params),
    )
    return conv, message


async def on_intake_decided(
    event: IntakeDecided, pool: Pool, settings: AppSettings, relay: Relay
) -> None:
    conv, message = decided(event)
    async with pool.acquire() as conn, conn.transaction():
        if not await repo.mark_processed(conn, f"intake-decided:{event.intake_id}"):
            return
        await _apply(conn, event, conv, message, settings.notifier_partitions)
    log.info("intake decision delivered", intake_id=event.intake_id, approved=event.approved)
    relay.wake()


async def _apply(
    conn: asyncpg.Connection,
    event: IntakeDecided,
    conv: Conversation,
    message: SendMessage,
    partitions: int,
) -> None:
    await repo.load_conversation(conn, event.wa_id)  # row lock: the user may be writing right now
    await repo.save_conversation(conn, event.wa_id, conv)
    await repo.enqueue_notice(conn, message, event.lang, partitions)


def add_intake_subscriber(router: NatsRouter) -> None:
    consumers.durable_subscriber(
        router,
        IDENTITY_EVT_INTAKE_DECIDED,
        stream=IDENTITY,
        durable="dialog-intake-decided",
        max_deliver=10,
        ack_wait=30,
        batch_size=1,
        title="intake-decided",
    )(on_intake_decided)
