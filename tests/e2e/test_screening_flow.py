"""Screening in chat, through the webhook, with the shipped rule sets on the dates they governed."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest

from tests.e2e.conftest import Person, System, body_of, new_person

pytestmark = pytest.mark.servers

JANUARY = date(2021, 1, 20)  # KEP Dirjen P2P HK.02.02/4/1/2021 in force
FEBRUARY = date(2021, 2, 20)  # after the revision of 15 February 2021


def is_question(reply: dict) -> bool:
    body = reply["body"]
    if body.get("type") != "interactive":
        return "HH-BB-TTTT" in body_of(reply)  # a date question
    ids = [b["reply"]["id"] for b in body["interactive"]["action"].get("buttons", [])]
    return ids == ["scr.yes", "scr.no"]


async def verified(system: System, tmp_path: Path, today: date) -> Person:
    """A registered health worker who has just been verified and sees the conditions list."""
    system.set_today(today)
    nakes = new_person()
    await system.register(nakes, tmp=tmp_path)
    await system.turn(nakes.phone, "VAKSIN")
    await system.turn(nakes.phone, reply_id="nakes.yes")
    conditions = await system.turn(nakes.phone, nakes.suffix)  # verified, and the conditions
    assert "terverifikasi" in body_of(conditions)
    assert [b["reply"]["id"] for b in conditions["body"]["interactive"]["action"]["buttons"]] == [
        "scr.none",
        "scr.some",
    ]
    return nakes


async def walk(
    system: System, phone: str, yes_if: Callable[[str], bool], date_answer: str = ""
) -> tuple[list[str], str]:
    """Answer 'some apply', then every question (typed), until the outcome; returns the
    questions asked and the outcome text."""
    answer, reply_id = "", "scr.some"
    asked: list[str] = []
    for _ in range(40):
        reply = await system.turn(phone, answer, reply_id)
        if not is_question(reply):
            # The last answer is followed by a recap of the answers, then the outcome: one text.
            assert "Ringkasan" in body_of(reply)
            return asked, body_of(reply).split("\n\n", 1)[1]  # after the recap
        question = body_of(reply)
        asked.append(question)
        typed = "ya" if yes_if(question.lower()) else "tidak"
        answer, reply_id = (date_answer if "HH-BB-TTTT" in question else typed), None
    raise AssertionError("the questionnaire never ended")


async def test_none_apply_is_eligible_in_one_turn(system: System, tmp_path: Path) -> None:
    nakes = await verified(system, tmp_path, FEBRUARY)
    outcome = await system.turn(nakes.phone, "", "scr.none")
    assert "*dapat* melanjutkan" in body_of(outcome)
    assert "tekanan darah" in body_of(outcome).lower()  # measured on site, not asked


async def test_typed_none_and_english(system: System, tmp_path: Path) -> None:
    nakes = await verified(system, tmp_path, FEBRUARY)
    conditions = await system.turn(nakes.phone, "EN")  # "language changed", the conditions: one
    assert "scr.none" in json.dumps(conditions["body"])
    outcome = await system.turn(nakes.phone, "none")
    assert "you *can* go ahead" in body_of(outcome)


async def test_all_no_after_some_apply_is_eligible(system: System, tmp_path: Path) -> None:
    nakes = await verified(system, tmp_path, JANUARY)
    asked, outcome = await walk(system, nakes.phone, yes_if=lambda q: False)
    assert len(asked) >= 10, "the January form has many conditions"
    assert "*dapat* melanjutkan" in outcome


@pytest.mark.parametrize("today", [JANUARY, FEBRUARY])
async def test_pregnancy_is_not_eligible_under_both_versions(
    system: System, tmp_path: Path, today: date
) -> None:
    nakes = await verified(system, tmp_path, today)
    _, outcome = await walk(system, nakes.phone, yes_if=lambda q: "hamil" in q)
    assert "*belum dapat* diberikan" in outcome or "*ditunda*" in outcome
    assert "hamil" in outcome.lower()


async def test_breastfeeding_not_eligible_in_january_allowed_after_15_february(
    system: System, tmp_path: Path
) -> None:
    january = await verified(system, tmp_path, JANUARY)
    _, outcome = await walk(system, january.phone, yes_if=lambda q: "menyusui" in q)
    assert "*dapat* melanjutkan" not in outcome and "menyusui" in outcome.lower()

    february = await verified(system, tmp_path, FEBRUARY)
    _, outcome = await walk(system, february.phone, yes_if=lambda q: "menyusui" in q)
    assert "*dapat* melanjutkan" in outcome


async def test_covid_two_months_ago_is_postponed_to_three_months_after_recovery(
    system: System, tmp_path: Path
) -> None:
    nakes = await verified(system, tmp_path, FEBRUARY)
    recovered = date(2020, 12, 21)  # two months before FEBRUARY
    asked, outcome = await walk(
        system,
        nakes.phone,
        yes_if=lambda q: "covid" in q and "kontak" not in q and "serumah" not in q,
        date_answer=recovered.strftime("%d-%m-%Y"),
    )
    assert any("HH-BB-TTTT" in q for q in asked), "the recovery date is asked"
    assert "*ditunda*" in outcome
    assert "21-03-2021" in outcome  # recovery + 3 months


async def test_restart_mid_questionnaire_keeps_the_answers(system: System, tmp_path: Path) -> None:
    nakes = await verified(system, tmp_path, FEBRUARY)
    first = await system.turn(nakes.phone, "", "scr.some")
    second = await system.turn(nakes.phone, "tidak")
    assert is_question(first) and is_question(second) and body_of(first) != body_of(second)
    await system.restart("dialog")
    third = await system.turn(nakes.phone, "tidak")
    assert is_question(third) and body_of(third) not in (body_of(first), body_of(second))


async def test_a_date_typed_at_the_covid_question_is_yes_plus_the_recovery_date(
    system: System, tmp_path: Path
) -> None:
    nakes = await verified(system, tmp_path, FEBRUARY)
    recovered = date(2020, 12, 21)
    answer, reply_id = "", "scr.some"
    for _ in range(40):
        reply = await system.turn(nakes.phone, answer, reply_id)
        question, reply_id = body_of(reply), None
        assert is_question(reply), question
        assert "HH-BB-TTTT" not in question, "the recovery date was given with the yes"
        if "covid" in question.lower() and "kontak" not in question and "serumah" not in question:
            break
        answer = "tidak"
    else:
        raise AssertionError("no COVID-19 question")
    # The date where yes/no stands: "yes, I had it", and the date its follow-up asks.
    _, outcome = await walk_from(system, nakes.phone, recovered.strftime("%d-%m-%Y"))
    assert "*ditunda*" in outcome and "21-03-2021" in outcome


async def walk_from(system: System, phone: str, first: str) -> tuple[list[str], str]:
    """Send `first`, then answer "tidak" to every question until the outcome."""
    answer: str = first
    asked: list[str] = []
    for _ in range(40):
        reply = await system.turn(phone, answer)
        if not is_question(reply):
            assert "Ringkasan" in body_of(reply)
            return asked, body_of(reply).split("\n\n", 1)[1]  # after the recap
        asked.append(body_of(reply))
        assert "HH-BB-TTTT" not in body_of(reply)
        answer = "tidak"
    raise AssertionError("the questionnaire never ended")
