"""The rule set in force on a date, the questionnaire built from it, and checking an answer set
against what was asked (follow-ups only where relevant)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from services.common.contracts.screening import QuestionKind
from services.screening import domain
from services.screening.domain import Entry, ScreeningError
from services.screening.rules import is_asked

from .support import FEBRUARY, IN_FEBRUARY, IN_JANUARY, JANUARY, answers, none_apply

LOADED = datetime(2021, 1, 1, tzinfo=UTC)


def entry(rule_set_id: str, effective_from: date, loaded_hour: int = 0) -> Entry:
    return Entry(rule_set_id, "CoronaVac", effective_from, LOADED.replace(hour=loaded_hour))


SHIPPED = [
    entry(JANUARY.id, JANUARY.effective_from),
    entry(FEBRUARY.id, FEBRUARY.effective_from),
]


# --- which rule set ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("on", "expected"),
    [
        (date(2021, 1, 2), "coronavac-2021-01"),
        (date(2021, 2, 14), "coronavac-2021-01"),
        (date(2021, 2, 15), "coronavac-2021-02-15"),
        (date(2026, 1, 1), "coronavac-2021-02-15"),
    ],
)
def test_the_rule_set_in_force_is_the_latest_that_took_effect(on: date, expected: str) -> None:
    assert domain.in_force(SHIPPED, on).id == expected


def test_before_any_rule_set_there_is_a_clear_error() -> None:
    with pytest.raises(ScreeningError) as refused:
        domain.in_force(SHIPPED, date(2021, 1, 1))
    assert refused.value.code == "no_rule_set"
    assert "2021-01-01" in refused.value.detail and "2021-01-02" in refused.value.detail
    with pytest.raises(ScreeningError, match="no screening rule set is loaded"):
        domain.in_force([], date(2021, 1, 1))


def test_on_the_same_date_the_rule_set_loaded_last_wins() -> None:
    correction = entry("coronavac-2021-02-15b", date(2021, 2, 15), loaded_hour=5)
    assert domain.in_force([*SHIPPED, correction], date(2021, 2, 15)).id == correction.id


def test_periods_say_when_each_rule_set_stops() -> None:
    later = entry("coronavac-2021-04", date(2021, 4, 1))
    periods = [(e.id, ends) for e, ends in domain.periods([later, *SHIPPED])]
    assert periods == [
        ("coronavac-2021-01", date(2021, 2, 15)),
        ("coronavac-2021-02-15", date(2021, 4, 1)),
        ("coronavac-2021-04", None),
    ]


def test_an_evaluation_uses_only_the_rule_set_in_force_on_its_date() -> None:
    assert domain.check_in_force(SHIPPED, JANUARY.id, date(2021, 2, 14)).id == JANUARY.id
    with pytest.raises(ScreeningError) as superseded:
        domain.check_in_force(SHIPPED, JANUARY.id, date(2021, 2, 15))
    assert superseded.value.code == "not_in_force"
    assert FEBRUARY.id in superseded.value.detail
    with pytest.raises(ScreeningError) as unknown:
        domain.check_in_force(SHIPPED, "coronavac-1999", date(2021, 2, 15))
    assert unknown.value.code == "unknown_rule_set"
    with pytest.raises(ScreeningError) as early:
        domain.check_in_force(SHIPPED, FEBRUARY.id, date(2021, 2, 14))
    assert early.value.code == "not_in_force"


# --- the questionnaire -------------------------------------------------------------------------


@pytest.mark.parametrize("lang", ["id", "en"])
def test_questionnaire_in_the_requested_language(lang: str) -> None:
    q = domain.questionnaire(FEBRUARY, lang)
    assert (q.rule_set_id, q.vaccine, q.effective_from, q.lang) == (
        "coronavac-2021-02-15",
        "CoronaVac",
        date(2021, 2, 15),
        lang,
    )
    assert q.summary == FEBRUARY.summary[lang]
    assert [x.id for x in q.questions] == [x.id for x in FEBRUARY.questions]
    assert q.questions[0].text == FEBRUARY.questions[0].text[lang]
    assert q.on_site_checks == [c[lang] for c in FEBRUARY.on_site_checks]
    assert q.error is None


def test_english_and_indonesian_texts_differ() -> None:
    indonesian, english = domain.questionnaire(JANUARY, "id"), domain.questionnaire(JANUARY, "en")
    assert "hamil" in indonesian.summary and "pregnant" in english.summary
    assert all(
        a.text != b.text for a, b in zip(indonesian.questions, english.questions, strict=True)
    )


def test_unknown_language_is_refused() -> None:
    with pytest.raises(ScreeningError) as refused:
        domain.questionnaire(JANUARY, "fr")
    assert refused.value.code == "unknown_language"


def test_follow_ups_carry_their_condition_and_come_after_it() -> None:
    q = domain.questionnaire(FEBRUARY, "en")
    by_id = {x.id: x for x in q.questions}
    assert by_id["covid_recovered_on"].ask_if == {"covid_confirmed": True}
    assert by_id["covid_recovered_on"].kind is QuestionKind.DATE
    assert by_id["diabetes_controlled"].ask_if == {"diabetes": True}
    assert by_id["hiv_cd4_200"].ask_if == {"hiv": True}
    order = [x.id for x in q.questions]
    assert order.index("covid_confirmed") < order.index("covid_recovered_on")
    assert all(x.ask_if is not None for x in q.questions if x.kind is QuestionKind.DATE)


@pytest.mark.parametrize(
    ("given", "asked"),
    [
        ({}, set()),
        ({"diabetes": True}, {"diabetes_controlled"}),
        ({"hiv": True}, {"hiv_cd4_200"}),
        ({"diabetes": True, "hiv": True}, {"diabetes_controlled", "hiv_cd4_200"}),
        ({"covid_confirmed": True}, {"covid_recovered_on"}),
    ],
)
def test_conditional_questions_are_asked_only_when_relevant(
    given: dict[str, bool], asked: set[str]
) -> None:
    current = answers(FEBRUARY, **given)
    follow_ups = {q.id for q in FEBRUARY.questions if q.ask_if is not None}
    assert {q for q in follow_ups if is_asked(FEBRUARY.question(q), current)} == asked


# --- checking answers --------------------------------------------------------------------------


def refused(rule_set, given, on=IN_FEBRUARY) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(ScreeningError) as e:
        domain.check_answers(rule_set, given, on)
    assert e.value.code == "invalid_answers"
    return e.value.detail


def test_none_apply_and_full_answer_sets_are_accepted() -> None:
    domain.check_answers(FEBRUARY, none_apply(FEBRUARY), IN_FEBRUARY)
    domain.check_answers(
        FEBRUARY,
        answers(
            FEBRUARY,
            covid_confirmed=True,
            covid_recovered_on=IN_FEBRUARY,
            hiv=True,
            hiv_cd4_200=False,
        ),
        IN_FEBRUARY,
    )


def test_a_missing_top_level_answer_is_refused() -> None:
    given = none_apply(JANUARY)
    del given["heart_disease"]
    assert refused(JANUARY, given, IN_JANUARY) == "no answer to 'heart_disease'"


def test_a_follow_up_must_be_answered_when_asked() -> None:
    assert refused(FEBRUARY, answers(FEBRUARY, diabetes=True)) == (
        "no answer to 'diabetes_controlled'"
    )


def test_a_follow_up_that_was_not_asked_is_refused() -> None:
    detail = refused(FEBRUARY, answers(FEBRUARY, diabetes_controlled=True))
    assert detail == "'diabetes_controlled' was not asked (only when diabetes = yes)"


def test_an_unknown_question_is_refused() -> None:
    assert refused(FEBRUARY, answers(FEBRUARY, smoker=True)) == "unknown question(s): smoker"


def test_answers_of_the_wrong_kind_are_refused() -> None:
    assert "answered with a date" in refused(
        FEBRUARY, answers(FEBRUARY, covid_confirmed=True, covid_recovered_on=True)
    )
    assert "answered yes or no" in refused(FEBRUARY, answers(FEBRUARY, pregnant=IN_FEBRUARY))


def test_a_date_after_the_screening_date_is_refused_and_the_same_day_accepted() -> None:
    future = answers(FEBRUARY, covid_confirmed=True, covid_recovered_on=date(2021, 2, 21))
    assert "after the screening date 2021-02-20" in refused(FEBRUARY, future)
    same_day = answers(FEBRUARY, covid_confirmed=True, covid_recovered_on=IN_FEBRUARY)
    domain.check_answers(FEBRUARY, same_day, IN_FEBRUARY)


def test_a_birth_date_after_the_screening_date_is_refused() -> None:
    with pytest.raises(ScreeningError) as e:
        domain.evaluate(JANUARY, none_apply(JANUARY), IN_JANUARY, date(2021, 1, 21))
    assert e.value.code == "invalid_request"


def test_an_empty_person_id_is_refused() -> None:
    with pytest.raises(ScreeningError, match="person_id"):
        domain.check_request(" ", "id")
