"""screening.rpc.*: the pre-vaccination questionnaire in force on a date, and its evaluation.

Rule sets are data (a vaccine, an effective-from date, questions with `id`/`en` texts, and outcome
rules), so the questionnaire in force changes without a code change (`vaksin screening load`).
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, Field


class QuestionKind(StrEnum):
    YES_NO = "yes_no"
    DATE = "date"  # a past date typed by the user, e.g. when they recovered from COVID-19


class Question(BaseModel):
    id: str = Field(pattern=r"^[a-z0-9_]{1,40}$")
    kind: QuestionKind = QuestionKind.YES_NO
    text: str = Field(max_length=1024, description="the question, in the requested language")
    short: str = Field(max_length=72, description="a short label for lists and summaries")
    ask_if: dict[str, bool] | None = Field(
        default=None,
        description="asked only when every listed question got this answer (follow-ups)",
    )


class QuestionnaireRequest(BaseModel):
    lang: str = "id"
    on: date | None = Field(default=None, description="the conversation's date; default today")


class Questionnaire(BaseModel):
    rule_set_id: str = ""
    vaccine: str = ""
    effective_from: date | None = None
    lang: str
    summary: str = Field(
        default="",
        max_length=1024,
        description="one message listing every top-level condition, for 'none of these apply'",
    )
    questions: list[Question] = Field(default_factory=list)
    on_site_checks: list[str] = Field(
        default_factory=list, description="measured at the facility, never asked in chat"
    )
    error: str | None = Field(
        default=None,
        description="set when refused (`code: detail`, e.g. `no_rule_set: ...`); "
        "the other fields are then empty",
    )


Answer = bool | date


class EvaluateRequest(BaseModel):
    request_id: str = Field(description="idempotency key (the inbound wamid)")
    person_id: str
    rule_set_id: str
    lang: str = "id"
    on: date = Field(description="the screening date")
    birth_date: date | None = Field(default=None, description="from the NIK, held by identity")
    answers: dict[str, Answer] = Field(
        description="top-level questions all answered; follow-ups only where asked"
    )


class ScreeningOutcome(StrEnum):
    ELIGIBLE = "eligible"
    POSTPONE = "postpone"  # with a reason and the earliest re-screen date
    NOT_ELIGIBLE = "not_eligible"  # consult a doctor
    REFER = "refer"  # vaccinate in a hospital


class EvaluateResult(BaseModel):
    screening_id: str | None = None
    rule_set_id: str
    outcome: ScreeningOutcome | None = None
    reasons: list[str] = Field(default_factory=list, description="ids of the rules that decided")
    reason_texts: list[str] = Field(default_factory=list, description="in the requested language")
    rescreen_on: date | None = None
    on_site_checks: list[str] = Field(default_factory=list)
    error: str | None = Field(default=None, description="set when the request was refused")


class ScreeningCompleted(BaseModel):
    """screening.evt.completed, through the outbox."""

    screening_id: str
    person_id: str
    rule_set_id: str
    outcome: ScreeningOutcome
    rescreen_on: date | None = None
    occurred_at: datetime
