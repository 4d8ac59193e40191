"""Scheduling rules, pure and without IO: what can still be offered (sessions not yet started,
Jakarta time), the dose-2 window per vaccine, the window of a move after a cancelled session, when
the day-before reminder is due, what a confirmation does with a hold in each state, and parsing
the facility and session CSV files (line-numbered problems, nothing half-read)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum

from services.common.clock import WIB
from services.common.contracts.scheduler import Booking, ErrorCode
from services.common.csvfile import RowError, parse_csv


class SchedulerError(Exception):
    """A refused request: `code` is stable for programs, `detail` is for people."""

    def __init__(self, code: ErrorCode, detail: str, *, booking: Booking | None = None) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.booking = booking


# --- what can be offered -----------------------------------------------------------------------


@dataclass(frozen=True)
class Cutoff:
    """The earliest (day, start) a session may have to be offered: it has not started yet."""

    day: date
    start: time


def earliest_start(on: date, now: datetime) -> Cutoff:
    """Sessions from `on` on; on today (Jakarta) only those whose start time has not passed.
    A stale `on` (before today) means today."""
    local = now.astimezone(WIB)
    if local.date() >= on:
        return Cutoff(local.date(), local.time().replace(second=0, microsecond=0))
    return Cutoff(on, time.min)


def later_of(cutoff: Cutoff, day: date | None) -> Cutoff:
    """The cutoff moved to the start of `day` when that is later (a dose-2 window opening)."""
    if day is not None and day > cutoff.day:
        return Cutoff(day, time.min)
    return cutoff


# --- dose 2 and moves ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Interval:
    """Days after dose 1 within which dose 2 is given."""

    min_days: int
    max_days: int


# CoronaVac for ages 18-59 in Q1 2021: 14 days, up to 28 (reference/peers-and-domain.md 7.3).
DEFAULT_INTERVAL = Interval(14, 28)


def interval_for(vaccine: str, intervals: Mapping[str, tuple[int, int]]) -> Interval:
    """The configured interval of a vaccine (name matched without regard to case), or the
    CoronaVac default for a vaccine nobody configured."""
    wanted = vaccine.strip().casefold()
    for name, (low, high) in intervals.items():
        if name.strip().casefold() == wanted:
            return Interval(low, max(low, high))
    return DEFAULT_INTERVAL


@dataclass(frozen=True)
class Window:
    earliest: date
    latest: date

    def contains(self, day: date) -> bool:
        return self.earliest <= day <= self.latest


def dose2_window(given_on: date, interval: Interval) -> Window:
    return Window(
        given_on + timedelta(days=interval.min_days), given_on + timedelta(days=interval.max_days)
    )


def rebook_window(session_day: date, today: date, days: int) -> Window:
    """Where a booking of a cancelled session is moved: from its own day (or today, if later)
    for `days` days."""
    start = max(session_day, today)
    return Window(start, start + timedelta(days=days))


# --- reminders -----------------------------------------------------------------------------------


def reminder_day(now: datetime, at: time) -> date | None:
    """The appointment day whose reminders are due at `now`: tomorrow, once it is `at` (Jakarta)
    today. Before that, none (a reminder missed on the day before is not sent on the day)."""
    local = now.astimezone(WIB)
    if local.time() < at:
        return None
    return local.date() + timedelta(days=1)


# --- holds ---------------------------------------------------------------------------------------


class HoldState(StrEnum):
    COUNTED = "counted"  # 'held': its seat is still counted (even past expiry, until taken)
    CONFIRMED = "confirmed"  # booked already: a confirmation again returns that booking
    LAPSED = "lapsed"  # expired and given back, or released: a seat must be found again


class ConfirmStep(StrEnum):
    CONVERT = "convert"  # the hold's own seat becomes the booking
    RETURN_BOOKING = "return_booking"  # a repeated confirmation: the booking made already
    RETAKE_SEAT = "retake_seat"  # take a free seat of the same session, or `hold_expired`


def hold_state(status: str) -> HoldState:
    if status == "held":
        return HoldState.COUNTED
    if status == "confirmed":
        return HoldState.CONFIRMED
    return HoldState.LAPSED


def confirm_step(status: str) -> ConfirmStep:
    """What confirming a hold in this status does. A hold past its expiry that nobody has taken
    still has its seat, so it is booked like a live one; once its seat went back, confirming
    needs a free seat in the same session, checked by the same atomic statement as any other."""
    return {
        HoldState.COUNTED: ConfirmStep.CONVERT,
        HoldState.CONFIRMED: ConfirmStep.RETURN_BOOKING,
        HoldState.LAPSED: ConfirmStep.RETAKE_SEAT,
    }[hold_state(status)]


# --- CSV files -----------------------------------------------------------------------------------

FACILITY_HEADER = ("code", "name", "address", "regency", "province")
SESSION_HEADER = ("facility_code", "date", "start", "end", "capacity", "vaccine")
FACILITY_CODE = re.compile(r"[A-Za-z0-9._-]{1,32}")
VACCINE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,39}")
_TIME = re.compile(r"(\d{1,2})[:.](\d{2})")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
MAX_CAPACITY = 10_000
_LIMITS = {"name": 100, "address": 200, "regency": 100, "province": 100}


@dataclass(frozen=True)
class FacilityRow:
    line: int
    code: str
    name: str
    address: str
    regency: str
    province: str


@dataclass(frozen=True)
class SessionRow:
    line: int
    facility_code: str
    day: date
    start: time
    end: time
    capacity: int
    vaccine: str

    @property
    def key(self) -> tuple[str, date, time, str]:
        return (self.facility_code, self.day, self.start, self.vaccine)


def _clean(value: str) -> str:
    return " ".join(value.split())


def _facility_code(raw: str, field: str, problems: list[str]) -> str:
    code = raw.strip()
    if not code:
        problems.append(f"{field}: empty")
    elif not FACILITY_CODE.fullmatch(code):
        problems.append(f"{field}: 1-32 characters of A-Z, a-z, 0-9, '.', '_' or '-'")
    return code


def _parse_facility(
    line: int, cells: Sequence[str], first_line_of: dict[object, int]
) -> tuple[FacilityRow | None, list[str]]:
    problems: list[str] = []
    code = _facility_code(cells[0], "code", problems)
    values = {}
    for field, raw in zip(FACILITY_HEADER[1:], cells[1:], strict=True):
        value = _clean(raw)
        if not value:
            problems.append(f"{field}: empty")
        elif len(value) > _LIMITS[field]:
            problems.append(f"{field}: longer than {_LIMITS[field]} characters")
        values[field] = value
    if code and not problems:
        first = first_line_of.setdefault(code.upper(), line)
        if first != line:
            problems.append(f"code: duplicate of line {first}")
    if problems:
        return None, problems
    return FacilityRow(line, code, **values), []


def _parse_time(raw: str, field: str, problems: list[str]) -> time | None:
    match = _TIME.fullmatch(raw.strip())
    if match and int(match.group(1)) < 24 and int(match.group(2)) < 60:
        return time(int(match.group(1)), int(match.group(2)))
    problems.append(f"{field}: '{raw.strip()}' is not a time HH:MM (00:00-23:59)")
    return None


def _parse_session(
    line: int, cells: Sequence[str], first_line_of: dict[object, int]
) -> tuple[SessionRow | None, list[str]]:
    raw_code, raw_date, raw_start, raw_end, raw_capacity, raw_vaccine = cells
    problems: list[str] = []
    code = _facility_code(raw_code, "facility_code", problems)
    day: date | None = None
    try:
        if not _DATE.fullmatch(raw_date.strip()):
            raise ValueError
        day = date.fromisoformat(raw_date.strip())
    except ValueError:
        problems.append(f"date: '{raw_date.strip()}' is not a date YYYY-MM-DD")
    start = _parse_time(raw_start, "start", problems)
    end = _parse_time(raw_end, "end", problems)
    if start is not None and end is not None and end <= start:
        problems.append(f"end: {end:%H:%M} is not after start {start:%H:%M}")
    capacity = -1
    try:
        capacity = int(raw_capacity.strip())
        if not 0 <= capacity <= MAX_CAPACITY:
            raise ValueError
    except ValueError:
        problems.append(
            f"capacity: '{raw_capacity.strip()}' is not a whole number 0-{MAX_CAPACITY}"
        )
    vaccine = _clean(raw_vaccine)
    if not VACCINE.fullmatch(vaccine):
        problems.append("vaccine: 1-40 characters of letters, digits, space, '.', '_' or '-'")
    if problems or day is None or start is None or end is None:
        return None, problems
    row = SessionRow(line, code, day, start, end, capacity, vaccine)
    first = first_line_of.setdefault(row.key, line)
    if first != line:
        return None, [f"duplicate of line {first} (same facility, date, start and vaccine)"]
    return row, []


def parse_facilities_csv(
    text: str, *, progress: Callable[[int], None] | None = None, progress_every: int = 10_000
) -> tuple[list[FacilityRow], list[RowError]]:
    return parse_csv(text, FACILITY_HEADER, _parse_facility, progress, progress_every)


def parse_sessions_csv(
    text: str, *, progress: Callable[[int], None] | None = None, progress_every: int = 10_000
) -> tuple[list[SessionRow], list[RowError]]:
    return parse_csv(text, SESSION_HEADER, _parse_session, progress, progress_every)


def capacity_problem(row: SessionRow, booked: int, reserved: int) -> str | None:
    """Why a new capacity cannot be set on an existing session, if it cannot: never below its
    bookings, nor below the seats booked or held right now (holds lapse within minutes)."""
    if row.capacity < booked:
        return f"capacity: {row.capacity} is below the {booked} booking(s) of this session"
    if row.capacity < reserved:
        return (
            f"capacity: {row.capacity} is below the {reserved} seat(s) booked ({booked}) or held "
            f"({reserved - booked}) right now; try again when the holds have lapsed"
        )
    return None
