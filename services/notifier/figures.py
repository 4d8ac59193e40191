"""The breakdown of notifier.rpc.stats that the operators' console charts (`tables`): messages
sent and failed per minute over the last hour, by when the command arrived (index
outbound_message_created_at: an hour of rows, never the whole table)."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

from services.common.contracts.stats import StatsTable
from services.common.stats import minute_rows

MINUTES = 60


async def tables(pool: asyncpg.Pool) -> dict[str, StatsTable]:
    now = datetime.now(UTC)
    rows = await pool.fetch(
        """SELECT date_trunc('minute', created_at) AS minute, count(*) AS out,
                  count(*) FILTER (WHERE status = 'failed') AS failed
           FROM notifier.outbound_message
           WHERE created_at >= date_trunc('minute', $1::timestamptz) - make_interval(mins => $2)
           GROUP BY 1""",
        now,
        MINUTES,
    )
    counted = {r["minute"]: [int(r["out"]), int(r["failed"])] for r in rows}
    return {
        "messages_out_per_minute": StatsTable(
            title="Messages out per minute (UTC), and those that failed",
            columns=["minute", "out", "failed"],
            rows=minute_rows(counted, now, MINUTES, 2),
        )
    }
