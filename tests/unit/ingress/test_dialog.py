"""The dialog state machine, step by step, in both languages and with typed words."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.common.contracts.identity import NumberStatus, VerifyOutcome, VerifyResult
from services.common.contracts.notifier import ButtonsMessage, TextMessage
from services.ingress.catalog import LANGUAGES, catalog
from services.ingress.dialog import (
    Conversation,
    NeedNumberStatus,
    NeedVerify,
    Step,
    Turn,
    UserInput,
    after_number_status,
    after_verify,
    busy,
    handle,
)

ASKED_NAKES = Conversation(Step.ASK_NAKES)
ASKED_SUFFIX = Conversation(Step.ASK_SUFFIX)


def turn(
    conv: Conversation, text: str = "", reply_id: str | None = None, type_: str = "text"
) -> Turn:
    decision = handle(conv, UserInput(text, reply_id, type_))
    assert isinstance(decision, Turn), decision
    return decision


def bodies(t: Turn) -> str:
    return "\n".join(r.body for r in t.replies)


@pytest.mark.parametrize("keyword", ["VAKSIN", "vaksin", " Vaksin ", "DAFTAR", "menu", "vaksin!"])
def test_keyword_starts_with_health_worker_question(keyword: str) -> None:
    t = turn(Conversation(), keyword)
    assert t.conversation.step == Step.ASK_NAKES
    [question] = t.replies
    assert isinstance(question, ButtonsMessage)
    assert [b.id for b in question.buttons] == ["nakes.yes", "nakes.no"]


@pytest.mark.parametrize(
    ("text", "reply_id"),
    [("", "nakes.yes"), ("ya", None), ("Y", None), ("iya", None), ("1", None), ("Yes", None)],
)
def test_yes_in_any_form_asks_identity_about_the_number(text: str, reply_id: str | None) -> None:
    assert isinstance(handle(ASKED_NAKES, UserInput(text, reply_id)), NeedNumberStatus)


@pytest.mark.parametrize(
    ("text", "reply_id"),
    [("", "nakes.no"), ("tidak", None), ("2", None), ("bukan", None), ("N", None)],
)
def test_no_in_any_form_explains_service_is_for_health_workers(
    text: str, reply_id: str | None
) -> None:
    t = turn(ASKED_NAKES, text, reply_id)
    assert t.conversation.step == Step.IDLE
    assert "khusus untuk tenaga kesehatan" in bodies(t)


def test_other_answer_to_health_worker_question_reprompts_with_buttons() -> None:
    t = turn(ASKED_NAKES, "mungkin")
    assert t.conversation == ASKED_NAKES
    assert isinstance(t.replies[0], ButtonsMessage)
    assert "YA atau TIDAK" in t.replies[0].body


def test_listed_number_is_asked_for_suffix() -> None:
    t = after_number_status(ASKED_NAKES, NumberStatus(listed=True))
    assert t.conversation.step == Step.ASK_SUFFIX
    assert "6 digit terakhir NIK" in bodies(t)


def test_unlisted_number_is_told_where_to_get_registered() -> None:
    t = after_number_status(ASKED_NAKES, NumberStatus(listed=False))
    assert t.conversation.step == Step.IDLE
    assert "119 ext 9" in bodies(t) and "vaksin@pedulilindungi.id" in bodies(t)


def test_locked_number_is_told_until_when_in_jakarta_time() -> None:
    until = datetime(2026, 1, 14, 3, 30, tzinfo=UTC)
    t = after_number_status(ASKED_NAKES, NumberStatus(listed=True, locked_until=until))
    assert t.conversation.step == Step.IDLE
    assert "14-01-2026 10:30" in bodies(t) and "119 ext 9" in bodies(t)


@pytest.mark.parametrize("typed", ["850001", "85 0001", "850-001", " 850001 "])
def test_six_digits_in_any_spacing_are_verified(typed: str) -> None:
    assert handle(ASKED_SUFFIX, UserInput(typed)) == NeedVerify("850001")


@pytest.mark.parametrize("typed", ["85000", "8500011", "abcdef", "", "85000a"])
def test_anything_but_six_digits_reprompts_without_an_attempt(typed: str) -> None:
    t = turn(ASKED_SUFFIX, typed)
    assert t.conversation == ASKED_SUFFIX
    assert "tepat 6 angka" in bodies(t)


def test_full_nik_is_refused_and_never_echoed() -> None:
    t = turn(ASKED_SUFFIX, "3201014507850001")
    assert t.conversation == ASKED_SUFFIX
    assert "3201014507850001" not in bodies(t)
    assert "jangan kirim NIK lengkap" in bodies(t)


def test_verified_shows_masked_identity_and_remembers_it() -> None:
    result = VerifyResult(
        outcome=VerifyOutcome.VERIFIED,
        person_id="p1",
        masked_name="S*** R***",
        masked_nik="320101**********",
        profession="perawat",
        facility_code="F001",
    )
    t = after_verify(ASKED_SUFFIX, result)
    assert t.conversation.step == Step.VERIFIED
    text = bodies(t)
    assert "S*** R***" in text and "320101**********" in text and "F001" in text
    again = turn(t.conversation, "VAKSIN")
    assert again.conversation.step == Step.VERIFIED
    assert "S*** R***" in bodies(again)


def test_mismatch_keeps_asking_and_says_attempts_left() -> None:
    t = after_verify(ASKED_SUFFIX, VerifyResult(outcome=VerifyOutcome.MISMATCH, attempts_left=3))
    assert t.conversation == ASKED_SUFFIX
    assert "Sisa percobaan: 3" in bodies(t)


def test_lock_during_verification_ends_the_attempts() -> None:
    until = datetime(2026, 1, 15, 0, 0, tzinfo=UTC)
    t = after_verify(ASKED_SUFFIX, VerifyResult(outcome=VerifyOutcome.LOCKED, locked_until=until))
    assert t.conversation.step == Step.IDLE
    assert "15-01-2026 07:00" in bodies(t)


def test_not_listed_at_verification() -> None:
    t = after_verify(ASKED_SUFFIX, VerifyResult(outcome=VerifyOutcome.NOT_LISTED))
    assert t.conversation.step == Step.IDLE and "119 ext 9" in bodies(t)


def test_help_answers_with_hotline_and_resumes_the_pending_question() -> None:
    t = turn(ASKED_SUFFIX, "BANTUAN")
    assert t.conversation == ASKED_SUFFIX
    assert "119 ext 9" in t.replies[0].body
    assert "6 digit terakhir NIK" in t.replies[-1].body


def test_english_on_request_and_back() -> None:
    t = turn(ASKED_NAKES, "EN")
    assert t.conversation.lang == "en" and t.conversation.step == Step.ASK_NAKES
    assert "Language changed to English" in t.replies[0].body
    assert isinstance(t.replies[1], ButtonsMessage) and "health worker" in t.replies[1].body
    back = turn(t.conversation, "", "lang.id")
    assert back.conversation.lang == "id" and "Bahasa Indonesia" in back.replies[0].body


def test_english_user_gets_english_throughout() -> None:
    conv = Conversation(Step.ASK_SUFFIX, "en")
    t = after_verify(conv, VerifyResult(outcome=VerifyOutcome.MISMATCH, attempts_left=4))
    assert "Attempts left: 4" in bodies(t)


def test_unknown_message_when_idle_gets_short_help_not_silence() -> None:
    t = turn(Conversation(), "halo")
    assert t.replies and "VAKSIN" in bodies(t)


@pytest.mark.parametrize("kind", ["image", "audio", "sticker", "location", "unsupported"])
def test_media_and_other_types_get_an_answer(kind: str) -> None:
    assert turn(ASKED_NAKES, "", None, kind).replies
    assert turn(Conversation(), "", None, kind).replies


@pytest.mark.parametrize("kind", ["reaction", "system"])
def test_reactions_and_system_notices_are_not_answered(kind: str) -> None:
    t = turn(ASKED_SUFFIX, "", None, kind)
    assert t.replies == [] and t.conversation == ASKED_SUFFIX


def test_status_and_booking_commands_before_any_booking() -> None:
    assert "belum memulai" in bodies(turn(Conversation(), "STATUS"))
    assert "belum selesai" in bodies(turn(ASKED_SUFFIX, "status"))
    assert "belum memiliki jadwal" in bodies(turn(Conversation(), "BATAL"))


def test_busy_reply_keeps_state() -> None:
    t = busy(ASKED_SUFFIX)
    assert t.conversation == ASKED_SUFFIX and isinstance(t.replies[0], TextMessage)


def test_catalogs_have_the_same_keys_and_placeholders() -> None:
    base = catalog("id")
    for lang in LANGUAGES:
        other = catalog(lang)
        assert other.keys() == base.keys(), lang
        for key, text in base.items():
            assert sorted(_fields(text)) == sorted(_fields(other[key])), (lang, key)


def _fields(text: str) -> list[str]:
    import string

    return [f for _, f, _, _ in string.Formatter().parse(text) if f]
