"""Facility search by what a user typed (scheduler.rpc.facilities_search), the pure part: which
words must match. Every word must occur in the facility's name, address or regency (so a regency
typed after the name narrows the search, with no rule for telling the two apart); the query as a
whole, spaces collapsed, is what counts as the exact name."""

from __future__ import annotations

from dataclasses import dataclass

from services.common.contracts.scheduler import FACILITY_QUERY_MAX, FACILITY_QUERY_MIN, ErrorCode
from services.scheduler.domain import SchedulerError

# Around a word, not inside it: "Tebet," and "(Kab." are words, "Dr.Soewandhie" stays one.
_PUNCTUATION = ".,;:!?()[]\"'"


@dataclass(frozen=True)
class Terms:
    words: tuple[str, ...]  # lowercased, each to occur somewhere in name, address or regency
    exact: str  # the query lowercased with single spaces: an exact name match comes first


def terms(query: str) -> Terms:
    collapsed = " ".join(query.split())
    if not FACILITY_QUERY_MIN <= len(collapsed) <= FACILITY_QUERY_MAX:
        raise SchedulerError(
            ErrorCode.INVALID,
            f"a query has {FACILITY_QUERY_MIN} to {FACILITY_QUERY_MAX} characters",
        )
    lowered = collapsed.lower()
    words = dict.fromkeys(w for w in (w.strip(_PUNCTUATION) for w in lowered.split()) if w)
    if not words:
        raise SchedulerError(ErrorCode.INVALID, "a query needs a word, not only punctuation")
    return Terms(tuple(words), lowered)


def like_pattern(word: str) -> str:
    """`word` anywhere, as a LIKE pattern (its own `%`, `_` and `\\` taken literally)."""
    escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
