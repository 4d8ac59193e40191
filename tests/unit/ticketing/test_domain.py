"""Ticket codes, expiry at the end of the session day in Jakarta, what a scan means, and the
on-site measurements."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from services.common.clock import WIB
from services.common.contracts.ticketing import TicketStatus
from services.ticketing import domain

DAY = date(2021, 1, 14)


def test_codes_are_eight_unambiguous_characters() -> None:
    codes = {domain.new_code() for _ in range(2000)}
    assert len(codes) == 2000
    assert all(len(c) == 8 and set(c) <= set(domain.CODE_ALPHABET) for c in codes)
    assert not set("01OIL") & set("".join(codes))


def test_expiry_is_midnight_after_the_session_day_in_jakarta() -> None:
    assert domain.expiry(DAY) == datetime(2021, 1, 15, 0, 0, tzinfo=WIB)
    assert domain.expiry(DAY) == datetime(2021, 1, 14, 17, 0, tzinfo=UTC)


def state(**changes: object) -> domain.TicketState:
    return domain.TicketState(DAY, domain.expiry(DAY), **changes)  # type: ignore[arg-type]


ON_THE_DAY = datetime(2021, 1, 14, 9, 30, tzinfo=WIB)


@pytest.mark.parametrize(
    ("ticket", "now", "expected"),
    [
        (state(), ON_THE_DAY, TicketStatus.VALID),
        (state(), datetime(2021, 1, 14, 0, 0, tzinfo=WIB), TicketStatus.VALID),
        (state(), datetime(2021, 1, 14, 23, 59, tzinfo=WIB), TicketStatus.VALID),
        (state(), datetime(2021, 1, 13, 23, 59, tzinfo=WIB), TicketStatus.NOT_YET),
        (state(), datetime(2021, 1, 15, 0, 0, tzinfo=WIB), TicketStatus.EXPIRED),
        (state(revoked_at=ON_THE_DAY), ON_THE_DAY, TicketStatus.REVOKED),
        (state(redeemed_at=ON_THE_DAY), ON_THE_DAY, TicketStatus.ALREADY_USED),
        # a use is told before a revocation, and before expiry
        (
            state(redeemed_at=ON_THE_DAY, revoked_at=ON_THE_DAY),
            ON_THE_DAY,
            TicketStatus.ALREADY_USED,
        ),
        (state(redeemed_at=ON_THE_DAY), ON_THE_DAY + timedelta(days=3), TicketStatus.ALREADY_USED),
        (state(revoked_at=ON_THE_DAY), ON_THE_DAY + timedelta(days=3), TicketStatus.REVOKED),
    ],
)
def test_status_of_a_scan(
    ticket: domain.TicketState, now: datetime, expected: TicketStatus
) -> None:
    assert domain.status(ticket, now) is expected


def test_every_status_has_a_detail_for_the_desk() -> None:
    assert set(domain.DETAILS) == set(TicketStatus)


def test_measurements_accept_what_desks_type() -> None:
    assert domain.measurements("36,5", "120/80") == domain.Measurements(36.5, 120, 80)
    assert domain.measurements(37, " 140 / 90 ") == domain.Measurements(37.0, 140, 90)
    assert domain.measurements(None, None) == domain.Measurements()
    assert domain.measurements("", "") == domain.Measurements()


@pytest.mark.parametrize(
    ("temperature", "pressure"),
    [
        ("365", None),
        ("hot", None),
        (29.9, None),
        (None, "120"),
        (None, "80/120"),
        (None, "a/b"),
        (None, "400/80"),
    ],
)
def test_impossible_measurements_are_refused(temperature: object, pressure: str | None) -> None:
    with pytest.raises(domain.InvalidMeasurement):
        domain.measurements(temperature, pressure)  # type: ignore[arg-type]


def test_both_languages_have_every_text() -> None:
    from services.ticketing.catalog import CATALOG

    assert CATALOG.texts("id").keys() == CATALOG.texts("en").keys()
    assert CATALOG.day_text("en", DAY) == "Thursday, 14 January 2021"
    assert CATALOG.day_text("id", DAY) == "Kamis, 14 Januari 2021"
