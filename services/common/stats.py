"""The `<owner>.rpc.stats` responder that every service with a schema registers on its router:
its own counts, for `vaksin stats`. It never raises: a failure to count is answered with `error`,
because a raised exception leaves the requester waiting for its timeout."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg
import structlog
from faststream.nats import NatsRouter

from services.common.contracts.stats import ServiceStats, StatsRequest
from services.common.deps import Pool

log = structlog.get_logger(__name__)

Counter = Callable[[asyncpg.Pool], Awaitable[dict[str, int]]]


def add_stats_responder(
    router: NatsRouter, subject: str, *, queue: str, service: str, count: Counter
) -> None:
    """Answer `subject` in `queue` with `count(pool)` (the service's repository), as `service`."""

    async def stats(body: StatsRequest, pool: Pool) -> ServiceStats:
        """The service's own counts, from its schema only (`vaksin stats`)."""
        try:
            counts = await count(pool)
        except Exception:
            log.exception("stats failed")
            return ServiceStats(service=service, error=f"unavailable: {service} could not count")
        return ServiceStats(service=service, counts=counts)

    router.subscriber(subject, queue=queue)(stats)
