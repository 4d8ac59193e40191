"""The rule-set format: YAML and JSON read alike, and a malformed rule set is refused with a reason
that names the place (one test per reason), plus the generic conditions and date arithmetic."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

import pytest
import yaml

from services.common.contracts.screening import ScreeningOutcome as O
from services.screening import domain, rules
from services.screening.rules import RuleSetError
from services.screening.store import SHIPPED_DIR

from .support import FEBRUARY, MINIMAL, minimal, parse


def refusal(document: Any) -> str:
    with pytest.raises(RuleSetError) as refused:
        rules.parse(document)
    return str(refused.value)


def question(qid: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": qid,
        "text": {"id": f"{qid}?", "en": f"{qid}?"},
        "short": {"id": qid, "en": qid},
        **extra,
    }


def rule(rid: str, when: dict[str, Any], outcome: str = "not_eligible", **extra: Any) -> dict:
    return {"id": rid, "when": when, "outcome": outcome, "reason": {"id": rid, "en": rid}, **extra}


# --- reading -----------------------------------------------------------------------------------


def test_the_minimal_rule_set_is_valid() -> None:
    rule_set = parse(minimal())
    assert (rule_set.id, rule_set.effective_from) == ("test-2021-03", date(2021, 3, 1))
    assert [q.id for q in rule_set.questions] == ["pregnant", "covid", "covid_recovered_on"]


def test_yaml_and_json_of_the_same_rule_set_are_the_same_rule_set() -> None:
    text = (SHIPPED_DIR / "coronavac-2021-02-15.yaml").read_text()
    from_yaml = rules.parse_text(text, "yaml")
    as_json = json.dumps(yaml.safe_load(text), default=str, ensure_ascii=False, indent=1)
    from_json = rules.parse_text(as_json, "json")
    assert from_json == from_yaml
    assert from_json.checksum == from_yaml.checksum == FEBRUARY.checksum
    assert domain.questionnaire(from_json, "id") == domain.questionnaire(from_yaml, "id")


def test_a_stored_definition_reads_back_to_the_same_rule_set() -> None:
    assert rules.parse(json.loads(json.dumps(FEBRUARY.definition))) == FEBRUARY


def test_a_changed_text_changes_the_checksum() -> None:
    changed = minimal(summary={"id": "• hamil", "en": "• pregnant"})
    assert parse(changed).checksum != parse(minimal()).checksum


@pytest.mark.parametrize(
    ("name", "fmt"),
    [("a.yaml", "yaml"), ("B.YML", "yaml"), ("c.json", "json"), ("d.txt", None), ("yaml", None)],
)
def test_the_format_follows_the_file_name(name: str, fmt: str | None) -> None:
    assert rules.format_of(name) == fmt


def test_invalid_yaml_is_refused_with_its_line() -> None:
    with pytest.raises(RuleSetError, match="not valid YAML: line 3 column 1: expected ','"):
        rules.parse_text("id: x\nvaccine: [unclosed\n", "yaml")


def test_invalid_json_is_refused_with_its_line() -> None:
    with pytest.raises(RuleSetError, match="not valid JSON: line 2 column 1"):
        rules.parse_text('{"id": "x",\n}', "json")


def test_a_key_given_twice_in_yaml_is_refused() -> None:
    with pytest.raises(RuleSetError, match="key 'vaccine' given twice"):
        rules.parse_text("id: x\nvaccine: A\nvaccine: B\n", "yaml")


def test_a_key_given_twice_in_json_is_refused() -> None:
    with pytest.raises(RuleSetError, match="key 'id' given twice"):
        rules.parse_text('{"id": "x", "id": "y"}', "json")


def test_a_document_that_is_not_a_mapping_is_refused() -> None:
    assert refusal(["not", "a", "mapping"]) == "expected a mapping, got a list"


# --- refusals, one per reason ------------------------------------------------------------------


def test_unknown_top_level_key() -> None:
    assert refusal(minimal(colour="red")).startswith("unknown key 'colour' (allowed: id, vaccine")


def test_unknown_key_in_a_question() -> None:
    document = minimal()
    document["questions"][0]["hint"] = "x"
    assert refusal(document).startswith("questions[0]: unknown key 'hint'")


def test_unknown_key_in_a_rule() -> None:
    document = minimal()
    document["rules"][0]["severity"] = 3
    assert refusal(document).startswith("rules[0]: unknown key 'severity'")


def test_missing_key() -> None:
    document = minimal()
    del document["rules"]
    assert refusal(document) == "missing 'rules'"


def test_missing_language() -> None:
    document = minimal()
    del document["questions"][1]["text"]["en"]
    assert refusal(document) == "questions[1].text: missing language 'en'"


def test_missing_language_in_the_summary() -> None:
    assert refusal(minimal(summary={"id": "• hamil"})) == "summary: missing language 'en'"


def test_unknown_language() -> None:
    document = minimal()
    document["rules"][0]["reason"]["jv"] = "Meteng."
    assert refusal(document) == "rules[0].reason: unknown language 'jv' (languages: id, en)"


def test_empty_text() -> None:
    document = minimal()
    document["questions"][0]["short"]["id"] = "  "
    assert refusal(document) == "questions[0].short.id: empty text"


def test_duplicate_question_id() -> None:
    document = minimal()
    document["questions"].append(question("covid"))
    assert refusal(document) == "questions[3].id: duplicate question id 'covid'"


def test_invalid_question_id() -> None:
    document = minimal()
    document["questions"][0]["id"] = "Pregnant?"
    assert refusal(document).startswith("questions[0].id: 'Pregnant?' is not a valid question id")


def test_unknown_question_kind() -> None:
    document = minimal()
    document["questions"][0]["kind"] = "number"
    assert refusal(document) == "questions[0].kind: unknown kind 'number' (kinds: yes_no, date)"


def test_ask_if_naming_an_unknown_question() -> None:
    document = minimal()
    document["questions"][2]["ask_if"] = {"covid19": True}
    assert refusal(document).startswith(
        "questions[2].ask_if.covid19: names 'covid19', which is not an earlier question"
    )


def test_ask_if_naming_a_later_question() -> None:
    document = minimal()
    document["questions"].insert(0, question("covid_followup", ask_if={"covid": True}))
    assert refusal(document).startswith(
        "questions[0].ask_if.covid: names 'covid', which is not an earlier question "
        "(a follow-up comes after the question it depends on)"
    )


def test_ask_if_naming_a_date_question() -> None:
    document = minimal()
    document["questions"].append(question("late", ask_if={"covid_recovered_on": True}))
    assert refusal(document) == (
        "questions[3].ask_if.covid_recovered_on: 'covid_recovered_on' is not a yes/no question"
    )


def test_ask_if_with_a_value_that_is_not_yes_or_no() -> None:
    document = minimal()
    document["questions"][2]["ask_if"] = {"covid": "yes"}
    assert refusal(document) == "questions[2].ask_if.covid: expected true or false, got text"


def test_a_top_level_date_question() -> None:
    document = minimal()
    del document["questions"][2]["ask_if"]
    assert refusal(document).startswith(
        "questions[2]: date question 'covid_recovered_on' must be a follow-up (ask_if)"
    )


def test_a_rule_naming_an_unknown_question() -> None:
    document = minimal()
    document["rules"][0]["when"] = {"answer": "pregnancy", "is": True}
    assert refusal(document) == "rules[0].when.answer: names unknown question 'pregnancy'"


def test_a_rule_naming_an_unknown_question_deep_in_a_combination() -> None:
    document = minimal()
    document["rules"][0]["when"] = {
        "any": [{"answer": "pregnant", "is": True}, {"all": [{"answer": "x", "is": True}]}]
    }
    assert refusal(document) == "rules[0].when.any[1].all[0].answer: names unknown question 'x'"


def test_is_on_a_date_question_and_within_on_a_yes_no_question() -> None:
    document = minimal()
    document["rules"][0]["when"] = {"answer": "covid_recovered_on", "is": True}
    assert refusal(document) == (
        "rules[0].when: 'is' needs a yes/no question; 'covid_recovered_on' is date"
    )
    document["rules"][0]["when"] = {"answer": "covid", "within": {"days": 7}}
    assert refusal(document) == "rules[0].when: 'within' needs a date question; 'covid' is yes_no"


def test_within_needs_exactly_one_unit() -> None:
    document = minimal()
    document["rules"][1]["when"]["within"] = {"days": 7, "months": 1}
    assert refusal(document) == "rules[1].when.within: give exactly one of 'days' or 'months'"


def test_an_unknown_condition() -> None:
    document = minimal()
    document["rules"][0]["when"] = {"not": {"answer": "pregnant", "is": True}}
    assert refusal(document).startswith("rules[0].when: unknown condition with keys not")


def test_an_empty_combination() -> None:
    document = minimal()
    document["rules"][0]["when"] = {"all": []}
    assert refusal(document) == "rules[0].when.all: expected a non-empty list of conditions"


def test_an_age_that_is_not_a_whole_number() -> None:
    document = minimal()
    document["rules"][0]["when"] = {"age_below": True}
    assert refusal(document).startswith("rules[0].when.age_below: expected a whole number")


@pytest.mark.parametrize("bad", ["2021-02-30", "15-02-2021", "2021-2-15", 20210215, None])
def test_a_bad_effective_date(bad: Any) -> None:
    assert refusal(minimal(effective_from=bad)).startswith("effective_from: ")


@pytest.mark.parametrize("written", ["2021-02-30", "2021-03-01 08:00:00", "2021-3-1"])
def test_a_bad_effective_date_in_yaml_is_reported_with_its_place(written: str) -> None:
    text = yaml.safe_dump(minimal(effective_from="X")).replace("X", written)
    with pytest.raises(RuleSetError) as refused:
        rules.parse_text(text, "yaml")
    assert str(refused.value) == f"effective_from: '{written}' is not a date (YYYY-MM-DD)"


def test_a_yaml_date_reads_like_a_json_date() -> None:
    text = yaml.safe_dump(minimal(effective_from="X")).replace("X", "2021-03-01")
    assert rules.parse_text(text, "yaml").effective_from == date(2021, 3, 1)


def test_a_date_with_a_time_is_refused() -> None:
    with_time = minimal(effective_from=datetime(2021, 3, 1, 8, 0))
    assert (
        refusal(with_time)
        == "effective_from: expected a date without a time, got 2021-03-01T08:00:00"
    )


def test_a_question_text_over_the_whatsapp_limit() -> None:
    document = minimal()
    document["questions"][0]["text"]["en"] = "x" * 1025
    assert refusal(document) == (
        "questions[0].text.en: 1025 characters; WhatsApp allows at most 1024 here"
    )


def test_a_short_label_over_the_list_row_limit() -> None:
    document = minimal()
    document["questions"][0]["short"]["id"] = "x" * 73
    assert refusal(document) == (
        "questions[0].short.id: 73 characters; WhatsApp allows at most 72 here"
    )


def test_a_summary_over_the_whatsapp_limit() -> None:
    summary = {"id": "• " + "x" * 1023, "en": "• pregnant"}
    assert refusal(minimal(summary=summary)).startswith("summary.id: 1025 characters")


def test_an_unknown_outcome() -> None:
    document = minimal()
    document["rules"][0]["outcome"] = "maybe"
    assert refusal(document) == (
        "rules[0].outcome: unknown outcome 'maybe' "
        "(outcomes: eligible, postpone, not_eligible, refer)"
    )


def test_duplicate_rule_id() -> None:
    document = minimal()
    document["rules"].append(rule("pregnant", {"answer": "covid", "is": True}))
    assert refusal(document) == "rules[2].id: duplicate rule id 'pregnant'"


def test_a_postpone_rule_without_a_rescreen_date() -> None:
    document = minimal()
    del document["rules"][1]["rescreen"]
    assert refusal(document) == ("rules[1]: a postpone rule needs 'rescreen' (the earliest date)")


def test_a_rescreen_date_on_a_rule_that_does_not_postpone() -> None:
    document = minimal()
    document["rules"][0]["rescreen"] = {"days": 7}
    assert refusal(document) == "rules[0].rescreen: only a postpone rule has one, not not_eligible"


def test_a_rescreen_date_counted_from_an_answer_the_rule_does_not_require() -> None:
    document = minimal()
    document["rules"][1]["when"] = {
        "any": [
            {"answer": "covid_recovered_on", "within": {"months": 3}},
            {"answer": "pregnant", "is": True},
        ]
    }
    assert refusal(document).startswith(
        "rules[1].rescreen: counts from the answer to 'covid_recovered_on', so the rule's "
        "condition must require that answer"
    )


def test_a_rescreen_date_counted_from_a_yes_no_answer() -> None:
    document = minimal()
    document["rules"][1]["rescreen"] = {"answer": "covid", "days": 7}
    assert refusal(document) == "rules[1].rescreen.answer: 'covid' is not a date question"


def test_a_rule_that_fires_when_everything_is_answered_no() -> None:
    document = minimal()
    document["rules"].append(rule("not_pregnant", {"answer": "pregnant", "is": False}))
    assert refusal(document).startswith(
        "rules[2]: 'not_pregnant' fires when every question is answered 'no'"
    )


def test_an_invalid_rule_set_id() -> None:
    assert refusal(minimal(id="Rule Set 1")).startswith("id: 'Rule Set 1' is not a valid rule set")


def test_no_questions() -> None:
    assert refusal(minimal(questions=[])) == "questions: empty list"


# --- conditions and dates ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (date(2021, 1, 5), 3, date(2021, 4, 5)),
        (date(2020, 11, 30), 3, date(2021, 2, 28)),  # no 30 February
        (date(2019, 11, 29), 3, date(2020, 2, 29)),  # leap year
        (date(2020, 12, 31), 1, date(2021, 1, 31)),
        (date(2020, 10, 15), 14, date(2021, 12, 15)),
    ],
)
def test_adding_months(day: date, months: int, expected: date) -> None:
    assert rules.add_months(day, months) == expected


def with_rules(*extra_rules: dict[str, Any]) -> rules.RuleSet:
    return parse(minimal(rules=[*MINIMAL["rules"], *extra_rules]))


def test_within_days_counts_from_the_date_answer() -> None:
    rule_set = with_rules(
        rule(
            "covid_10_days",
            {"answer": "covid_recovered_on", "within": {"days": 10}},
            "postpone",
            rescreen={"answer": "covid_recovered_on", "days": 10},
        ),
    )
    on = date(2021, 3, 20)
    recent = {"pregnant": False, "covid": True, "covid_recovered_on": date(2021, 3, 11)}
    decision = domain.evaluate(rule_set, recent, on, None)
    assert decision.reasons == ("recent_covid", "covid_10_days")
    assert decision.rescreen_on == date(2021, 6, 11)  # the later of 3 months and 10 days
    older = {**recent, "covid_recovered_on": date(2021, 3, 10)}
    assert domain.evaluate(rule_set, older, on, None).reasons == ("recent_covid",)


def test_all_and_any_combine_conditions() -> None:
    rule_set = with_rules(
        rule(
            "young_and_covid",
            {"all": [{"age_below": 30}, {"answer": "covid", "is": True}]},
            "refer",
        ),
        rule(
            "old_or_pregnant",
            {"any": [{"age_at_least": 70}, {"answer": "pregnant", "is": True}]},
            "refer",
        ),
    )
    on = date(2021, 3, 20)
    covid = {"pregnant": False, "covid": True, "covid_recovered_on": date(2020, 1, 1)}
    assert domain.evaluate(rule_set, covid, on, date(2000, 1, 1)).reasons == ("young_and_covid",)
    assert domain.evaluate(rule_set, covid, on, date(1980, 1, 1)).reasons == ()
    assert domain.evaluate(rule_set, covid, on, date(1940, 1, 1)).reasons == ("old_or_pregnant",)
    assert domain.evaluate(rule_set, covid, on, None).reasons == ()  # no age: skipped


def test_an_eligible_rule_adds_a_note_without_changing_the_outcome() -> None:
    rule_set = with_rules(rule("bring_letter", {"answer": "covid", "is": True}, "eligible"))
    on = date(2021, 3, 20)
    covid = {"pregnant": False, "covid": True, "covid_recovered_on": date(2020, 1, 1)}
    decision = domain.evaluate(rule_set, covid, on, None)
    assert (decision.outcome, decision.reasons) == (O.ELIGIBLE, ("bring_letter",))
    both = domain.evaluate(rule_set, {**covid, "pregnant": True}, on, None)
    assert (both.outcome, both.reasons) == (O.NOT_ELIGIBLE, ("pregnant", "bring_letter"))


def test_a_condition_on_a_question_that_was_not_asked_does_not_hold() -> None:
    rule_set = with_rules(
        rule(
            "never_asked",
            {"answer": "covid_recovered_on", "within": {"months": 120}},
            "not_eligible",
        ),
    )
    decision = domain.evaluate(
        rule_set, {"pregnant": False, "covid": False}, date(2021, 3, 20), None
    )
    assert decision.outcome is O.ELIGIBLE
