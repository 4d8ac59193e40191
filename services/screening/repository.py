"""All SQL of the screening schema: rule sets (`screening.rule_set`), screenings with their
answers and outcome (`screening.screening`), and the outbox. Connections come from
`services.common.db` (JSON codecs installed)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any

import asyncpg

from services.common import outbox
from services.common.contracts.screening import ScreeningCompleted, ScreeningOutcome
from services.common.contracts.streams import SCREENING
from services.common.contracts.subjects import SCREENING_EVT_COMPLETED
from services.screening.domain import Entry
from services.screening.rules import RuleSet

SCHEMA = "screening"


class Loaded(StrEnum):
    NEW = "new"
    UNCHANGED = "unchanged"  # the same id with the same content: nothing to do
    CONFLICT = "conflict"  # the same id with other content: refused, rule sets are immutable


async def add_rule_set(conn: asyncpg.Connection, rule_set: RuleSet) -> Loaded:
    inserted = await conn.fetchval(
        """INSERT INTO screening.rule_set (id, vaccine, effective_from, definition, checksum)
           VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING RETURNING id""",
        rule_set.id,
        rule_set.vaccine,
        rule_set.effective_from,
        dict(rule_set.definition),
        rule_set.checksum,
    )
    if inserted is not None:
        return Loaded.NEW
    stored = await conn.fetchval(
        "SELECT checksum FROM screening.rule_set WHERE id = $1", rule_set.id
    )
    return Loaded.UNCHANGED if stored == rule_set.checksum else Loaded.CONFLICT


async def entries(conn: asyncpg.Connection) -> list[Entry]:
    rows = await conn.fetch(
        """SELECT id, vaccine, effective_from, loaded_at, checksum FROM screening.rule_set
           ORDER BY effective_from, loaded_at"""
    )
    return [Entry(**dict(r)) for r in rows]


async def definition(conn: asyncpg.Connection, rule_set_id: str) -> dict[str, Any] | None:
    return await conn.fetchval(
        "SELECT definition FROM screening.rule_set WHERE id = $1", rule_set_id
    )


@dataclass(frozen=True)
class ScreeningRecord:
    id: str
    request_id: str
    person_id: str
    rule_set_id: str
    lang: str
    screened_on: date
    answers: dict[str, Any]  # JSON-ready: dates as ISO text
    birth_date_known: bool
    outcome: ScreeningOutcome
    reasons: tuple[str, ...]
    rescreen_on: date | None


async def save_screening(
    conn: asyncpg.Connection, record: ScreeningRecord, event: ScreeningCompleted
) -> bool:
    """Store the screening and its ScreeningCompleted in the outbox, in one transaction.
    False (and nothing written) when a screening with this request id exists already."""
    async with conn.transaction():
        inserted = await conn.fetchval(
            """INSERT INTO screening.screening
                   (id, request_id, person_id, rule_set_id, lang, screened_on, answers,
                    birth_date_known, outcome, reasons, rescreen_on)
               VALUES ($1::uuid, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
               ON CONFLICT (request_id) DO NOTHING RETURNING id""",
            record.id,
            record.request_id,
            record.person_id,
            record.rule_set_id,
            record.lang,
            record.screened_on,
            record.answers,
            record.birth_date_known,
            record.outcome.value,
            list(record.reasons),
            record.rescreen_on,
        )
        if inserted is None:
            return False
        await outbox.enqueue(conn, SCHEMA, SCREENING_EVT_COMPLETED, event, SCREENING.name)
    return True


async def screening_by_request(conn: asyncpg.Connection, request_id: str) -> ScreeningRecord | None:
    row = await conn.fetchrow(
        """SELECT id::text, request_id, person_id, rule_set_id, lang, screened_on, answers,
                  birth_date_known, outcome, reasons, rescreen_on
           FROM screening.screening WHERE request_id = $1""",
        request_id,
    )
    if row is None:
        return None
    return ScreeningRecord(
        **{
            **dict(row),
            "outcome": ScreeningOutcome(row["outcome"]),
            "reasons": tuple(row["reasons"]),
        }
    )


async def stats(pool: asyncpg.Pool) -> dict[str, int]:
    """The counts of `vaksin stats`: screenings stored, and by outcome (every outcome, 0 too)."""
    rows = await pool.fetch(
        "SELECT outcome, count(*) AS n FROM screening.screening GROUP BY outcome"
    )
    by_outcome = {r["outcome"]: r["n"] for r in rows}
    return {
        "screenings": sum(by_outcome.values()),
        **{f"outcome.{o.value}": by_outcome.get(o.value, 0) for o in ScreeningOutcome},
    }
