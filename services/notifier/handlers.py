"""JetStream consumers of the notifier, declared on the FastStream broker (the AsyncAPI document,
KEDA) and consumed by the engine (services/notifier/engine.py) with nats-py directly: FastStream's
per-message path costs more than the work itself, and its batch mode stalls a lone message until
the batch times out. The handlers here take a batch of raw messages and ack each one.

- `notifier.cmd.send.<p>` (durables `notifier-send-p<p>`, one command in flight per partition):
  the engine's intake queues each command in Postgres.
- `wa.inbound.status` (durable `notifier-status`, in batches): Meta's delivery statuses. A status
  never moves a message backwards; a status for a wamid we never recorded names the user's
  attempt whose answer was lost; a `failed` status sends the message again (retryable code),
  as its template (131047, once), skips it (131047 to an optional message), or dead-letters it.
- `wa.inbound.message.*` (durable `notifier-inbound`, in batches): the users' messages, for the
  24-hour window, for the number's throughput budget (Meta counts them: each recent one is
  charged a slot, as debt), and to mark each read with the typing indicator while the dialog
  works.
- `notifier.rpc.stats` (core request/reply, queue group `notifier`): its counts, for `vaksin stats`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg
import structlog
from faststream.nats import JStream, NatsRouter, PullSub
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from pydantic import ValidationError

from services.common import consumers
from services.common.contracts.notifier import DeadLetter, SendError, SendFailed, SendMessage
from services.common.contracts.streams import NOTIFIER, WA_INBOUND
from services.common.contracts.subjects import (
    NOTIFIER_RPC_STATS,
    WA_INBOUND_MESSAGE_ALL,
    WA_INBOUND_STATUS,
)
from services.common.contracts.whatsapp import DeliveryStatus, InboundMessage
from services.common.settings import Settings
from services.common.stats import add_stats_responder
from services.notifier import figures
from services.notifier import repository as repo
from services.notifier.domain import (
    FAILED,
    MAX_ATTEMPTS,
    STATUS_ORDER,
    WINDOW_CLOSED_CODE,
    failed_status_retryable,
    inbound_slots,
    normalize_status,
    skippable,
)
from services.notifier.engine import SendEngine, send_consumer_config
from services.notifier.metrics import (
    DEAD_LETTERS,
    IN_DOUBT,
    RETRIES,
    SENDS,
    STATUS_UPDATES,
    TEMPLATE_FALLBACKS,
)

log = structlog.get_logger(__name__)

# Delays of 1, 2, 5, 10, 30, 60, 120 s between deliveries (services/common/consumers.py): about four
# minutes, through a restart of Postgres.
STATUS_MAX_DELIVER = 8
# A status may overtake the recording of its wamid (Meta answers, then webhooks, then we write):
# an unknown wamid is retried a few times this far apart before it is dropped as not ours.
UNKNOWN_WAMID_RETRY_DELAY = 2.0
INBOUND_MAX_DELIVER = 8
# The typing indicator is shown only while an answer can still be coming.
TYPING_MAX_AGE = 20.0
READ_MAX_AGE = 3600.0
STATUS_DURABLE = "notifier-status"
INBOUND_DURABLE = "notifier-inbound"
QUEUE = "notifier"  # core request/reply: notifier.rpc.stats


def status_consumer_config() -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=STATUS_DURABLE,
        filter_subject=WA_INBOUND_STATUS,
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        max_deliver=STATUS_MAX_DELIVER,
        ack_wait=30,
    )


def inbound_consumer_config() -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=INBOUND_DURABLE,
        filter_subject=WA_INBOUND_MESSAGE_ALL,
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        max_deliver=INBOUND_MAX_DELIVER,
        ack_wait=30,
    )


# --- delivery statuses ----------------------------------------------------------------------------


async def apply_delivery_statuses(raws: list[Msg], pool: asyncpg.Pool, engine: SendEngine) -> None:
    progress: list[tuple[Msg, DeliveryStatus, str]] = []
    failures: list[tuple[Msg, DeliveryStatus]] = []
    for raw in raws:
        try:
            status = DeliveryStatus.model_validate_json(raw.data)
        except ValidationError:
            STATUS_UPDATES.labels("invalid", "ignored").inc()
            await raw.term()
            continue
        tracked = normalize_status(status.status)
        if tracked is None:
            STATUS_UPDATES.labels(status.status[:32], "ignored").inc()
            await raw.ack()
        elif tracked == FAILED:
            failures.append((raw, status))
        else:
            progress.append((raw, status, tracked))

    await _apply_progress(progress, pool, engine)
    for raw, status in failures:
        await _apply_failed(raw, status, pool, engine)


async def _apply_progress(
    progress: list[tuple[Msg, DeliveryStatus, str]], pool: asyncpg.Pool, engine: SendEngine
) -> None:
    # One message's statuses form a chain: its most advanced one in the batch is all that counts.
    best: dict[str, str] = {}
    recipients: dict[str, str] = {}
    for _, status, tracked in progress:
        current = best.get(status.wamid)
        if current is None or STATUS_ORDER.index(tracked) > STATUS_ORDER.index(current):
            best[status.wamid] = tracked
        if status.recipient_id:
            recipients[status.wamid] = status.recipient_id
    outcomes = await repo.apply_statuses(pool, best)
    for wamid, outcome in list(outcomes.items()):
        if outcome is not repo.StatusOutcome.UNKNOWN or wamid not in recipients:
            continue
        claimed = await repo.claim_unknown_wamid(
            pool, wamid, recipients[wamid], engine.settings.whatsapp_pair_interval
        )
        if claimed is not None:
            if claimed.in_doubt:
                IN_DOUBT.labels("status").inc()
                log.info("a status settled an attempt in doubt", command_id=claimed.command_id)
            STATUS_UPDATES.labels(best[wamid], "claimed").inc()
            engine.wake()
        # Claimed, or recorded by its sender meanwhile: either way, apply it now.
        outcomes.update(await repo.apply_statuses(pool, {wamid: best[wamid]}))
    for raw, status, tracked in progress:
        outcome = outcomes[status.wamid]
        if tracked != best[status.wamid]:
            outcome = repo.StatusOutcome.STALE  # superseded within the batch
        if outcome is repo.StatusOutcome.UNKNOWN and _delivered(raw) < STATUS_MAX_DELIVER:
            STATUS_UPDATES.labels(tracked, "retry").inc()
            await raw.nak(delay=UNKNOWN_WAMID_RETRY_DELAY)
            continue
        STATUS_UPDATES.labels(tracked, str(outcome)).inc()
        await raw.ack()


async def _apply_failed(
    raw: Msg, status: DeliveryStatus, pool: asyncpg.Pool, engine: SendEngine
) -> None:
    """A `failed` status: send again (retryable code), as the template (131047, once), skipped
    (131047 to an optional message), or dead letter; decided and recorded in one transaction
    with the status itself."""
    code = status.error_codes[0] if status.error_codes else None
    fallback = resend = False
    skipped: str | None = None  # the kind of the optional message skipped
    dead_reason: str | None = None
    async with pool.acquire() as conn, conn.transaction():
        outcome, failed = await repo.mark_failed_by_status(conn, status.wamid, code)
        if outcome is repo.StatusOutcome.UNKNOWN and status.recipient_id:
            claimed = await repo.claim_unknown_wamid(
                conn, status.wamid, status.recipient_id, engine.settings.whatsapp_pair_interval
            )
            if claimed is not None:
                if claimed.in_doubt:
                    IN_DOUBT.labels("status").inc()
                outcome, failed = await repo.mark_failed_by_status(conn, status.wamid, code)
        if failed is not None:
            cmd = _command(failed.command)
            as_template = failed.use_template or failed.sent_as == "template"
            if (
                code == WINDOW_CLOSED_CODE
                and cmd is not None
                and cmd.template is not None
                and not as_template
            ):
                await repo.queue_resend(conn, failed, use_template=True, error_code=code)
                fallback = True
            elif code == WINDOW_CLOSED_CODE and cmd is not None and skippable(cmd):
                await repo.mark_skipped(conn, failed.id)
                skipped = cmd.message.kind
            elif (
                failed_status_retryable(code) and cmd is not None and failed.attempts < MAX_ATTEMPTS
            ):
                await repo.queue_resend(conn, failed, use_template=as_template, error_code=code)
                resend = True
            else:
                dead_reason = "window_closed" if code == WINDOW_CLOSED_CODE else "failed_status"
                await repo.dead_letter_failed(conn, *_dead_letter(failed, dead_reason, code))
    if outcome is repo.StatusOutcome.UNKNOWN and _delivered(raw) < STATUS_MAX_DELIVER:
        STATUS_UPDATES.labels(FAILED, "retry").inc()
        await raw.nak(delay=UNKNOWN_WAMID_RETRY_DELAY)
        return
    await raw.ack()
    STATUS_UPDATES.labels(FAILED, str(outcome)).inc()
    if fallback:
        TEMPLATE_FALLBACKS.labels("131047").inc()
    if resend:
        RETRIES.labels(str(code)).inc()
    if skipped is not None:
        SENDS.labels(skipped, "skipped").inc()
        log.info("optional message not delivered, window closed: skipped", error_code=code)
    if dead_reason is not None:
        DEAD_LETTERS.labels(dead_reason).inc()
        engine.relay_wake()
        log.error("message failed after acceptance", error_code=code, reason=dead_reason)
    elif failed is not None:
        log.warning("message failed after acceptance; sending again", error_code=code)
    engine.wake()


def _command(command: dict[str, Any] | None) -> SendMessage | None:
    if command is None:
        return None
    try:
        return SendMessage.model_validate(command)
    except ValidationError:
        return None


def _dead_letter(
    failed: repo.FailedMessage, reason: str, code: int | None
) -> tuple[DeadLetter, SendFailed]:
    now = datetime.now(UTC)
    command_id = failed.origin or failed.command_id
    error = SendError(code=code, message="failed status webhook")
    dead = DeadLetter(
        command_id=command_id,
        to=failed.recipient,
        reason=reason,
        command=failed.command or {},
        error=error,
        attempts=failed.attempts,
        failed_at=now,
    )
    event = SendFailed(
        command_id=command_id, to=failed.recipient, reason=reason, error_code=code, failed_at=now
    )
    return dead, event


def _delivered(raw: Msg) -> int:
    try:
        return int(raw.metadata.num_delivered or 1)
    except Exception:
        return 1


# --- inbound messages: the 24-hour window, mark as read ---------------------------------------


async def track_inbound_messages(raws: list[Msg], pool: asyncpg.Pool, engine: SendEngine) -> None:
    inbound: list[tuple[Msg, InboundMessage]] = []
    for raw in raws:
        try:
            message = InboundMessage.model_validate_json(raw.data)
        except ValidationError:
            await raw.term()
            continue
        if message.channel != "whatsapp":  # SMS or USSD: no WhatsApp window, nothing to mark read
            await raw.ack()
            continue
        inbound.append((raw, message))
    latest: dict[str, datetime] = {}
    for _, message in inbound:
        at = datetime.fromtimestamp(message.timestamp, UTC)
        latest[message.wa_id] = max(at, latest.get(message.wa_id, at))
    # A failure leaves them unsettled: delivered again later, or dead-lettered (engine.py).
    last_sent = await repo.record_inbound(pool, latest)
    for raw, _ in inbound:
        await raw.ack()

    # Meta counts them in the number's throughput: the sends after them wait (never this loop).
    now = datetime.now(UTC)
    messages = (message for _, message in inbound)
    engine.budget.charge(inbound_slots(messages, engine.settings.whatsapp_phone_number_id, now))

    # Typing only on a user's latest message, while no answer has gone out since and one can
    # still be coming; every message gets its blue ticks.
    newest: dict[str, str] = {}
    for _, message in inbound:
        newest[message.wa_id] = message.wamid
    reads = []
    for _, message in inbound:
        at = datetime.fromtimestamp(message.timestamp, UTC)
        if (now - at).total_seconds() > READ_MAX_AGE:
            continue  # an old message replayed (a new consumer): its blue ticks are moot
        sent = last_sent.get(message.wa_id)
        typing = (
            newest[message.wa_id] == message.wamid
            and (sent is None or sent < at)
            and (now - at).total_seconds() < TYPING_MAX_AGE
        )
        reads.append((message.wamid, typing))
    engine.mark_read(reads)


# --- the declarations -----------------------------------------------------------------------------


def build_router(settings: Settings) -> NatsRouter:
    """Every consumer of the notifier, declared without a handler: FastStream documents them
    and never consumes them (the engine does, with these same configurations). Only the stats
    rpc is FastStream's own."""
    router = consumers.router()
    add_stats_responder(
        router,
        NOTIFIER_RPC_STATS,
        queue=QUEUE,
        service="notifier",
        count=repo.stats,
        tables=figures.tables,
    )
    for partition in range(settings.notifier_partitions):
        _declare(
            router,
            send_consumer_config(partition),
            NOTIFIER,
            "SendMessage (services/common/contracts/notifier.py): one message to one user. "
            "One command of the partition in flight across all replicas; queued in Postgres, "
            "then sent in order per user.",
        )
    _declare(
        router,
        status_consumer_config(),
        WA_INBOUND,
        "DeliveryStatus (services/common/contracts/whatsapp.py), in batches: a message's "
        "status never moves backwards; failed ones are sent again, skipped (an optional "
        "message, window closed) or dead-lettered.",
    )
    _declare(
        router,
        inbound_consumer_config(),
        WA_INBOUND,
        "InboundMessage (services/common/contracts/whatsapp.py), in batches: the user's "
        "24-hour window; a slot of the number's throughput budget (Meta counts inbound "
        "messages); each message marked read, with the typing indicator.",
    )
    return router


def _declare(router: NatsRouter, config: ConsumerConfig, stream: JStream, description: str) -> None:
    assert config.durable_name and config.filter_subject
    router.subscriber(
        config.filter_subject,
        stream=stream,
        durable=config.durable_name,
        pull_sub=PullSub(batch_size=config.max_ack_pending or 1),
        config=ConsumerConfig(
            max_deliver=config.max_deliver,
            ack_wait=config.ack_wait,
            max_ack_pending=config.max_ack_pending,
        ),
        title=config.durable_name,
        description=description,
    )
