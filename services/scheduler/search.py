"""Facility search by what a user typed (scheduler.rpc.facilities_search), the pure part.

The words typed and the facility's name, address and regency are compared in one canonical form,
made by `scheduler.search_normalize` in SQL (migrations/0003: lowercase, split at blanks and
punctuation, abbreviations such as `pkm`, `rsud`, `kab` spelt out from the table
`scheduler.search_word`), so `PKM Tebet` finds `Puskesmas Tebet` and `RSUD` finds `Rumah Sakit Umum
Daerah`, and the other way round.

Every word must occur in the facility's text, except the words for a kind of region
(`kabupaten`, `kota`, ...): people add or leave them out ("Jakarta Selatan" for "Kota Jakarta
Selatan"), so they only rank the facilities that have them first. When no facility has every word,
the closest ones by trigram word similarity are offered instead (typos: `cengkarang`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from services.common.contracts.scheduler import FACILITY_QUERY_MAX, FACILITY_QUERY_MIN, ErrorCode
from services.scheduler.domain import SchedulerError

# Where words end: the same characters as in scheduler.search_normalize (migrations/0003).
SEPARATORS = re.compile(r"[\s.,;:!?()\"'/]+")
# Canonical words for a kind of region: optional in a query (they rank, they do not filter).
REGION_WORDS = frozenset({"kabupaten", "kota", "provinsi", "administrasi"})
SIMILAR_ROWS = 5  # the closest facilities offered when none has every word
SIMILARITY = 0.5  # pg_trgm word similarity each word needs then (0.5 lets `tebte` find `tebet`)


def checked(query: str) -> str:
    """The query with its blanks collapsed, or `invalid` when it is too short, too long or has no
    word at all (only punctuation)."""
    collapsed = " ".join(query.split())
    if not FACILITY_QUERY_MIN <= len(collapsed) <= FACILITY_QUERY_MAX:
        raise SchedulerError(
            ErrorCode.INVALID,
            f"a query has {FACILITY_QUERY_MIN} to {FACILITY_QUERY_MAX} characters",
        )
    if not any(SEPARATORS.split(collapsed)):
        raise SchedulerError(ErrorCode.INVALID, "a query needs a word, not only punctuation")
    return collapsed


@dataclass(frozen=True)
class Terms:
    required: tuple[str, ...]  # each must occur in the facility's canonical text
    optional: tuple[str, ...]  # region words: the facilities having them come first
    exact: str  # the whole canonical query: a facility with exactly this name leads


def terms(normalized: str) -> Terms:
    """The words of a canonical query (from scheduler.search_normalize)."""
    words = tuple(dict.fromkeys(normalized.split()))
    if not words:
        raise SchedulerError(ErrorCode.INVALID, "a query needs a word, not only punctuation")
    required = tuple(w for w in words if w not in REGION_WORDS)
    optional = tuple(w for w in words if w in REGION_WORDS)
    if not required:  # only region words ("kota"): then they are what is searched
        required, optional = words, ()
    return Terms(required, optional, " ".join(normalized.split()))


def like_pattern(word: str) -> str:
    """`word` anywhere, as a LIKE pattern (its own `%`, `_` and `\\` taken literally)."""
    escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
