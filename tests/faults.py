"""Faults injected into a handler's path, for the redelivery tests of every consumer, and where
their messages end up (streams and dead letters)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import nats
from nats.js.api import ConsumerConfig, DeliverPolicy
from prometheus_client import REGISTRY

from services.common.contracts.deadletters import DeadMessage
from services.common.contracts.streams import DEAD_LETTERS
from services.common.contracts.subjects import DEADLETTER_CONSUMER
from services.common.settings import Settings


class FailsOnce:
    """Wraps a function (sync or async): its first call that `concerns` the test's own message
    raises, as a Postgres blip or a service restarting would (every such call, with `always`);
    the next ones run the real function. The calls' times show when the message came back."""

    def __init__(
        self,
        real: Callable[..., Any],
        concerns: Callable[..., bool] = lambda *args, **kwargs: True,
        *,
        always: bool = False,
    ) -> None:
        self.real = real
        self.concerns = concerns
        self.always = always
        self.calls: list[float] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.concerns(*args, **kwargs):
            self.calls.append(time.monotonic())
            if self.always or len(self.calls) == 1:
                raise ConnectionResetError("injected: the first try fails")
        return self.real(*args, **kwargs)

    @property
    def redelivered_after(self) -> float:
        assert len(self.calls) >= 2, f"not delivered again ({len(self.calls)} call(s))"
        return self.calls[1] - self.calls[0]


def redeliveries(consumer: str) -> float:
    return REGISTRY.get_sample_value("vaksin_redeliveries_total", {"consumer": consumer}) or 0.0


async def stream_bodies(settings: Settings, stream: str, subject: str) -> list[bytes]:
    """The bodies of the stream's messages on `subject` (read with a throwaway consumer)."""
    nc = await nats.connect(settings.nats_url)
    try:
        sub = await nc.jetstream().pull_subscribe(
            subject,
            stream=stream,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL, inactive_threshold=5.0),
        )
        found: list[bytes] = []
        try:
            while True:
                try:
                    batch = await sub.fetch(batch=500, timeout=0.5)
                except TimeoutError:
                    break
                for msg in batch:
                    found.append(msg.data)
                    await msg.ack()
        finally:
            await sub.unsubscribe()
        return found
    finally:
        await nc.close()


async def dead_letters(settings: Settings, durable: str) -> list[DeadMessage]:
    """Every dead letter of this consumer in DEAD_LETTERS."""
    subject = DEADLETTER_CONSUMER.format(durable=durable)
    bodies = await stream_bodies(settings, DEAD_LETTERS.name, subject)
    return [DeadMessage.model_validate_json(body) for body in bodies]


async def stored(settings: Settings, stream: str, seq: int) -> bytes:
    nc = await nats.connect(settings.nats_url)
    try:
        return (await nc.jetstream().get_msg(stream, seq)).data or b""
    finally:
        await nc.close()
