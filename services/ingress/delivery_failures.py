"""A message that will not reach its user (`notifier.evt.send_failed`) must not leave them waiting
in silence. The dialog notes it on their conversation, so their next message is answered with an
apology and how to see where they are (STATUS) before the answer itself; and when the failure may
pass (Meta kept failing, the 24-hour window had closed, a `failed` status), it sends one nudge
(template `conversation_resume` when the window is closed) asking them to reply, at most once an
hour per user. Failures that would only fail again (undeliverable number, invalid message) get no
nudge. A failed nudge is never chased: no loop."""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from faststream.nats import NatsRouter

from services.common import consumers, outbox
from services.common.contracts.notifier import SendFailed, SendMessage, TemplateFallback
from services.common.contracts.streams import NOTIFIER
from services.common.contracts.subjects import NOTIFIER_EVT_SEND_FAILED, send_subject
from services.common.deps import AppSettings, Pool, Relay
from services.ingress import repository as repo
from services.ingress.dialog import Conversation
from services.ingress.dialog.model import text
from services.ingress.metrics import DELIVERY_FAILURES

log = structlog.get_logger(__name__)

NUDGE_PREFIX = "dialog:resume:"
NUDGE_TEMPLATE = "conversation_resume"
NUDGE_AT_MOST_EVERY = timedelta(hours=1)
# Reasons a later message may still get through (see contracts/notifier.py SendFailed.reason).
PASSING = frozenset({"attempts_exhausted", "window_closed", "failed_status"})


def noted(conv: Conversation, failure: SendFailed) -> tuple[Conversation, SendMessage | None]:
    """The conversation with the failure noted, and the nudge to send, if one is due (pure)."""
    updated = conv.at(conv.step, undelivered=failure.reason)
    if failure.reason not in PASSING:
        return updated, None
    last = conv.data.get("nudged_at")
    if last and failure.failed_at - datetime.fromisoformat(last) < NUDGE_AT_MOST_EVERY:
        return updated, None
    nudge = SendMessage(
        command_id=f"{NUDGE_PREFIX}{failure.command_id}"[:200],
        to=failure.to,
        message=text(conv.lang, "undelivered_nudge"),
        template=TemplateFallback(name=NUDGE_TEMPLATE, lang=conv.lang),
    )
    return updated.at(conv.step, nudged_at=failure.failed_at.isoformat()), nudge


async def on_send_failed(failure: SendFailed, pool: Pool, settings: AppSettings,
                         relay: Relay) -> None:  # fmt: skip
    DELIVERY_FAILURES.labels(failure.reason).inc()
    if failure.command_id.startswith(NUDGE_PREFIX):
        return
    async with pool.acquire() as conn, conn.transaction():
        if not await repo.mark_processed(conn, f"send-failed:{failure.command_id}"):
            return
        conv = await repo.load_conversation(conn, failure.to)
        if conv == Conversation():
            return  # never wrote to us: nothing is waiting
        updated, nudge = noted(conv, failure)
        await repo.save_conversation(conn, failure.to, updated)
        if nudge is not None:
            subject = send_subject(failure.to, settings.notifier_partitions)
            await outbox.enqueue(conn, "ingress", subject, nudge, NOTIFIER.name)
    log.info("undelivered message noted", reason=failure.reason, nudged=nudge is not None)
    if nudge is not None:
        relay.wake()


def add_delivery_failure_subscriber(router: NatsRouter) -> None:
    consumers.durable_subscriber(
        router,
        NOTIFIER_EVT_SEND_FAILED,
        stream=NOTIFIER,
        durable="dialog-send-failed",
        max_deliver=10,
        ack_wait=30,
        batch_size=10,
        title="send-failed",
    )(on_send_failed)
