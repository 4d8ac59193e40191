"""What every service needs of JetStream beyond FastStream: publishes that ride out a stream's leader
moving to another node, and declaring a stream to its definition from raw nats-py (the notifier's
engine), as FastStream's broker does.

A stream with replicas has a leader, which alone takes its publishes. When it steps down (a rolling
upgrade of the cluster) another replica leads within a fraction of a second; when its node dies the
followers wait out an election timeout (4 to 9 s of silence in nats-server) before electing one.
Meanwhile a publish gets "no responders" (nobody listens on the stream's subjects) or times out (it
went to the dying node). `publish_durably` tries such a publish again, with the same message and so
the same `Nats-Msg-Id`: if the first one was stored after all and only its ack was lost, the
stream's duplicate window drops the repeat. Other failures (a bad message, the connection closed
for good) are not retried here: they would fail the same way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import ParamSpec, TypeVar

import nats.errors
import nats.js.errors
import structlog
from faststream.nats import JStream, NatsBroker
from nats.js import JetStreamContext
from prometheus_client import Counter

from services.common.contracts.streams import STREAMS, WA_INBOUND
from services.common.contracts.subjects import inbound_message_subject
from services.common.contracts.whatsapp import InboundMessage

log = structlog.get_logger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

# What a stream without a leader (or a request lost with a dying node) looks like to a publisher.
LEADERLESS = (
    TimeoutError,  # nats.errors.TimeoutError too: no publish ack in time
    nats.errors.NoRespondersError,
    nats.js.errors.NoStreamResponseError,  # what nats-py's js.publish makes of no responders
    nats.js.errors.ServiceUnavailableError,  # JetStream's own 503 while its groups re-form
)

PUBLISH_RETRIES = Counter(
    "vaksin_publish_retries_total",
    "JetStream publishes tried again after a leaderless failure, and those given up",
    ["outcome"],  # retried | gave_up
)


@dataclass(frozen=True)
class RetryPolicy:
    """How long a publish is tried again after its first failure, and how often: pauses double
    from `first_pause` up to `max_pause`, and attempts stop `within` seconds after that first
    failure. The default outlasts nats-server's longest election timeout (9 s)."""

    within: float = 10.0
    first_pause: float = 0.05
    max_pause: float = 0.5

    def pause(self, retry: int, failing_for: float) -> float | None:
        """Seconds to wait before retry number `retry` (1 = the first), the publish having
        failed for `failing_for` seconds; None: give up."""
        left = self.within - failing_for
        if left <= 0:
            return None
        return min(self.first_pause * 2 ** (retry - 1), self.max_pause, left)


PUBLISH_RETRY = RetryPolicy()  # read at each retry, so a test may shorten it


async def publish_durably(
    publish: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs
) -> T:
    """`publish(*args, **kwargs)` (FastStream's `broker.publish` or nats-py's `js.publish`, with
    `headers={"Nats-Msg-Id": ...}`), tried again while the stream has no leader (see the module).
    A publish without a Nats-Msg-Id is never repeated: its repeat could be stored twice."""
    try:
        return await publish(*args, **kwargs)
    except LEADERLESS as exc:
        return await _again(exc, publish, *args, **kwargs)


async def _again(
    error: BaseException, publish: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs
) -> T:
    headers = kwargs.get("headers")
    if not (isinstance(headers, dict) and headers.get("Nats-Msg-Id")):
        raise error
    loop = asyncio.get_running_loop()
    failed_at = loop.time()
    retry = 1
    while (pause := PUBLISH_RETRY.pause(retry, loop.time() - failed_at)) is not None:
        await asyncio.sleep(pause)
        PUBLISH_RETRIES.labels("retried").inc()
        try:
            return await publish(*args, **kwargs)
        except LEADERLESS as exc:
            error = exc
        retry += 1
    PUBLISH_RETRIES.labels("gave_up").inc()
    raise error


async def publish_inbound(
    broker: NatsBroker, message: InboundMessage, partitions: int, ack_timeout: float | None = None
) -> None:
    """A user's message, from any channel, into `WA_INBOUND` on its user's dialog partition, with
    its own id as `Nats-Msg-Id` (a gateway's repeat is dropped), ridden through a leader move."""
    await publish_durably(
        broker.publish,
        message,
        inbound_message_subject(message.wa_id, partitions),
        stream=WA_INBOUND.name,
        headers={"Nats-Msg-Id": message.wamid},
        timeout=ack_timeout,  # for its PubAck; None: FastStream's 0.5 s
    )


# JetStream's answer to creating a stream that exists with another configuration.
STREAM_NAME_IN_USE = 10058


async def declare_stream(js: JetStreamContext, stream: JStream, replicas: int) -> None:
    """Create the stream with `replicas` copies, or update it to its definition. An R1 stream is
    scaled up in place; one with more copies than `replicas` keeps them: scaling a stream down
    is an operator's decision, never the side effect of one process started without
    NATS_STREAM_REPLICAS (a CLI on a laptop, a pod with an old ConfigMap). Subjects it has beyond
    ours are kept, as FastStream's broker keeps them (each service declares the same stream;
    neither takes the other's subjects away)."""
    config = replace(stream.config, num_replicas=replicas)
    try:
        await js.add_stream(config=config, subjects=list(stream.subjects))
    except nats.js.errors.BadRequestError as exc:
        if exc.err_code != STREAM_NAME_IN_USE:
            raise
        current = (await js.stream_info(stream.name)).config
        subjects = list(dict.fromkeys([*stream.subjects, *(current.subjects or ())]))
        kept = max(replicas, current.num_replicas or 1)
        if kept > replicas:
            log.warning(
                "stream keeps its replicas", stream=stream.name, replicas=kept, asked=replicas
            )
        await js.update_stream(config=replace(config, num_replicas=kept), subjects=subjects)


async def declare_streams(js: JetStreamContext, replicas: int) -> None:
    """Every stream of `contracts/streams.py`, declared as above: what every service does before
    its broker starts (`service.Broker`), so that services may start in any order and FastStream
    itself declares none of them."""
    for stream in STREAMS:
        await declare_stream(js, stream, replicas)
        stream.declare = False
