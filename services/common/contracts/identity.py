"""identity.rpc.*: who is writing, and does the NIK suffix match the registry for that number."""

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
