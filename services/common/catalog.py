"""User-facing texts of one package: one JSON catalog per language next to its `__init__.py`
(`id` is the default, `en` on request), with dates and times written the way each language does."""

from __future__ import annotations

import json
from datetime import date, time
from functools import cache
from importlib import resources

LANGUAGES = ("id", "en")
DEFAULT_LANGUAGE = "id"


class Catalog:
    def __init__(self, package: str) -> None:
        self._package = package
        self.texts = cache(self._load)

    def _load(self, lang: str) -> dict[str, str]:
        if lang not in LANGUAGES:
            lang = DEFAULT_LANGUAGE
        path = resources.files(self._package).joinpath(f"{lang}.json")
        return json.loads(path.read_text("utf-8"))

    def t(self, lang: str, key: str, **params: object) -> str:
        return self.texts(lang)[key].format(**params)

    def day_text(self, lang: str, day: date) -> str:
        """`Senin, 15 Februari 2021` / `Monday, 15 February 2021` (keys weekdays, months, date)."""
        weekday = self.texts(lang)["weekdays"].split(",")[day.weekday()]
        month = self.texts(lang)["months"].split(",")[day.month - 1]
        return self.t(lang, "date", weekday=weekday, day=day.day, month=month, year=day.year)

    def time_text(self, lang: str, start: time, end: time) -> str:
        return self.t(lang, "time", start=f"{start:%H:%M}", end=f"{end:%H:%M}")
