"""Scheduling rules without servers: what can be offered (Jakarta time), dose-2 intervals and
windows, moves after a cancelled session, when reminders are due, what a confirmation does with a
hold in each state, and the capacity a re-import may set."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from services.common.clock import WIB
from services.scheduler import domain
from services.scheduler.domain import ConfirmStep, Cutoff, Interval, Window

TODAY = date(2021, 2, 15)


def at(day: date, hour: int, minute: int = 0) -> datetime:
    """A Jakarta wall-clock time, as the UTC instant the services pass around."""
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=WIB).astimezone(UTC)


def test_today_only_sessions_that_have_not_started_are_offered() -> None:
    assert domain.earliest_start(TODAY, at(TODAY, 10, 30)) == Cutoff(TODAY, time(10, 30))


def test_a_later_date_offers_that_whole_day() -> None:
    assert domain.earliest_start(TODAY + timedelta(days=3), at(TODAY, 10)) == Cutoff(
        TODAY + timedelta(days=3), time.min
    )


def test_a_stale_date_means_now() -> None:
    assert domain.earliest_start(TODAY - timedelta(days=2), at(TODAY, 9)) == Cutoff(TODAY, time(9))


def test_jakarta_midnight_is_the_date_line_not_utc() -> None:
    # 23:30 UTC on the 14th is 06:30 on the 15th in Jakarta: the 15th's morning sessions count.
    late_utc = datetime(2021, 2, 14, 23, 30, tzinfo=UTC)
    assert domain.earliest_start(date(2021, 2, 14), late_utc) == Cutoff(TODAY, time(6, 30))


def test_a_dose_2_window_opening_later_moves_the_cutoff() -> None:
    now = Cutoff(TODAY, time(10))
    assert domain.later_of(now, TODAY + timedelta(days=14)) == Cutoff(
        TODAY + timedelta(days=14), time.min
    )
    assert domain.later_of(now, TODAY - timedelta(days=1)) == now
    assert domain.later_of(now, None) == now


def test_coronavac_dose_2_is_14_to_28_days_after_dose_1() -> None:
    interval = domain.interval_for("CoronaVac", {"CoronaVac": (14, 28)})
    assert interval == Interval(14, 28)
    assert domain.dose2_window(TODAY, interval) == Window(date(2021, 3, 1), date(2021, 3, 15))


@pytest.mark.parametrize(
    ("vaccine", "expected"),
    [
        ("AstraZeneca", Interval(56, 84)),
        ("astrazeneca ", Interval(56, 84)),  # names match without regard to case or spaces
        ("Pfizer", domain.DEFAULT_INTERVAL),  # not configured: CoronaVac's interval
    ],
)
def test_the_interval_is_configured_per_vaccine(vaccine: str, expected: Interval) -> None:
    configured = {"CoronaVac": (14, 28), "AstraZeneca": (56, 84)}
    assert domain.interval_for(vaccine, configured) == expected


def test_a_window_contains_both_ends() -> None:
    window = Window(date(2021, 3, 1), date(2021, 3, 15))
    assert window.contains(date(2021, 3, 1)) and window.contains(date(2021, 3, 15))
    assert not window.contains(date(2021, 2, 28)) and not window.contains(date(2021, 3, 16))


def test_a_cancelled_session_moves_from_its_day_or_today_if_later() -> None:
    future = TODAY + timedelta(days=5)
    assert domain.rebook_window(future, TODAY, 14) == Window(future, future + timedelta(days=14))
    past = TODAY - timedelta(days=1)
    assert domain.rebook_window(past, TODAY, 7) == Window(TODAY, TODAY + timedelta(days=7))


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (at(TODAY, 8, 59), None),  # before the reminder time: nothing is due yet
        (at(TODAY, 9, 0), TODAY + timedelta(days=1)),
        (at(TODAY, 23, 59), TODAY + timedelta(days=1)),
    ],
)
def test_reminders_for_tomorrow_are_due_from_the_reminder_time(
    now: datetime, expected: date | None
) -> None:
    assert domain.reminder_day(now, time(9, 0)) == expected


@pytest.mark.parametrize(
    ("status", "step"),
    [
        ("held", ConfirmStep.CONVERT),  # live, or lapsed but its seat not yet taken
        ("confirmed", ConfirmStep.RETURN_BOOKING),  # a repeated confirmation
        ("expired", ConfirmStep.RETAKE_SEAT),  # its seat went back: needs a free seat again
        ("released", ConfirmStep.RETAKE_SEAT),
    ],
)
def test_what_confirming_a_hold_does_in_each_state(status: str, step: ConfirmStep) -> None:
    assert domain.confirm_step(status) is step


def _row(capacity: int) -> domain.SessionRow:
    return domain.SessionRow(2, "F1", TODAY, time(8), time(12), capacity, "CoronaVac")


def test_capacity_never_goes_below_bookings_nor_seats_held_now() -> None:
    assert domain.capacity_problem(_row(10), booked=10, reserved=10) is None
    below_bookings = domain.capacity_problem(_row(4), booked=5, reserved=7)
    assert below_bookings == "capacity: 4 is below the 5 booking(s) of this session"
    below_holds = domain.capacity_problem(_row(6), booked=5, reserved=7)
    assert below_holds is not None and "booked (5) or held (2)" in below_holds
