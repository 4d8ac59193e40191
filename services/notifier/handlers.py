"""JetStream subscribers of the notifier: `notifier.cmd.send.<p>` (send one WhatsApp message, at
most once per command id, retried on transient Graph errors) and `wa.inbound.status` (Meta's
delivery statuses, applied so that a message's status never moves backwards).

Each send partition is a durable pull consumer with `max_ack_pending=1`: one message of a
partition is in flight at a time, so one user's messages leave in the order they were published,
including while one of them waits for a retry.
"""

from __future__ import annotations

import random
from typing import Annotated

import structlog
from faststream import Context
from faststream.exceptions import NackMessage
from faststream.nats import ConsumerConfig, NatsMessage, NatsRouter, PullSub
from prometheus_client import Counter

from services.common.contracts.notifier import SendMessage
from services.common.contracts.streams import NOTIFIER, WA_INBOUND
from services.common.contracts.subjects import NOTIFIER_CMD_SEND, WA_INBOUND_STATUS
from services.common.contracts.whatsapp import DeliveryStatus
from services.common.db import Pool
from services.common.settings import Settings
from services.notifier import repository
from services.notifier.domain import (
    ErrorClass,
    classify_error,
    normalize_status,
    retry_delay,
    to_graph_payload,
)
from services.notifier.graph import GraphClient, GraphError
from services.notifier.repository import StatusOutcome

log = structlog.get_logger(__name__)

SEND_MAX_DELIVER = 8
SEND_ACK_WAIT = 60  # seconds; well above the Graph client's 15 s timeout
STATUS_MAX_DELIVER = 5
# A status may overtake the recording of its wamid (Meta answers, then webhooks, then we write):
# an unknown wamid is retried a few times this far apart before it is dropped as not ours.
UNKNOWN_WAMID_RETRY_DELAY = 2.0

Graph = Annotated[GraphClient, Context("graph")]

SENDS = Counter(
    "notifier_sends_total",
    "Send commands handled, by message kind and outcome",
    ["kind", "outcome"],  # outcome: accepted, duplicate, retry, failed
)
RETRIES = Counter(
    "notifier_send_retries_total",
    "Transient Graph errors that scheduled a redelivery, by Meta error code",
    ["code"],
)
STATUS_UPDATES = Counter(
    "notifier_status_updates_total",
    "Delivery status webhooks handled, by status and outcome",
    ["status", "outcome"],  # outcome: applied, stale, unknown, retry, ignored
)


async def send_message(cmd: SendMessage, msg: NatsMessage, pool: Pool, graph: Graph) -> None:
    kind = cmd.message.kind
    bound = log.bind(command_id=cmd.command_id, kind=kind)
    payload = to_graph_payload(cmd)
    outbound = await repository.claim(pool, cmd.command_id, cmd.to, kind, payload)
    if outbound.wamid is not None or outbound.status == "failed":
        # Redelivered or republished command that already reached a final answer: never twice.
        SENDS.labels(kind, "duplicate").inc()
        bound.info("send command already handled", status=outbound.status)
        return

    try:
        wamid = await graph.send(payload)
    except GraphError as exc:
        await _on_send_error(exc, msg, pool, cmd.command_id, kind, bound)
        return
    await repository.record_accepted(pool, cmd.command_id, wamid)
    SENDS.labels(kind, "accepted").inc()
    bound.info("message accepted by graph")


async def _on_send_error(
    exc: GraphError,
    msg: NatsMessage,
    pool: Pool,
    command_id: str,
    kind: str,
    bound: structlog.stdlib.BoundLogger,
) -> None:
    delivered = _num_delivered(msg)
    error_class = classify_error(exc.http_status, exc.code)
    details = {
        "http_status": exc.http_status,
        "code": exc.code,
        "attempt": delivered,
        "fbtrace_id": exc.fbtrace_id,
    }
    if error_class is ErrorClass.TRANSIENT and delivered < SEND_MAX_DELIVER:
        await repository.record_retry(pool, command_id, exc.code)
        delay = retry_delay(delivered, exc.retry_after, jitter=random.random())
        SENDS.labels(kind, "retry").inc()
        RETRIES.labels(str(exc.code)).inc()
        bound.warning("graph send failed, will retry", delay=round(delay, 2), **details)
        raise NackMessage(delay=delay)
    await repository.record_failed(pool, command_id, exc.code)
    SENDS.labels(kind, "failed").inc()
    bound.error("graph send failed for good", error_class=str(error_class), **details)


def _num_delivered(msg: NatsMessage) -> int:
    metadata = getattr(msg.raw_message, "metadata", None)
    return int(getattr(metadata, "num_delivered", 1) or 1)


async def apply_delivery_status(status: DeliveryStatus, msg: NatsMessage, pool: Pool) -> None:
    tracked = normalize_status(status.status)
    if tracked is None:
        STATUS_UPDATES.labels(status.status[:32], "ignored").inc()
        return
    error_code = status.error_codes[0] if status.error_codes else None
    outcome = await repository.apply_status(pool, status.wamid, tracked, error_code)
    if outcome is StatusOutcome.UNKNOWN and _num_delivered(msg) < STATUS_MAX_DELIVER:
        STATUS_UPDATES.labels(tracked, "retry").inc()
        raise NackMessage(delay=UNKNOWN_WAMID_RETRY_DELAY)
    STATUS_UPDATES.labels(tracked, str(outcome)).inc()
    if tracked == "failed":
        log.warning("message failed after acceptance", error_code=error_code, outcome=str(outcome))


def build_router(settings: Settings) -> NatsRouter:
    router = NatsRouter()
    for partition in range(settings.notifier_partitions):
        router.subscriber(
            NOTIFIER_CMD_SEND.format(partition=partition),
            stream=NOTIFIER,
            durable=f"notifier-send-p{partition}",
            pull_sub=PullSub(batch_size=1),
            config=ConsumerConfig(
                max_deliver=SEND_MAX_DELIVER, ack_wait=SEND_ACK_WAIT, max_ack_pending=1
            ),
            title=f"notifier-send-p{partition}",
        )(send_message)
    router.subscriber(
        WA_INBOUND_STATUS,
        stream=WA_INBOUND,
        durable="notifier-status",
        pull_sub=PullSub(batch_size=10),
        config=ConsumerConfig(max_deliver=STATUS_MAX_DELIVER, ack_wait=30),
    )(apply_delivery_status)
    return router
