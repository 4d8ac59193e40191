"""scheduler.rpc.*: facilities, offers, seat holds and bookings (core request/reply, queue group
`scheduler`); scheduler.evt.*: booking facts on the SCHEDULER stream, through the outbox.

A refused request is answered, never raised: the reply's `error` is `code: detail` with a code of
`ErrorCode`, and the other fields are then empty (except `booking` with `already_booked`).

Seats: an offer or a hold takes one seat of a session for `SCHEDULER_HOLD_MINUTES`; `confirm`
turns it into a booking. A seat held past its expiry is free for anyone else; its holder can still
confirm while nobody has taken it. One active booking per person and dose.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from pydantic import BaseModel, Field

from services.common.contracts.whatsapp import Channel


class ErrorCode(StrEnum):
    NOT_FOUND = "not_found"  # no such facility, session or hold (or not this person's)
    FULL = "full"  # no free seat (offer: in no session of the facility from that date on)
    ALREADY_BOOKED = "already_booked"  # an active booking of this dose exists (`booking`)
    ALREADY_GIVEN = "already_given"  # this dose was given already
    HOLD_EXPIRED = "hold_expired"  # the hold lapsed and its seat went to someone else
    OUTSIDE_WINDOW = "outside_window"  # dose 2: the session is outside the interval after dose 1
    NO_BOOKING = "no_booking"  # cancel: nothing active to cancel (or not the booking named)
    INVALID = "invalid"  # a malformed request
    UNAVAILABLE = "unavailable"  # the scheduler failed; try again


def error_code(error: str | None) -> ErrorCode | None:
    """The code of a reply's `error` (`full: ...` -> ErrorCode.FULL), None when there is none."""
    if not error:
        return None
    return ErrorCode(error.partition(":")[0])


class Facility(BaseModel):
    code: str
    name: str
    address: str
    regency: str = Field(description="kabupaten/kota")
    province: str


class BookingStatus(StrEnum):
    ACTIVE = "active"
    CANCELLED = "cancelled"  # by the user, or because the facility cancelled the session
    RESCHEDULED = "rescheduled"  # replaced by another booking (`replaces_booking_id` there)
    DONE = "done"  # the dose was given


class Hold(BaseModel):
    hold_id: int
    session_id: int = Field(description="short: list rows are `slot.<session_id>`")
    facility: Facility
    date: dt.date
    start: dt.time = Field(description="local time at the facility (WIB)")
    end: dt.time
    vaccine: str
    dose: int
    expires_at: dt.datetime
    replaces_booking_id: int | None = None


class Booking(BaseModel):
    booking_id: int
    person_id: str
    session_id: int
    facility: Facility
    date: dt.date
    start: dt.time
    end: dt.time
    vaccine: str
    dose: int
    status: BookingStatus
    replaces_booking_id: int | None = Field(
        default=None, description="the booking this one replaced (a reschedule)"
    )


class SessionSlot(BaseModel):
    session_id: int
    date: dt.date
    start: dt.time
    end: dt.time
    vaccine: str
    free_seats: int


class NearbyFacility(Facility):
    earliest_date: dt.date = Field(description="the first day with a free seat, from `on`")
    free_seats: int = Field(description="free seats in all its sessions from `on`")


# --- requests and replies ----------------------------------------------------------------------


class FacilityRequest(BaseModel):
    code: str


class FacilityReply(BaseModel):
    facility: Facility | None = None
    error: str | None = None


FACILITY_QUERY_MIN = 3  # characters of a search query, after trimming
FACILITY_QUERY_MAX = 80


class FacilitySearchRequest(BaseModel):
    """Facilities found by what a user typed. Words are compared in a canonical form: any case,
    punctuation ignored, abbreviations (`PKM`, `Pusk.`, `RS`, `RSUD`, `Kab.`, ...) equal to the
    words they stand for. Every word of `query` must occur in the facility's name, address or
    regency, so a regency typed after the name ("puskesmas tebet jakarta selatan") narrows the
    search; region words (`kabupaten`, `kota`, `provinsi`) may be missing and only rank. The exact
    name comes first, then by name. When no facility has every word, the few closest ones by
    trigram similarity are answered with `approximate` (typos). A query outside 3..80 characters
    (after trimming) is refused with `invalid`."""

    query: str = Field(description="3 to 80 characters after trimming; otherwise `invalid`")
    regency: str | None = Field(
        default=None, description="only this regency (kabupaten/kota), case-insensitive"
    )
    limit: int = Field(default=10, ge=1, le=10)


class FacilitySearchReply(BaseModel):
    facilities: list[Facility] = Field(default_factory=list, description="at most `limit`")
    total: int = Field(default=0, description="how many matched, before the limit")
    approximate: bool = Field(
        default=False,
        description="no facility has every word: `facilities` are the closest (at most 5), "
        "most similar first, and `total` is their number",
    )
    error: str | None = None


class NearbyRequest(BaseModel):
    """Facilities of a regency with a free seat from `on` on. Give `facility_code` (the assigned
    facility: its regency is used, and it comes first when it has a free seat) or `regency`."""

    facility_code: str | None = None
    regency: str | None = None
    on: dt.date = Field(description="today in Jakarta")
    now: dt.datetime | None = Field(default=None, description="for tests; default the clock")
    vaccine: str | None = None
    limit: int = Field(default=10, ge=1, le=10)


class NearbyReply(BaseModel):
    facilities: list[NearbyFacility] = Field(default_factory=list)
    error: str | None = None


class OfferRequest(BaseModel):
    """Hold a seat in the earliest session with a free seat at the facility (from `on`; today's
    only if not started). Releases the person's previous unconfirmed hold."""

    request_id: str = Field(description="idempotency key (the inbound wamid): same hold back")
    person_id: str
    wa_id: str
    lang: str = "id"
    channel: Channel = Field(
        default="whatsapp", description="what the person wrote by: their notices go that way"
    )
    facility_code: str
    dose: int = Field(default=1, ge=1, le=2)
    vaccine: str | None = None
    on: dt.date = Field(description="today in Jakarta")
    now: dt.datetime | None = Field(default=None, description="for tests; default the clock")
    replaces_booking_id: int | None = Field(
        default=None,
        description="a reschedule (UBAH): the person's active booking that `confirm` replaces",
    )


class HoldRequest(BaseModel):
    """Hold a seat in a chosen session (a `slot.<session_id>` list row)."""

    request_id: str
    person_id: str
    wa_id: str
    lang: str = "id"
    channel: Channel = Field(
        default="whatsapp", description="what the person wrote by: their notices go that way"
    )
    session_id: int
    dose: int = Field(default=1, ge=1, le=2)
    now: dt.datetime | None = None
    replaces_booking_id: int | None = None


class HoldReply(BaseModel):
    hold: Hold | None = None
    booking: Booking | None = Field(
        default=None, description="with `already_booked`: the existing booking"
    )
    error: str | None = None


class AlternativesRequest(BaseModel):
    person_id: str
    facility_code: str
    on: dt.date
    now: dt.datetime | None = None
    dose: int = Field(default=1, ge=1, le=2)
    vaccine: str | None = None
    limit: int = Field(default=10, ge=1, le=10)


class AlternativesReply(BaseModel):
    facility: Facility | None = None
    sessions: list[SessionSlot] = Field(
        default_factory=list, description="with a free seat, earliest first"
    )
    error: str | None = None


class ConfirmRequest(BaseModel):
    request_id: str = Field(description="idempotency key (the confirming wamid): books once")
    hold_id: int
    person_id: str


class BookingReply(BaseModel):
    booking: Booking | None = None
    previous: Booking | None = Field(
        default=None, description="confirm of a reschedule: the booking it replaced"
    )
    error: str | None = None


class CancelRequest(BaseModel):
    request_id: str = Field(description="idempotency key (the inbound wamid)")
    person_id: str
    booking_id: int | None = Field(
        default=None, description="default: the person's active booking (the lowest dose)"
    )


class BookingsRequest(BaseModel):
    person_id: str


class BookingsReply(BaseModel):
    bookings: list[Booking] = Field(default_factory=list, description="active ones, by dose")
    error: str | None = None


# --- events (stream SCHEDULER, through the outbox) ---------------------------------------------


class BookingFact(BaseModel):
    """Everything ticketing needs to issue (or void) a ticket without calling back."""

    booking_id: int
    person_id: str
    wa_id: str
    lang: str
    dose: int
    vaccine: str
    session_id: int
    facility: Facility
    date: dt.date
    start: dt.time
    end: dt.time
    occurred_at: dt.datetime


class BookingConfirmed(BookingFact):
    """scheduler.evt.booked: a new booking (confirmed by the user, or made by the scheduler for
    dose 2 or after a cancelled session)."""


class CancelReason(StrEnum):
    USER = "user"  # BATAL
    SESSION_CANCELLED = "session_cancelled"  # the facility cancelled the session


class BookingCancelled(BookingFact):
    """scheduler.evt.cancelled: the booking is void and its seat returned."""

    reason: CancelReason


class PreviousBooking(BaseModel):
    booking_id: int
    session_id: int
    facility: Facility
    date: dt.date
    start: dt.time
    end: dt.time


class BookingRescheduled(BookingFact):
    """scheduler.evt.rescheduled: the booking (new id) replaces `previous`, in one transaction;
    the previous one is void and its seat returned."""

    previous: PreviousBooking
