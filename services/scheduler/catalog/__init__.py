"""The scheduler's own user-facing texts (messages it sends by itself: dose 2, moves after a
cancelled session, reminders), one JSON catalog per language: `id` by default, `en` on request."""

from __future__ import annotations

import json
from datetime import date, time
from functools import cache
from importlib import resources

LANGUAGES = ("id", "en")
DEFAULT_LANGUAGE = "id"


@cache
def catalog(lang: str) -> dict[str, str]:
    if lang not in LANGUAGES:
        lang = DEFAULT_LANGUAGE
    return json.loads(resources.files(__name__).joinpath(f"{lang}.json").read_text("utf-8"))


def t(lang: str, key: str, **params: object) -> str:
    return catalog(lang)[key].format(**params)


def day_text(lang: str, day: date) -> str:
    """`Senin, 15 Februari 2021` / `Monday, 15 February 2021`."""
    weekday = catalog(lang)["weekdays"].split(",")[day.weekday()]
    month = catalog(lang)["months"].split(",")[day.month - 1]
    return t(lang, "date", weekday=weekday, day=day.day, month=month, year=day.year)


def time_text(lang: str, start: time, end: time) -> str:
    return t(lang, "time", start=f"{start:%H:%M}", end=f"{end:%H:%M}")
