"""Intake in the dialog: precise NIK reprompts, the workplace by code or by name (a search, a
list to pick from), the read-back, and the operator's decision."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from services.common.contracts.identity import (
    CheckNikRequest,
    CheckNikResult,
    IntakeDecided,
    IntakeOutcome,
    IntakeSubmitRequest,
    IntakeSubmitResult,
)
from services.common.contracts.notifier import ListMessage
from services.common.contracts.scheduler import (
    Facility,
    FacilityReply,
    FacilityRequest,
    FacilitySearchReply,
    FacilitySearchRequest,
)
from services.ingress.catalog import LANGUAGES, catalog
from services.ingress.dialog import (
    Ask,
    Context,
    Conversation,
    Decision,
    Step,
    Turn,
    UserInput,
    handle,
)
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


# --- the workplace: a facility code, or a search by name -------------------------------------

AT_FACILITY = Conversation(Step.INTAKE_FACILITY, data={
    "nik": "3201014503900001", "masked_nik": "320101**********", "birth_date": "1990-03-05",
    "sex": "F", "full_name": "Dewi Anggraini", "profession": "perawat"})  # fmt: skip


def facility(code: str, name: str, address: str = "Jl. Uji No. 1") -> Facility:
    return Facility(code=code, name=name, address=address, regency="Kota Jakarta Selatan",
                    province="DKI Jakarta")  # fmt: skip


TEBET = [
    facility("F3174001", "Puskesmas Kecamatan Tebet", "Jl. Prof. Soepomo No. 54"),
    facility("F3174002", "Puskesmas Kelurahan Tebet Barat"),
    facility("F3174003", "Puskesmas Kelurahan Tebet Timur"),
]


def decide(conv: Conversation, text: str = "", reply_id: str | None = None) -> Decision:
    return handle(conv, UserInput(text, reply_id), request_id="w", ctx=CTX)


def answer(decision: Decision, request: object, reply: object) -> Decision:
    assert isinstance(decision, Ask), decision
    assert decision.request == request, decision.request
    return decision.then(reply)


def turn_of(decision: Decision) -> Turn:
    assert isinstance(decision, Turn), decision
    return decision


def asked(decision: Decision) -> object:
    assert isinstance(decision, Ask), decision
    return decision.request


def search(query: str) -> FacilitySearchRequest:
    return FacilitySearchRequest(query=query, limit=10)


NO_CODE = FacilityReply(error="not_found: no facility")


def listed() -> Conversation:
    decision = answer(decide(AT_FACILITY, "puskesmas  tebet"), search("puskesmas tebet"),
                      FacilitySearchReply(facilities=TEBET, total=3))  # fmt: skip
    return turn_of(decision).conversation


def test_a_known_facility_code_goes_to_the_read_back() -> None:
    decision = decide(AT_FACILITY, " f3174001 ")
    t = turn_of(answer(decision, FacilityRequest(code="F3174001"),
                       FacilityReply(facility=TEBET[0])))  # fmt: skip
    assert t.conversation.step == Step.INTAKE_CONFIRM
    assert t.conversation.data["facility_code"] == "F3174001"
    assert "Puskesmas Kecamatan Tebet (F3174001)" in t.replies[0].body


def test_a_word_that_is_no_code_is_searched_as_a_name_and_one_match_is_taken() -> None:
    asked_code = answer(decide(AT_FACILITY, "Cengkareng"), FacilityRequest(code="CENGKARENG"),
                        NO_CODE)  # fmt: skip
    rsud = facility("F3173010", "RSUD Cengkareng")
    t = turn_of(answer(asked_code, search("Cengkareng"),
                       FacilitySearchReply(facilities=[rsud], total=1)))  # fmt: skip
    assert t.conversation.step == Step.INTAKE_CONFIRM
    assert (t.conversation.data["facility_code"], t.conversation.data["facility_name"]) == (
        "F3173010",
        "RSUD Cengkareng",
    )
    assert "RSUD Cengkareng (F3173010)" in t.replies[0].body


def test_several_words_are_searched_at_once_and_a_long_text_is_cut() -> None:
    assert asked(decide(AT_FACILITY, "rsud   cengkareng")) == search("rsud cengkareng")
    long = "puskesmas " * 12
    assert asked(decide(AT_FACILITY, long)) == search(long.strip()[:80])


@pytest.mark.parametrize("lang", LANGUAGES)
def test_nothing_found_says_to_type_the_code_or_the_name_with_the_regency(lang: str) -> None:
    conv = replace(AT_FACILITY, lang=lang)
    t = turn_of(answer(decide(conv, "klinik entah"), search("klinik entah"),
                       FacilitySearchReply(total=0)))  # fmt: skip
    assert t.conversation.step == Step.INTAKE_FACILITY and not t.conversation.data["rows"]
    assert t.replies[0].body == catalog(lang)["intake_facility_unknown"]
    # Too short to search: the code look-up is all there is.
    short = answer(decide(conv, "ab"), FacilityRequest(code="AB"), NO_CODE)
    assert turn_of(short).replies[0].body == catalog(lang)["intake_facility_unknown"]


def test_more_than_a_list_holds_asks_for_more_words() -> None:
    t = turn_of(answer(decide(AT_FACILITY, "puskesmas jakarta"), search("puskesmas jakarta"),
                       FacilitySearchReply(facilities=TEBET, total=37)))  # fmt: skip
    assert t.conversation.step == Step.INTAKE_FACILITY and not t.conversation.data["rows"]
    assert "Ada 37 fasilitas yang cocok" in t.replies[0].body


def test_two_to_ten_matches_are_a_list_of_workplace_rows() -> None:
    t = turn_of(answer(decide(AT_FACILITY, "puskesmas tebet"), search("puskesmas tebet"),
                       FacilitySearchReply(facilities=TEBET, total=3)))  # fmt: skip
    assert t.conversation.step == Step.INTAKE_FACILITY
    [message] = t.replies
    assert isinstance(message, ListMessage) and message.button == "Pilih fasilitas"
    rows = message.sections[0].rows
    assert [r.id for r in rows] == ["fac.F3174001", "fac.F3174002", "fac.F3174003"]
    assert rows[0].title == "Puskesmas Kecamatan Teb…"
    # Names cut alike are told apart by the description, which gives them whole.
    assert rows[1].title == rows[2].title == "Puskesmas Kelurahan Teb…"
    assert rows[1].description.startswith("Puskesmas Kelurahan Tebet Barat, Kota Jakarta")
    short = turn_of(answer(decide(AT_FACILITY, "rsud jakarta"), search("rsud jakarta"),
                           FacilitySearchReply(facilities=[facility("R1", "RSUD Tebet"),
                                                           facility("R2", "RSUD Pasar Minggu")],
                                               total=2)))  # fmt: skip
    assert short.replies[0].sections[0].rows[0].description == "Jl. Uji No. 1, Kota Jakarta Selatan"


@pytest.mark.parametrize(
    ("text", "reply_id"),
    [("Puskesmas Kelurahan Teb…", "fac.F3174002"), ("2", None), ("f3174002", None)],
)
def test_a_row_is_picked_by_tap_number_or_code_and_read_back(
    text: str, reply_id: str | None
) -> None:
    decision = decide(listed(), text, reply_id)
    t = turn_of(answer(decision, FacilityRequest(code="F3174002"),
                       FacilityReply(facility=TEBET[1])))  # fmt: skip
    assert t.conversation.step == Step.INTAKE_CONFIRM and not t.conversation.data["rows"]
    assert "Puskesmas Kelurahan Tebet Barat (F3174002)" in t.replies[0].body


def test_a_tap_on_a_list_no_longer_in_the_state_still_picks_its_row() -> None:
    decision = decide(AT_FACILITY, "Puskesmas Kelurahan Teb…", "fac.F3174002")
    assert asked(decision) == FacilityRequest(code="F3174002")


def test_a_row_number_not_in_the_list_asks_to_choose_and_new_words_search_again() -> None:
    conv = listed()
    t = turn_of(decide(conv, "7"))
    assert t.conversation == conv
    assert "pilih dari daftar" in t.replies[0].body and isinstance(t.replies[1], ListMessage)
    assert asked(decide(conv, "tebet timur")) == search("tebet timur")


def test_the_list_is_shown_again_in_the_language_asked() -> None:
    t = turn_of(decide(listed(), "EN"))
    assert t.conversation.lang == "en"
    assert isinstance(t.replies[1], ListMessage) and t.replies[1].button == "Choose facility"


def test_a_failing_scheduler_is_busy_not_a_facility_not_found() -> None:
    conv = listed()
    t = turn_of(answer(decide(conv, "tebet timur"), search("tebet timur"),
                       FacilitySearchReply(error="unavailable: try again")))  # fmt: skip
    assert t.conversation == conv and t.replies[0].body == catalog("id")["busy"]


def test_a_typo_lists_the_closest_facilities_to_pick_even_a_single_one() -> None:
    decision = answer(decide(AT_FACILITY, "puskesmas tebte"), search("puskesmas tebte"),
                      FacilitySearchReply(facilities=TEBET[:1], total=1, approximate=True))  # fmt: skip
    t = turn_of(decision)
    assert t.conversation.step == Step.INTAKE_FACILITY  # never taken without asking
    [listing] = t.replies
    assert isinstance(listing, ListMessage) and "cocok persis" in listing.body
    assert [r.id for r in listing.sections[0].rows] == ["fac.F3174001"]
    picked = decide(t.conversation, "1")
    assert asked(picked) == FacilityRequest(code="F3174001")


# --- answers one step early, and the wait for an operator -----------------------------------


@pytest.mark.parametrize("typed", ["3201014503900001", "3201 0145 0390 0001"])
def test_a_nik_typed_at_the_registration_offer_is_yes_plus_the_nik(typed: str) -> None:
    decision = decide(Conversation(Step.INTAKE_OFFER), typed)
    assert asked(decision) == CheckNikRequest(nik="3201014503900001")
    t = turn_of(decision.then(CheckNikResult(valid=True, masked_nik="320101**********",
                                             birth_date=dt.date(1990, 3, 5), sex="F")))  # fmt: skip
    assert t.conversation.step == Step.INTAKE_NAME and "nama lengkap" in t.replies[0].body
    invalid = decide(Conversation(Step.INTAKE_OFFER), typed).then(
        CheckNikResult(valid=False, code="month")
    )
    assert isinstance(invalid, Turn) and invalid.conversation.step == Step.INTAKE_NIK


def test_anything_else_at_the_registration_offer_asks_again() -> None:
    t = turn_of(decide(Conversation(Step.INTAKE_OFFER), "12345"))
    assert t.conversation.step == Step.INTAKE_OFFER
    assert [b.id for b in t.replies[0].buttons] == ["intake.yes", "intake.no"]


def submitted(outcome: IntakeOutcome) -> Turn:
    read_back = AT_FACILITY.at(Step.INTAKE_CONFIRM, facility_code="F3174001",
                               facility_name="Puskesmas Kecamatan Tebet")  # fmt: skip
    decision = decide(read_back, "", "intake.ok")
    assert isinstance(asked(decision), IntakeSubmitRequest)
    since = dt.datetime(2021, 1, 19, 2, 5, tzinfo=dt.UTC)
    return turn_of(decision.then(IntakeSubmitResult(outcome=outcome, intake_id=7,
                                                    masked_nik="320101**********",
                                                    submitted_at=since)))  # fmt: skip


def test_a_submitted_request_keeps_when_it_was_sent_and_not_the_nik() -> None:
    t = submitted(IntakeOutcome.SUBMITTED)
    assert t.conversation.step == Step.INTAKE_WAITING and "*diverifikasi*" in t.replies[0].body
    assert "nik" not in t.conversation.data
    later = turn_of(decide(t.conversation, "halo"))
    assert "sejak 19-01-2021 09:05 WIB" in later.replies[0].body


def test_a_request_already_open_says_since_when_it_waits() -> None:
    t = submitted(IntakeOutcome.DUPLICATE_OPEN)
    assert t.conversation.step == Step.INTAKE_WAITING
    assert "menunggu verifikasi petugas sejak 19-01-2021 09:05" in t.replies[0].body
