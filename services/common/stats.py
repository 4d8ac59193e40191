"""The `<owner>.rpc.stats` responder that every service with a schema registers on its router:
its own counts, for `vaksin stats`. It never raises: a failure to count is answered with `error`,
because a raised exception leaves the requester waiting for its timeout."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import asyncpg
import structlog
from faststream.nats import NatsRouter

from services.common.contracts.stats import ServiceStats, StatsRequest, StatsTable
from services.common.deps import Pool

log = structlog.get_logger(__name__)

Counter = Callable[[asyncpg.Pool], Awaitable[dict[str, int]]]
# The breakdowns the operators' console charts (`StatsRequest.tables`), by name.
Tables = Callable[[asyncpg.Pool], Awaitable[dict[str, StatsTable]]]


def add_stats_responder(
    router: NatsRouter,
    subject: str,
    *,
    queue: str,
    service: str,
    count: Counter,
    tables: Tables | None = None,
) -> None:
    """Answer `subject` in `queue` with `count(pool)` (the service's repository), as `service`,
    and with `tables(pool)` too when the request asks for them."""

    async def stats(body: StatsRequest, pool: Pool) -> ServiceStats:
        """The service's own counts, from its schema only (`vaksin stats`, the console)."""
        try:
            counts = await count(pool)
            breakdowns = await tables(pool) if body.tables and tables else {}
        except Exception:
            log.exception("stats failed")
            return ServiceStats(service=service, error=f"unavailable: {service} could not count")
        return ServiceStats(service=service, counts=counts, tables=breakdowns)

    router.subscriber(subject, queue=queue)(stats)


def minute_rows(
    counted: dict[datetime, list[int]], now: datetime, minutes: int, width: int
) -> list[list[str | int]]:
    """The last `minutes` whole minutes up to `now`, oldest first, as rows of
    `[HH:MM (UTC), count...]` with zeros where nothing was counted (charts want every minute)."""
    end = now.replace(second=0, microsecond=0)
    rows: list[list[str | int]] = []
    for i in range(minutes - 1, -1, -1):
        at = end - timedelta(minutes=i)
        rows.append([at.strftime("%H:%M"), *counted.get(at, [0] * width)])
    return rows


def counter_table(
    title: str, rows: list[asyncpg.Record], keys: tuple[str, ...], metrics: tuple[str, ...]
) -> StatsTable:
    """Counter rows (the `keys` columns, `metric`, `n`) as a table: a row per key, `[*key, n of
    each metric]`, zero where a metric was not counted."""
    table: dict[tuple[str, ...], dict[str, int]] = {}
    for r in rows:
        table.setdefault(tuple(str(r[k]) for k in keys), {})[r["metric"]] = int(r["n"])
    return StatsTable(
        title=title,
        columns=[*keys, *metrics],
        rows=[[*k, *(v.get(m, 0) for m in metrics)] for k, v in table.items()],
    )
