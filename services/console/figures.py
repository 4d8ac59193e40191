"""The live figures: every service's stats (counts and breakdowns) asked at once over NATS,
combined into the headline numbers, the tables (each exportable as CSV) and the series the
charts draw. One answer is shared by every open page for CACHE_SECONDS, so the services count
at most that often however many operators watch."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from services.common.contracts.stats import ServiceStats, StatsTable
from services.console.rpc import Services

CACHE_SECONDS = 5.0


@dataclass(frozen=True)
class Figures:
    headline: list[tuple[str, str, int | None]]  # key, label, value (None: not answering)
    tables: dict[str, StatsTable]
    charts: dict[str, dict[str, Any]]
    missing: list[str] = field(default_factory=list)  # services that did not answer

    def as_json(self) -> dict[str, Any]:
        return {
            "headline": [{"key": k, "label": label, "value": v} for k, label, v in self.headline],
            "tables": {n: t.model_dump() for n, t in self.tables.items()},
            "charts": self.charts,
            "missing": self.missing,
        }


def _count(answers: dict[str, ServiceStats], service: str, *keys: str) -> int | None:
    answer = answers.get(service)
    if answer is None or answer.error:
        return None
    return sum(answer.counts.get(k, 0) for k in keys)


def _last_full_minute(table: StatsTable | None, column: str) -> int | None:
    if table is None or len(table.rows) < 2:
        return None
    value = table.rows[-2][table.columns.index(column)]
    return int(value)


def _by_day(tables: dict[str, StatsTable]) -> StatsTable:
    """One row per day across the services: the campaign's progress."""
    wanted = {
        "identity_by_day": ("registered", "verified", "intake_submitted"),
        "screenings_by_day": ("eligible", "postpone", "not_eligible", "refer"),
        "bookings_by_day": ("booked_dose_1", "booked_dose_2"),
        "checkins_by_day": ("checked_in", "dose_given"),
    }
    columns = ["day", "registered", "verified", "intake_submitted", "screened",
               "booked_dose_1", "booked_dose_2", "checked_in", "dose_given"]  # fmt: skip
    days: dict[str, dict[str, int]] = {}
    for name, cols in wanted.items():
        table = tables.get(name)
        if table is None:
            continue
        for row in table.rows:
            values = dict(zip(table.columns, row, strict=True))
            day = days.setdefault(str(values["day"]), {})
            for c in cols:
                key = "screened" if name == "screenings_by_day" else c
                day[key] = day.get(key, 0) + int(values.get(c, 0))
    return StatsTable(
        title="The campaign by day (WIB)",
        columns=columns,
        rows=[[d, *(days[d].get(c, 0) for c in columns[1:])] for d in sorted(days)],
    )


def combine(answers: dict[str, ServiceStats]) -> Figures:
    tables: dict[str, StatsTable] = {}
    for answer in answers.values():
        if not answer.error:
            tables.update(answer.tables)
    by_day = _by_day(tables)
    per_minute_in = tables.get("messages_in_per_minute")
    per_minute_out = tables.get("messages_out_per_minute")
    headline = [
        ("registered", "Registered", _count(answers, "identity", "people")),
        ("verified", "Verified in the chat", _count(answers, "identity", "people_verified")),
        ("locked", "Numbers locked now", _count(answers, "identity", "numbers_locked")),
        ("intake_open", "Intake open", _count(answers, "identity", "intake.open")),
        (
            "intake_decided",
            "Intake decided",
            _count(answers, "identity", "intake.approved", "intake.rejected"),
        ),
        ("screened", "Screened", _count(answers, "screening", "screenings")),
        ("eligible", "  eligible", _count(answers, "screening", "outcome.eligible")),
        ("postponed", "  postponed", _count(answers, "screening", "outcome.postpone")),
        ("not_eligible", "  not eligible", _count(answers, "screening", "outcome.not_eligible")),
        ("referred", "  referred", _count(answers, "screening", "outcome.refer")),
        (
            "booked",
            "Booked (active, dose 1)",
            _count(answers, "scheduler", "bookings_active.dose_1"),
        ),
        ("dose2_booked", "Dose 2 booked", _count(answers, "scheduler", "bookings_active.dose_2")),
        ("checked_in", "Checked in", _count(answers, "ticketing", "tickets_redeemed")),
        ("doses_given", "Doses given", _count(answers, "ticketing", "doses_given")),
        ("in_per_minute", "Messages in, last minute", _last_full_minute(per_minute_in, "in")),
        ("out_per_minute", "Messages out, last minute", _last_full_minute(per_minute_out, "out")),
        ("send_failures", "Send failures, 24 h", _count(answers, "notifier", "dead_letters_24h")),
    ]
    tables = {"campaign_by_day": by_day, **tables}
    charts: dict[str, dict[str, Any]] = {
        "by_day": {
            "x": [r[0] for r in by_day.rows],
            "series": {
                c: [r[i] for r in by_day.rows] for i, c in enumerate(by_day.columns) if i > 0
            },
        },
        "per_minute": {
            "x": [
                r[0]
                for r in (per_minute_out or per_minute_in or StatsTable(title="", columns=[])).rows
            ],
            "series": {
                "in": [r[1] for r in per_minute_in.rows] if per_minute_in else [],
                "out": [r[1] for r in per_minute_out.rows] if per_minute_out else [],
                "failed": [r[2] for r in per_minute_out.rows] if per_minute_out else [],
            },
        },
    }
    missing = [name for name, a in answers.items() if a.error]
    return Figures(headline, tables, charts, missing)


class FiguresCache:
    """One `combine(stats)` at a time, reused for CACHE_SECONDS."""

    def __init__(self, services: Services, ttl: float = CACHE_SECONDS) -> None:
        self.services = services
        self.ttl = ttl
        self._value: Figures | None = None
        self._at = 0.0
        self._lock = asyncio.Lock()

    async def get(self) -> Figures:
        async with self._lock:
            if self._value is None or time.monotonic() - self._at > self.ttl:
                self._value = combine(await self.services.stats(tables=True))
                self._at = time.monotonic()
            return self._value
