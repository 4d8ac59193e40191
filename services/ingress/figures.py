"""The breakdown of ingress.rpc.stats (the dialog's) that the operators' console charts
(`tables`): user messages handled per minute over the last hour (index processed_message_age,
read alone: an index-only count of an hour of rows)."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

from services.common.contracts.stats import StatsTable
from services.common.stats import minute_rows

MINUTES = 60


async def tables(pool: asyncpg.Pool) -> dict[str, StatsTable]:
    now = datetime.now(UTC)
    rows = await pool.fetch(
        """SELECT date_trunc('minute', processed_at) AS minute, count(*) AS n
           FROM ingress.processed_message
           WHERE processed_at >= date_trunc('minute', $1::timestamptz) - make_interval(mins => $2)
           GROUP BY 1""",
        now,
        MINUTES,
    )
    counted = {r["minute"]: [int(r["n"])] for r in rows}
    return {
        "messages_in_per_minute": StatsTable(
            title="Messages in per minute (UTC)",
            columns=["minute", "in"],
            rows=minute_rows(counted, now, MINUTES, 1),
        )
    }
