"""Every rule of both shipped rule sets: each condition alone gives its outcome, and what changed
on 15 February 2021 (SE HK.02.02/I/368/2021) changes the outcome exactly there."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import pytest

from services.common.contracts.screening import ScreeningOutcome as O
from services.screening import domain
from services.screening.rules import RuleSet

from .support import ADULT, FEBRUARY, IN_FEBRUARY, IN_JANUARY, JANUARY, answers, born_aged


@dataclass(frozen=True)
class Case:
    name: str
    given: dict[str, bool | date]
    outcome: O
    reasons: tuple[str, ...] = ()
    rescreen_on: date | None = None
    birth_date: date | None = ADULT
    covers: tuple[str, ...] = field(default=())  # rule ids proven (default: `reasons`)


NOT_ELIGIBLE_IN_JANUARY = [
    "covid_confirmed",
    "pregnant_or_breastfeeding",
    "allergy_after_covid_vaccine",
    "blood_disorder_therapy",
    "heart_disease",
    "systemic_autoimmune",
    "kidney_disease",
    "rheumatic_autoimmune",
    "chronic_digestive",
    "autoimmune_thyroid",
    "cancer_blood_immune",
]

JANUARY_CASES = [
    *(Case(q, {q: True}, O.NOT_ELIGIBLE, (q,)) for q in NOT_ELIGIBLE_IN_JANUARY),
    Case("ari", {"ari_symptoms": True}, O.POSTPONE, ("ari_symptoms",), date(2021, 1, 27)),
    Case(
        "household",
        {"household_contact": True},
        O.POSTPONE,
        ("household_contact",),
        date(2021, 2, 3),
    ),
    Case("diabetes controlled", {"diabetes": True, "diabetes_controlled": True}, O.ELIGIBLE),
    Case(
        "diabetes not controlled",
        {"diabetes": True, "diabetes_controlled": False},
        O.NOT_ELIGIBLE,
        ("diabetes_not_controlled",),
    ),
    Case("hiv cd4 200+", {"hiv": True, "hiv_cd4_200": True}, O.ELIGIBLE),
    Case(
        "hiv cd4 <200 or unknown",
        {"hiv": True, "hiv_cd4_200": False},
        O.NOT_ELIGIBLE,
        ("hiv_cd4_below_200",),
    ),
    Case("lung controlled", {"lung_disease": True, "lung_controlled": True}, O.ELIGIBLE),
    Case(
        "lung not controlled",
        {"lung_disease": True, "lung_controlled": False},
        O.POSTPONE,
        ("lung_not_controlled",),
        date(2021, 2, 3),
    ),
    Case("age 17", {}, O.NOT_ELIGIBLE, ("age_below_18",), birth_date=born_aged(17, IN_JANUARY)),
    Case("age 18", {}, O.ELIGIBLE, birth_date=born_aged(18, IN_JANUARY)),
    Case("age 59", {}, O.ELIGIBLE, birth_date=born_aged(59, IN_JANUARY)),
    Case("age 60", {}, O.NOT_ELIGIBLE, ("age_60_or_more",), birth_date=born_aged(60, IN_JANUARY)),
    Case("no birth date: age rules skipped", {}, O.ELIGIBLE, birth_date=None),
]

FEBRUARY_CASES = [
    Case(
        "covid recovered 2 months ago",
        {"covid_confirmed": True, "covid_recovered_on": date(2020, 12, 20)},
        O.POSTPONE,
        ("covid_recovered_recently",),
        date(2021, 3, 20),
    ),
    Case(
        "covid recovered 3 months ago",
        {"covid_confirmed": True, "covid_recovered_on": date(2020, 11, 20)},
        O.ELIGIBLE,
    ),
    Case(
        "covid not recovered yet (today's date)",
        {"covid_confirmed": True, "covid_recovered_on": IN_FEBRUARY},
        O.POSTPONE,
        ("covid_recovered_recently",),
        date(2021, 5, 20),
    ),
    Case("pregnant", {"pregnant": True}, O.NOT_ELIGIBLE, ("pregnant",)),
    Case("ari", {"ari_symptoms": True}, O.POSTPONE, ("ari_symptoms",), date(2021, 2, 27)),
    Case(
        "household",
        {"household_contact": True},
        O.POSTPONE,
        ("household_contact",),
        date(2021, 3, 6),
    ),
    Case("severe allergy", {"severe_allergy": True}, O.REFER, ("severe_allergy",)),
    Case(
        "blood or immune treatment",
        {"blood_immune_treatment": True},
        O.REFER,
        ("blood_immune_treatment",),
    ),
    Case("immunosuppressant", {"immunosuppressant": True}, O.REFER, ("immunosuppressant",)),
    Case(
        "severe heart disease", {"severe_heart_disease": True}, O.REFER, ("severe_heart_disease",)
    ),
    Case("chronic controlled", {"chronic_disease": True, "chronic_controlled": True}, O.ELIGIBLE),
    Case(
        "chronic not controlled",
        {"chronic_disease": True, "chronic_controlled": False},
        O.NOT_ELIGIBLE,
        ("chronic_not_controlled",),
    ),
    Case("diabetes controlled", {"diabetes": True, "diabetes_controlled": True}, O.ELIGIBLE),
    Case(
        "diabetes not controlled",
        {"diabetes": True, "diabetes_controlled": False},
        O.NOT_ELIGIBLE,
        ("diabetes_not_controlled",),
    ),
    Case("hiv cd4 200+", {"hiv": True, "hiv_cd4_200": True}, O.ELIGIBLE),
    Case(
        "hiv cd4 <200 or unknown",
        {"hiv": True, "hiv_cd4_200": False},
        O.NOT_ELIGIBLE,
        ("hiv_cd4_below_200",),
    ),
    Case("lung controlled", {"lung_disease": True, "lung_controlled": True}, O.ELIGIBLE),
    Case(
        "lung not controlled",
        {"lung_disease": True, "lung_controlled": False},
        O.POSTPONE,
        ("lung_not_controlled",),
        date(2021, 3, 6),
    ),
    Case("age 17", {}, O.NOT_ELIGIBLE, ("age_below_18",), birth_date=born_aged(17, IN_FEBRUARY)),
    Case("age 18", {}, O.ELIGIBLE, birth_date=born_aged(18, IN_FEBRUARY)),
    Case("age 60", {}, O.ELIGIBLE, birth_date=born_aged(60, IN_FEBRUARY)),
    Case("age 85", {}, O.ELIGIBLE, birth_date=born_aged(85, IN_FEBRUARY)),
]


def decide(rule_set: RuleSet, case: Case, on: date) -> domain.Decision:
    given = answers(rule_set, **case.given)
    domain.check_answers(rule_set, given, on)  # every case is a valid answer set
    return domain.evaluate(rule_set, given, on, case.birth_date)


@pytest.mark.parametrize("case", JANUARY_CASES, ids=lambda c: c.name)
def test_january_rule(case: Case) -> None:
    decision = decide(JANUARY, case, IN_JANUARY)
    assert (decision.outcome, decision.reasons, decision.rescreen_on) == (
        case.outcome,
        case.reasons,
        case.rescreen_on,
    )


@pytest.mark.parametrize("case", FEBRUARY_CASES, ids=lambda c: c.name)
def test_february_rule(case: Case) -> None:
    decision = decide(FEBRUARY, case, IN_FEBRUARY)
    assert (decision.outcome, decision.reasons, decision.rescreen_on) == (
        case.outcome,
        case.reasons,
        case.rescreen_on,
    )


@pytest.mark.parametrize(
    ("rule_set", "cases"),
    [(JANUARY, JANUARY_CASES), (FEBRUARY, FEBRUARY_CASES)],
    ids=["jan", "feb"],
)
def test_every_rule_of_the_rule_set_has_a_case(rule_set: RuleSet, cases: list[Case]) -> None:
    covered = {reason for case in cases for reason in case.reasons}
    assert covered == {rule.id for rule in rule_set.rules}


@pytest.mark.parametrize(("rule_set", "on"), [(JANUARY, IN_JANUARY), (FEBRUARY, IN_FEBRUARY)])
def test_none_apply_is_eligible_with_nothing_to_explain(rule_set: RuleSet, on: date) -> None:
    decision = domain.evaluate(rule_set, answers(rule_set), on, ADULT)
    assert decision == domain.Decision(O.ELIGIBLE, (), None, True)


def test_january_has_the_16_questions_of_the_form_besides_temperature_and_blood_pressure() -> None:
    top_level = [q for q in JANUARY.questions if q.ask_if is None]
    assert len(top_level) == 16
    checks = " ".join(c["id"] for c in JANUARY.on_site_checks)
    assert "37,5" in checks and "140/90" in checks


def test_february_raises_the_blood_pressure_limit_and_keeps_the_temperature() -> None:
    checks = " ".join(c["en"] for c in FEBRUARY.on_site_checks)
    assert "180/110" in checks and "140/90" not in checks and "37.5" in checks


def test_pregnancy_is_not_eligible_under_both() -> None:
    january = domain.evaluate(
        JANUARY, answers(JANUARY, pregnant_or_breastfeeding=True), IN_JANUARY, ADULT
    )
    february = domain.evaluate(FEBRUARY, answers(FEBRUARY, pregnant=True), IN_FEBRUARY, ADULT)
    assert january.outcome is february.outcome is O.NOT_ELIGIBLE


def test_breastfeeding_is_not_eligible_in_january_and_not_even_asked_after_15_february() -> None:
    january = domain.evaluate(
        JANUARY, answers(JANUARY, pregnant_or_breastfeeding=True), IN_JANUARY, ADULT
    )
    assert january.outcome is O.NOT_ELIGIBLE
    texts = " ".join(q.text["id"] + q.text["en"] for q in FEBRUARY.questions).lower()
    assert "menyusui" not in texts and "breastfeeding" not in texts
    # a breastfeeding (not pregnant) health worker answers no to everything in February
    february = domain.evaluate(FEBRUARY, answers(FEBRUARY), IN_FEBRUARY, ADULT)
    assert february.outcome is O.ELIGIBLE


def test_covid_recovered_two_months_before_is_rescreened_three_months_after_recovery() -> None:
    recovered = date(2021, 1, 5)
    on = date(2021, 3, 5)  # two months later
    given = answers(FEBRUARY, covid_confirmed=True, covid_recovered_on=recovered)
    decision = domain.evaluate(FEBRUARY, given, on, ADULT)
    assert decision.outcome is O.POSTPONE
    assert decision.rescreen_on == date(2021, 4, 5)
    # and on that date exactly, the same answers are eligible
    assert domain.evaluate(FEBRUARY, given, date(2021, 4, 5), ADULT).outcome is O.ELIGIBLE
    assert domain.evaluate(FEBRUARY, given, date(2021, 4, 4), ADULT).outcome is O.POSTPONE


def test_covid_survivor_not_eligible_in_january_postponed_in_february() -> None:
    january = domain.evaluate(JANUARY, answers(JANUARY, covid_confirmed=True), IN_JANUARY, ADULT)
    recovered = IN_FEBRUARY - timedelta(days=30)
    february = domain.evaluate(
        FEBRUARY,
        answers(FEBRUARY, covid_confirmed=True, covid_recovered_on=recovered),
        IN_FEBRUARY,
        ADULT,
    )
    assert (january.outcome, february.outcome) == (O.NOT_ELIGIBLE, O.POSTPONE)


def test_60_is_not_eligible_in_january_and_eligible_in_february() -> None:
    sixty = born_aged(60, date(2021, 2, 14))
    jan = domain.evaluate(JANUARY, answers(JANUARY), date(2021, 2, 14), sixty)
    feb = domain.evaluate(FEBRUARY, answers(FEBRUARY), date(2021, 2, 15), sixty)
    assert (jan.outcome, jan.reasons) == (O.NOT_ELIGIBLE, ("age_60_or_more",))
    assert (feb.outcome, feb.reasons) == (O.ELIGIBLE, ())


def test_age_turns_on_the_birthday() -> None:
    born = date(2003, 1, 21)
    day_before = domain.evaluate(JANUARY, answers(JANUARY), date(2021, 1, 20), born)
    birthday = domain.evaluate(JANUARY, answers(JANUARY), date(2021, 1, 21), born)
    assert (day_before.outcome, birthday.outcome) == (O.NOT_ELIGIBLE, O.ELIGIBLE)


def test_without_a_birth_date_age_rules_are_skipped_and_that_is_recorded() -> None:
    decision = domain.evaluate(JANUARY, answers(JANUARY), IN_JANUARY, None)
    assert decision.outcome is O.ELIGIBLE
    assert decision.age_checked is False
    assert domain.evaluate(JANUARY, answers(JANUARY), IN_JANUARY, ADULT).age_checked is True


def test_severe_allergy_goes_to_hospital_but_a_hard_stop_still_wins() -> None:
    both = answers(FEBRUARY, severe_allergy=True, pregnant=True)
    decision = domain.evaluate(FEBRUARY, both, IN_FEBRUARY, ADULT)
    assert decision.outcome is O.NOT_ELIGIBLE
    assert decision.reasons == ("pregnant", "severe_allergy")
    assert decision.rescreen_on is None


def test_refer_outranks_postpone_and_keeps_both_reasons() -> None:
    given = answers(FEBRUARY, severe_allergy=True, ari_symptoms=True)
    decision = domain.evaluate(FEBRUARY, given, IN_FEBRUARY, ADULT)
    assert decision.outcome is O.REFER
    assert decision.reasons == ("severe_allergy", "ari_symptoms")
    assert decision.rescreen_on is None


def test_several_postponements_take_the_latest_date() -> None:
    given = answers(
        FEBRUARY,
        ari_symptoms=True,  # +7 days: 27 Feb
        household_contact=True,  # +14 days: 6 Mar
        covid_confirmed=True,
        covid_recovered_on=date(2021, 1, 1),  # +3 months: 1 Apr
    )
    decision = domain.evaluate(FEBRUARY, given, IN_FEBRUARY, ADULT)
    assert decision.outcome is O.POSTPONE
    assert decision.rescreen_on == date(2021, 4, 1)
    assert decision.reasons == ("covid_recovered_recently", "ari_symptoms", "household_contact")


@pytest.mark.parametrize("lang", ["id", "en"])
def test_result_carries_reason_texts_and_on_site_checks_in_the_language(lang: str) -> None:
    decision = domain.evaluate(FEBRUARY, answers(FEBRUARY, pregnant=True), IN_FEBRUARY, ADULT)
    result = domain.result(FEBRUARY, decision, lang, "s-1")
    assert result.reasons == ["pregnant"]
    assert result.reason_texts == [FEBRUARY.rule("pregnant").reason[lang]]
    assert ("hamil" if lang == "id" else "pregnant") in result.reason_texts[0].lower()
    assert result.on_site_checks == [c[lang] for c in FEBRUARY.on_site_checks]
    assert ("tekanan darah" if lang == "id" else "blood pressure") in result.on_site_checks[1]
    assert (result.screening_id, result.rule_set_id, result.error) == ("s-1", FEBRUARY.id, None)
