"""identity.rpc.*: who is writing, does the NIK suffix match the registry for that number, and the
intake of unlisted health workers (identity.rpc.intake_*, identity.evt.intake_*)."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, Field


class NumberStatusRequest(BaseModel):
    wa_id: str


class NumberStatus(BaseModel):
    listed: bool = Field(description="the number is bound to at least one registry entry")
    locked_until: datetime | None = None


class VerifyRequest(BaseModel):
    wa_id: str
    suffix: str = Field(description="the last 6 digits of the NIK as the user typed them")
    request_id: str | None = Field(
        default=None,
        description="idempotency key (the inbound wamid): a repeat gets the first answer "
        "and costs no second attempt",
    )


class VerifyOutcome(StrEnum):
    VERIFIED = "verified"
    MISMATCH = "mismatch"
    LOCKED = "locked"
    NOT_LISTED = "not_listed"
    INVALID = "invalid"  # not 6 digits: costs no attempt


class VerifyResult(BaseModel):
    outcome: VerifyOutcome
    person_id: str | None = None
    masked_name: str | None = None
    masked_nik: str | None = None
    profession: str | None = None
    facility_code: str | None = None
    birth_date: date | None = Field(default=None, description="from the NIK, for age rules")
    sex: str | None = Field(default=None, description="F or M, from the NIK")
    attempts_left: int | None = None
    locked_until: datetime | None = None


# --- intake of unlisted health workers ---------------------------------------------------------
# A number that is not in the registry may ask to be added: full NIK, name as on the KTP,
# profession and workplace facility. The request waits for an operator (`vaksin intake`, or the
# operator HTTP API on identity); the decision is the fact `identity.evt.intake_decided`.


class Profession(BaseModel):
    id: str = Field(description="stable id, also the list row id `prof.<id>` in the chat")
    id_label: str = Field(max_length=24, description="Bahasa Indonesia (WhatsApp row title)")
    en_label: str = Field(max_length=24, description="English")

    def label(self, lang: str) -> str:
        return self.en_label if lang == "en" else self.id_label


# At most 10: one WhatsApp list message. The Indonesian label is what the registry stores.
PROFESSIONS: tuple[Profession, ...] = (
    Profession(id="dokter", id_label="Dokter", en_label="Doctor"),
    Profession(id="dokter_gigi", id_label="Dokter gigi", en_label="Dentist"),
    Profession(id="perawat", id_label="Perawat", en_label="Nurse"),
    Profession(id="bidan", id_label="Bidan", en_label="Midwife"),
    Profession(id="apoteker", id_label="Apoteker", en_label="Pharmacist"),
    Profession(id="farmasi", id_label="Tenaga teknis farmasi", en_label="Pharmacy technician"),
    Profession(id="ahli_lab", id_label="Ahli laboratorium medik", en_label="Medical lab scientist"),
    Profession(id="gizi", id_label="Nutrisionis", en_label="Nutritionist"),
    Profession(id="kesmas", id_label="Kesehatan masyarakat", en_label="Public health worker"),
    Profession(id="lainnya", id_label="Tenaga kesehatan lainnya", en_label="Other health worker"),
)


def find_profession(text: str) -> Profession | None:
    """A profession from what the user sent: the row id (`prof.bidan` or `bidan`), its number in
    the list (`4`), or its label in either language (any case)."""
    key = " ".join((text or "").split()).lower().removeprefix("prof.")
    if key.isdigit() and 1 <= int(key) <= len(PROFESSIONS):
        return PROFESSIONS[int(key) - 1]
    return next(
        (p for p in PROFESSIONS if key in (p.id, p.id_label.lower(), p.en_label.lower())), None
    )


class CheckNikRequest(BaseModel):
    nik: str = Field(description="the full NIK as typed (spaces, dots and dashes are ignored)")


class CheckNikResult(BaseModel):
    """The structure of a NIK only: it says nothing about whether anyone is registered with it."""

    valid: bool
    code: str | None = Field(
        default=None,
        description="why it is not valid: length | not_digits | month | day | date | serial",
    )
    detail: str | None = Field(default=None, description="English, for logs and developers")
    masked_nik: str | None = Field(default=None, description="the only form to show the user")
    unknown_region: bool = Field(
        default=False, description="province code not in the table: flagged, still valid"
    )
    birth_date: date | None = Field(default=None, description="from the NIK, for the read-back")
    sex: str | None = Field(default=None, description="F or M (women's day + 40)")
    error: str | None = None


class IntakeSubmitRequest(BaseModel):
    request_id: str = Field(description="idempotency key (the wamid of the confirmation)")
    wa_id: str
    nik: str = Field(description="full 16-digit NIK")
    full_name: str = Field(description="as on the KTP")
    profession: str = Field(description="a `Profession.id`")
    facility_code: str
    lang: str = Field(default="id", description="the user's language, for the decision message")


class IntakeOutcome(StrEnum):
    SUBMITTED = "submitted"  # queued for an operator (intake_id, masked_nik)
    DUPLICATE_OPEN = "duplicate_open"  # this number has an open request already (its id)
    CANNOT_MATCH = "cannot_match"  # the data cannot be matched: nothing more is revealed
    ALREADY_LISTED = "already_listed"  # the number is in the registry: verify with the suffix
    LIMIT_REACHED = "limit_reached"  # INTAKE_SUBMISSIONS_PER_DAY used up today (WIB)
    INVALID = "invalid"  # a field is wrong (`field`, `code`, `detail`); counts for nothing
    UNAVAILABLE = "unavailable"  # identity failed; try again (`error`)


INTAKE_SUBMISSIONS_PER_DAY = 3


class IntakeSubmitResult(BaseModel):
    outcome: IntakeOutcome
    intake_id: int | None = None
    masked_nik: str | None = None
    field: str | None = Field(
        default=None, description="invalid: nik | full_name | profession | facility_code | wa_id"
    )
    code: str | None = Field(default=None, description="invalid: why (for a NIK as check_nik)")
    detail: str | None = Field(default=None, description="English, for logs and developers")
    submitted_at: datetime | None = Field(
        default=None,
        description="submitted / duplicate_open: when the request waiting for an operator was "
        "submitted",
    )
    error: str | None = None


class IntakeStatusRequest(BaseModel):
    wa_id: str


class IntakeState(StrEnum):
    NONE = "none"  # this number never asked
    OPEN = "open"
    APPROVED = "approved"
    REJECTED = "rejected"


class IntakeStatus(BaseModel):
    """The number's open request, else its latest decided one."""

    status: IntakeState
    intake_id: int | None = None
    masked_nik: str | None = None
    profession: str | None = Field(default=None, description="a `Profession.id`")
    facility_code: str | None = None
    submitted_at: datetime | None = None
    decided_at: datetime | None = None
    reason: str | None = Field(default=None, description="rejected: the operator's reason")
    error: str | None = None


class IntakeSubmitted(BaseModel):
    """A request entered the verification queue (no name, NIK or number: for queue monitors)."""

    intake_id: int
    masked_nik: str
    regency_code: str = Field(description="province + regency digits of the NIK, e.g. 3201")
    profession: str
    facility_code: str
    submitted_at: datetime


class IntakeDecided(BaseModel):
    """An operator approved or rejected a request: the dialog tells the user (a template, since
    days may have passed). On approval the person is in the registry bound to `wa_id`, and the
    fields below are what `identity.rpc.verify` would answer, so the dialog can go on directly."""

    intake_id: int
    wa_id: str
    lang: str
    approved: bool
    reason: str | None = Field(default=None, description="rejected: the operator's reason")
    person_id: str | None = Field(default=None, description="approved: the registry entry")
    masked_name: str
    masked_nik: str
    profession: str = Field(description="the registry's label (Indonesian), as verify gives it")
    facility_code: str
    birth_date: date
    sex: str
    decided_at: datetime


# --- who a person is, for documents shown to others (the QR ticket) ---------------------------


class PersonRequest(BaseModel):
    person_id: str


class PersonCard(BaseModel):
    """identity.rpc.person: what a facility may see of a person (masked: staff compare it with
    the KTP). `found` false for an unknown id; `error` when identity could not answer."""

    found: bool = False
    masked_name: str | None = None
    masked_nik: str | None = None
    profession: str | None = None
    error: str | None = None
