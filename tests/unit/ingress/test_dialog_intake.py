"""Intake in the dialog: precise NIK reprompts, the read-back, and the operator's decision."""

from __future__ import annotations

import datetime as dt

import pytest

from services.common.contracts.identity import CheckNikRequest, CheckNikResult, IntakeDecided
from services.ingress.catalog import LANGUAGES, catalog
from services.ingress.dialog import Ask, Context, Conversation, Step, Turn, UserInput, handle
from services.ingress.intake_decisions import decided

CTX = Context(today=dt.date(2021, 1, 20), wa_id="6281200000009")


def event(approved: bool) -> IntakeDecided:
    return IntakeDecided(
        intake_id=4, wa_id="6281200000009", lang="en", approved=approved,
        reason=None if approved else "not employed there", person_id="p9" if approved else None,
        masked_name="D*** A*********", masked_nik="320101**********", profession="Perawat",
        facility_code="T1", birth_date=dt.date(1990, 3, 5), sex="F",
        decided_at=dt.datetime(2021, 1, 21, tzinfo=dt.UTC),
    )  # fmt: skip


@pytest.mark.parametrize("code", ["length", "not_digits", "month", "day", "date", "serial"])
def test_every_nik_refusal_has_a_precise_reprompt_in_both_languages(code: str) -> None:
    for lang in LANGUAGES:
        assert f"nik_invalid.{code}" in catalog(lang)
    conv = Conversation(Step.INTAKE_NIK)
    decision = handle(conv, UserInput("3201 0145 1385 0001"), request_id="w", ctx=CTX)
    assert isinstance(decision, Ask) and decision.request == CheckNikRequest(nik="3201014513850001")
    t = decision.then(CheckNikResult(valid=False, code=code))
    assert isinstance(t, Turn) and t.conversation == conv
    assert "3201014513850001" not in " ".join(r.body for r in t.replies)


def test_a_valid_nik_is_kept_until_submission_and_shown_masked_only() -> None:
    decision = handle(Conversation(Step.INTAKE_NIK), UserInput("3201014503900001"),
                      request_id="w", ctx=CTX)  # fmt: skip
    assert isinstance(decision, Ask)
    t = decision.then(CheckNikResult(valid=True, masked_nik="320101**********",
                                     birth_date=dt.date(1990, 3, 5), sex="F"))  # fmt: skip
    assert isinstance(t, Turn) and t.conversation.step == Step.INTAKE_NAME
    assert t.conversation.data["masked_nik"] == "320101**********"


def test_approval_verifies_the_user_and_rejection_says_why() -> None:
    conv, message = decided(event(approved=True))
    assert conv.step == Step.VERIFIED and conv.data["person_id"] == "p9"
    assert conv.data["birth_date"] == "1990-03-05" and conv.lang == "en"
    assert "*approved*" in message.message.body and message.template.name == "intake_approved"
    assert message.command_id == "intake-decided:4"

    conv, message = decided(event(approved=False))
    assert conv.step == Step.IDLE
    assert "not employed there" in message.message.body
    assert message.template.params == ["not employed there"]
