"""ticketing.evt.*: facts of the ticketing service (stream TICKETING). Ticketing does not exist yet;
the scheduler consumes `DoseGiven` to book dose 2, so the contract is defined here first."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field


class DoseGiven(BaseModel):
    """ticketing.evt.dose_given: staff recorded a dose as given at check-in (ticket redeemed).
    Published with `Nats-Msg-Id` = a stable id of the redemption; consumers are idempotent on
    `booking_id`."""

    booking_id: int = Field(description="the scheduler's booking the ticket was issued for")
    person_id: str
    dose: int = Field(ge=1, le=2)
    given_on: dt.date = Field(description="the date the dose was given (Jakarta)")
    ticket_id: str | None = None
    occurred_at: dt.datetime
