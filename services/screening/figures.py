"""The breakdown of screening.rpc.stats that the operators' console charts (`tables`):
screenings by day and outcome, from the counters kept with each stored screening
(migrations/0002_figures.sql), never from a scan of screening.screening."""

from __future__ import annotations

from datetime import timedelta

import asyncpg

from services.common.clock import jakarta_today
from services.common.contracts.stats import StatsTable

OUTCOMES = ("eligible", "postpone", "not_eligible", "refer")
DAYS = 30


async def tables(pool: asyncpg.Pool) -> dict[str, StatsTable]:
    rows = await pool.fetch(
        """SELECT day, outcome, sum(n)::bigint AS n FROM screening.figure WHERE day >= $1
           GROUP BY day, outcome ORDER BY day""",
        jakarta_today() - timedelta(days=DAYS - 1),
    )
    days: dict[str, dict[str, int]] = {}
    for r in rows:
        days.setdefault(r["day"].isoformat(), {})[r["outcome"]] = int(r["n"])
    return {
        "screenings_by_day": StatsTable(
            title="Screenings by day and outcome",
            columns=["day", *OUTCOMES],
            rows=[[d, *(v.get(o, 0) for o in OUTCOMES)] for d, v in days.items()],
        )
    }
