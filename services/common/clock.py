"""Dates as users and rules see them: Western Indonesian Time (Jakarta, UTC+7), where most of the
health workers are. Screening rules, re-screen dates and lock times are all given in it."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

WIB = timezone(timedelta(hours=7), "WIB")


def jakarta_today() -> date:
    return datetime.now(WIB).date()
