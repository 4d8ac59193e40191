"""The send engine: from `notifier.cmd.send.<p>` to Meta, in order per user, within Meta's limits,
with nothing lost and nothing sent twice that we can avoid.

Why not one JetStream message in flight per partition (the first notifier): a message waiting for
its retry (NACK with delay) held back every user of its partition, a pair-rate wait of one chatty
user did the same, and 1,000 sends/s over 8 partitions would need each send under 8 ms. So the
command stream is only the way in; Postgres is the queue.

1. Intake (one loop per partition, raw nats-py): the durable `notifier-send-p<N>` keeps
   `max_ack_pending=1`, so across every replica a partition's commands are taken one at a time,
   in publish order. Each is inserted into `notifier.outbound_message` (`queued`, its `seq` from
   a sequence: the publish order of one user, whose commands share a partition) and only then
   acked. A redelivery finds its row and is a no-op. Intake is a few hundred microseconds, so the
   one-at-a-time partition is never the bottleneck. (FastStream's per-message path costs about
   three times the whole intake: all the notifier's subscribers, the status and inbound batches
   too, are declared on the broker for the AsyncAPI document and for KEDA, and consumed here.)
2. Dispatch (one loop per replica): leases the *heads* of the users' queues, i.e. a user's oldest
   queued row, and only when none of the user's rows has an attempt open. `FOR UPDATE SKIP
   LOCKED` lets any number of replicas lease side by side without ever holding the same user, so
   one user's messages leave strictly one after the other, in order, whatever crashes and
   redeliveries happen; and a user waiting for a retry or for their pair budget holds back
   nobody else. Up to NOTIFIER_MAX_IN_FLIGHT sends per replica run concurrently.
3. Throughput budget, shared by every replica: a GCRA (virtual-time token bucket) kept in
   Postgres, one row per business number holding the theoretical arrival time (TAT) of its next
   free slot. A replica reserves k slots with one `UPDATE ... SET tat = greatest(tat, now) + k/R`
   (the row lock serializes all replicas) and sends each message no earlier than its slot,
   converted to local time from the database's clock in the same statement (so never early, and
   no clock agreement is needed). Reservations are batched (one per lease, at most
   SCHEDULE_AHEAD ahead), so the row sees tens of updates per second even at 1,000 sends/s.
   Sends that wake late together (a busy event loop, every Graph call taken) would go out in a
   bunch: a replica also paces its own sends one interval apart on the time they really leave
   (PACE_BURST of slack), and a slot missed by more than LATE_SLOT_TOLERANCE is given up for a
   new one. A 130429 answer pauses the whole number (TAT moved past Retry-After). Graph calls in
   flight (NOTIFIER_MAX_IN_FLIGHT) are counted apart from the rows waiting for their slot, so
   slow answers from Meta do not starve the budget.
   Inbound messages count too ("Throughput is inclusive of inbound and outbound messages"):
   each takes a slot, reserved like a send's and never waited for, so the budget runs into debt
   (TAT past now) and the sends after them wait. The inbound consumer only hands the count over;
   the slots are reserved in the background, one statement for all counted meanwhile, so it
   never waits for the budget's row lock nor fails with it. Inbound messages that arrived
   longer ago than INBOUND_SLOT_HORIZON (a consumer catching up, a replay) are not charged:
   their second is long past, and charging them now would only hold back today's sends.
4. Pair budget (one user): the same GCRA per user (`notifier.recipient.pair_tat`): up to
   WHATSAPP_PAIR_BURST messages at once, then one per WHATSAPP_PAIR_INTERVAL. A head over budget
   is put back with `next_attempt_at` at the time it conforms; only its own user waits.
5. Results: accepted sends are recorded in batches (one statement, with the pair budget), which
   makes the user's next message the head. A transient error keeps the row at the head with
   `next_attempt_at` from the error's code and `Retry-After`; a permanent error, or the last of
   MAX_ATTEMPTS, dead-letters it: in one transaction the row fails and the outbox gets the dead
   letter (`notifier.dlq.send`, stream NOTIFIER_DLQ) and `notifier.evt.send_failed` (for the
   dialog). 131047 (window closed) switches the row to its template, once. An optional message
   (the vaccine video) is not sent while the window is closed, and a 131047 answer to it ends
   it too: `skipped`, neither sent nor failed, and nothing dead-lettered.
6. Lost answers: Meta has no idempotency key. A lease outlives any send (Graph timeout + slot
   wait + margin); a lease that runs out means its holder died before or during its attempt, and
   a timeout means no answer: either way the attempt is "in doubt". Because a user has at most
   one attempt open, a status webhook for a wamid we never recorded, for that user, names it:
   the row is recorded as accepted and not sent again. Without such a status, it is sent again after the grace
   (at-least-once, counted in `notifier_in_doubt_total{resolution="resent"}`). Such a status
   often just overtakes a live sender's record: the claim spends the user's pair budget then
   (the record no longer does), as the user's next message is the head from that moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import math
import os
import random
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import nats
import nats.errors
import nats.js.errors
import structlog
from faststream.nats import JStream
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from pydantic import ValidationError

from services.common import consumers, tracing
from services.common.contracts.notifier import (
    DeadLetter,
    ImageMessage,
    SendError,
    SendFailed,
    SendMessage,
)
from services.common.contracts.streams import DEAD_LETTERS as DEAD_LETTER_STREAM
from services.common.contracts.streams import NOTIFIER, NOTIFIER_DLQ
from services.common.contracts.subjects import NOTIFIER_CMD_SEND, NOTIFIER_DLQ_SEND
from services.common.jetstream import declare_streams, publish_durably
from services.common.outbox import OutboxRelay
from services.common.settings import Settings
from services.notifier import repository as repo
from services.notifier.domain import (
    MAX_ATTEMPTS,
    THROUGHPUT_CODE,
    ErrorClass,
    Form,
    TemplateProblem,
    choose_form,
    classify_error,
    pair_allowed_at,
    retry_delay,
    skippable,
    template_payload,
    to_graph_payload,
)
from services.notifier.graph import REQUEST_TIMEOUT, GraphClient, GraphError
from services.notifier.metrics import (
    COMMANDS,
    DEAD_LETTERS,
    GRAPH_SECONDS,
    IN_DOUBT,
    IN_FLIGHT,
    INBOUND_SLOTS,
    MARK_READ,
    MEDIA,
    QUEUE_DEPTH,
    QUEUE_OLDEST,
    RATE_LIMIT_WAIT_SECONDS,
    RATE_LIMIT_WAITS,
    RETRIES,
    SENDS,
    TEMPLATE_FALLBACKS,
)

log = structlog.get_logger(__name__)

# Intake: the partition consumers.
SEND_ACK_WAIT = 10  # seconds; intake takes milliseconds, and a crash stalls a partition this long
# 1, 2, 3, then 5 s apart (consumers.PARTITION_DELAYS): about 90 s of Postgres down; then the
# command is dead-lettered straight to NATS.
INTAKE_MAX_DELIVER = 20
INTAKE_FETCH_SECONDS = 5.0

# Dispatch.
SEND_TIMEOUT = float(REQUEST_TIMEOUT.total or 10.0)
SCHEDULE_AHEAD = 1.0  # reserve throughput slots at most this far ahead
MAX_LEASE_BATCH = 256  # rows leased (and slots reserved) by one statement
# A lease outlives any attempt (extended for a slot further away): one that runs out means its
# holder died, and then the attempt has also had this long for its status webhook to come.
LEASE_SECONDS = SEND_TIMEOUT + SCHEDULE_AHEAD + 5.0
IN_DOUBT_GRACE = 15.0  # an unanswered attempt waits this long for a status webhook
POLL_SECONDS = 0.1  # the queue is looked at least this often (retries, other replicas' intake)
LATE_SLOT_TOLERANCE = 0.05
PACE_BURST = 0.01  # seconds of budget one replica may send at once (timer precision)
QUEUE_DEPTH_SECONDS = 2.0
# Batch consumers (statuses, inbound messages): up to this many messages per fetch.
BATCH_SIZE = 100
BATCH_FETCH_SECONDS = 5.0
# Mark-as-read calls: at most this many at once, and this many waiting (more are skipped).
READ_CONCURRENCY = 16
MAX_PENDING_READS = 1000
STOP_GRACE = 8.0  # on shutdown, sends already under way get this long to finish


def send_durable(partition: int) -> str:
    return f"notifier-send-p{partition}"


def send_consumer_config(partition: int) -> ConsumerConfig:
    """The partition's durable: one command in flight across all replicas (publish order)."""
    return ConsumerConfig(
        durable_name=send_durable(partition),
        filter_subject=NOTIFIER_CMD_SEND.format(partition=partition),
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        max_ack_pending=1,
        ack_wait=SEND_ACK_WAIT,
        max_deliver=INTAKE_MAX_DELIVER,
    )


BatchHandler = Callable[[list[Msg]], Awaitable[None]]


def _now() -> datetime:
    return datetime.now(UTC)


def _error_dict(error: SendError) -> dict[str, Any]:
    return error.model_dump(mode="json")


# --- the shared throughput budget -----------------------------------------------------------------


class Budget:
    """Send slots of one business number, shared with every replica through Postgres (GCRA)."""

    def __init__(self, pool: asyncpg.Pool, phone_number_id: str, mps: float) -> None:
        self._pool = pool
        self._number = phone_number_id
        self.interval = 1.0 / mps if mps > 0 else 0.0
        self._debt = 0  # slots charged but not reserved yet
        self._charging: asyncio.Task[None] | None = None

    @property
    def limited(self) -> bool:
        return self.interval > 0

    async def reserve(self, count: int) -> list[float]:
        """Local `loop.time()` deadlines of `count` slots (now for all, without a limit)."""
        loop = asyncio.get_running_loop()
        if not self.limited or count <= 0:
            return [loop.time()] * count
        first = await repo.reserve_slots(self._pool, self._number, count, self.interval)
        # Measured after the answer, so never earlier than the database's slot time.
        base = loop.time() + first
        return [base + i * self.interval for i in range(count)]

    async def pause(self, seconds: float) -> None:
        if self.limited:
            await repo.pause_budget(self._pool, self._number, seconds)

    def charge(self, count: int) -> None:
        """Take `count` slots for messages we did not send (inbound ones), as debt: in the
        background, never awaited by the caller."""
        if not self.limited or count <= 0:
            return
        self._debt += count
        if self._charging is None or self._charging.done():
            self._charging = asyncio.create_task(self._settle(), name="notifier-budget-charge")

    async def _settle(self) -> None:
        while self._debt:
            count, self._debt = self._debt, 0
            try:
                await repo.reserve_slots(self._pool, self._number, count, self.interval)
            except Exception as exc:
                # Dropped, not retried: at worst Meta answers 130429, which pauses the number.
                INBOUND_SLOTS.labels("failed").inc(count)
                log.warning("could not charge inbound messages", count=count, error=repr(exc))
                continue
            INBOUND_SLOTS.labels("charged").inc(count)

    async def close(self) -> None:
        if self._charging is not None:
            with contextlib.suppress(Exception):
                await self._charging


# --- batched recording of accepted sends ----------------------------------------------------------


class AcceptedWriter:
    """Records accepted sends in batches: while one statement runs, the next batch gathers."""

    def __init__(
        self, pool: asyncpg.Pool, pair_interval: float, on_recorded: Callable[[], None]
    ) -> None:
        self._pool = pool
        self._pair_interval = pair_interval
        self._on_recorded = on_recorded
        self._buffer: list[repo.Accepted] = []
        self._task: asyncio.Task[None] | None = None

    def add(self, accepted: repo.Accepted) -> None:
        self._buffer.append(accepted)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(), name="notifier-accepted-writer")

    async def _drain(self) -> None:
        failures = 0
        while self._buffer:
            batch, self._buffer = self._buffer, []
            try:
                await repo.record_accepted(self._pool, batch, self._pair_interval)
            except Exception:
                failures += 1
                if failures > 5:
                    # The rows keep their leases: a lease that runs out is in doubt, and the
                    # status webhooks of these messages settle them without a second send.
                    log.exception("could not record accepted sends", count=len(batch))
                    continue
                self._buffer[:0] = batch
                await asyncio.sleep(0.2 * failures)
                continue
            self._on_recorded()

    async def close(self) -> None:
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task


# --- the engine -------------------------------------------------------------------------------------


class SendEngine:
    """Intake loops, the dispatcher and its sends, for one notifier process."""

    def __init__(
        self,
        settings: Settings,
        pool: asyncpg.Pool,
        graph: GraphClient,
        relay: OutboxRelay | None = None,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.graph = graph
        self.relay = relay
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{random.getrandbits(32):08x}"
        self.budget = Budget(pool, settings.whatsapp_phone_number_id, settings.whatsapp_mps)
        self.writer = AcceptedWriter(pool, settings.whatsapp_pair_interval, self.wake)
        # Graph calls at once; rows held are those plus the ones waiting for their slot (at most
        # SCHEDULE_AHEAD seconds of the budget), so slow answers do not starve the budget.
        self.max_in_flight = settings.notifier_max_in_flight
        self._graph_slots = asyncio.Semaphore(self.max_in_flight)
        self._local_tat = 0.0
        ahead = math.ceil(settings.whatsapp_mps * SCHEDULE_AHEAD) if self.budget.limited else 0
        self.max_held = self.max_in_flight + ahead
        self.lease_batch = max(1, min(MAX_LEASE_BATCH, ahead or self.max_in_flight))
        # Under load sends finish one by one: leasing waits for room for a batch.
        self.min_lease = max(1, self.lease_batch // 4)
        self._nc: nats.NATS | None = None
        self._js: Any = None
        self._wakeup = asyncio.Event()
        self._sends: set[asyncio.Task[None]] = set()
        self._reads: set[asyncio.Task[None]] = set()
        self._read_slots = asyncio.Semaphore(READ_CONCURRENCY)
        self._upload_locks: dict[str, asyncio.Lock] = {}
        self._loops: list[asyncio.Task[None]] = []
        self._stopping = False
        self._last_deadline = 0.0
        self._batch_consumers: list[tuple[JStream, ConsumerConfig, BatchHandler]] = []

    # --- lifecycle ---------------------------------------------------------------------------

    def consume(self, stream: JStream, config: ConsumerConfig, handler: BatchHandler) -> None:
        """Also consume this durable in batches (before `start`); the handler acks each one."""
        self._batch_consumers.append((stream, config, handler))

    async def start(self) -> None:
        self._nc = await nats.connect(
            self.settings.nats_servers,
            name="vaksin-notifier-engine",
            max_reconnect_attempts=-1,
            reconnect_time_wait=1,  # as services/common/service.py make_broker
        )
        self._js = self._nc.jetstream()
        await self._declare()
        for partition in range(self.settings.notifier_partitions):
            self._loops.append(
                asyncio.create_task(self._intake(partition), name=f"notifier-intake-p{partition}")
            )
        for stream, config, handler in self._batch_consumers:
            self._loops.append(
                asyncio.create_task(
                    self._consume_batches(stream, config, handler),
                    name=f"notifier-{config.durable_name}",
                )
            )
        self._loops.append(asyncio.create_task(self._dispatch(), name="notifier-dispatch"))
        self._loops.append(asyncio.create_task(self._watch_queue(), name="notifier-queue-depth"))
        log.info(
            "send engine started",
            holder=self.holder,
            mps=self.settings.whatsapp_mps,
            max_in_flight=self.max_in_flight,
            max_held=self.max_held,
        )

    async def stop(self) -> None:
        self._stopping = True
        for task in self._loops:
            task.cancel()
        # A loop whose cancellation was swallowed by a library's wait_for still ends: the flag.
        if self._loops:
            await asyncio.wait(self._loops, timeout=INTAKE_FETCH_SECONDS + 2)
        self._loops.clear()
        if self._sends:
            # Sends waiting for their slot give their lease back when it comes (another replica
            # takes them); sends under way get a moment to finish and be recorded.
            await asyncio.wait(set(self._sends), timeout=STOP_GRACE)
            for task in list(self._sends):
                task.cancel()
            await asyncio.gather(*self._sends, return_exceptions=True)
        await self.writer.close()
        await self.budget.close()
        for task in list(self._reads):
            task.cancel()
        await asyncio.gather(*self._reads, return_exceptions=True)
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await self._nc.close()
            self._nc = None
        log.info("send engine stopped")

    def ready(self) -> bool:
        return (
            self._nc is not None
            and self._nc.is_connected
            and bool(self._loops)
            and not any(t.done() for t in self._loops)
        )

    def wake(self) -> None:
        self._wakeup.set()

    async def _declare(self) -> None:
        """Streams and partition consumers, created or updated to their definitions (services
        start in any order; every broker declares the same streams the same way)."""
        await declare_streams(self._js, self.settings.stream_replicas)
        for partition in range(self.settings.notifier_partitions):
            await self._js.add_consumer(NOTIFIER.name, config=send_consumer_config(partition))
        for stream, config, _ in self._batch_consumers:
            await self._js.add_consumer(stream.name, config=config)

    # --- batch consumers ---------------------------------------------------------------------

    async def _consume_batches(
        self, stream: JStream, config: ConsumerConfig, handler: BatchHandler
    ) -> None:
        """Fetch returns as soon as messages are there (up to BATCH_SIZE): no waiting to fill."""
        subscription = None
        while not self._stopping:
            try:
                if subscription is None:
                    subscription = await self._js.pull_subscribe_bind(
                        durable=config.durable_name, stream=stream.name
                    )
                messages = await subscription.fetch(BATCH_SIZE, timeout=BATCH_FETCH_SECONDS)
            except (nats.errors.TimeoutError, TimeoutError):
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("fetch failed", durable=config.durable_name, error=repr(exc))
                await asyncio.sleep(1.0)
                continue
            try:
                if tracing.enabled():
                    # One span for the batch, linked to the trace of each of its messages.
                    links = tracing.links_from([m.headers for m in messages])
                    attributes = {
                        "vaksin.consumer": config.durable_name or "",
                        "vaksin.batch": len(messages),
                    }
                    with tracing.span(f"{config.durable_name} batch", attributes, links=links):
                        await handler(messages)
                else:
                    await handler(messages)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("batch failed", durable=config.durable_name, size=len(messages))
                await self._retry_later(config, messages, exc)

    async def _retry_later(
        self, config: ConsumerConfig, messages: list[Msg], exc: Exception
    ) -> None:
        """What the handler left unsettled comes back after a delay, or is dead-lettered after
        its last delivery (as every FastStream consumer does: services/common/consumers.py)."""
        for message in messages:
            if message._ackd:
                continue
            delivered = message.metadata.num_delivered
            try:
                if delivered < (config.max_deliver or 1):
                    await message.nak(delay=consumers.redelivery_delay(delivered))
                    consumers.REDELIVERIES.labels(config.durable_name).inc()
                    continue
                subject, dead, headers = consumers.dead_letter(message, exc, "failed")
                await publish_durably(
                    self._js.publish,
                    subject,
                    dead.model_dump_json().encode(),
                    stream=DEAD_LETTER_STREAM.name,
                    headers=headers,
                )
                await message.term()
            except Exception as settle_error:  # NATS away: ack_wait brings it back anyway
                log.warning("could not settle a failed message", error=repr(settle_error))

    # --- intake ------------------------------------------------------------------------------

    async def _intake(self, partition: int) -> None:
        subscription = None
        while not self._stopping:
            try:
                if subscription is None:
                    subscription = await self._js.pull_subscribe_bind(
                        durable=send_durable(partition), stream=NOTIFIER.name
                    )
                messages = await subscription.fetch(1, timeout=INTAKE_FETCH_SECONDS)
            except (nats.errors.TimeoutError, TimeoutError):
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("intake fetch failed", partition=partition, error=repr(exc))
                await asyncio.sleep(1.0)
                continue
            for message in messages:
                await self._take(message)

    async def _take(self, message: Msg) -> None:
        if tracing.enabled():
            headers = message.headers or {}
            attributes = {
                "vaksin.consumer": message.metadata.consumer or "",
                "vaksin.delivery": message.metadata.num_delivered or 1,
            }
            with tracing.span("notifier intake", attributes, parent=headers):
                await self._take_now(message, headers.get(tracing.TRACEPARENT))
        else:
            await self._take_now(message, None)

    async def _take_now(self, message: Msg, traceparent: str | None) -> None:
        try:
            cmd = SendMessage.model_validate_json(message.data)
        except ValidationError as exc:
            await self._malformed(message, exc)
            return
        try:
            queued = await repo.enqueue(
                self.pool,
                cmd.command_id,
                cmd.to,
                cmd.message.kind,
                message.data.decode(),
                # The command's own trace (the turn or the outbox row that published it), for
                # the Graph call's span, whenever it happens.
                traceparent,
            )
        except Exception as exc:
            delivered = message.metadata.num_delivered or 1
            if delivered < INTAKE_MAX_DELIVER:
                log.warning("could not queue command", attempt=delivered, error=repr(exc))
                await message.nak(delay=consumers.redelivery_delay(delivered, holds_partition=True))
                consumers.REDELIVERIES.labels(message.metadata.consumer).inc()
                return
            await self._intake_gave_up(message, cmd, exc)
            return
        await message.ack()
        COMMANDS.labels("queued" if queued else "duplicate").inc()
        if queued:
            self.wake()
        else:
            log.info("send command already queued", command_id=cmd.command_id)

    async def _malformed(self, message: Msg, exc: ValidationError) -> None:
        raw = message.data.decode(errors="replace")
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = None
        command = parsed if isinstance(parsed, dict) else {"raw": raw[:10_000]}
        command_id = str(command.get("command_id") or f"seq-{message.metadata.sequence.stream}")
        to = command.get("to") if isinstance(command.get("to"), str) else None
        error = SendError(message=f"malformed command: {exc.error_count()} error(s)")
        dead = DeadLetter(
            command_id=command_id,
            to=to,
            reason="malformed",
            command=command,
            error=error,
            failed_at=_now(),
        )
        failed = None
        if to:
            failed = SendFailed(command_id=command_id, to=to, reason="malformed", failed_at=_now())
        try:
            await repo.dead_letter_unqueued(self.pool, dead, failed)
        except Exception:
            await message.nak(delay=5.0)
            return
        await message.term()
        COMMANDS.labels("malformed").inc()
        DEAD_LETTERS.labels("malformed").inc()
        self.relay_wake()
        log.error("malformed send command dead-lettered", command_id=command_id)

    async def _intake_gave_up(self, message: Msg, cmd: SendMessage, exc: Exception) -> None:
        """Postgres refused the command on every delivery: straight to the dead-letter stream."""
        dead = DeadLetter(
            command_id=cmd.command_id,
            to=cmd.to,
            reason="intake_failed",
            command=cmd.model_dump(mode="json"),
            error=SendError(message=repr(exc)[:500]),
            failed_at=_now(),
        )
        try:
            await publish_durably(
                self._js.publish,
                NOTIFIER_DLQ_SEND,
                dead.model_dump_json().encode(),
                stream=NOTIFIER_DLQ.name,
                headers={"Nats-Msg-Id": f"intake:{cmd.command_id}"},
            )
        except Exception:
            await message.nak(delay=30.0)
            return
        await message.term()
        COMMANDS.labels("dead_lettered").inc()
        DEAD_LETTERS.labels("intake_failed").inc()
        log.error("send command dead-lettered at intake", command_id=cmd.command_id)

    # --- dispatch ----------------------------------------------------------------------------

    async def _dispatch(self) -> None:
        while not self._stopping:
            # Not asyncio.wait_for: on 3.11 it can swallow a cancellation that races a wakeup.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(POLL_SECONDS):
                    await self._wakeup.wait()
            self._wakeup.clear()
            try:
                await self._fill()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("dispatch pass failed")
                await asyncio.sleep(1.0)

    async def _fill(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopping:
            free = self.max_held - len(self._sends)
            if free <= 0 or self._last_deadline - loop.time() > SCHEDULE_AHEAD:
                return
            if free < self.min_lease and self._sends:
                return  # busy: lease again once a batch's worth of sends has finished
            wanted = min(free, self.lease_batch)
            leased_at = loop.time()
            rows = await repo.lease(self.pool, wanted, LEASE_SECONDS, self.holder)
            if not rows:
                return
            try:
                ready = await self._within_pair_budget(rows)
                deadlines = await self.budget.reserve(len(ready))
            except Exception:
                # Give the rows back rather than leave them in doubt until their leases run out.
                with contextlib.suppress(Exception):
                    await repo.release(self.pool, [(r.id, None) for r in rows])
                raise
            expiry = leased_at + LEASE_SECONDS
            far = [
                r.id for r, d in zip(ready, deadlines, strict=True) if d + SEND_TIMEOUT > expiry - 5
            ]
            if far:
                ahead = max(deadlines) - loop.time() + LEASE_SECONDS
                extended_at = loop.time()
                await repo.extend_leases(self.pool, far, ahead)
                expiry = extended_at + ahead
            for row, deadline in zip(ready, deadlines, strict=True):
                self._last_deadline = max(self._last_deadline, deadline)
                self._spawn(row, deadline, expiry)
            if len(rows) < wanted:
                return

    async def _within_pair_budget(self, rows: list[repo.Leased]) -> list[repo.Leased]:
        ready, later = [], []
        for row in rows:
            allowed = pair_allowed_at(
                row.pair_tat,
                row.db_now,
                interval=self.settings.whatsapp_pair_interval,
                burst=self.settings.whatsapp_pair_burst,
            )
            if allowed is None:
                ready.append(row)
            else:
                later.append((row.id, allowed))
        if later:
            RATE_LIMIT_WAITS.labels("pair").inc(len(later))
            await repo.release(self.pool, later)
        return ready

    def _spawn(self, row: repo.Leased, deadline: float, expiry: float) -> None:
        task = asyncio.create_task(self._send(row, deadline, expiry))
        self._sends.add(task)
        IN_FLIGHT.set(len(self._sends))

        def done(finished: asyncio.Task[None]) -> None:
            self._sends.discard(finished)
            IN_FLIGHT.set(len(self._sends))
            self.wake()

        task.add_done_callback(done)

    async def _send(self, row: repo.Leased, deadline: float, expiry: float) -> None:
        if tracing.enabled() and row.trace_context:
            attributes: dict[str, Any] = {
                "vaksin.command_id": row.command_id,
                "vaksin.attempt": row.attempts + 1,
            }
            if row.created_at is not None:
                queued = (row.db_now - row.created_at).total_seconds()
                attributes["vaksin.queued_seconds"] = round(queued, 3)
            with tracing.span("notifier send", attributes, parent=row.trace_context):
                await self._send_now(row, deadline, expiry)
        else:
            await self._send_now(row, deadline, expiry)

    async def _send_now(self, row: repo.Leased, deadline: float, expiry: float) -> None:
        bound = log.bind(command_id=row.command_id)
        kind = str(row.command.get("message", {}).get("kind", "unknown"))
        try:
            cmd = SendMessage.model_validate(row.command)
        except ValidationError as exc:
            error = SendError(message=f"malformed command: {exc.error_count()} error(s)")
            await self._fail(row, kind, "malformed", error, bound, attempted=False)
            return
        form = choose_form(cmd, row.last_inbound_at, row.db_now, force_template=row.use_template)
        if form is Form.SKIP:
            # Its throughput slot, reserved at lease, goes unused: skips are rare.
            await self._skip(row, kind, bound, reason="window closed", attempted=False)
            return
        media: tuple[str, str] | None = None
        try:
            if form is Form.TEMPLATE:
                kind = "template"
                payload = template_payload(cmd, self.settings.whatsapp_templates)
            else:
                media = await self._media(cmd)
                payload = to_graph_payload(cmd, media[1] if media else None)
            async with self._graph_slot(row, deadline, expiry) as go:
                if not go:
                    return
                started = asyncio.get_running_loop().time()
                try:
                    wamid = await self._graph_send(payload, kind, started - deadline)
                finally:
                    GRAPH_SECONDS.labels("send").observe(
                        asyncio.get_running_loop().time() - started
                    )
        except TemplateProblem as problem:
            error = SendError(message=str(problem))
            await self._fail(row, kind, problem.reason, error, bound, attempted=False)
        except GraphError as exc:
            await self._on_graph_error(row, cmd, form, kind, media, exc, bound)
        except asyncio.CancelledError:
            # Shutdown before Meta answered: the lease runs out and the attempt is in doubt.
            raise
        except Exception as exc:
            bound.exception("send failed unexpectedly")
            error = SendError(message=repr(exc)[:500])
            if row.attempts + 1 >= MAX_ATTEMPTS:
                await self._fail(row, kind, "attempts_exhausted", error, bound)
            else:
                await self._retry(row, kind, error, retry_delay(row.attempts + 1), bound)
        else:
            sent_as = Form.TEMPLATE.value if form is Form.TEMPLATE else Form.MESSAGE.value
            self.writer.add(repo.Accepted(row.id, row.recipient, wamid, payload, sent_as))
            SENDS.labels(kind, "accepted").inc()
            if form is Form.TEMPLATE and not row.use_template:
                TEMPLATE_FALLBACKS.labels("window_closed").inc()
            if row.in_doubt:
                IN_DOUBT.labels("resent").inc()
                # Its holder died (or got no answer) and no status named it: an earlier attempt,
                # if it reached Meta at all, makes this one a duplicate.
                bound.warning("sent after an attempt in doubt", attempt=row.attempts + 1)
            bound.info("message accepted by graph", kind=kind, attempt=row.attempts + 1)

    async def _graph_send(self, payload: dict[str, Any], kind: str, late: float) -> str:
        """The Graph call, in its own span when tracing is on (the time before it, in the
        parent, is the wait for the throughput budget and a free call)."""
        if not tracing.enabled():
            return await self.graph.send(payload)
        attributes = {"vaksin.message.kind": kind, "vaksin.slot_late_seconds": round(late, 4)}
        with tracing.span("graph send", attributes, kind=tracing.SpanKind.CLIENT) as span:
            try:
                wamid = await self.graph.send(payload)
            except GraphError as exc:
                span.set_attribute("http.response.status_code", exc.http_status or 0)
                span.set_attribute("vaksin.graph.code", exc.code or 0)
                raise
            span.set_attribute("vaksin.wamid", wamid)
            return wamid

    @contextlib.asynccontextmanager
    async def _graph_slot(
        self, row: repo.Leased, deadline: float, expiry: float
    ) -> AsyncIterator[bool]:
        """Its throughput slot and a free Graph call; yields False if the row went back
        instead (lease running out, or shutdown)."""
        loop = asyncio.get_running_loop()
        waited = False
        while True:
            wait = deadline - loop.time()
            if wait > 0:
                if not waited and wait > 0.005:
                    RATE_LIMIT_WAITS.labels("throughput").inc()
                RATE_LIMIT_WAIT_SECONDS.observe(wait)
                waited = True
                await asyncio.sleep(wait)
            await self._graph_slots.acquire()
            if not self.budget.limited or await self._paced(deadline):
                break
            # A slot missed by more than the tolerance is given up for a new one.
            self._graph_slots.release()
            [deadline] = await self.budget.reserve(1)
        try:
            if self._stopping or loop.time() > expiry - SEND_TIMEOUT - 1.0:
                await repo.release(self.pool, [(row.id, None)])
                yield False
            else:
                yield True
        finally:
            self._graph_slots.release()

    async def _paced(self, deadline: float) -> bool:
        """This replica's own pace, on the time sends really go (a local GCRA, burst
        PACE_BURST): sends that wake late together (a busy loop, every Graph call taken) leave
        one interval apart instead of in a bunch. False if that would be later than the slot
        allows."""
        loop = asyncio.get_running_loop()
        interval = self.budget.interval
        tolerance = PACE_BURST
        while True:
            now = loop.time()
            if max(now, self._local_tat) - deadline > LATE_SLOT_TOLERANCE:
                return False
            if self._local_tat - now <= tolerance:
                self._local_tat = max(self._local_tat, now) + interval
                return True
            await asyncio.sleep(self._local_tat - tolerance - now)

    async def _media(self, cmd: SendMessage) -> tuple[str, str] | None:
        """(sha256, media id) of the command's inline PNG: uploaded once, reused while valid."""
        message = cmd.message
        if not isinstance(message, ImageMessage) or message.png_base64 is None:
            return None
        data = message.png()
        digest = hashlib.sha256(data).hexdigest()
        # One upload at a time per file in this replica: the same ticket sent to several users
        # at once is uploaded once.
        async with self._upload_locks.setdefault(digest, asyncio.Lock()):
            media_id = await repo.cached_media(self.pool, digest)
            if media_id is not None:
                MEDIA.labels("reused").inc()
                return digest, media_id
            started = asyncio.get_running_loop().time()
            try:
                async with self._graph_slots:
                    media_id = await self.graph.upload_media(data, "image/png", "tiket.png")
            finally:
                GRAPH_SECONDS.labels("upload").observe(asyncio.get_running_loop().time() - started)
                if len(self._upload_locks) > 1000:
                    self._upload_locks.clear()
            await repo.store_media(self.pool, digest, media_id, "image/png")
            MEDIA.labels("uploaded").inc()
            return digest, media_id

    async def _on_graph_error(
        self,
        row: repo.Leased,
        cmd: SendMessage,
        form: Form,
        kind: str,
        media: tuple[str, str] | None,
        exc: GraphError,
        bound: Any,
    ) -> None:
        error = SendError(
            code=exc.code,
            http_status=exc.http_status,
            message=exc.message[:500],
            fbtrace_id=exc.fbtrace_id,
        )
        error_class = classify_error(exc.http_status, exc.code)
        attempt = row.attempts + 1
        if error_class is ErrorClass.WINDOW_CLOSED:
            if form is Form.MESSAGE and cmd.template is not None:
                await repo.record_retry(
                    self.pool, row.id, 0.0, _error_dict(error), use_template=True
                )
                SENDS.labels(kind, "window_closed").inc()
                TEMPLATE_FALLBACKS.labels("131047").inc()
                bound.info("window closed: sending the template instead")
                self.wake()
                return
            if skippable(cmd):
                await self._skip(row, kind, bound, reason="131047", error=error)
                return
            await self._fail(row, kind, "window_closed", error, bound)
            return
        if error_class is ErrorClass.MEDIA_INVALID:
            if media is not None:
                await repo.forget_media(self.pool, *media)
            error_class = ErrorClass.TRANSIENT
        if error_class is ErrorClass.TRANSIENT and attempt < MAX_ATTEMPTS:
            delay = retry_delay(attempt, exc.retry_after, code=exc.code, jitter=random.random())
            if exc.maybe_delivered:
                delay = max(delay, IN_DOUBT_GRACE)
            if exc.code == THROUGHPUT_CODE:
                await self.budget.pause(exc.retry_after if exc.retry_after is not None else 1.0)
            await self._retry(row, kind, error, delay, bound, in_doubt=exc.maybe_delivered)
            return
        reason = "permanent_error" if error_class is ErrorClass.PERMANENT else "attempts_exhausted"
        await self._fail(row, kind, reason, error, bound)

    async def _retry(
        self,
        row: repo.Leased,
        kind: str,
        error: SendError,
        delay: float,
        bound: Any,
        *,
        in_doubt: bool = False,
    ) -> None:
        await repo.record_retry(self.pool, row.id, delay, _error_dict(error), in_doubt=in_doubt)
        SENDS.labels(kind, "retry").inc()
        RETRIES.labels(str(error.code)).inc()
        bound.warning(
            "graph send failed, will retry",
            delay=round(delay, 2),
            attempt=row.attempts + 1,
            http_status=error.http_status,
            code=error.code,
            fbtrace_id=error.fbtrace_id,
        )

    async def _skip(
        self,
        row: repo.Leased,
        kind: str,
        bound: Any,
        *,
        reason: str,
        error: SendError | None = None,
        attempted: bool = True,
    ) -> None:
        """An optional message the user's closed window keeps out: finished, not failed."""
        done = await repo.record_skipped(
            self.pool, row.id, _error_dict(error) if error else None, count_attempt=attempted
        )
        if not done:
            return
        SENDS.labels(kind, "skipped").inc()
        self.wake()
        bound.info("optional message skipped", kind=kind, reason=reason)

    async def _fail(
        self,
        row: repo.Leased,
        kind: str,
        reason: str,
        error: SendError,
        bound: Any,
        *,
        attempted: bool = True,
    ) -> None:
        now = _now()
        command_id = row.sender_command_id
        dead = DeadLetter(
            command_id=command_id,
            to=row.recipient,
            reason=reason,
            command=row.command,
            error=error,
            failed_at=now,
        )
        failed = SendFailed(
            command_id=command_id,
            to=row.recipient,
            reason=reason,
            error_code=error.code,
            failed_at=now,
        )
        done = await repo.record_failed(
            self.pool, row.id, _error_dict(error), dead, failed, count_attempt=attempted
        )
        if not done:
            return
        SENDS.labels(kind, "failed").inc()
        DEAD_LETTERS.labels(reason).inc()
        self.relay_wake()
        self.wake()
        bound.error(
            "send failed for good",
            reason=reason,
            attempt=row.attempts + (1 if attempted else 0),
            http_status=error.http_status,
            code=error.code,
            fbtrace_id=error.fbtrace_id,
        )

    def relay_wake(self) -> None:
        if self.relay is not None:
            self.relay.wake()

    # --- inbound messages: mark as read, typing indicator --------------------------------------

    def mark_read(self, reads: list[tuple[str, bool]]) -> None:
        """Best effort, once per (inbound wamid, typing indicator?): never awaited by anyone,
        never retried; failures are logged and counted."""
        for wamid, typing in reads:
            if len(self._reads) >= MAX_PENDING_READS or self._stopping:
                MARK_READ.labels("skipped").inc()
                continue
            task = asyncio.create_task(self._mark_read(wamid, typing))
            self._reads.add(task)
            task.add_done_callback(self._reads.discard)

    async def _mark_read(self, wamid: str, typing: bool) -> None:
        async with self._read_slots:
            started = asyncio.get_running_loop().time()
            try:
                await self.graph.mark_read(wamid, typing=typing)
            except GraphError as exc:
                MARK_READ.labels("failed").inc()
                log.warning(
                    "mark as read failed", http_status=exc.http_status, code=exc.code, wamid=wamid
                )
                return
            finally:
                GRAPH_SECONDS.labels("mark_read").observe(
                    asyncio.get_running_loop().time() - started
                )
            MARK_READ.labels("typing" if typing else "read").inc()

    # --- the queue's depth, for /metrics ------------------------------------------------------

    async def _watch_queue(self) -> None:
        while not self._stopping:
            try:
                queued, ready = await repo.queue_depth(self.pool)
                QUEUE_DEPTH.labels("queued").set(queued)
                QUEUE_DEPTH.labels("ready").set(ready)
                QUEUE_OLDEST.set(await repo.oldest_ready_age(self.pool) if ready else 0.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("could not read the queue depth", error=repr(exc))
            await asyncio.sleep(QUEUE_DEPTH_SECONDS)
