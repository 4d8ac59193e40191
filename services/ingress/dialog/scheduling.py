"""Steps from an eligible health worker to a confirmed booking, and the later commands.

The assigned facility and its earliest free session come in one message, a seat held: confirm
(`slot.ok`), another time (`slot.other`: the facility's sessions) or another place (`loc.other`:
facilities of the regency with free seats). A full facility lists the others at once. Confirming
books the seat. Lists (facilities, sessions) are kept in the conversation, so a typed row number
works as well as a tap. The separate place question (`loc.ok` / `loc.other`, step LOCATION) is
still answered for conversations that stand there.
"""

from __future__ import annotations

import datetime as dt

from services.common.contracts.notifier import (
    Button,
    ButtonsMessage,
    OutboundMessage,
)
from services.common.contracts.scheduler import (
    AlternativesReply,
    AlternativesRequest,
    Booking,
    BookingReply,
    BookingsReply,
    BookingsRequest,
    CancelRequest,
    ConfirmRequest,
    ErrorCode,
    FacilityReply,
    FacilityRequest,
    Hold,
    HoldReply,
    HoldRequest,
    NearbyReply,
    NearbyRequest,
    OfferRequest,
    error_code,
)
from services.ingress.catalog import t
from services.ingress.dialog.model import (
    LIST_ROWS,
    Ask,
    Context,
    Conversation,
    Decision,
    Intent,
    Step,
    Turn,
    UserInput,
    chosen_row,
    cut,
    list_message,
    prepend,
    text,
)

# --- location --------------------------------------------------------------------------------


def offer_assigned(conv: Conversation, request_id: str, ctx: Context) -> Decision:
    """The assigned facility's earliest free time, a seat held: place and time in one message."""
    return offer(conv, str(conv.data.get("facility", "")), request_id, ctx)


def propose_location(conv: Conversation) -> Decision:
    """The facility the registry assigned, with `loc.ok` / `loc.other`."""
    code = str(conv.data.get("facility", ""))
    return Ask(FacilityRequest(code=code), lambda reply: _show_location(conv, reply))


def _show_location(conv: Conversation, reply: FacilityReply) -> Turn:
    lang = conv.lang
    if reply.facility is None:
        return Turn(conv.at(Step.ELIGIBLE), [text(lang, "location_unknown")])
    facility = reply.facility
    asking = conv.at(
        Step.LOCATION,
        location={"code": facility.code, "name": facility.name, "address": facility.address},
    )
    return Turn(asking, [_location_question(asking)])


def _location_question(conv: Conversation) -> ButtonsMessage:
    location = conv.data["location"]
    lang = conv.lang
    return ButtonsMessage(
        body=t(lang, "location_proposal", name=location["name"], address=location["address"]),
        buttons=[
            Button(id="loc.ok", title=t(lang, "btn.loc_ok")),
            Button(id="loc.other", title=t(lang, "btn.loc_other")),
        ],
    )


def on_location_answer(
    conv: Conversation, user: UserInput, request_id: str, ctx: Context
) -> Decision:
    choice = {"1": Intent.YES, "2": Intent.OTHER_CHOICE}.get(user.normalized, user.intent)
    if choice == Intent.YES:
        return offer(conv, conv.data["location"]["code"], request_id, ctx)
    if choice in (Intent.OTHER_CHOICE, Intent.OTHER_PLACE, Intent.NO):
        return nearby(conv, ctx, "facility_list_intro")
    return Turn(conv, [_location_question(conv)])


def nearby(conv: Conversation, ctx: Context, intro: str) -> Decision:
    assigned = str(conv.data.get("facility", ""))
    request = NearbyRequest(facility_code=assigned, on=ctx.today)
    return Ask(request, lambda reply: _show_facilities(conv, reply, intro))


def _show_facilities(conv: Conversation, reply: NearbyReply, intro: str) -> Turn:
    lang = conv.lang
    if not reply.facilities and conv.step == Step.SLOT:  # the seat held is still theirs to take
        return Turn(conv, [text(lang, "no_other_place"), _slot_question(conv)])
    if not reply.facilities:
        return Turn(conv.at(Step.ELIGIBLE), [text(lang, "no_facility_available")])
    rows = [
        {
            "id": f"loc.{f.code}",
            "title": cut(f.name, 24),
            "description": cut(
                t(lang, "facility_row", address=f.address, date=_date(f.earliest_date)), 72
            ),
        }
        for f in reply.facilities[:LIST_ROWS]
    ]
    listing = conv.at(Step.LOCATION_LIST, rows=rows, list_intro=intro, list_kind="facilities")
    return Turn(listing, [list_message(listing)])


def on_location_choice(
    conv: Conversation, user: UserInput, request_id: str, ctx: Context
) -> Decision:
    row = chosen_row(conv, user)
    if row is None:
        return Turn(conv, [text(conv.lang, "choose_from_list"), list_message(conv)])
    return offer(conv, row.removeprefix("loc."), request_id, ctx)


# --- seats and sessions ----------------------------------------------------------------------


def offer(conv: Conversation, facility_code: str, request_id: str, ctx: Context) -> Decision:
    request = OfferRequest(
        request_id=request_id,
        person_id=str(conv.data.get("person_id", "")),
        wa_id=ctx.wa_id,
        lang=conv.lang,
        channel=ctx.channel,
        facility_code=facility_code,
        on=ctx.today,
        replaces_booking_id=conv.data.get("replaces_booking_id"),
    )
    return Ask(request, lambda reply: _after_hold(conv, reply, facility_code, ctx))


def _after_hold(conv: Conversation, reply: HoldReply, facility_code: str, ctx: Context) -> Decision:
    lang = conv.lang
    code = error_code(reply.error)
    if reply.hold is not None:
        held = conv.at(Step.SLOT, hold=_hold_data(reply.hold), facility_code=facility_code)
        return Turn(held, [_slot_question(held)])
    if code == ErrorCode.ALREADY_BOOKED and reply.booking is not None:
        return Turn(
            _booked(conv, reply.booking), [_booking_text(lang, "already_booked", reply.booking)]
        )
    if code == ErrorCode.FULL:
        return prepend([text(lang, "facility_full")], nearby(conv, ctx, "facility_list_intro"))
    if code == ErrorCode.NOT_FOUND:
        return Turn(conv.at(Step.ELIGIBLE), [text(lang, "location_unknown")])
    return Turn(conv, [text(lang, "busy")])


def _hold_data(hold: Hold) -> dict[str, object]:
    return {
        "hold_id": hold.hold_id,
        "facility": hold.facility.name,
        "address": hold.facility.address,
        "date": hold.date.isoformat(),
        "start": hold.start.strftime("%H:%M"),
        "end": hold.end.strftime("%H:%M"),
        "expires_at": hold.expires_at.isoformat(),
    }


def _slot_question(conv: Conversation) -> ButtonsMessage:
    hold, lang = conv.data["hold"], conv.lang
    expires = dt.datetime.fromisoformat(hold["expires_at"])
    minutes = max(1, round((expires - dt.datetime.now(expires.tzinfo)).total_seconds() / 60))
    body = t(
        lang,
        "slot_offer",
        facility=hold["facility"],
        address=hold["address"],
        day=_day(lang, dt.date.fromisoformat(hold["date"])),
        date=_date(dt.date.fromisoformat(hold["date"])),
        start=hold["start"],
        end=hold["end"],
        minutes=minutes,
    )
    return ButtonsMessage(
        body=body,
        buttons=[
            Button(id="slot.ok", title=t(lang, "btn.slot_ok")),
            Button(id="slot.other", title=t(lang, "btn.slot_other")),
            Button(id="loc.other", title=t(lang, "btn.loc_other")),
        ],
    )


def on_slot_answer(conv: Conversation, user: UserInput, request_id: str, ctx: Context) -> Decision:
    typed = {"1": Intent.YES, "2": Intent.OTHER_CHOICE, "3": Intent.OTHER_PLACE}
    choice = typed.get(user.normalized, user.intent)
    if choice == Intent.OTHER_PLACE:
        return nearby(conv, ctx, "facility_list_intro")
    if choice == Intent.YES:
        request = ConfirmRequest(
            request_id=request_id,
            hold_id=conv.data["hold"]["hold_id"],
            person_id=str(conv.data.get("person_id", "")),
        )
        return Ask(request, lambda reply: _after_confirm(conv, reply, request_id, ctx))
    if choice in (Intent.OTHER_CHOICE, Intent.NO):
        return sessions(conv, conv.data["facility_code"], ctx)
    return Turn(conv, [_slot_question(conv)])


def _after_confirm(
    conv: Conversation, reply: BookingReply, request_id: str, ctx: Context
) -> Decision:
    lang = conv.lang
    if reply.booking is not None:
        key = "booking_rescheduled" if reply.previous else "booking_confirmed"
        return Turn(_booked(conv, reply.booking), [_booking_text(lang, key, reply.booking)])
    code = error_code(reply.error)
    if code == ErrorCode.HOLD_EXPIRED:
        again = offer(conv, conv.data["facility_code"], request_id, ctx)
        return prepend([text(lang, "hold_expired")], again)
    if code == ErrorCode.FULL:
        return prepend(
            [text(lang, "facility_full")], sessions(conv, conv.data["facility_code"], ctx)
        )
    return Turn(conv, [text(lang, "busy")])


def sessions(conv: Conversation, facility_code: str, ctx: Context) -> Decision:
    request = AlternativesRequest(
        person_id=str(conv.data.get("person_id", "")), facility_code=facility_code, on=ctx.today
    )
    return Ask(request, lambda reply: _show_sessions(conv, reply, facility_code, ctx))


def _show_sessions(conv: Conversation, reply: AlternativesReply, facility_code: str,
                   ctx: Context) -> Decision:  # fmt: skip
    lang = conv.lang
    if not reply.sessions:
        return prepend([text(lang, "no_sessions")], nearby(conv, ctx, "facility_list_intro"))
    rows = [
        {
            "id": f"slot.{s.session_id}",
            "title": f"{_date(s.date)} {s.start.strftime('%H:%M')}",
            "description": cut(
                t(
                    lang,
                    "session_row",
                    day=_day(lang, s.date),
                    start=s.start.strftime("%H:%M"),
                    end=s.end.strftime("%H:%M"),
                    seats=s.free_seats,
                ),
                72,
            ),
        }
        for s in reply.sessions[:LIST_ROWS]
    ]
    listing = conv.at(
        Step.SLOT_LIST,
        rows=rows,
        list_intro="slot_list_intro",
        list_kind="sessions",
        facility_code=facility_code,
    )
    return Turn(listing, [list_message(listing)])


def on_slot_choice(conv: Conversation, user: UserInput, request_id: str, ctx: Context) -> Decision:
    row = chosen_row(conv, user)
    if row is None and user.intent == Intent.OTHER_PLACE:  # none of these times: another place
        return nearby(conv, ctx, "facility_list_intro")
    if row is None:
        return Turn(conv, [text(conv.lang, "choose_from_list"), list_message(conv)])
    request = HoldRequest(
        request_id=request_id,
        person_id=str(conv.data.get("person_id", "")),
        wa_id=ctx.wa_id,
        lang=conv.lang,
        channel=ctx.channel,
        session_id=int(row.removeprefix("slot.")),
        replaces_booking_id=conv.data.get("replaces_booking_id"),
    )
    code = conv.data["facility_code"]
    return Ask(request, lambda reply: _after_hold(conv, reply, code, ctx))


# --- after booking: STATUS, BATAL, UBAH, TIKET -----------------------------------------------


def bookings(conv: Conversation, key: str = "booking_status") -> Decision:
    request = BookingsRequest(person_id=str(conv.data.get("person_id", "")))
    return Ask(request, lambda reply: _show_bookings(conv, reply, key))


def _show_bookings(conv: Conversation, reply: BookingsReply, key: str) -> Turn:
    if not reply.bookings:
        return Turn(conv, [text(conv.lang, "no_booking")])
    booking = reply.bookings[0]
    return Turn(_booked(conv, booking), [_booking_text(conv.lang, key, b) for b in reply.bookings])


def cancel(conv: Conversation, request_id: str) -> Decision:
    request = CancelRequest(request_id=request_id, person_id=str(conv.data.get("person_id", "")))

    def then(reply: BookingReply) -> Turn:
        if reply.booking is None:
            return Turn(conv, [text(conv.lang, "no_booking")])
        cancelled = conv.at(Step.ELIGIBLE, booking=None, replaces_booking_id=None)
        return Turn(cancelled, [_booking_text(conv.lang, "booking_cancelled", reply.booking)])

    return Ask(request, then)


def reschedule(conv: Conversation, ctx: Context) -> Decision:
    booking = conv.data.get("booking")
    if not booking:
        return Turn(conv, [text(conv.lang, "no_booking")])
    moving = conv.at(conv.step, replaces_booking_id=booking["booking_id"])
    return sessions(moving, booking["facility_code"], ctx)


def _booked(conv: Conversation, booking: Booking) -> Conversation:
    return conv.at(
        Step.BOOKED,
        booking={"booking_id": booking.booking_id, "facility_code": booking.facility.code},
        hold=None,
        rows=None,
        replaces_booking_id=None,
    )


def _booking_text(lang: str, key: str, booking: Booking) -> OutboundMessage:
    return text(
        lang,
        key,
        facility=booking.facility.name,
        address=booking.facility.address,
        day=_day(lang, booking.date),
        date=_date(booking.date),
        start=booking.start.strftime("%H:%M"),
        end=booking.end.strftime("%H:%M"),
        dose=booking.dose,
    )


# --- lists -----------------------------------------------------------------------------------


def prompt(conv: Conversation) -> list[OutboundMessage]:
    """What the current scheduling step is waiting for."""
    if conv.step == Step.LOCATION:
        return [_location_question(conv)]
    if conv.step == Step.SLOT:
        return [_slot_question(conv)]
    if conv.step in (Step.LOCATION_LIST, Step.SLOT_LIST):
        return [list_message(conv)]
    return []


def _date(day: dt.date) -> str:
    return day.strftime("%d-%m-%Y")


def _day(lang: str, day: dt.date) -> str:
    return t(lang, f"day.{day.weekday()}")
