"""User-facing texts, one JSON catalog per language (`id` is the default, `en` on request)."""

from __future__ import annotations

import json
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
