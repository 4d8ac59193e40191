"""Where rule sets come from: the ones shipped in the package (`rulesets/*.yaml`, loaded into the
table when missing, so a fresh system works) and the table, where operators add theirs
(`vaksin screening load`). Parsed rule sets are cached by id and checksum: a rule set never
changes once loaded, so the cache is never stale, while the list of rule sets is read on every
request so that a newly loaded one is used at once by every replica."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import structlog

from services.screening import repository, rules
from services.screening.domain import Entry
from services.screening.rules import RuleSet

log = structlog.get_logger(__name__)

SHIPPED_DIR = Path(__file__).parent / "rulesets"


def shipped() -> list[RuleSet]:
    return [
        rules.parse_text(p.read_text("utf-8"), "yaml") for p in sorted(SHIPPED_DIR.glob("*.yaml"))
    ]


async def ensure_shipped(conn: asyncpg.Connection) -> list[str]:
    """Load the shipped rule sets that are missing; return their ids. Idempotent, and safe with
    several replicas starting at once."""
    added = []
    for rule_set in shipped():
        loaded = await repository.add_rule_set(conn, rule_set)
        if loaded is repository.Loaded.NEW:
            added.append(rule_set.id)
        elif loaded is repository.Loaded.CONFLICT:
            # Someone edited a shipped file after it was loaded: keep what screenings were
            # judged by, and say so (a changed rule set needs a new id).
            log.warning(
                "shipped rule set differs from the loaded one; keeping the loaded one",
                rule_set_id=rule_set.id,
            )
    return added


class RuleSetStore:
    def __init__(self) -> None:
        self._parsed: dict[tuple[str, str], RuleSet] = {}

    async def entries(self, conn: asyncpg.Connection) -> list[Entry]:
        return await repository.entries(conn)

    async def get(self, conn: asyncpg.Connection, entry: Entry) -> RuleSet:
        key = (entry.id, entry.checksum)
        if key not in self._parsed:
            document = await repository.definition(conn, entry.id)
            self._parsed[key] = rules.parse(document)
        return self._parsed[key]
