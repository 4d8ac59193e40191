"""ticketing.rpc.tickets: the current tickets of a person, ready to send in the chat (TIKET);
ticketing.evt.*: facts of the ticketing service (stream TICKETING); and the answer of a ticket
check at the facility desk (`POST /tickets/verify`, `POST /checkin`, `vaksin ticket verify`,
`vaksin checkin`)."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from pydantic import BaseModel, Field

from services.common.contracts.notifier import ImageMessage, TextMessage


class TicketsRequest(BaseModel):
    person_id: str
    lang: str = "id"


class TicketView(BaseModel):
    ticket_id: str
    code: str = Field(description="8 characters, no look-alike letters: read aloud at the desk")
    booking_id: int
    dose: int
    facility_code: str
    facility_name: str
    date: dt.date
    start: dt.time
    end: dt.time
    expires_at: dt.datetime
    image: ImageMessage = Field(description="the QR code, with the ticket's details as caption")
    text: TextMessage | None = Field(
        default=None, description="the same as a text with its code, for SMS and USSD"
    )


class TicketsReply(BaseModel):
    tickets: list[TicketView] = Field(
        default_factory=list, description="usable tickets (not revoked, used or expired), by dose"
    )
    error: str | None = None


class TicketStatus(StrEnum):
    VALID = "valid"  # signed by us, issued, not revoked, not used, session day not over
    NOT_YET = "not_yet"  # valid, but its session is on a later day
    EXPIRED = "expired"  # the session day is over
    REVOKED = "revoked"  # the booking was rescheduled or cancelled
    ALREADY_USED = "already_used"  # redeemed before (when and by whom are given)
    FORGED = "forged"  # not a token we signed (or not a token at all)
    ANOTHER_FACILITY = "another_facility"  # authentic, but a desk of another facility scanned it
    REDEEMED = "redeemed"  # check-in: this request redeemed it
    DOSE_RECORDED = "dose_recorded"  # check-in with dose given on a ticket redeemed without it


class TicketCheck(BaseModel):
    """The answer of a ticket check or check-in. Who and when are shown so the desk can tell
    "already used" from a double scan: masked name and NIK to compare with the KTP."""

    status: TicketStatus
    detail: str
    ticket_id: str | None = None
    code: str | None = None
    masked_name: str | None = None
    masked_nik: str | None = None
    dose: int | None = None
    facility_code: str | None = None
    facility_name: str | None = None
    date: dt.date | None = None
    start: dt.time | None = None
    end: dt.time | None = None
    expires_at: dt.datetime | None = None
    revoked_at: dt.datetime | None = None
    revoked_reason: str | None = None
    redeemed_at: dt.datetime | None = None
    redeemed_by: str | None = None
    dose_given_at: dt.datetime | None = None


class DoseGiven(BaseModel):
    """ticketing.evt.dose_given: staff recorded a dose as given at check-in (ticket redeemed).
    Published through the outbox; consumers are idempotent on `booking_id`."""

    booking_id: int = Field(description="the scheduler's booking the ticket was issued for")
    person_id: str
    dose: int = Field(ge=1, le=2)
    given_on: dt.date = Field(description="the date the dose was given (Jakarta)")
    ticket_id: str | None = None
    occurred_at: dt.datetime
