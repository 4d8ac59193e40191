"""The dialog state machine, step by step, in both languages and with typed words."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from services.common.contracts.identity import (
    NumberStatus,
    NumberStatusRequest,
    VerifyOutcome,
    VerifyRequest,
    VerifyResult,
)
from services.common.contracts.notifier import ButtonsMessage, TextMessage
from services.common.contracts.scheduler import (
    Facility,
    FacilityReply,
    FacilityRequest,
    Hold,
    HoldReply,
    OfferRequest,
)
from services.common.contracts.screening import (
    EvaluateRequest,
    EvaluateResult,
    Question,
    QuestionKind,
    Questionnaire,
    QuestionnaireRequest,
    ScreeningOutcome,
)
from services.ingress.dialog import (
    Ask,
    Context,
    Conversation,
    Decision,
    Step,
    Turn,
    UserInput,
    busy,
    handle,
)
from services.ingress.dialog.screening import next_question, parse_past_date

WA_ID = "6281200000001"
CTX = Context(today=date(2021, 1, 20), wa_id=WA_ID)
ASKED_NAKES = Conversation(Step.ASK_NAKES)
ASKED_SUFFIX = Conversation(Step.ASK_SUFFIX)
VERIFIED_RESULT = VerifyResult(
    outcome=VerifyOutcome.VERIFIED,
    person_id="p1",
    masked_name="S*** R********",
    masked_nik="320101**********",
    profession="perawat",
    facility_code="F001",
    birth_date=date(1985, 7, 5),
    sex="F",
)
FACILITY = Facility(code="F001", name="Puskesmas Cibinong", address="Jl. Raya 1",
                    regency="Kab. Bogor", province="Jawa Barat")  # fmt: skip
HOLD = Hold(hold_id=70, session_id=7, facility=FACILITY, date=date(2021, 1, 25),
            start=time(8), end=time(12), vaccine="CoronaVac", dose=1,
            expires_at=datetime.now(UTC) + timedelta(minutes=10))  # fmt: skip
QUESTIONNAIRE = Questionnaire(
    rule_set_id="coronavac-test",
    vaccine="CoronaVac",
    effective_from=date(2021, 1, 1),
    lang="id",
    summary="1. Hamil\n2. Pernah COVID-19\n3. Diabetes",
    questions=[
        Question(id="pregnant", text="Apakah Anda sedang hamil?", short="Hamil"),
        Question(id="covid", text="Pernah terkonfirmasi COVID-19?", short="Pernah COVID-19"),
        Question(
            id="covid_recovered",
            kind=QuestionKind.DATE,
            text="Kapan Anda sembuh?",
            short="Tanggal sembuh",
            ask_if={"covid": True},
        ),
        Question(id="diabetes", text="Apakah Anda menderita diabetes?", short="Diabetes"),
        Question(
            id="diabetes_controlled",
            text="Apakah diabetes Anda terkontrol?",
            short="Diabetes terkontrol",
            ask_if={"diabetes": True},
        ),
    ],
    on_site_checks=["suhu tubuh", "tekanan darah"],
)


def decide(conv: Conversation, text: str = "", reply_id: str | None = None,
           type_: str = "text", ctx: Context = CTX) -> Decision:  # fmt: skip
    return handle(conv, UserInput(text, reply_id, type_), request_id="wamid.1", ctx=ctx)


def turn(conv: Conversation, text: str = "", reply_id: str | None = None, type_: str = "text",
         ctx: Context = CTX) -> Turn:  # fmt: skip
    decision = decide(conv, text, reply_id, type_, ctx)
    assert isinstance(decision, Turn), decision
    return decision


def answer(decision: Decision, request_type: type, reply: object) -> Decision:
    assert isinstance(decision, Ask), decision
    assert isinstance(decision.request, request_type), decision.request
    return decision.then(reply)


def bodies(t: Turn) -> str:
    return "\n".join(r.body for r in t.replies)


def verified(conv: Conversation = ASKED_SUFFIX, typed: str = "850001") -> Decision:
    """The suffix verified, the facility's name asked: what comes next (the questionnaire)."""
    decision = answer(decide(conv, typed), VerifyRequest, VERIFIED_RESULT)
    return answer(decision, FacilityRequest, FacilityReply(facility=FACILITY))


def screening_summary() -> Conversation:
    """A verified user looking at the conditions list."""
    t = answer(verified(), QuestionnaireRequest, QUESTIONNAIRE)
    assert isinstance(t, Turn) and t.conversation.step == Step.SCREENING_SUMMARY
    return t.conversation


# --- keyword and the health-worker question ------------------------------------------------


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
    decision = decide(ASKED_NAKES, text, reply_id)
    assert isinstance(decision, Ask) and decision.request == NumberStatusRequest(wa_id=WA_ID)


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
    t = answer(decide(ASKED_NAKES, "ya"), NumberStatusRequest, NumberStatus(listed=True))
    assert isinstance(t, Turn) and t.conversation.step == Step.ASK_SUFFIX
    assert "6 digit terakhir NIK" in bodies(t)


def test_unlisted_number_is_offered_to_register() -> None:
    t = answer(decide(ASKED_NAKES, "ya"), NumberStatusRequest, NumberStatus(listed=False))
    assert isinstance(t, Turn) and t.conversation.step == Step.INTAKE_OFFER
    assert "belum terdaftar" in bodies(t)
    assert [b.id for b in t.replies[0].buttons] == ["intake.yes", "intake.no"]
    declined = turn(t.conversation, "", "intake.no")
    assert declined.conversation.step == Step.IDLE and "119 ext 9" in bodies(declined)


def test_locked_number_is_told_until_when_in_jakarta_time() -> None:
    until = datetime(2026, 1, 14, 3, 30, tzinfo=UTC)
    status = NumberStatus(listed=True, locked_until=until)
    t = answer(decide(ASKED_NAKES, "ya"), NumberStatusRequest, status)
    assert isinstance(t, Turn) and t.conversation.step == Step.LOCKED
    assert "14-01-2026 10:30" in bodies(t) and "119 ext 9" in bodies(t)


# --- the NIK suffix --------------------------------------------------------------------------


@pytest.mark.parametrize("typed", ["850001", "85 0001", "850-001", " 850001 "])
def test_six_digits_in_any_spacing_are_verified_with_the_message_id(typed: str) -> None:
    decision = decide(ASKED_SUFFIX, typed)
    assert isinstance(decision, Ask)
    assert decision.request == VerifyRequest(wa_id=WA_ID, suffix="850001", request_id="wamid.1")


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


def test_verified_shows_masked_identity_then_the_screening_in_the_same_turn() -> None:
    decision = answer(decide(ASKED_SUFFIX, "850001"), VerifyRequest, VERIFIED_RESULT)
    assert isinstance(decision, Ask) and decision.request == FacilityRequest(code="F001")
    decision = decision.then(FacilityReply(facility=FACILITY))
    assert isinstance(decision, Ask) and decision.request == QuestionnaireRequest(
        lang="id", on=CTX.today
    )
    t = decision.then(QUESTIONNAIRE)
    assert isinstance(t, Turn) and t.conversation.step == Step.SCREENING_SUMMARY
    verified, summary = t.replies
    assert "S*** R********" in verified.body and "320101**********" in verified.body
    assert isinstance(summary, ButtonsMessage) and "Pernah COVID-19" in summary.body
    assert [b.id for b in summary.buttons] == ["scr.none", "scr.some"]
    assert t.conversation.data["birth_date"] == "1985-07-05"
    assert t.conversation.data["person_id"] == "p1"


def test_mismatch_keeps_asking_and_says_attempts_left() -> None:
    result = VerifyResult(outcome=VerifyOutcome.MISMATCH, attempts_left=3)
    t = answer(decide(ASKED_SUFFIX, "000000"), VerifyRequest, result)
    assert isinstance(t, Turn) and t.conversation == ASKED_SUFFIX
    assert "Sisa percobaan: 3" in bodies(t)


def test_lock_during_verification_ends_the_attempts() -> None:
    until = datetime(2026, 1, 15, 0, 0, tzinfo=UTC)
    result = VerifyResult(outcome=VerifyOutcome.LOCKED, locked_until=until)
    t = answer(decide(ASKED_SUFFIX, "000000"), VerifyRequest, result)
    assert isinstance(t, Turn) and t.conversation.step == Step.LOCKED
    assert "15-01-2026 07:00" in bodies(t) and "119 ext 9" in bodies(t)


def test_not_listed_at_verification() -> None:
    result = VerifyResult(outcome=VerifyOutcome.NOT_LISTED)
    t = answer(decide(ASKED_SUFFIX, "000000"), VerifyRequest, result)
    assert isinstance(t, Turn) and t.conversation.step == Step.INTAKE_OFFER


# --- screening -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reply_id"),
    [("", "scr.none"), ("tidak ada", None), ("1", None), ("tidak", None), ("None", None)],
)
def test_none_apply_is_one_turn_with_every_top_level_answer_no(
    text: str, reply_id: str | None
) -> None:
    decision = decide(screening_summary(), text, reply_id)
    assert isinstance(decision, Ask) and isinstance(decision.request, EvaluateRequest)
    request = decision.request
    assert request.answers == {"pregnant": False, "covid": False, "diabetes": False}
    assert (request.person_id, request.rule_set_id, request.request_id) == (
        "p1",
        "coronavac-test",
        "wamid.1",
    )
    assert request.birth_date == date(1985, 7, 5) and request.on == CTX.today
    result = EvaluateResult(
        screening_id="s1",
        rule_set_id="coronavac-test",
        outcome=ScreeningOutcome.ELIGIBLE,
        on_site_checks=["suhu tubuh"],
    )
    # Eligible: the assigned facility's earliest time is offered (a seat held) in the same turn.
    offer = decision.then(result)
    assert isinstance(offer, Ask) and isinstance(offer.request, OfferRequest)
    assert (offer.request.facility_code, offer.request.request_id) == ("F001", "wamid.1")
    t = offer.then(HoldReply(hold=HOLD))
    assert isinstance(t, Turn) and t.conversation.step == Step.SLOT
    outcome, place_and_time = t.replies
    assert "*dapat* melanjutkan" in outcome.body and "suhu tubuh" in outcome.body
    assert isinstance(place_and_time, ButtonsMessage)
    assert "Puskesmas Cibinong" in place_and_time.body and "25-01-2021" in place_and_time.body
    assert [b.id for b in place_and_time.buttons] == ["slot.ok", "slot.other", "loc.other"]


def test_some_apply_walks_questions_with_follow_ups_only_where_relevant() -> None:
    conv = screening_summary()
    t = turn(conv, "", "scr.some")
    assert t.conversation.data["current"] == "pregnant"
    assert isinstance(t.replies[0], ButtonsMessage)
    assert [b.id for b in t.replies[0].buttons] == ["scr.yes", "scr.no"]
    t = turn(t.conversation, "tidak")  # pregnant: no
    assert t.conversation.data["current"] == "covid"
    t = turn(t.conversation, "", "scr.yes")  # covid: yes -> the date follow-up
    assert t.conversation.data["current"] == "covid_recovered"
    assert "HH-BB-TTTT" in bodies(t)
    t = turn(t.conversation, "31-13-2020")  # not a date: asked again
    assert t.conversation.data["current"] == "covid_recovered" and "format" in bodies(t)
    t = turn(t.conversation, "15/11/2020")
    assert t.conversation.data["current"] == "diabetes"
    decision = decide(t.conversation, "n")  # diabetes: no -> its follow-up is skipped
    assert isinstance(decision, Ask) and isinstance(decision.request, EvaluateRequest)
    assert decision.request.answers == {
        "pregnant": False,
        "covid": True,
        "covid_recovered": date(2020, 11, 15),
        "diabetes": False,
    }
    result = EvaluateResult(
        screening_id="s2",
        rule_set_id="coronavac-test",
        outcome=ScreeningOutcome.POSTPONE,
        rescreen_on=date(2021, 2, 15),
        reason_texts=["Sembuh dari COVID-19 kurang dari 3 bulan"],
    )
    done = decision.then(result)
    assert isinstance(done, Turn) and done.conversation.step == Step.POSTPONED
    recap, outcome = done.replies
    assert "Pernah COVID-19: Ya" in recap.body and "Tanggal sembuh: 15-11-2020" in recap.body
    assert "Hamil" not in recap.body
    assert "*ditunda*" in outcome.body and "15-02-2021" in outcome.body


def test_a_question_answered_with_something_else_is_asked_again() -> None:
    asking = turn(screening_summary(), "", "scr.some").conversation
    t = turn(asking, "mungkin")
    assert t.conversation == asking
    assert "Ya atau Tidak" in t.replies[0].body


def test_not_eligible_and_refer_outcomes_say_what_to_do() -> None:
    for outcome, step, words in [
        (ScreeningOutcome.NOT_ELIGIBLE, Step.NOT_ELIGIBLE, "konsultasi"),
        (ScreeningOutcome.REFER, Step.REFERRED, "rumah sakit"),
    ]:
        decision = decide(screening_summary(), "", "scr.none")
        result = EvaluateResult(rule_set_id="r", outcome=outcome, reason_texts=["Hamil"])
        t = answer(decision, EvaluateRequest, result)
        assert isinstance(t, Turn) and t.conversation.step == step
        assert words in bodies(t).lower() and "Hamil" in bodies(t)


def test_postponed_user_rescreens_only_from_the_date() -> None:
    postponed = Conversation(Step.POSTPONED, data={"rescreen_on": "2021-02-15", "person_id": "p1"})
    early = turn(postponed, "VAKSIN")
    assert early.conversation == postponed and "15-02-2021" in bodies(early)
    decision = decide(postponed, "VAKSIN", ctx=Context(today=date(2021, 2, 15), wa_id=WA_ID))
    assert isinstance(decision, Ask) and isinstance(decision.request, QuestionnaireRequest)
    assert decision.request.on == date(2021, 2, 15)


def test_keyword_mid_screening_resumes_instead_of_losing_answers() -> None:
    asking = turn(screening_summary(), "", "scr.some").conversation
    t = turn(asking, "VAKSIN")
    assert t.conversation == asking
    assert "hamil" in bodies(t).lower()


def test_language_switch_mid_screening_refetches_the_questionnaire() -> None:
    asking = turn(screening_summary(), "", "scr.some").conversation
    decision = decide(asking, "EN")
    assert isinstance(decision, Ask)
    assert decision.request == QuestionnaireRequest(lang="en", on=CTX.today)
    english = QUESTIONNAIRE.model_copy(
        update={
            "lang": "en",
            "questions": [
                q.model_copy(update={"text": f"EN {q.text}"}) for q in QUESTIONNAIRE.questions
            ],
        }
    )
    t = decision.then(english)
    assert isinstance(t, Turn) and t.conversation.lang == "en"
    assert "Language changed to English" in t.replies[0].body
    assert "EN Apakah Anda sedang hamil?" in t.replies[1].body


def test_long_condition_list_is_split_to_respect_the_button_limit() -> None:
    long = QUESTIONNAIRE.model_copy(update={"summary": "x" * 1000})
    t = answer(verified(), QuestionnaireRequest, long)
    assert isinstance(t, Turn)
    _verified, conditions, question = t.replies
    assert isinstance(conditions, TextMessage) and "x" * 1000 in conditions.body
    assert isinstance(question, ButtonsMessage) and len(question.body) <= 1024


def test_next_question_skips_follow_ups_whose_condition_fails() -> None:
    questions = QUESTIONNAIRE.questions
    assert next_question(questions, {}).id == "pregnant"
    assert next_question(questions, {"pregnant": False, "covid": False}).id == "diabetes"
    assert next_question(questions, {"pregnant": False, "covid": False, "diabetes": False}) is None


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("15-01-2021", date(2021, 1, 15)),
        ("1/2/2020", date(2020, 2, 1)),
        ("2020-12-05", date(2020, 12, 5)),
        ("29-02-2021", None),
        ("01-02-2022", None),
        ("kemarin", None),
        ("1899-01-01", None),
    ],
)
def test_typed_dates(typed: str, expected: date | None) -> None:
    assert parse_past_date(typed, CTX.today) == expected


# --- commands anywhere -----------------------------------------------------------------------


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
    result = VerifyResult(outcome=VerifyOutcome.MISMATCH, attempts_left=4)
    t = answer(decide(conv, "000000"), VerifyRequest, result)
    assert isinstance(t, Turn) and "Attempts left: 4" in bodies(t)


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


def test_status_and_booking_commands() -> None:
    assert "belum memulai" in bodies(turn(Conversation(), "STATUS"))
    assert "belum selesai" in bodies(turn(ASKED_SUFFIX, "status"))
    assert "belum memiliki jadwal" in bodies(turn(Conversation(), "BATAL"))
    postponed = Conversation(Step.POSTPONED, data={"rescreen_on": "2021-02-15"})
    assert "15-02-2021" in bodies(turn(postponed, "STATUS"))


def test_eligible_user_writing_the_keyword_is_offered_a_place_and_time() -> None:
    eligible = Conversation(Step.ELIGIBLE, data={"name": "S*** R***", "facility": "F001"})
    decision = decide(eligible, "VAKSIN")
    assert isinstance(decision, Ask) and isinstance(decision.request, OfferRequest)
    assert decision.request.facility_code == "F001"


def test_busy_reply_keeps_state() -> None:
    t = busy(ASKED_SUFFIX)
    assert t.conversation == ASKED_SUFFIX and isinstance(t.replies[0], TextMessage)


# --- issue 17: no dead ends, answers one step early, both languages -------------------------

LOCKED_UNTIL = datetime(2026, 1, 15, 0, 0, tzinfo=UTC)  # 07:00 in Jakarta
LOCKED = Conversation(Step.LOCKED, data={"locked_until": LOCKED_UNTIL.isoformat()})


@pytest.mark.parametrize("typed", ["850001", "VAKSIN", "halo", "STATUS", "BATAL", "ya"])
def test_a_locked_number_hears_on_every_message_until_when_and_where_to_get_help(
    typed: str,
) -> None:
    decision = decide(LOCKED, typed)
    assert isinstance(decision, Ask) and decision.request == NumberStatusRequest(wa_id=WA_ID)
    t = decision.then(NumberStatus(listed=True, locked_until=LOCKED_UNTIL))
    assert isinstance(t, Turn) and t.conversation.step == Step.LOCKED
    [said] = t.replies
    assert "masih dikunci" in said.body and "15-01-2026 07:00" in said.body
    assert "119 ext 9" in said.body and "tidak mengerti" not in said.body


def test_help_and_language_switch_while_locked_still_say_the_lock() -> None:
    t = answer(decide(LOCKED, "BANTUAN"), NumberStatusRequest,
               NumberStatus(listed=True, locked_until=LOCKED_UNTIL))  # fmt: skip
    assert isinstance(t, Turn) and "VAKSIN" in t.replies[0].body
    assert "15-01-2026 07:00" in t.replies[1].body
    t = answer(decide(LOCKED, "EN"), NumberStatusRequest,
               NumberStatus(listed=True, locked_until=LOCKED_UNTIL))  # fmt: skip
    assert isinstance(t, Turn) and t.conversation.lang == "en"
    assert "*still locked* until 15-01-2026 07:00" in bodies(t) and "119 ext 9" in bodies(t)


def test_once_the_lock_is_over_the_right_suffix_verifies() -> None:
    decision = answer(decide(LOCKED, "850001"), NumberStatusRequest, NumberStatus(listed=True))
    assert isinstance(decision, Ask)
    assert decision.request == VerifyRequest(wa_id=WA_ID, suffix="850001", request_id="wamid.1")
    decision = answer(decision, VerifyRequest, VERIFIED_RESULT)
    decision = answer(decision, FacilityRequest, FacilityReply(facility=FACILITY))
    t = answer(decision, QuestionnaireRequest, QUESTIONNAIRE)
    assert isinstance(t, Turn) and t.conversation.step == Step.SCREENING_SUMMARY
    assert "dibuka kembali" in t.replies[0].body and "terverifikasi" in t.replies[1].body


def test_once_the_lock_is_over_anything_else_asks_for_the_suffix() -> None:
    t = answer(decide(LOCKED, "halo"), NumberStatusRequest, NumberStatus(listed=True))
    assert isinstance(t, Turn) and t.conversation.step == Step.ASK_SUFFIX
    assert "dibuka kembali" in bodies(t) and "6 digit terakhir NIK" in bodies(t)


@pytest.mark.parametrize("typed", ["850001", "850 001"])
def test_a_suffix_typed_at_the_health_worker_question_is_yes_plus_the_suffix(typed: str) -> None:
    decision = answer(decide(ASKED_NAKES, typed), NumberStatusRequest, NumberStatus(listed=True))
    assert isinstance(decision, Ask)
    assert decision.request == VerifyRequest(wa_id=WA_ID, suffix="850001", request_id="wamid.1")
    decision = answer(decision, VerifyRequest, VERIFIED_RESULT)
    decision = answer(decision, FacilityRequest, FacilityReply(facility=FACILITY))
    t = answer(decision, QuestionnaireRequest, QUESTIONNAIRE)
    assert isinstance(t, Turn) and t.conversation.step == Step.SCREENING_SUMMARY


def test_an_early_suffix_from_a_locked_or_unlisted_number_is_not_verified() -> None:
    status = NumberStatus(listed=True, locked_until=LOCKED_UNTIL)
    t = answer(decide(ASKED_NAKES, "850001"), NumberStatusRequest, status)
    assert isinstance(t, Turn) and t.conversation.step == Step.LOCKED
    t = answer(decide(ASKED_NAKES, "850001"), NumberStatusRequest, NumberStatus(listed=False))
    assert isinstance(t, Turn) and t.conversation.step == Step.INTAKE_OFFER


def test_a_full_nik_typed_at_the_health_worker_question_asks_for_the_suffix_only() -> None:
    t = answer(decide(ASKED_NAKES, "3201014507850001"), NumberStatusRequest,
               NumberStatus(listed=True))  # fmt: skip
    assert isinstance(t, Turn) and t.conversation.step == Step.ASK_SUFFIX
    assert "jangan kirim NIK lengkap" in bodies(t) and "3201014507850001" not in bodies(t)


def test_a_date_typed_at_a_yes_no_question_is_yes_plus_the_date_it_leads_to() -> None:
    asking = turn(screening_summary(), "", "scr.some").conversation
    at_covid = turn(asking, "tidak").conversation  # pregnant: no
    assert at_covid.data["current"] == "covid"
    t = turn(at_covid, "15-11-2020")  # "when did you recover?" answered before it is asked
    assert t.conversation.data["current"] == "diabetes"
    assert t.conversation.data["answers"] == {
        "pregnant": False,
        "covid": True,
        "covid_recovered": "2020-11-15",
    }


def test_a_date_at_a_yes_no_question_without_a_date_after_it_is_asked_again() -> None:
    asking = turn(screening_summary(), "", "scr.some").conversation  # pregnant: no date follows
    t = turn(asking, "15-11-2020")
    assert t.conversation == asking and "Ya atau Tidak" in t.replies[0].body


WAITING = Conversation(
    Step.INTAKE_WAITING,
    data={"masked_nik": "320101**********", "intake_since": "2021-01-19T02:05:00+00:00"},
)


@pytest.mark.parametrize("typed", ["halo", "sudah?", "VAKSIN", "STATUS", "850001"])
def test_a_request_waiting_for_an_operator_is_told_since_when_and_what_next(typed: str) -> None:
    t = turn(WAITING, typed)
    assert t.conversation == WAITING
    [said] = t.replies
    assert "menunggu verifikasi" in said.body and "19-01-2021 09:05" in said.body
    assert "VAKSIN" in said.body and "tidak mengerti" not in said.body


def test_a_request_waiting_from_before_its_time_was_kept_is_still_answered() -> None:
    t = turn(Conversation(Step.INTAKE_WAITING, "en", {"masked_nik": "320101**********"}), "hi")
    assert "waiting for verification" in bodies(t) and "320101**********" in bodies(t)


def test_help_while_waiting_for_an_operator_says_where_the_request_stands() -> None:
    t = turn(WAITING, "BANTUAN")
    assert "119 ext 9" in t.replies[0].body and "menunggu verifikasi" in t.replies[1].body


def test_english_verification_shows_profession_and_facility_in_english_by_name() -> None:
    conv = Conversation(Step.ASK_SUFFIX, "en")
    decision = answer(decide(conv, "850001"), VerifyRequest, VERIFIED_RESULT)
    decision = answer(decision, FacilityRequest, FacilityReply(facility=FACILITY))
    t = answer(decision, QuestionnaireRequest, QUESTIONNAIRE.model_copy(update={"lang": "en"}))
    assert isinstance(t, Turn)
    said = t.replies[0].body
    assert "Profession: Nurse" in said and "perawat" not in said.lower()
    assert "Health facility: Puskesmas Cibinong" in said and "F001" not in said
    indonesian = answer(verified(), QuestionnaireRequest, QUESTIONNAIRE)
    assert isinstance(indonesian, Turn)
    assert "Profesi: Perawat" in indonesian.replies[0].body


def test_a_facility_the_scheduler_does_not_know_is_shown_by_its_code() -> None:
    decision = answer(decide(ASKED_SUFFIX, "850001"), VerifyRequest, VERIFIED_RESULT)
    t = answer(answer(decision, FacilityRequest, FacilityReply()), QuestionnaireRequest,
               QUESTIONNAIRE)  # fmt: skip
    assert isinstance(t, Turn) and "Fasilitas kesehatan: F001" in t.replies[0].body


def test_the_keyword_after_an_approval_names_the_facility_once() -> None:
    approved = Conversation(Step.VERIFIED, "en", {"person_id": "p1", "name": "S*** R***",
                                                  "facility": "F001"})  # fmt: skip
    decision = answer(decide(approved, "VAKSIN"), FacilityRequest, FacilityReply(facility=FACILITY))
    t = answer(decision, QuestionnaireRequest, QUESTIONNAIRE)
    assert isinstance(t, Turn) and "Health facility: Puskesmas Cibinong" in t.replies[0].body
    assert t.conversation.data["facility_name"] == "Puskesmas Cibinong"
