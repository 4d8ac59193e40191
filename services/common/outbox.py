"""Transactional outbox: facts and commands written in the same transaction as the state change,
then relayed to JetStream with `Nats-Msg-Id = <schema>-outbox-<id>` (so a re-sent row is a duplicate
that JetStream drops). A row is deleted only after its PubAck: a crash in between re-sends it, and
the message id makes that harmless, as it does a publish tried again while its stream's leader
moves (`jetstream.publish_durably`). Each owning schema has its own `outbox` table (see migrations).

A row keeps the trace context of the transaction that wrote it (`trace_context`, a W3C
traceparent; NULL while tracing is off, services/common/tracing.py): the relay publishes it in
that trace, so a fact that leaves seconds later is still part of the message that caused it.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Any

import asyncpg
import structlog
from faststream.nats import NatsBroker
from pydantic import BaseModel

from services.common import tracing
from services.common.contracts.channels import outbound
from services.common.contracts.notifier import SendMessage
from services.common.jetstream import publish_durably

log = structlog.get_logger(__name__)

_POLL_SECONDS = 1.0
_BATCH = 100


async def enqueue(
    conn: asyncpg.Connection,
    schema: str,
    subject: str,
    message: BaseModel | dict[str, Any],
    stream: str,
) -> None:
    """Add a message (a model, or its JSON payload) to the outbox inside the caller's
    transaction."""
    payload = message.model_dump(mode="json") if isinstance(message, BaseModel) else message
    await conn.execute(
        f"INSERT INTO {schema}.outbox (subject, stream, payload, trace_context) "
        "VALUES ($1, $2, $3, $4)",
        subject,
        stream,
        payload,
        tracing.current_traceparent(),
    )


async def enqueue_notice(
    conn: asyncpg.Connection,
    schema: str,
    channel: str,
    message: SendMessage,
    lang: str,
    partitions: int,
) -> None:
    """A message nobody asked for, by the channel that reaches its number: the notifier's
    command for WhatsApp, the SMS adapter's for SMS and USSD (`contracts.channels.outbound`)."""
    subject, stream, payload = outbound(channel, message, lang, partitions)  # type: ignore[arg-type]
    await enqueue(conn, schema, subject, payload, stream)


def queue_in_order(
    schema: str, subject: str, stream: str, payloads: str, when: str = "", trace: str = "NULL"
) -> str:
    """SQL that adds one outbox row per element of a `jsonb[]` parameter, ids in its order, for
    a statement that does other work as well (in a CTE, one round trip for all). `subject`,
    `stream` and `payloads` name the statement's parameters ("$5"); `when`, a condition the
    rows depend on; `trace`, the parameter of the rows' trace context
    (`tracing.current_traceparent()`)."""
    return (
        f"INSERT INTO {schema}.outbox (subject, stream, payload, trace_context) "
        f"SELECT {subject}, {stream}, message.payload, {trace}::text "
        f"FROM unnest({payloads}::jsonb[]) WITH ORDINALITY AS message (payload, n) "
        f"{'WHERE ' + when if when else ''} ORDER BY message.n"
    )


def payloads(messages: list[BaseModel]) -> list[dict[str, Any]]:
    """The `jsonb[]` parameter of `queue_in_order`."""
    return [message.model_dump(mode="json") for message in messages]


class OutboxRelay:
    """Publishes outbox rows in id order. Woken right after a commit, and polls as a safety net."""

    def __init__(self, pool: asyncpg.Pool, broker: NatsBroker, schema: str) -> None:
        self._pool = pool
        self._broker = broker
        self._schema = schema
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"outbox-relay-{self._schema}")

    async def stop(self) -> None:
        # The flag as well as the cancel: on Python 3.11 a cancel that lands just as a publish
        # gets its PubAck is swallowed (asyncio.wait_for inside nats-py), and the loop went on.
        self._stopping = True
        self._wakeup.set()
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def wake(self) -> None:
        self._wakeup.set()

    async def _run(self) -> None:
        while not self._stopping:
            try:
                while not self._stopping and await self.relay_once():
                    pass
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay failed; retrying", schema=self._schema)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), _POLL_SECONDS)
            self._wakeup.clear()

    async def relay_once(self) -> int:
        """Publish one batch; return how many rows went out. One relay of a schema at a time
        (every replica runs one): two taking the first and the next batch of a backlog at once
        would publish them interleaved, and rows written together (a ticket, then its video)
        must reach consumers in id order. A relay that finds another at work leaves the backlog
        to it, which goes on while rows are left."""
        async with self._pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval(
                "SELECT pg_try_advisory_xact_lock(hashtextextended('outbox:' || $1, 0))",
                self._schema,
            ):
                return 0
            rows = await conn.fetch(
                f"SELECT id, subject, stream, payload, trace_context, created_at "
                f"FROM {self._schema}.outbox "
                f"ORDER BY id LIMIT {_BATCH} FOR UPDATE SKIP LOCKED"
            )
            published: list[int] = []
            try:
                for row in rows:
                    await self._publish(row)
                    published.append(row["id"])
            finally:
                if published:
                    await conn.execute(
                        f"DELETE FROM {self._schema}.outbox WHERE id = any($1::bigint[])",
                        published,
                    )
        return len(published)

    async def _publish(self, row: Any) -> None:
        if tracing.enabled() and row["trace_context"]:
            # In the trace of the transaction that wrote it; the publish's own span (and the
            # headers the consumer continues from) are children of this one.
            attributes = {
                "vaksin.outbox.schema": self._schema,
                "vaksin.outbox.row": row["id"],
                "messaging.destination.name": row["subject"],
                "vaksin.outbox.waited_seconds": round(
                    (datetime.now(UTC) - row["created_at"]).total_seconds(), 3
                ),
            }
            with tracing.span("outbox relay", attributes, parent=row["trace_context"]):
                await self._publish_now(row)
        else:
            await self._publish_now(row)

    async def _publish_now(self, row: Any) -> None:
        await publish_durably(
            self._broker.publish,
            row["payload"],
            row["subject"],
            stream=row["stream"],
            headers={"Nats-Msg-Id": f"{self._schema}-outbox-{row['id']}"},
            timeout=5.0,
        )
