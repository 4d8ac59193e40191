"""The operators' requests to identity, scheduler and ticketing (core request/reply in each
owner's queue group): the intake queue, facilities and sessions, facility desks. The operators'
console (services/console) works only through these and `<owner>.rpc.stats`; the CLI and the
operator HTTP API call the same functions in-process.

Every request names the operator acting (`by`, the console's account name), which the owner
records in its own audit. A refusal is a reply with `error` (`code: detail`), never a raised
exception: the requester would wait for its timeout otherwise. NIK and phone numbers cross these
subjects masked only.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from pydantic import BaseModel, Field

# CSV content travels in the request: NATS' default max_payload is 1 MiB, and JSON escaping may
# grow a file (quotes, newlines), so a file is at most 512 KiB (about 6,000 sessions or 3,000
# facilities); bigger files go through `vaksin facilities|sessions import`.
MAX_CSV_BYTES = 512 * 1024
# A refused file answers its first problems only (the count says how many there were).
MAX_ROW_ERRORS = 200


class OperatorError(StrEnum):
    NOT_FOUND = "not_found"  # no such request, session, facility
    NOT_OPEN = "not_open"  # decided by someone else meanwhile / cancelled already
    CONFLICT = "conflict"  # the NIK was registered under another number meanwhile
    INVALID = "invalid"  # a malformed request (filter, reason, file)
    REFUSED = "refused"  # a CSV with problems: nothing imported (`errors`)
    UNAVAILABLE = "unavailable"  # the owner failed; try again


def error_code(error: str | None) -> OperatorError | None:
    if not error:
        return None
    try:
        return OperatorError(error.partition(":")[0])
    except ValueError:
        return OperatorError.UNAVAILABLE


# --- identity: the intake queue ----------------------------------------------------------------


class IntakeListRequest(BaseModel):
    status: str | None = Field(default="open", description="open, approved, rejected; None: all")
    regency: str | None = Field(
        default=None, description="NIK region prefix: province (32) or regency (3201)"
    )
    profession: str | None = Field(default=None, description="Profession.id")
    facility: str | None = Field(default=None, description="workplace facility code")
    search: str | None = Field(
        default=None,
        max_length=100,
        description="a request id, or words of the name (the name is searched, shown masked)",
    )
    older_than_hours: float | None = None
    limit: int = Field(default=100, ge=1, le=500)


class IntakeAction(BaseModel):
    action: str
    operator: str
    channel: str
    reason: str | None = None
    at: dt.datetime


class IntakeItem(BaseModel):
    """A request as operators see it; `name` (the full name) only in the detail, which is
    recorded as viewed."""

    id: int
    status: str
    masked_nik: str
    masked_name: str
    name: str | None = None
    birth_date: dt.date
    sex: str
    regency_code: str
    province: str | None = None
    unknown_region: bool
    profession: str
    profession_label: str
    facility_code: str
    masked_phone: str
    lang: str
    submitted_at: dt.datetime
    age_hours: float
    reason: str | None = None
    decided_by: str | None = None
    decided_at: dt.datetime | None = None
    person_id: str | None = None
    actions: list[IntakeAction] | None = None


class IntakeListReply(BaseModel):
    items: list[IntakeItem] = Field(default_factory=list)
    error: str | None = None


class IntakeDetailRequest(BaseModel):
    intake_id: int
    by: str = Field(min_length=1, max_length=64)


class RegistryMatch(BaseModel):
    """A registry entry that resembles the request: the same NIK (under another number), the same
    number, or the same name at the same facility."""

    on: str = Field(description="nik | phone | name_at_facility")
    masked_name: str
    masked_nik: str
    masked_phone: str
    profession: str
    facility_code: str
    source: str = Field(description="registry | intake")


class IntakeDetailReply(BaseModel):
    item: IntakeItem | None = None
    matches: list[RegistryMatch] = Field(default_factory=list)
    error: str | None = None


class IntakeDecision(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"


class IntakeDecideRequest(BaseModel):
    intake_id: int
    decision: IntakeDecision
    reason: str | None = Field(default=None, description="required to reject; told to the user")
    by: str = Field(min_length=1, max_length=64)


class IntakeDecideReply(BaseModel):
    item: IntakeItem | None = None
    error: str | None = Field(
        default=None,
        description="`not_open: ...` when another operator decided first (who and when)",
    )


# --- scheduler: facilities and sessions --------------------------------------------------------


class CsvImportRequest(BaseModel):
    csv: str = Field(max_length=MAX_CSV_BYTES, description="the file's text (UTF-8)")
    by: str = Field(min_length=1, max_length=64)


class RowProblem(BaseModel):
    line: int
    reason: str


class CsvImportReply(BaseModel):
    rows: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    woken: int = Field(default=0, description="automatic bookings that try again now")
    errors: list[RowProblem] = Field(
        default_factory=list, description=f"the first {MAX_ROW_ERRORS} problems, by line"
    )
    bad_rows: int = Field(default=0, description="lines with a problem (nothing imported)")
    error: str | None = None


class SessionsRequest(BaseModel):
    date_from: dt.date
    date_to: dt.date
    facility: str | None = None
    regency: str | None = Field(default=None, description="the facility's regency, any case")
    include_cancelled: bool = False
    limit: int = Field(default=500, ge=1, le=2000)


class SessionRow(BaseModel):
    session_id: int
    facility_code: str
    facility_name: str
    regency: str
    date: dt.date
    start: dt.time
    end: dt.time
    vaccine: str
    capacity: int
    booked: int = Field(description="active bookings")
    held: int = Field(description="seats held for a user to confirm, right now")
    free: int
    status: str


class SessionsReply(BaseModel):
    sessions: list[SessionRow] = Field(default_factory=list)
    truncated: bool = False
    error: str | None = None


class SessionCancelRequest(BaseModel):
    session_id: int
    by: str = Field(min_length=1, max_length=64)


class SessionCancelReply(BaseModel):
    session: SessionRow | None = None
    bookings: int = Field(default=0, description="cancelled, their people told")
    moved: int = 0
    waiting: int = Field(default=0, description="no free seat yet: tried daily, people told")
    superseded: int = 0
    error: str | None = None


# --- ticketing: facility desks -----------------------------------------------------------------


class DeskAddRequest(BaseModel):
    facility_code: str = Field(min_length=1, max_length=32)
    name: str = Field(min_length=1, max_length=100)
    by: str = Field(min_length=1, max_length=100)


class DeskView(BaseModel):
    desk_id: int
    name: str
    facility_code: str
    facility_name: str
    state: str = Field(description="waiting | enrolled | expired | revoked")
    enrolled_at: dt.datetime | None = None
    revoked_at: dt.datetime | None = None
    last_seen_at: dt.datetime | None = None
    checkins: int = 0


class DeskAddReply(BaseModel):
    desk: DeskView | None = None
    enrolment_code: str | None = Field(default=None, description="shown once")
    expires_at: dt.datetime | None = None
    error: str | None = None


class DesksRequest(BaseModel):
    facility_code: str | None = None


class DesksReply(BaseModel):
    desks: list[DeskView] = Field(default_factory=list)
    error: str | None = None
