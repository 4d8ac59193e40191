"""The shipped rule sets and answer sets built from them, for the screening unit tests."""

from __future__ import annotations

import copy
from datetime import date
from typing import Any

from services.screening import rules
from services.screening.rules import RuleSet
from services.screening.store import shipped

_SHIPPED = {rule_set.id: rule_set for rule_set in shipped()}
JANUARY = _SHIPPED["coronavac-2021-01"]
FEBRUARY = _SHIPPED["coronavac-2021-02-15"]

IN_JANUARY = date(2021, 1, 20)
IN_FEBRUARY = date(2021, 2, 20)
ADULT = date(1985, 6, 1)  # 35 in 2021


def none_apply(rule_set: RuleSet) -> dict[str, bool | date]:
    """What 'none of these apply' sends: every top-level question answered no."""
    return {q.id: False for q in rule_set.questions if q.ask_if is None}


def answers(rule_set: RuleSet, **given: bool | date) -> dict[str, bool | date]:
    return {**none_apply(rule_set), **given}


def born_aged(years: int, on: date) -> date:
    """A birth date that makes someone exactly `years` old on `on` (their birthday)."""
    return on.replace(year=on.year - years)


MINIMAL: dict[str, Any] = {
    "id": "test-2021-03",
    "vaccine": "CoronaVac",
    "effective_from": "2021-03-01",
    "summary": {"id": "• hamil\n• pernah COVID-19", "en": "• pregnant\n• ever had COVID-19"},
    "questions": [
        {
            "id": "pregnant",
            "text": {"id": "Apakah Anda sedang hamil?", "en": "Are you pregnant?"},
            "short": {"id": "Hamil", "en": "Pregnant"},
        },
        {
            "id": "covid",
            "text": {"id": "Pernah COVID-19?", "en": "Ever had COVID-19?"},
            "short": {"id": "Pernah COVID-19", "en": "Had COVID-19"},
        },
        {
            "id": "covid_recovered_on",
            "kind": "date",
            "ask_if": {"covid": True},
            "text": {"id": "Kapan sembuh?", "en": "When did you recover?"},
            "short": {"id": "Tanggal sembuh", "en": "Recovery date"},
        },
    ],
    "rules": [
        {
            "id": "pregnant",
            "when": {"answer": "pregnant", "is": True},
            "outcome": "not_eligible",
            "reason": {"id": "Sedang hamil.", "en": "Pregnant."},
        },
        {
            "id": "recent_covid",
            "when": {"answer": "covid_recovered_on", "within": {"months": 3}},
            "outcome": "postpone",
            "rescreen": {"answer": "covid_recovered_on", "months": 3},
            "reason": {"id": "Baru sembuh.", "en": "Recently recovered."},
        },
    ],
}


def minimal(**changes: Any) -> dict[str, Any]:
    """A deep copy of the minimal valid rule set, with top-level keys replaced."""
    document = copy.deepcopy(MINIMAL)
    document.update(changes)
    return document


def parse(document: dict[str, Any]) -> RuleSet:
    return rules.parse(document)
