"""Screening decisions, pure and without IO: the rule set in force on a date, the questionnaire
in a language, checking an answer set against what was asked, and the outcome.

Outcome precedence when several rules fire: not_eligible > refer > postpone > eligible; a postpone
takes the latest re-screen date of its rules; every firing rule's reason is returned, the deciding
ones first. Age rules use the birth date; without one they are skipped (`Decision.age_checked`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from services.common.contracts.screening import (
    EvaluateResult,
    Question,
    QuestionKind,
    Questionnaire,
    ScreeningOutcome,
)
from services.screening.rules import LANGUAGES, Answers, Facts, RuleSet, is_asked

SEVERITY = {
    ScreeningOutcome.NOT_ELIGIBLE: 3,
    ScreeningOutcome.REFER: 2,
    ScreeningOutcome.POSTPONE: 1,
    ScreeningOutcome.ELIGIBLE: 0,
}


class ScreeningError(Exception):
    """A refused request. `code` is stable for programs (the dialog), `detail` for people."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


# --- which rule set ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """A stored rule set, as far as choosing one goes."""

    id: str
    vaccine: str
    effective_from: date
    loaded_at: datetime
    checksum: str = ""


def _newest_first(entries: Sequence[Entry]) -> list[Entry]:
    # On the same date, the one loaded last wins: that is how an operator corrects a rule set
    # (rule sets are immutable by id, so a correction is a new id).
    return sorted(entries, key=lambda e: (e.effective_from, e.loaded_at, e.id), reverse=True)


def in_force(entries: Sequence[Entry], on: date) -> Entry:
    """The rule set with the latest effective date on or before `on`."""
    for entry in _newest_first(entries):
        if entry.effective_from <= on:
            return entry
    if not entries:
        raise ScreeningError("no_rule_set", "no screening rule set is loaded")
    first = min(e.effective_from for e in entries)
    raise ScreeningError(
        "no_rule_set",
        f"no screening rule set is in force on {on.isoformat()} "
        f"(the earliest takes effect on {first.isoformat()})",
    )


def periods(entries: Sequence[Entry]) -> list[tuple[Entry, date | None]]:
    """Each rule set with the first day it is no longer in force (None: still in force), oldest
    first; a rule set replaced before it took effect ends on its own first day."""
    ordered = list(reversed(_newest_first(entries)))
    result: list[tuple[Entry, date | None]] = []
    for i, entry in enumerate(ordered):
        later = [e.effective_from for e in ordered[i + 1 :]]
        result.append((entry, min(later) if later else None))
    return result


def check_in_force(entries: Sequence[Entry], rule_set_id: str, on: date) -> Entry:
    """An evaluation uses the rule set its questions came from, and only while it is in force:
    answers to a replaced form are not judged by rules they were never asked under."""
    named = next((e for e in entries if e.id == rule_set_id), None)
    if named is None:
        raise ScreeningError("unknown_rule_set", f"no rule set '{rule_set_id}'")
    current = in_force(entries, on)
    if current.id != rule_set_id:
        raise ScreeningError(
            "not_in_force",
            f"rule set '{rule_set_id}' is not in force on {on.isoformat()}; '{current.id}' is "
            "(ask for the questionnaire again)",
        )
    return named


# --- questionnaire -----------------------------------------------------------------------------


def check_language(lang: str) -> None:
    if lang not in LANGUAGES:
        raise ScreeningError("unknown_language", f"'{lang}' (languages: {', '.join(LANGUAGES)})")


def questionnaire(rule_set: RuleSet, lang: str) -> Questionnaire:
    check_language(lang)
    return Questionnaire(
        rule_set_id=rule_set.id,
        vaccine=rule_set.vaccine,
        effective_from=rule_set.effective_from,
        lang=lang,
        summary=rule_set.summary[lang],
        questions=[
            Question(
                id=q.id,
                kind=q.kind,
                text=q.text[lang],
                short=q.short[lang],
                ask_if=dict(q.ask_if) if q.ask_if else None,
            )
            for q in rule_set.questions
        ],
        on_site_checks=[check[lang] for check in rule_set.on_site_checks],
    )


def check_answers(rule_set: RuleSet, answers: Answers, on: date) -> None:
    """Every top-level question answered; a follow-up answered exactly when it was asked; each
    answer of its question's kind; no date after the screening date."""
    known = {q.id for q in rule_set.questions}
    unknown = sorted(set(answers) - known)
    if unknown:
        raise ScreeningError("invalid_answers", f"unknown question(s): {', '.join(unknown)}")
    for question in rule_set.questions:
        asked = is_asked(question, answers)
        if not asked:
            if question.id in answers:
                parents = ", ".join(
                    f"{p} = {'yes' if v else 'no'}" for p, v in (question.ask_if or {}).items()
                )
                raise ScreeningError(
                    "invalid_answers", f"'{question.id}' was not asked (only when {parents})"
                )
            continue
        if question.id not in answers:
            raise ScreeningError("invalid_answers", f"no answer to '{question.id}'")
        answer = answers[question.id]
        if question.kind is QuestionKind.YES_NO and not isinstance(answer, bool):
            raise ScreeningError("invalid_answers", f"'{question.id}' is answered yes or no")
        if question.kind is QuestionKind.DATE:
            if not isinstance(answer, date):
                raise ScreeningError("invalid_answers", f"'{question.id}' is answered with a date")
            if answer > on:
                raise ScreeningError(
                    "invalid_answers",
                    f"'{question.id}' is {answer.isoformat()}, after the screening date "
                    f"{on.isoformat()}",
                )


# --- evaluation --------------------------------------------------------------------------------


def age_on(birth_date: date, on: date) -> int:
    """Full years: someone born on 29 February turns a year older on 1 March in other years."""
    return on.year - birth_date.year - ((on.month, on.day) < (birth_date.month, birth_date.day))


@dataclass(frozen=True)
class Decision:
    outcome: ScreeningOutcome
    reasons: tuple[str, ...]  # ids of the firing rules, the deciding ones first
    rescreen_on: date | None
    age_checked: bool = True


def evaluate(rule_set: RuleSet, answers: Answers, on: date, birth_date: date | None) -> Decision:
    """The outcome of a checked answer set (see `check_answers`) on the screening date."""
    if birth_date is not None and birth_date > on:
        raise ScreeningError("invalid_request", "the birth date is after the screening date")
    facts = Facts(answers, on, age_on(birth_date, on) if birth_date else None)
    fired = [rule for rule in rule_set.rules if rule.when.holds(facts)]
    if not fired:
        return Decision(ScreeningOutcome.ELIGIBLE, (), None, birth_date is not None)
    fired.sort(key=lambda rule: -SEVERITY[rule.outcome])  # stable: file order within a level
    outcome = fired[0].outcome
    rescreen_on = None
    if outcome is ScreeningOutcome.POSTPONE:
        rescreen_on = max(r.rescreen.date_for(facts) for r in fired if r.rescreen is not None)
    return Decision(outcome, tuple(r.id for r in fired), rescreen_on, birth_date is not None)


def result(
    rule_set: RuleSet, decision: Decision, lang: str, screening_id: str | None
) -> EvaluateResult:
    return EvaluateResult(
        screening_id=screening_id,
        rule_set_id=rule_set.id,
        outcome=decision.outcome,
        reasons=list(decision.reasons),
        reason_texts=[rule_set.rule(r).reason[lang] for r in decision.reasons],
        rescreen_on=decision.rescreen_on,
        on_site_checks=[check[lang] for check in rule_set.on_site_checks],
    )


def check_request(person_id: str, lang: str) -> None:
    if not person_id.strip():
        raise ScreeningError("invalid_request", "person_id is empty")
    check_language(lang)


def as_answers(raw: Mapping[str, object]) -> dict[str, bool | date]:
    """Answers as stored (JSON: dates as ISO text) back to their values."""
    return {k: v if isinstance(v, bool) else date.fromisoformat(str(v)) for k, v in raw.items()}
