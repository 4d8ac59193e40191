"""The rule-set format (YAML or JSON, one structure) and its validation. Pure: text in, `RuleSet`
out, or `RuleSetError` naming the place and the problem.

A rule set is data, so the questionnaire in force changes without a code change (`vaksin screening
load FILE`). Shape, with every key shown (`source`, `on_site_checks`, `ask_if`, `kind` and
`rescreen` are optional):

    id: coronavac-2021-02-15
    vaccine: CoronaVac
    effective_from: 2021-02-15
    source: SE Dirjen P2P HK.02.02/I/368/2021
    summary: {id: "...", en: "..."}            # the one-message list of top-level conditions
    on_site_checks: [{id: "...", en: "..."}]   # measured at the facility, never asked in chat
    questions:
      - {id: covid_confirmed, kind: yes_no, text: {id: ..., en: ...}, short: {id: ..., en: ...}}
      - {id: covid_recovered_on, kind: date, ask_if: {covid_confirmed: true}, text: ..., short: ...}
    rules:
      - id: covid_recovered_recently
        when: {answer: covid_recovered_on, within: {months: 3}}
        outcome: postpone
        reason: {id: "...", en: "..."}
        rescreen: {answer: covid_recovered_on, months: 3}   # without `answer`: the screening date

Conditions: `{answer: Q, is: true|false}` (a yes/no answer), `{answer: Q, within: {days: N}}` or
`{months: N}` (a date answer less than that before the screening date), `{age_below: N}`,
`{age_at_least: N}` (full years on the screening date; false when the birth date is unknown),
`{all: [...]}`, `{any: [...]}`. A question that was not asked has no answer, and a condition on a
missing answer is false.
"""

from __future__ import annotations

import calendar
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal

import yaml

from services.common.contracts.screening import QuestionKind, ScreeningOutcome

LANGUAGES = ("id", "en")
# WhatsApp's limits: the body of a message with buttons (a question, the summary) is 1,024
# characters, a list row's description 72 (the short label).
MAX_TEXT = 1024
MAX_SHORT = 72
_RULE_SET_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_ITEM_ID = re.compile(r"^[a-z0-9_]{1,40}$")  # as `Question.id` in the contract
_OUTCOMES = ", ".join(o.value for o in ScreeningOutcome)

Texts = Mapping[str, str]
Answers = Mapping[str, bool | date]


class RuleSetError(ValueError):
    """A rule set refused: `where` is the path in the file (`questions[2].ask_if`)."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}" if where else problem)
        self.where = where
        self.problem = problem


# --- the model ---------------------------------------------------------------------------------


def add_months(day: date, months: int) -> date:
    """Same day of the month `months` later; the month's last day when that day does not exist
    (30 November + 3 months = 28 February)."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return day.replace(
        year=year, month=month, day=min(day.day, calendar.monthrange(year, month)[1])
    )


@dataclass(frozen=True)
class Span:
    days: int = 0
    months: int = 0

    def after(self, day: date) -> date:
        return add_months(day, self.months) + timedelta(days=self.days)


@dataclass(frozen=True)
class Facts:
    """What conditions are evaluated against."""

    answers: Answers
    on: date  # the screening date
    age: int | None  # full years on `on`; None when the birth date is unknown


@dataclass(frozen=True)
class AnswerIs:
    question: str
    value: bool

    def holds(self, facts: Facts) -> bool:
        answer = facts.answers.get(self.question)
        return isinstance(answer, bool) and answer is self.value

    def requires(self, question: str) -> bool:
        return question == self.question


@dataclass(frozen=True)
class AnswerWithin:
    """The date answer lies less than `span` before the screening date."""

    question: str
    span: Span

    def holds(self, facts: Facts) -> bool:
        answer = facts.answers.get(self.question)
        return isinstance(answer, date) and self.span.after(answer) > facts.on

    def requires(self, question: str) -> bool:
        return question == self.question


@dataclass(frozen=True)
class AgeBelow:
    years: int

    def holds(self, facts: Facts) -> bool:
        return facts.age is not None and facts.age < self.years

    def requires(self, question: str) -> bool:
        return False


@dataclass(frozen=True)
class AgeAtLeast:
    years: int

    def holds(self, facts: Facts) -> bool:
        return facts.age is not None and facts.age >= self.years

    def requires(self, question: str) -> bool:
        return False


@dataclass(frozen=True)
class AllOf:
    items: tuple[Condition, ...]

    def holds(self, facts: Facts) -> bool:
        return all(c.holds(facts) for c in self.items)

    def requires(self, question: str) -> bool:
        return any(c.requires(question) for c in self.items)


@dataclass(frozen=True)
class AnyOf:
    items: tuple[Condition, ...]

    def holds(self, facts: Facts) -> bool:
        return any(c.holds(facts) for c in self.items)

    def requires(self, question: str) -> bool:
        return all(c.requires(question) for c in self.items)


Condition = AnswerIs | AnswerWithin | AgeBelow | AgeAtLeast | AllOf | AnyOf


@dataclass(frozen=True)
class Rescreen:
    """The earliest re-screen date: `span` after the screening date, or after a date answer."""

    span: Span
    answer: str | None = None

    def date_for(self, facts: Facts) -> date:
        start = facts.answers[self.answer] if self.answer else facts.on
        assert isinstance(start, date)  # validation: the rule's condition requires this answer
        return self.span.after(start)


@dataclass(frozen=True)
class QuestionDef:
    id: str
    kind: QuestionKind
    text: Texts
    short: Texts
    ask_if: Mapping[str, bool] | None = None


@dataclass(frozen=True)
class Rule:
    id: str
    when: Condition
    outcome: ScreeningOutcome
    reason: Texts
    rescreen: Rescreen | None = None


@dataclass(frozen=True)
class RuleSet:
    id: str
    vaccine: str
    effective_from: date
    source: str | None
    summary: Texts
    questions: tuple[QuestionDef, ...]
    on_site_checks: tuple[Texts, ...]
    rules: tuple[Rule, ...]
    definition: Mapping[str, Any]  # the validated document, JSON-ready: what is stored
    checksum: str  # sha256 of the canonical JSON of `definition`: YAML and JSON alike

    def question(self, question_id: str) -> QuestionDef:
        return next(q for q in self.questions if q.id == question_id)

    def rule(self, rule_id: str) -> Rule:
        return next(r for r in self.rules if r.id == rule_id)


# --- reading -----------------------------------------------------------------------------------

Format = Literal["yaml", "json"]


class _StrictLoader(yaml.SafeLoader):
    """Refuses a key given twice in one mapping (plain YAML keeps the last one silently), and
    reads dates as text, so that a bad one is reported with its place like any other mistake."""


_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _mapping_without_duplicates(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            line = key_node.start_mark.line + 1
            raise yaml.constructor.ConstructorError(
                None, None, f"line {line}: key {key!r} given twice", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates
)


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"key {key!r} given twice")
        result[key] = value
    return result


def format_of(name: str) -> Format | None:
    """The format a file name implies: .yaml/.yml or .json."""
    lowered = name.lower()
    if lowered.endswith((".yaml", ".yml")):
        return "yaml"
    if lowered.endswith(".json"):
        return "json"
    return None


def parse_text(text: str, fmt: Format) -> RuleSet:
    if fmt == "json":
        try:
            data = json.loads(text, object_pairs_hook=_json_object)
        except json.JSONDecodeError as e:
            raise RuleSetError(
                "", f"not valid JSON: line {e.lineno} column {e.colno}: {e.msg}"
            ) from None
        except ValueError as e:
            raise RuleSetError("", f"not valid JSON: {e}") from None
    else:
        try:
            data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark
            where = f"line {mark.line + 1} column {mark.column + 1}: " if mark else ""
            raise RuleSetError("", f"not valid YAML: {where}{e.problem}") from None
        except yaml.YAMLError as e:
            raise RuleSetError("", f"not valid YAML: {e}") from None
    return parse(data)


# --- validation --------------------------------------------------------------------------------


def _keys(
    value: Any, where: str, required: Sequence[str], optional: Sequence[str] = ()
) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RuleSetError(where, f"expected a mapping, got {_kind(value)}")
    for key in value:
        if not isinstance(key, str):
            raise RuleSetError(where, f"key {key!r} is not text")
        if key not in required and key not in optional:
            allowed = ", ".join([*required, *optional])
            raise RuleSetError(where, f"unknown key '{key}' (allowed: {allowed})")
    for key in required:
        if key not in value:
            raise RuleSetError(where, f"missing '{key}'")
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    return {
        bool: "true/false",
        int: "a number",
        float: "a number",
        str: "text",
        list: "a list",
        dict: "a mapping",
        date: "a date",
    }.get(type(value), type(value).__name__)


def _text(value: Any, where: str, limit: int) -> str:
    if not isinstance(value, str):
        raise RuleSetError(where, f"expected text, got {_kind(value)}")
    if not value.strip():
        raise RuleSetError(where, "empty text")
    if len(value) > limit:
        raise RuleSetError(where, f"{len(value)} characters; WhatsApp allows at most {limit} here")
    return value


def _texts(value: Any, where: str, limit: int = MAX_TEXT) -> dict[str, str]:
    if not isinstance(value, dict):
        raise RuleSetError(where, f"expected texts per language ({', '.join(LANGUAGES)})")
    for lang in value:
        if lang not in LANGUAGES:
            raise RuleSetError(
                where, f"unknown language '{lang}' (languages: {', '.join(LANGUAGES)})"
            )
    for lang in LANGUAGES:
        if lang not in value:
            raise RuleSetError(where, f"missing language '{lang}'")
    return {lang: _text(value[lang], f"{where}.{lang}", limit) for lang in LANGUAGES}


def _identifier(value: Any, where: str, pattern: re.Pattern[str], what: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise RuleSetError(where, f"{value!r} is not a valid {what} ({pattern.pattern})")
    return value


def _date(value: Any, where: str) -> date:
    if isinstance(value, datetime):
        raise RuleSetError(where, f"expected a date without a time, got {value.isoformat()}")
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
                return date.fromisoformat(value)
        except ValueError:
            pass
        raise RuleSetError(where, f"'{value}' is not a date (YYYY-MM-DD)")
    raise RuleSetError(where, f"expected a date (YYYY-MM-DD), got {_kind(value)}")


def _count(value: Any, where: str, *, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise RuleSetError(where, f"expected a whole number from {low} to {high}, got {value!r}")
    return value


def _span(value: Any, where: str, extra: Sequence[str] = ()) -> Span:
    spec = _keys(value, where, (), ("days", "months", *extra))
    units = [u for u in ("days", "months") if u in spec]
    if len(units) != 1:
        raise RuleSetError(where, "give exactly one of 'days' or 'months'")
    amount = _count(spec[units[0]], f"{where}.{units[0]}", low=1, high=3650)
    return Span(**{units[0]: amount})


def _question(value: Any, where: str, earlier: Mapping[str, QuestionDef]) -> QuestionDef:
    spec = _keys(value, where, ("id", "text", "short"), ("kind", "ask_if"))
    qid = _identifier(spec["id"], f"{where}.id", _ITEM_ID, "question id")
    if qid in earlier:
        raise RuleSetError(f"{where}.id", f"duplicate question id '{qid}'")
    kinds = ", ".join(k.value for k in QuestionKind)
    raw_kind = spec.get("kind", QuestionKind.YES_NO.value)
    if raw_kind not in {k.value for k in QuestionKind}:
        raise RuleSetError(f"{where}.kind", f"unknown kind {raw_kind!r} (kinds: {kinds})")
    kind = QuestionKind(raw_kind)
    ask_if: dict[str, bool] | None = None
    if "ask_if" in spec:
        ask_if = {}
        raw = spec["ask_if"]
        if not isinstance(raw, dict) or not raw:
            raise RuleSetError(f"{where}.ask_if", "expected a mapping {question id: true|false}")
        for parent, wanted in raw.items():
            at = f"{where}.ask_if.{parent}"
            if parent == qid:
                raise RuleSetError(at, "a question cannot depend on itself")
            if parent not in earlier:
                raise RuleSetError(
                    at,
                    f"names '{parent}', which is not an earlier question "
                    "(a follow-up comes after the question it depends on)",
                )
            if earlier[parent].kind is not QuestionKind.YES_NO:
                raise RuleSetError(at, f"'{parent}' is not a yes/no question")
            if not isinstance(wanted, bool):
                raise RuleSetError(at, f"expected true or false, got {_kind(wanted)}")
            ask_if[parent] = wanted
    elif kind is QuestionKind.DATE:
        raise RuleSetError(
            where,
            f"date question '{qid}' must be a follow-up (ask_if): every top-level question is "
            "a yes/no condition, so that 'none of these apply' answers them all",
        )
    return QuestionDef(
        id=qid,
        kind=kind,
        text=_texts(spec["text"], f"{where}.text", MAX_TEXT),
        short=_texts(spec["short"], f"{where}.short", MAX_SHORT),
        ask_if=ask_if,
    )


_CONDITION_FORMS = "{answer, is}, {answer, within}, {age_below}, {age_at_least}, {all} or {any}"


def _condition(value: Any, where: str, questions: Mapping[str, QuestionDef]) -> Condition:
    if not isinstance(value, dict):
        raise RuleSetError(where, f"expected a condition ({_CONDITION_FORMS})")
    keys = set(value)
    if keys in ({"all"}, {"any"}):
        (op,) = keys
        items = value[op]
        if not isinstance(items, list) or not items:
            raise RuleSetError(f"{where}.{op}", "expected a non-empty list of conditions")
        parsed = tuple(
            _condition(item, f"{where}.{op}[{i}]", questions) for i, item in enumerate(items)
        )
        return AllOf(parsed) if op == "all" else AnyOf(parsed)
    if keys == {"age_below"}:
        return AgeBelow(_count(value["age_below"], f"{where}.age_below", low=0, high=150))
    if keys == {"age_at_least"}:
        return AgeAtLeast(_count(value["age_at_least"], f"{where}.age_at_least", low=0, high=150))
    if keys in ({"answer", "is"}, {"answer", "within"}):
        qid = value["answer"]
        if not isinstance(qid, str) or qid not in questions:
            raise RuleSetError(f"{where}.answer", f"names unknown question {qid!r}")
        kind = questions[qid].kind
        if "is" in keys:
            if kind is not QuestionKind.YES_NO:
                raise RuleSetError(where, f"'is' needs a yes/no question; '{qid}' is {kind.value}")
            if not isinstance(value["is"], bool):
                raise RuleSetError(
                    f"{where}.is", f"expected true or false, got {_kind(value['is'])}"
                )
            return AnswerIs(qid, value["is"])
        if kind is not QuestionKind.DATE:
            raise RuleSetError(where, f"'within' needs a date question; '{qid}' is {kind.value}")
        return AnswerWithin(qid, _span(value["within"], f"{where}.within"))
    shown = ", ".join(sorted(map(str, keys))) or "none"
    raise RuleSetError(where, f"unknown condition with keys {shown} (one of {_CONDITION_FORMS})")


def _rule(value: Any, where: str, questions: Mapping[str, QuestionDef], seen: set[str]) -> Rule:
    spec = _keys(value, where, ("id", "when", "outcome", "reason"), ("rescreen",))
    rid = _identifier(spec["id"], f"{where}.id", _ITEM_ID, "rule id")
    if rid in seen:
        raise RuleSetError(f"{where}.id", f"duplicate rule id '{rid}'")
    if spec["outcome"] not in {o.value for o in ScreeningOutcome}:
        raise RuleSetError(
            f"{where}.outcome", f"unknown outcome {spec['outcome']!r} (outcomes: {_OUTCOMES})"
        )
    outcome = ScreeningOutcome(spec["outcome"])
    when = _condition(spec["when"], f"{where}.when", questions)
    rescreen: Rescreen | None = None
    if outcome is ScreeningOutcome.POSTPONE:
        if "rescreen" not in spec:
            raise RuleSetError(where, "a postpone rule needs 'rescreen' (the earliest date)")
        at = f"{where}.rescreen"
        span = _span(spec["rescreen"], at, extra=("answer",))
        answer = spec["rescreen"].get("answer")
        if answer is not None:
            if not isinstance(answer, str) or answer not in questions:
                raise RuleSetError(f"{at}.answer", f"names unknown question {answer!r}")
            if questions[answer].kind is not QuestionKind.DATE:
                raise RuleSetError(f"{at}.answer", f"'{answer}' is not a date question")
            if not when.requires(answer):
                raise RuleSetError(
                    at,
                    f"counts from the answer to '{answer}', so the rule's condition must "
                    f"require that answer (e.g. {{answer: {answer}, within: ...}})",
                )
        rescreen = Rescreen(span, answer)
    elif "rescreen" in spec:
        raise RuleSetError(
            f"{where}.rescreen", f"only a postpone rule has one, not {outcome.value}"
        )
    return Rule(rid, when, outcome, _texts(spec["reason"], f"{where}.reason", MAX_TEXT), rescreen)


def _list(value: Any, where: str, *, empty_ok: bool = False) -> list[Any]:
    if not isinstance(value, list):
        raise RuleSetError(where, f"expected a list, got {_kind(value)}")
    if not value and not empty_ok:
        raise RuleSetError(where, "empty list")
    return value


def parse(data: Any) -> RuleSet:
    """Validate a decoded rule-set document (from YAML, JSON or the database)."""
    spec = _keys(
        data,
        "",
        ("id", "vaccine", "effective_from", "summary", "questions", "rules"),
        ("source", "on_site_checks"),
    )
    rule_set_id = _identifier(spec["id"], "id", _RULE_SET_ID, "rule set id")
    vaccine = _text(spec["vaccine"], "vaccine", 64)
    effective_from = _date(spec["effective_from"], "effective_from")
    source = _text(spec["source"], "source", 500) if "source" in spec else None
    summary = _texts(spec["summary"], "summary", MAX_TEXT)
    checks = tuple(
        _texts(c, f"on_site_checks[{i}]", MAX_TEXT)
        for i, c in enumerate(
            _list(spec.get("on_site_checks", []), "on_site_checks", empty_ok=True)
        )
    )
    questions: dict[str, QuestionDef] = {}
    for i, raw in enumerate(_list(spec["questions"], "questions")):
        question = _question(raw, f"questions[{i}]", questions)
        questions[question.id] = question
    rules: list[Rule] = []
    for i, raw in enumerate(_list(spec["rules"], "rules")):
        rules.append(_rule(raw, f"rules[{i}]", questions, {r.id for r in rules}))
    _none_apply_is_harmless(rules, questions, effective_from)
    definition = {**spec, "effective_from": effective_from.isoformat()}
    canonical = json.dumps(definition, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return RuleSet(
        id=rule_set_id,
        vaccine=vaccine,
        effective_from=effective_from,
        source=source,
        summary=summary,
        questions=tuple(questions.values()),
        on_site_checks=checks,
        rules=tuple(rules),
        definition=definition,
        checksum=hashlib.sha256(canonical.encode()).hexdigest(),
    )


def _none_apply_is_harmless(
    rules: Sequence[Rule], questions: Mapping[str, QuestionDef], on: date
) -> None:
    """'None of these apply' answers every top-level question 'no' in one turn: that must be
    the harmless answer, or the one-message path would pass someone a rule stops."""
    none_apply = Facts({q.id: False for q in questions.values() if q.ask_if is None}, on, None)
    for i, rule in enumerate(rules):
        if rule.outcome is not ScreeningOutcome.ELIGIBLE and rule.when.holds(none_apply):
            raise RuleSetError(
                f"rules[{i}]",
                f"'{rule.id}' fires when every question is answered 'no'; phrase the question "
                "so that 'no' is the harmless answer",
            )


# --- helpers the domain uses --------------------------------------------------------------------


def is_asked(question: QuestionDef, answers: Answers) -> bool:
    """A follow-up is asked only when each question it depends on got the listed answer."""
    if question.ask_if is None:
        return True
    return all(
        isinstance(answers.get(parent), bool) and answers.get(parent) is wanted
        for parent, wanted in question.ask_if.items()
    )
