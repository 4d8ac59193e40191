"""The console's only way to the data: requests to the owners over NATS (contracts/operations.py
and `<owner>.rpc.stats`), each with a timeout. A service that does not answer is `Unavailable`
(the page says so, 503); a refusal is in the reply's `error`."""

from __future__ import annotations

import asyncio
from typing import TypeVar

import nats.errors
from faststream.nats import NatsBroker
from pydantic import BaseModel, ValidationError

from services.common.contracts.stats import ServiceStats, StatsRequest
from services.common.contracts.subjects import (
    IDENTITY_RPC_STATS,
    INGRESS_RPC_STATS,
    NOTIFIER_RPC_STATS,
    SCHEDULER_RPC_STATS,
    SCREENING_RPC_STATS,
    TICKETING_RPC_STATS,
)

R = TypeVar("R", bound=BaseModel)

TIMEOUT = 5.0
# A CSV import of a few thousand rows, or a cancelled session's rebookings, take longer.
SLOW_TIMEOUT = 30.0
STATS_TIMEOUT = 3.0

STATS_SUBJECTS = {
    "identity": IDENTITY_RPC_STATS,
    "screening": SCREENING_RPC_STATS,
    "scheduler": SCHEDULER_RPC_STATS,
    "ticketing": TICKETING_RPC_STATS,
    "notifier": NOTIFIER_RPC_STATS,
    "dialog": INGRESS_RPC_STATS,
}


class Unavailable(Exception):
    """The owner did not answer in time (or answered something unreadable)."""

    def __init__(self, subject: str) -> None:
        super().__init__(f"{subject.split('.')[0]} is not answering")
        self.subject = subject


class Services:
    def __init__(self, broker: NatsBroker) -> None:
        self.broker = broker

    async def ask(
        self, subject: str, request: BaseModel, reply: type[R], wait: float = TIMEOUT
    ) -> R:
        try:
            answer = await self.broker.request(request, subject, timeout=wait)
            return reply.model_validate(await answer.decode())
        except (TimeoutError, nats.errors.Error, ValidationError):
            raise Unavailable(subject) from None

    async def stats(self, *, tables: bool = True) -> dict[str, ServiceStats]:
        """Every service's counts (and breakdowns), asked at once; a silent one has `error`."""

        async def one(name: str, subject: str) -> ServiceStats:
            try:
                return await self.ask(
                    subject, StatsRequest(tables=tables), ServiceStats, STATS_TIMEOUT
                )
            except Unavailable:
                return ServiceStats(service=name, error="not answering")

        answers = await asyncio.gather(*(one(n, s) for n, s in STATS_SUBJECTS.items()))
        return dict(zip(STATS_SUBJECTS, answers, strict=True))
