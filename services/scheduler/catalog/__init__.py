"""The scheduler's own user-facing texts (messages it sends by itself: dose 2, moves after a
cancelled session, reminders), one JSON catalog per language: `id` by default, `en` on request."""

from services.common.catalog import DEFAULT_LANGUAGE, LANGUAGES, Catalog

__all__ = ["DEFAULT_LANGUAGE", "LANGUAGES", "catalog", "day_text", "t", "time_text"]

_CATALOG = Catalog(__name__)
catalog = _CATALOG.texts
t = _CATALOG.t
day_text = _CATALOG.day_text
time_text = _CATALOG.time_text
