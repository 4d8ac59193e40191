"""Durable JetStream consumers, declared one way in every service.

- The ack policy is NACK_ON_ERROR on every router (`router()`): a policy set on the broker never
  reaches the subscribers of a router included in it, and FastStream's default for NATS
  (REJECT_ON_ERROR) terminates a message on its first failure.
- A failed message comes back after a growing delay (`REDELIVERY_DELAYS`: 1, 2, 5, 10, 30 s ...),
  so the retries ride through a restart of the service it waits for instead of being spent in a
  few milliseconds. A consumer that takes one message at a time (a partition, for per-user order)
  waits 1, 2, 3, then 5 s between tries (`PARTITION_DELAYS`), with more of them: its partition
  waits meanwhile, so one user's messages stay in order.
- Its last delivery (the consumer's `max_deliver`) takes the dead-letter path: the message, its
  stream sequence and the last error go to DEAD_LETTERS, and it is terminated. A handler that has
  a better last resort (the dialog answers "busy, send it again") runs it itself on that delivery.

`durable_subscriber()` declares a consumer with these settings and records its `max_deliver`,
which the middleware reads back by the consumer's name.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import structlog
from faststream import AckPolicy, BaseMiddleware, StreamMessage
from faststream.exceptions import HandlerException, NackMessage, RejectMessage
from faststream.nats import ConsumerConfig, JStream, NatsBroker, NatsRouter, PullSub
from nats.aio.msg import Msg
from opentelemetry import trace
from prometheus_client import Counter, Histogram
from pydantic import ValidationError

from services.common import tracing
from services.common.contracts.deadletters import DeadMessage
from services.common.contracts.streams import DEAD_LETTERS
from services.common.contracts.subjects import DEADLETTER_CONSUMER
from services.common.jetstream import publish_durably

log = structlog.get_logger(__name__)

# Seconds to wait before delivery 2, 3, ...; the last value repeats.
REDELIVERY_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
# The same for a consumer that takes one message at a time (max_ack_pending=1, for order): its
# whole partition waits for the message, so it is tried often rather than late, and given more
# deliveries instead. Seen under chaos: with the delays above, a message that met a dependency
# down four times held 1/8 of all users for 48 s, and their backlog took longer still to drain.
PARTITION_DELAYS = (1.0, 2.0, 3.0, 5.0)

REDELIVERIES = Counter(
    "vaksin_redeliveries_total", "Failed messages put back for a later delivery", ["consumer"]
)
DEAD_LETTERED = Counter(
    "vaksin_dead_letters_total", "Messages that failed every delivery", ["consumer", "reason"]
)
# Per subscription (its subject), in this middleware that every message passes anyway: a few
# microseconds, where FastStream's Prometheus middleware cost about 55 per message (6 % of the
# CPU of a first turn, issue 13).
HANDLED = Counter(
    "vaksin_messages_handled_total",
    "Messages handled, by subscription and outcome (ok, retry, dead, error)",
    ["subject", "outcome"],
)
HANDLING_SECONDS = Histogram(
    "vaksin_message_handling_seconds",
    "Time a handler took, by subscription",
    ["subject"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)

_max_deliver: dict[str, int] = {}  # durable name -> its max_deliver, as declared
_ack_wait: dict[str, float] = {}  # durable name -> its ack_wait (s): a long handler says "working"
_partitions: set[str] = set()  # durables that take one message at a time


def redelivery_delay(delivered: int, *, holds_partition: bool = False) -> float:
    """The wait before the next delivery of a message that failed on delivery `delivered`."""
    delays = PARTITION_DELAYS if holds_partition else REDELIVERY_DELAYS
    return delays[min(max(delivered, 1), len(delays)) - 1]


def is_last_delivery(msg: StreamMessage[Any]) -> bool:
    """For handlers with a last resort of their own (the dialog's 'busy' reply)."""
    meta = msg.raw_message.metadata
    return meta.num_delivered >= _max_deliver.get(meta.consumer, 1)


def router(**kwargs: Any) -> NatsRouter:
    """A router whose subscribers NACK a failed message: the `Redelivery` middleware, which
    `service.make_broker` puts on every broker, says after how long."""
    return NatsRouter(ack_policy=AckPolicy.NACK_ON_ERROR, **kwargs)


def durable_subscriber(
    router: NatsRouter,
    subject: str,
    *,
    stream: JStream,
    durable: str,
    max_deliver: int,
    ack_wait: float = 30,
    batch_size: int = 10,
    max_ack_pending: int | None = None,
    title: str | None = None,
    description: str | None = None,
) -> Callable[[Callable[..., Any]], Any]:
    """Declare a durable pull consumer; returns the decorator that attaches its handler."""
    _max_deliver[durable] = max_deliver
    _ack_wait[durable] = ack_wait
    if max_ack_pending == 1:
        _partitions.add(durable)
    config = ConsumerConfig(max_deliver=max_deliver, ack_wait=ack_wait)
    if max_ack_pending is not None:
        config.max_ack_pending = max_ack_pending
    return router.subscriber(
        subject,
        stream=stream,
        durable=durable,
        pull_sub=PullSub(batch_size=batch_size, timeout=5.0),
        config=config,
        title=title or durable,
        description=description,
    )


def partition_subscribers(
    router: NatsRouter,
    subject: str,
    *,
    stream: JStream,
    durable: str,
    partitions: int,
    max_deliver: int,
    handler: Callable[..., Any],
    title: str | None = None,
) -> None:
    """One durable per partition (`subject` and `durable` formatted with `partition`), each taking
    one message at a time across every replica (`max_ack_pending=1`): a user's messages, which
    always go to the same partition, are handled in order while partitions run in parallel. A
    short `ack_wait`: a message lost with its process (or its ack with nats-server) holds up its
    partition until then, and a slow handler keeps its message by saying it is working. `title`
    (also formatted) names them in the AsyncAPI document; the durable's name by default."""
    for partition in range(partitions):
        durable_subscriber(
            router,
            subject.format(partition=partition),
            stream=stream,
            durable=durable.format(partition=partition),
            max_deliver=max_deliver,
            ack_wait=10,
            batch_size=1,
            max_ack_pending=1,
            title=(title or durable).format(partition=partition),
        )(handler)


def _is_jetstream(raw: object) -> bool:
    return isinstance(raw, Msg) and bool(raw.reply) and raw.reply.startswith("$JS.ACK.")


class Redelivery(BaseMiddleware):
    """Turns a handler's failure into a delayed NAK, or a dead letter on the last delivery."""

    async def consume_scope(self, call_next: Callable[..., Any], msg: StreamMessage[Any]) -> Any:
        raw = msg.raw_message
        keep_alive = _KeepAlive.start(raw) if _is_jetstream(raw) else None
        if keep_alive is not None and tracing.enabled():
            _mark_delivery(raw)
        subject = getattr(raw, "subject", "") or ""
        started, outcome = time.perf_counter(), "ok"
        try:
            return await call_next(msg)
        except HandlerException:
            raise  # the handler settled the message itself
        except Exception as exc:
            outcome = "error"
            if keep_alive is None:
                raise  # core request/reply: nothing to redeliver
            meta = raw.metadata
            consumer, delivered = meta.consumer, meta.num_delivered
            # Also a body that does not decode: a ValidationError cannot be told apart from one
            # raised by a dependency's reply, which may well pass, so it too is tried again.
            if delivered < _max_deliver.get(consumer, 1):
                delay = redelivery_delay(delivered, holds_partition=consumer in _partitions)
                REDELIVERIES.labels(consumer).inc()
                log.warning(
                    "message failed; delivering it again later",
                    consumer=consumer,
                    delivery=delivered,
                    in_seconds=delay,
                    error=_describe(exc),
                )
                if tracing.enabled():
                    trace.get_current_span().add_event(
                        "delivered again later", {"vaksin.retry_in_seconds": delay}
                    )
                outcome = "retry"
                raise NackMessage(delay=delay) from exc
            outcome = "dead"
            await self._dead_letter(raw, consumer, exc)
            raise RejectMessage() from exc
        finally:
            if keep_alive is not None:
                keep_alive.stop()
            HANDLED.labels(subject, outcome).inc()
            HANDLING_SECONDS.labels(subject).observe(time.perf_counter() - started)

    async def _dead_letter(self, raw: Msg, consumer: str, exc: Exception) -> None:
        subject, dead, headers = dead_letter(raw, exc, "failed")
        broker: NatsBroker = self.context.get("broker")
        try:
            await publish_durably(
                broker.publish, dead, subject, stream=DEAD_LETTERS.name, headers=headers
            )
        except Exception:
            # Still in its stream (terminated, with JetStream's advisory): found by sequence.
            log.exception("could not store the dead letter", consumer=consumer)


def _mark_delivery(raw: Msg) -> None:
    """On the span of this delivery (FastStream's, outside this middleware): which delivery it
    is. Every delivery continues the trace context stored in the message's headers, so a retry
    is a sibling of the first attempt in the same trace, marked `vaksin.retry`."""
    meta = raw.metadata
    span = trace.get_current_span()
    span.set_attribute("vaksin.consumer", meta.consumer)
    span.set_attribute("vaksin.delivery", meta.num_delivered)
    if meta.num_delivered > 1:
        span.set_attribute("vaksin.retry", True)


class _KeepAlive:
    """Tells the server a message is still being worked on, every half `ack_wait`: a short
    `ack_wait` (so that a message lost with its process comes back soon) does not make a slow
    handler's message come back while it still runs."""

    def __init__(self, raw: Msg, every: float) -> None:
        self.raw, self.every = raw, every
        self.loop = asyncio.get_running_loop()
        self.timer = self.loop.call_later(every, self._touch)
        self.tasks: set[asyncio.Task[None]] = set()  # held: the loop keeps only weak references

    @classmethod
    def start(cls, raw: Msg) -> _KeepAlive:
        consumer = raw.metadata.consumer
        return cls(raw, _ack_wait.get(consumer, 30.0) / 2)

    def _touch(self) -> None:
        task = self.loop.create_task(self._progress())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        self.timer = self.loop.call_later(self.every, self._touch)

    async def _progress(self) -> None:
        with contextlib.suppress(Exception):  # NATS away: the server redelivers it, as it must
            await self.raw.in_progress()

    def stop(self) -> None:
        self.timer.cancel()


def dead_letter(raw: Msg, exc: Exception, reason: str) -> tuple[str, DeadMessage, dict[str, str]]:
    """The dead letter of a JetStream message that failed for good: subject, body, headers
    (Nats-Msg-Id = consumer and stream sequence, so storing it twice keeps one). Counted and
    logged here; the caller publishes it to DEAD_LETTERS."""
    meta = raw.metadata
    consumer, seq = meta.consumer, meta.sequence.stream
    DEAD_LETTERED.labels(consumer, reason).inc()
    log.error(
        "message failed for good; dead-lettered",
        consumer=consumer,
        delivery=meta.num_delivered,
        reason=reason,
        error=_describe(exc),
    )
    dead = DeadMessage.of(
        consumer,
        raw.data,
        _describe(exc),
        datetime.now(UTC),
        subject=raw.subject,
        stream_seq=seq,
        delivered=meta.num_delivered,
    )
    return DEADLETTER_CONSUMER.format(durable=consumer), dead, {"Nats-Msg-Id": f"{consumer}:{seq}"}


def _describe(exc: Exception) -> str:
    """The error's type and its first line: no payload (a ValidationError quotes the input)."""
    if isinstance(exc, ValidationError):
        return f"ValidationError: {exc.error_count()} error(s) in {exc.title}"
    first = str(exc).splitlines()[0][:300] if str(exc) else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
