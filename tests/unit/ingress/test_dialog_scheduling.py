"""The dialog from an eligible health worker to a booking, and BATAL / UBAH / STATUS after it."""

from __future__ import annotations

import base64
import datetime as dt

import pytest

from services.common.contracts.notifier import (
    PNG_SIGNATURE,
    ButtonsMessage,
    ImageMessage,
    ListMessage,
    TextMessage,
)
from services.common.contracts.scheduler import (
    AlternativesReply,
    AlternativesRequest,
    Booking,
    BookingReply,
    BookingsReply,
    BookingsRequest,
    BookingStatus,
    CancelRequest,
    ConfirmRequest,
    Facility,
    Hold,
    HoldReply,
    HoldRequest,
    NearbyFacility,
    NearbyReply,
    NearbyRequest,
    OfferRequest,
    SessionSlot,
)
from services.common.contracts.ticketing import TicketsReply, TicketsRequest, TicketView
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

WA_ID = "6281200000001"
TODAY = dt.date(2021, 1, 20)
CTX = Context(today=TODAY, wa_id=WA_ID)
F001 = Facility(code="F001", name="Puskesmas Cibinong", address="Jl. Raya 1",
                regency="Kab. Bogor", province="Jawa Barat")  # fmt: skip
ELIGIBLE = Conversation(Step.ELIGIBLE, data={"person_id": "p1", "facility": "F001"})


def decide(conv: Conversation, text: str = "", reply_id: str | None = None) -> Decision:
    return handle(conv, UserInput(text, reply_id), request_id="wamid.9", ctx=CTX)


def answer(decision: Decision, request_type: type, reply: object) -> Decision:
    assert isinstance(decision, Ask), decision
    assert isinstance(decision.request, request_type), decision.request
    return decision.then(reply)


def turn_of(decision: Decision) -> Turn:
    assert isinstance(decision, Turn), decision
    return decision


def hold(session_id: int = 7, hold_id: int = 70, replaces: int | None = None) -> Hold:
    return Hold(hold_id=hold_id, session_id=session_id, facility=F001, date=dt.date(2021, 1, 25),
                start=dt.time(8), end=dt.time(12), vaccine="CoronaVac", dose=1,
                expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10),
                replaces_booking_id=replaces)  # fmt: skip


def booking(booking_id: int = 5, session_id: int = 7) -> Booking:
    return Booking(booking_id=booking_id, person_id="p1", session_id=session_id, facility=F001,
                   date=dt.date(2021, 1, 25), start=dt.time(8), end=dt.time(12),
                   vaccine="CoronaVac", dose=1, status=BookingStatus.ACTIVE)  # fmt: skip


def at_location() -> Conversation:
    """A conversation left at the separate place question (before place and time came in one
    message): its buttons still work."""
    location = {"code": F001.code, "name": F001.name, "address": F001.address}
    return ELIGIBLE.at(Step.LOCATION, location=location)


def with_hold() -> Conversation:
    """Offered the assigned facility's earliest time, a seat held (as right after screening)."""
    decision = decide(ELIGIBLE, "VAKSIN")
    t = turn_of(answer(decision, OfferRequest, HoldReply(hold=hold())))
    assert t.conversation.step == Step.SLOT
    return t.conversation


def nearby_reply(*codes: str) -> NearbyReply:
    return NearbyReply(facilities=[
        NearbyFacility(**F001.model_dump() | {"code": c, "name": f"Puskesmas {c}"},
                       earliest_date=TODAY, free_seats=3)
        for c in codes
    ])  # fmt: skip


def booked() -> Conversation:
    decision = decide(with_hold(), "", "slot.ok")
    t = turn_of(answer(decision, ConfirmRequest, BookingReply(booking=booking())))
    assert t.conversation.step == Step.BOOKED
    return t.conversation


@pytest.mark.parametrize(("text", "reply_id"), [("", "loc.ok"), ("ya", None), ("1", None)])
def test_accepting_the_assigned_place_holds_its_earliest_seat(
    text: str, reply_id: str | None
) -> None:
    decision = decide(at_location(), text, reply_id)
    assert isinstance(decision, Ask)
    request = decision.request
    assert isinstance(request, OfferRequest)
    assert (request.facility_code, request.person_id, request.wa_id, request.dose) == (
        "F001",
        "p1",
        WA_ID,
        1,
    )
    assert (request.on, request.request_id) == (TODAY, "wamid.9")
    t = turn_of(decision.then(HoldReply(hold=hold())))
    [question] = t.replies
    assert isinstance(question, ButtonsMessage)
    assert [b.id for b in question.buttons] == ["slot.ok", "slot.other", "loc.other"]
    assert "25-01-2021" in question.body and "08:00-12:00" in question.body
    assert "menit" in question.body and "Puskesmas Cibinong" in question.body


def test_place_and_earliest_time_come_in_one_message_with_every_way_out() -> None:
    decision = decide(ELIGIBLE, "VAKSIN")
    assert isinstance(decision, Ask) and isinstance(decision.request, OfferRequest)
    assert (decision.request.facility_code, decision.request.request_id) == ("F001", "wamid.9")
    t = turn_of(decision.then(HoldReply(hold=hold())))
    [offer] = t.replies
    assert isinstance(offer, ButtonsMessage)
    assert [(b.id, b.title) for b in offer.buttons] == [
        ("slot.ok", "Konfirmasi"),
        ("slot.other", "Jadwal lain"),
        ("loc.other", "Lokasi lain"),
    ]
    body = offer.body
    assert "Puskesmas Cibinong" in body and "Jl. Raya 1" in body
    assert "Senin, 25-01-2021" in body and "08:00-12:00" in body and "10 menit" in body
    assert t.conversation.data["hold"]["hold_id"] == 70


@pytest.mark.parametrize(("text", "reply_id"), [("", "loc.other"), ("3", None),
                                                 ("tempat lain", None), ("another place", None)])  # fmt: skip
def test_another_place_from_the_offer_lists_the_regency_and_a_pick_offers_there(
    text: str, reply_id: str | None
) -> None:
    decision = decide(with_hold(), text, reply_id)
    assert isinstance(decision, Ask)
    assert decision.request == NearbyRequest(facility_code="F001", on=TODAY)
    t = turn_of(decision.then(nearby_reply("F001", "F002")))
    assert t.conversation.step == Step.LOCATION_LIST
    [listing] = t.replies
    assert isinstance(listing, ListMessage)
    assert [r.id for r in listing.sections[0].rows] == ["loc.F001", "loc.F002"]
    picked = decide(t.conversation, "2")
    assert isinstance(picked, Ask) and isinstance(picked.request, OfferRequest)
    assert picked.request.facility_code == "F002"


@pytest.mark.parametrize(("text", "reply_id"), [("", "slot.other"), ("2", None),
                                                 ("jadwal lain", None)])  # fmt: skip
def test_another_time_from_the_offer_lists_the_sessions(text: str, reply_id: str | None) -> None:
    decision = decide(with_hold(), text, reply_id)
    assert isinstance(decision, Ask) and isinstance(decision.request, AlternativesRequest)


def test_no_other_place_keeps_the_seat_held_on_offer() -> None:
    conv = with_hold()
    t = turn_of(answer(decide(conv, "", "loc.other"), NearbyRequest, NearbyReply()))
    assert t.conversation == conv
    said, again = t.replies
    assert "tidak ada tempat lain" in said.body
    assert isinstance(again, ButtonsMessage) and "25-01-2021" in again.body


def test_an_unknown_assigned_facility_is_said_plainly() -> None:
    decision = decide(ELIGIBLE, "VAKSIN")
    t = turn_of(answer(decision, OfferRequest, HoldReply(error="not_found: no facility F001")))
    assert t.conversation.step == Step.ELIGIBLE and "belum tersedia" in t.replies[0].body


@pytest.mark.parametrize(("text", "reply_id"), [("", "slot.ok"), ("1", None), ("ya", None)])
def test_confirming_books_the_held_seat(text: str, reply_id: str | None) -> None:
    decision = decide(with_hold(), text, reply_id)
    assert isinstance(decision, Ask)
    assert decision.request == ConfirmRequest(request_id="wamid.9", hold_id=70, person_id="p1")
    t = turn_of(decision.then(BookingReply(booking=booking())))
    assert t.conversation.step == Step.BOOKED
    assert "*terkonfirmasi*" in t.replies[0].body and "Senin, 25-01-2021" in t.replies[0].body


def test_a_full_facility_says_so_and_lists_others_in_the_regency() -> None:
    decision = answer(decide(ELIGIBLE, "VAKSIN"), OfferRequest,
                      HoldReply(error="full: no free seat"))  # fmt: skip
    assert isinstance(decision, Ask) and decision.request == NearbyRequest(
        facility_code="F001", on=TODAY
    )
    others = [NearbyFacility(code=f"F{i:03d}", name=f"Puskesmas {i}", address=f"Jl. {i}",
                             regency="Kab. Bogor", province="Jawa Barat",
                             earliest_date=TODAY, free_seats=5)
              for i in range(2, 14)]  # fmt: skip
    t = turn_of(decision.then(NearbyReply(facilities=others)))
    full, listing = t.replies
    assert "penuh" in full.body
    assert isinstance(listing, ListMessage)
    rows = [r.id for s in listing.sections for r in s.rows]
    assert rows == [f"loc.F{i:03d}" for i in range(2, 12)]  # at most 10 rows
    picked = decide(t.conversation, "2")  # typed row number
    assert isinstance(picked, Ask) and picked.request.facility_code == "F003"


def test_other_place_lists_facilities_and_a_tap_offers_there() -> None:
    decision = decide(at_location(), "", "loc.other")
    t = turn_of(
        answer(
            decision,
            NearbyRequest,
            NearbyReply(
                facilities=[NearbyFacility(**F001.model_dump(), earliest_date=TODAY, free_seats=3)]
            ),
        )
    )
    assert t.conversation.step == Step.LOCATION_LIST
    picked = decide(t.conversation, "", "loc.F001")
    assert isinstance(picked, Ask) and isinstance(picked.request, OfferRequest)
    wrong = turn_of(decide(t.conversation, "9"))
    assert wrong.conversation == t.conversation and "daftar" in wrong.replies[0].body


def test_no_place_with_free_seats_is_said_plainly() -> None:
    decision = decide(at_location(), "", "loc.other")
    t = turn_of(answer(decision, NearbyRequest, NearbyReply(facilities=[])))
    assert t.conversation.step == Step.ELIGIBLE and "belum ada jadwal kosong" in t.replies[0].body


def test_other_times_list_sessions_and_a_choice_holds_that_session() -> None:
    decision = decide(with_hold(), "", "slot.other")
    assert isinstance(decision, Ask) and decision.request == AlternativesRequest(
        person_id="p1", facility_code="F001", on=TODAY
    )
    slots = [SessionSlot(session_id=i, date=dt.date(2021, 1, 20 + i), start=dt.time(8),
                         end=dt.time(12), vaccine="CoronaVac", free_seats=i)
             for i in range(1, 4)]  # fmt: skip
    t = turn_of(decision.then(AlternativesReply(facility=F001, sessions=slots)))
    [listing] = t.replies
    assert isinstance(listing, ListMessage)
    assert [r.id for r in listing.sections[0].rows] == ["slot.1", "slot.2", "slot.3"]
    assert listing.sections[0].rows[0].title == "21-01-2021 08:00"
    picked = decide(t.conversation, "", "slot.3")
    assert isinstance(picked, Ask) and isinstance(picked.request, HoldRequest)
    assert picked.request.session_id == 3 and picked.request.replaces_booking_id is None
    held = turn_of(picked.then(HoldReply(hold=hold(session_id=3))))
    assert held.conversation.step == Step.SLOT


def test_an_expired_hold_is_replaced_by_a_fresh_offer() -> None:
    decision = answer(decide(with_hold(), "", "slot.ok"), ConfirmRequest,
                      BookingReply(error="hold_expired: the seat went to someone else"))  # fmt: skip
    assert isinstance(decision, Ask) and isinstance(decision.request, OfferRequest)
    t = turn_of(decision.then(HoldReply(hold=hold(hold_id=71))))
    assert "habis" in t.replies[0].body and t.conversation.data["hold"]["hold_id"] == 71


def ticket_view(booking_id: int = 5) -> TicketView:
    png = base64.b64encode(PNG_SIGNATURE + b"qr").decode()
    return TicketView(ticket_id="t1", code="7K3MX9QP", booking_id=booking_id, dose=1,
                      facility_code="F001", facility_name="Puskesmas Cibinong",
                      date=dt.date(2021, 1, 25), start=dt.time(8), end=dt.time(12),
                      expires_at=dt.datetime(2021, 1, 25, 17, tzinfo=dt.UTC),
                      image=ImageMessage(png_base64=png, caption="Kode tiket: 7K3MX9QP"))  # fmt: skip


def test_status_shows_the_booking_then_sends_the_ticket_again() -> None:
    decision = decide(booked(), "STATUS")
    decision = answer(decision, BookingsRequest, BookingsReply(bookings=[booking()]))
    assert isinstance(decision, Ask) and decision.request == TicketsRequest(person_id="p1")
    t = turn_of(decision.then(TicketsReply(tickets=[ticket_view()])))
    assert "Puskesmas Cibinong" in t.replies[0].body and "UBAH" in t.replies[0].body
    assert t.replies[1] == ticket_view().image
    assert t.conversation.step == Step.BOOKED


def test_tiket_sends_the_usable_tickets() -> None:
    conv = booked()
    decision = answer(decide(conv, "tiket"), TicketsRequest, TicketsReply(tickets=[ticket_view()]))
    t = turn_of(decision)
    assert t.replies == [ticket_view().image] and t.conversation == conv


@pytest.mark.parametrize("channel", ["sms", "ussd"])
def test_tiket_by_sms_or_ussd_sends_the_tickets_text_with_its_code(channel: str) -> None:
    """No image on those channels: the ticket's text, whose code the desk takes like the QR."""
    view = ticket_view().model_copy(
        update={"text": TextMessage(body="Tiket vaksinasi\nKode tiket: 7K3MX9QP")}
    )
    ctx = Context(today=TODAY, wa_id=WA_ID, channel=channel)
    decision = handle(booked(), UserInput("TIKET"), request_id="wamid.9", ctx=ctx)
    t = turn_of(answer(decision, TicketsRequest, TicketsReply(tickets=[view])))
    assert t.replies == [view.text]
    on_whatsapp = answer(decide(booked(), "TIKET"), TicketsRequest, TicketsReply(tickets=[view]))
    assert turn_of(on_whatsapp).replies == [view.image]  # WhatsApp keeps the QR image


@pytest.mark.parametrize("reply", [TicketsReply(), TicketsReply(error="unavailable: later")])
def test_tiket_before_the_ticket_is_issued_shows_the_appointment(reply: TicketsReply) -> None:
    decision = answer(decide(booked(), "TIKET"), TicketsRequest, reply)
    t = turn_of(answer(decision, BookingsRequest, BookingsReply(bookings=[booking()])))
    assert "Tiket QR dikirim" in t.replies[0].body and len(t.replies) == 1


def test_status_after_the_booking_vanished_sends_no_ticket() -> None:
    """Cancelled elsewhere (its session was cancelled): its ticket is revoked, so none comes."""
    decision = answer(decide(booked(), "STATUS"), BookingsRequest, BookingsReply())
    t = turn_of(answer(decision, TicketsRequest, TicketsReply()))
    assert len(t.replies) == 1 and "belum memiliki jadwal" in t.replies[0].body


def test_batal_cancels_and_the_user_can_book_again() -> None:
    decision = decide(booked(), "BATAL")
    assert isinstance(decision, Ask)
    assert decision.request == CancelRequest(request_id="wamid.9", person_id="p1")
    t = turn_of(decision.then(BookingReply(booking=booking())))
    assert t.conversation.step == Step.ELIGIBLE and "*dibatalkan*" in t.replies[0].body


def test_ubah_holds_a_new_seat_that_replaces_the_booking() -> None:
    decision = decide(booked(), "UBAH")
    slots = [SessionSlot(session_id=9, date=dt.date(2021, 1, 28), start=dt.time(13),
                         end=dt.time(15), vaccine="CoronaVac", free_seats=2)]  # fmt: skip
    t = turn_of(answer(decision, AlternativesRequest,
                       AlternativesReply(facility=F001, sessions=slots)))  # fmt: skip
    picked = decide(t.conversation, "1")
    assert isinstance(picked, Ask) and isinstance(picked.request, HoldRequest)
    assert picked.request.replaces_booking_id == 5
    held = turn_of(picked.then(HoldReply(hold=hold(session_id=9, replaces=5))))
    confirm = decide(held.conversation, "", "slot.ok")
    done = turn_of(answer(confirm, ConfirmRequest,
                          BookingReply(booking=booking(6, 9), previous=booking())))  # fmt: skip
    assert done.conversation.step == Step.BOOKED and "*diubah*" in done.replies[0].body
    assert done.conversation.data["booking"]["booking_id"] == 6


@pytest.mark.parametrize("command", ["BATAL", "UBAH", "TIKET"])
def test_booking_commands_before_a_booking_say_there_is_none(command: str) -> None:
    t = turn_of(decide(at_location(), command))
    assert "belum memiliki jadwal" in t.replies[0].body
    assert t.conversation.step == Step.LOCATION
