"""Pure rules of tickets: their codes, when they expire, and what a scan of one means.

A ticket is good for one check-in on its session's day: it expires at midnight after that day in
Jakarta, is revoked when its booking is rescheduled or cancelled, and is used up by its check-in.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from services.common.clock import WIB
from services.common.contracts.ticketing import TicketStatus

# No 0/O, 1/I/L: a code read aloud or typed from a screenshot is unambiguous. 31 symbols, 8 of
# them: about 40 bits, so a guessed code is worthless (and the code alone redeems nothing).
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 8
TICKET_ID_BYTES = 12


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def new_ticket_id() -> str:
    return secrets.token_urlsafe(TICKET_ID_BYTES)


def expiry(session_date: date) -> datetime:
    """Midnight after the session day, Jakarta time: a ticket is for its day only."""
    return datetime.combine(session_date + timedelta(days=1), time(0, 0), tzinfo=WIB)


@dataclass(frozen=True)
class TicketState:
    """What the ticketing database knows of a ticket, as a check needs it."""

    session_date: date
    expires_at: datetime
    revoked_at: datetime | None = None
    redeemed_at: datetime | None = None


def status(state: TicketState, now: datetime) -> TicketStatus:
    """What a scan of an authentic ticket means now. A use is told before a revocation: the
    desk needs to know the person was already seen, even if the booking was cancelled since."""
    if state.redeemed_at is not None:
        return TicketStatus.ALREADY_USED
    if state.revoked_at is not None:
        return TicketStatus.REVOKED
    if now >= state.expires_at:
        return TicketStatus.EXPIRED
    if now.astimezone(WIB).date() < state.session_date:
        return TicketStatus.NOT_YET
    return TicketStatus.VALID


DETAILS: dict[TicketStatus, str] = {
    TicketStatus.VALID: "valid ticket: check the name against the KTP",
    TicketStatus.NOT_YET: "valid ticket, but for a later day",
    TicketStatus.EXPIRED: "the ticket's session day is over",
    TicketStatus.REVOKED: "the booking was rescheduled or cancelled: this ticket is void",
    TicketStatus.ALREADY_USED: "the ticket was already used",
    TicketStatus.FORGED: "not a ticket issued by this system",
    TicketStatus.ANOTHER_FACILITY: "the ticket is for another facility: send the person there",
    TicketStatus.REDEEMED: "checked in",
    TicketStatus.DOSE_RECORDED: "dose recorded for a ticket checked in earlier",
}


# --- what the desk records with a check-in ------------------------------------------------------


class InvalidMeasurement(ValueError):
    pass


@dataclass(frozen=True)
class Measurements:
    """The on-site screening: body temperature and blood pressure, all optional."""

    temperature_c: float | None = None
    systolic: int | None = None
    diastolic: int | None = None


def measurements(
    temperature_c: float | str | None = None, blood_pressure: str | None = None
) -> Measurements:
    """Checked against what a living person can measure, so a typo (365 for 36.5) is refused."""
    temperature = None
    if temperature_c is not None and str(temperature_c).strip():
        try:
            temperature = round(float(str(temperature_c).replace(",", ".")), 1)
        except ValueError:
            raise InvalidMeasurement("temperature must be a number in °C, e.g. 36.5") from None
        if not 30.0 <= temperature <= 45.0:
            raise InvalidMeasurement("temperature must be between 30 and 45 °C")
    systolic = diastolic = None
    if blood_pressure is not None and blood_pressure.strip():
        high, sep, low = blood_pressure.strip().partition("/")
        if not sep or not high.strip().isdigit() or not low.strip().isdigit():
            raise InvalidMeasurement("blood pressure must be systolic/diastolic, e.g. 120/80")
        systolic, diastolic = int(high), int(low)
        if not (50 <= systolic <= 300 and 20 <= diastolic <= 200 and diastolic < systolic):
            raise InvalidMeasurement(
                "blood pressure out of range (systolic 50-300, diastolic 20-200)"
            )
    return Measurements(temperature, systolic, diastolic)


# --- facility desks -----------------------------------------------------------------------------

# A one-time enrolment code: typed on a tablet (or scanned from the QR `vaksin desk add` shows),
# so the ticket code's unambiguous alphabet, 12 of them (about 59 bits), in groups of four.
ENROLMENT_CODE_LENGTH = 12
ENROLMENT_TTL = timedelta(hours=24)
CREDENTIAL_PREFIX = "vkd_"  # so a leaked one is recognizable (secret scanners, logs)
DESK_NAME_MAX = 60
# How far back a desk's clock may place a check-in it queued offline: the ticket is judged at
# the time of the scan, not of the sync, so a desk offline at the end of the day does not find
# its people "expired" the next morning; older than this, or in the future, is judged now.
OFFLINE_WINDOW = timedelta(hours=72)


def new_enrolment_code() -> str:
    code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(ENROLMENT_CODE_LENGTH))
    return "-".join(code[i : i + 4] for i in range(0, ENROLMENT_CODE_LENGTH, 4))


def enrolment_code(text: str) -> str | None:
    """The canonical form of a typed or scanned enrolment code (any case, with or without
    dashes and spaces); None when it cannot be one."""
    code = "".join(c for c in text.upper() if c not in "- ")
    if len(code) != ENROLMENT_CODE_LENGTH or any(c not in CODE_ALPHABET for c in code):
        return None
    return code


def new_desk_credential() -> str:
    return CREDENTIAL_PREFIX + secrets.token_urlsafe(32)


def digest(secret: str) -> bytes:
    """What is stored of a code or credential. A plain SHA-256 is enough: both are random with
    59 bits or more, so there is no dictionary to try, and a lookup by digest needs no salt."""
    return hashlib.sha256(secret.encode()).digest()


def ticket_code(text: str) -> str | None:
    """A ticket code typed at the desk (any case, spaces ignored); None when it cannot be one."""
    code = "".join(text.upper().split())
    if len(code) != CODE_LENGTH or any(c not in CODE_ALPHABET for c in code):
        return None
    return code


def judged_at(scanned_at: datetime | None, now: datetime) -> datetime:
    """The time a desk's check-in is judged at: when the device scanned it (a queue synced
    later), unless that is in the future or older than OFFLINE_WINDOW."""
    if scanned_at is None or scanned_at > now or scanned_at < now - OFFLINE_WINDOW:
        return now
    return scanned_at
