"""screening.rpc.questionnaire and screening.rpc.evaluate over a real NATS server and Postgres:
the questionnaire in force, stored screenings with their rule set (audit), idempotent requests,
the completed event in the SCREENING stream, and refusals that are answered, never raised."""

from __future__ import annotations

from datetime import date

import asyncpg
import pytest

from services.common.contracts.screening import EvaluateRequest, ScreeningOutcome
from services.screening.store import ensure_shipped

from .conftest import Screening, request_id

pytestmark = pytest.mark.servers

JANUARY, FEBRUARY = "coronavac-2021-01", "coronavac-2021-02-15"
IN_FEBRUARY = date(2021, 2, 20)


def none_apply(questions: list) -> dict[str, bool]:  # type: ignore[type-arg]
    return {q.id: False for q in questions if q.ask_if is None}


async def stored(pool: asyncpg.Pool, req: str) -> list[asyncpg.Record]:
    return await pool.fetch(
        """SELECT id::text, person_id, rule_set_id, lang, screened_on, answers, birth_date_known,
                  outcome, reasons, rescreen_on
           FROM screening.screening WHERE request_id = $1""",
        req,
    )


async def test_questionnaire_in_indonesian_and_english(screening: Screening) -> None:
    indonesian = await screening.questionnaire("id", IN_FEBRUARY)
    english = await screening.questionnaire("en", IN_FEBRUARY)
    for q in (indonesian, english):
        assert (q.rule_set_id, q.vaccine, q.effective_from, q.error) == (
            FEBRUARY,
            "CoronaVac",
            date(2021, 2, 15),
            None,
        )
    assert [q.id for q in indonesian.questions] == [q.id for q in english.questions]
    assert "hamil" in indonesian.summary and "pregnant" in english.summary
    assert indonesian.questions[0].text == "Apakah Anda pernah terkonfirmasi menderita COVID-19?"
    assert english.questions[0].text == "Have you ever been confirmed to have COVID-19?"
    assert any("tekanan darah" in c for c in indonesian.on_site_checks)
    assert any("blood pressure" in c for c in english.on_site_checks)


async def test_the_rule_set_in_force_changes_on_15_february_2021(screening: Screening) -> None:
    assert (await screening.questionnaire("id", date(2021, 2, 14))).rule_set_id == JANUARY
    assert (await screening.questionnaire("id", date(2021, 2, 15))).rule_set_id == FEBRUARY
    today = await screening.questionnaire("en")
    assert today.error is None and today.rule_set_id != ""


async def test_questionnaire_before_any_rule_set_is_answered_with_an_error(
    screening: Screening,
) -> None:
    refused = await screening.questionnaire("id", date(2020, 12, 31))
    assert refused.error is not None and refused.error.startswith("no_rule_set: ")
    assert refused.questions == [] and refused.rule_set_id == ""
    unknown = await screening.questionnaire("fr", IN_FEBRUARY)
    assert unknown.error is not None and unknown.error.startswith("unknown_language: ")


async def test_evaluation_is_stored_with_its_rule_set_and_answers(
    screening: Screening, pool: asyncpg.Pool
) -> None:
    questionnaire = await screening.questionnaire("en", IN_FEBRUARY)
    answers = {
        **none_apply(questionnaire.questions),
        "covid_confirmed": True,
        "covid_recovered_on": date(2020, 12, 20),
    }
    req = request_id()
    result = await screening.evaluate(
        EvaluateRequest(
            request_id=req,
            person_id="person-1",
            rule_set_id=questionnaire.rule_set_id,
            lang="en",
            on=IN_FEBRUARY,
            birth_date=date(1985, 6, 1),
            answers=answers,
        )
    )
    assert result.error is None
    assert (result.outcome, result.reasons, result.rescreen_on) == (
        ScreeningOutcome.POSTPONE,
        ["covid_recovered_recently"],
        date(2021, 3, 20),
    )
    assert result.reason_texts[0].startswith("You recovered from COVID-19 less than 3 months ago")
    assert any("blood pressure" in c for c in result.on_site_checks)
    [row] = await stored(pool, req)
    assert row["id"] == result.screening_id
    assert (row["person_id"], row["rule_set_id"], row["lang"], row["screened_on"]) == (
        "person-1",
        FEBRUARY,
        "en",
        IN_FEBRUARY,
    )
    assert row["answers"] == {**answers, "covid_recovered_on": "2020-12-20"}
    assert (row["outcome"], row["reasons"], row["rescreen_on"], row["birth_date_known"]) == (
        "postpone",
        ["covid_recovered_recently"],
        date(2021, 3, 20),
        True,
    )


async def test_without_a_birth_date_age_rules_are_skipped_and_recorded(
    screening: Screening, pool: asyncpg.Pool
) -> None:
    questionnaire = await screening.questionnaire("id", date(2021, 1, 20))
    req = request_id()
    result = await screening.evaluate(
        EvaluateRequest(
            request_id=req,
            person_id="person-2",
            rule_set_id=JANUARY,
            on=date(2021, 1, 20),
            answers=none_apply(questionnaire.questions),
        )
    )
    assert result.outcome is ScreeningOutcome.ELIGIBLE and result.reasons == []
    [row] = await stored(pool, req)
    assert row["birth_date_known"] is False


async def test_the_same_request_twice_is_stored_once_and_answered_the_same(
    screening: Screening, pool: asyncpg.Pool
) -> None:
    questionnaire = await screening.questionnaire("id", IN_FEBRUARY)
    request = EvaluateRequest(
        request_id=request_id(),
        person_id="person-3",
        rule_set_id=FEBRUARY,
        on=IN_FEBRUARY,
        birth_date=date(1990, 1, 1),
        answers={**none_apply(questionnaire.questions), "severe_allergy": True},
    )
    first = await screening.evaluate(request)
    again = await screening.evaluate(request)
    assert first.outcome is ScreeningOutcome.REFER
    assert again == first
    assert len(await stored(pool, request.request_id)) == 1
    events = await screening.completed_events(first.screening_id or "")
    assert len(events) == 1


async def test_a_completed_event_lands_in_the_screening_stream(
    screening: Screening, pool: asyncpg.Pool
) -> None:
    questionnaire = await screening.questionnaire("id", IN_FEBRUARY)
    result = await screening.evaluate(
        EvaluateRequest(
            request_id=request_id(),
            person_id="person-4",
            rule_set_id=FEBRUARY,
            on=IN_FEBRUARY,
            birth_date=date(1990, 1, 1),
            answers={**none_apply(questionnaire.questions), "ari_symptoms": True},
        )
    )
    [event] = await screening.completed_events(result.screening_id or "")
    assert event.body["person_id"] == "person-4"
    assert (event.body["rule_set_id"], event.body["outcome"], event.body["rescreen_on"]) == (
        FEBRUARY,
        "postpone",
        "2021-02-27",
    )
    assert event.headers["Nats-Msg-Id"].startswith("screening-outbox-")
    relayed = int(event.headers["Nats-Msg-Id"].rsplit("-", 1)[1])
    left = await pool.fetchval("SELECT count(*) FROM screening.outbox WHERE id = $1", relayed)
    assert left == 0  # deleted once JetStream acknowledged it


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"rule_set_id": JANUARY}, "not_in_force"),  # replaced on 15 February
        ({"rule_set_id": "coronavac-1999"}, "unknown_rule_set"),
        ({"lang": "fr"}, "unknown_language"),
        ({"person_id": ""}, "invalid_request"),
        ({"birth_date": date(2022, 1, 1)}, "invalid_request"),
        ({"answers": {"pregnant": True}}, "invalid_answers"),
    ],
)
async def test_refused_requests_get_an_error_and_store_nothing(
    screening: Screening, pool: asyncpg.Pool, change: dict, code: str
) -> None:
    questionnaire = await screening.questionnaire("id", IN_FEBRUARY)
    fields = {
        "request_id": request_id(),
        "person_id": "person-5",
        "rule_set_id": FEBRUARY,
        "on": IN_FEBRUARY,
        "answers": none_apply(questionnaire.questions),
        **change,
    }
    result = await screening.evaluate(EvaluateRequest(**fields))
    assert result.error is not None and result.error.startswith(f"{code}: ")
    assert result.outcome is None and result.screening_id is None
    assert await stored(pool, fields["request_id"]) == []


async def test_shipped_rule_sets_are_loaded_once(screening: Screening, pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        assert await ensure_shipped(conn) == []  # the service did it at startup
    count = await pool.fetchval(
        "SELECT count(*) FROM screening.rule_set WHERE id = any($1::text[])", [JANUARY, FEBRUARY]
    )
    assert count == 2
