"""User-facing texts, one JSON catalog per language (`id` is the default, `en` on request)."""

from services.common.catalog import DEFAULT_LANGUAGE, LANGUAGES, Catalog

__all__ = ["DEFAULT_LANGUAGE", "LANGUAGES", "catalog", "t"]

_CATALOG = Catalog(__name__)
catalog = _CATALOG.texts
t = _CATALOG.t
