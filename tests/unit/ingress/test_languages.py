"""Every message in both languages, checked: each catalog (the dialog's, and the scheduler's and
ticketing's notices) has every key in `id` and `en` with the same placeholders, and every text a
user may read (catalogs, screening rule sets, profession labels) is in its own language only.
The end-to-end transcripts are scanned the same way (tests/e2e/conftest.py)."""

from __future__ import annotations

import re
import string
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.common.catalog import LANGUAGES, Catalog
from services.common.contracts.identity import PROFESSIONS
from tests.languages import language_words, mixed, visible_texts

CATALOGS = ("services.ingress.catalog", "services.scheduler.catalog", "services.ticketing.catalog")
RULESETS = Path(__file__).parents[3] / "services" / "screening" / "rulesets"
_PLACEHOLDER = re.compile(r"\{\w*\}")


def _fields(text: str) -> list[str]:
    return sorted(f for _, f, _, _ in string.Formatter().parse(text) if f)


@pytest.mark.parametrize("package", CATALOGS)
def test_every_key_is_in_both_languages_with_the_same_placeholders(package: str) -> None:
    texts = {lang: Catalog(package).texts(lang) for lang in LANGUAGES}
    base = texts["id"]
    assert base, package
    for lang, other in texts.items():
        assert other.keys() == base.keys(), (package, lang, other.keys() ^ base.keys())
        for key, text in base.items():
            assert _fields(other[key]) == _fields(text), (package, lang, key)
            assert other[key].strip(), (package, lang, key)
        # WhatsApp: a reply button's title has at most 20 characters.
        assert all(len(v) <= 20 for k, v in other.items() if k.startswith("btn.")), lang


def _pairs(node: Any) -> list[tuple[str, str]]:
    """Every {id: ..., en: ...} pair of texts in a rule set."""
    if isinstance(node, list):
        return [pair for item in node for pair in _pairs(item)]
    if not isinstance(node, dict):
        return []
    found = [pair for value in node.values() for pair in _pairs(value)]
    if isinstance(node.get("id"), str) and isinstance(node.get("en"), str):
        found.append((node["id"], node["en"]))
    return found


def _user_texts() -> list[tuple[str, str, str]]:
    """(where, language, text) of everything a user may read that is written in advance."""
    found = []
    for package in CATALOGS:
        for lang in LANGUAGES:
            for key, text in Catalog(package).texts(lang).items():
                found.append((f"{package}:{key}", lang, _PLACEHOLDER.sub(" ", text)))
    for path in sorted(RULESETS.glob("*.yaml")):
        for indonesian, english in _pairs(yaml.safe_load(path.read_text("utf-8"))):
            found += [(path.name, "id", indonesian), (path.name, "en", english)]
    for p in PROFESSIONS:
        found += [
            (f"profession {p.id}", "id", p.id_label),
            (f"profession {p.id}", "en", p.en_label),
        ]
    return found


def test_every_text_a_user_reads_is_in_its_own_language_only() -> None:
    texts = _user_texts()
    assert len(texts) > 200
    wrong = []
    for where, lang, text in texts:
        indonesian, english = language_words(text)
        foreign = english if lang == "id" else indonesian
        if foreign:
            wrong.append((where, lang, sorted(foreign)))
    assert not wrong, wrong


@pytest.mark.parametrize(
    "reply",
    [
        "Thank you, your data is verified.\n\nProfession: perawat\nHealth facility: F3201001",
        "Terima kasih, data Anda terverifikasi.\n\nProfesi: Nurse\nFasilitas kesehatan: F001",
        "Your appointment: Senin, 25-01-2021",
    ],
)
def test_a_reply_mixing_the_languages_is_caught(reply: str) -> None:
    assert mixed(reply)


@pytest.mark.parametrize(
    "reply",
    [
        "Your vaccination place and earliest free time:\n\n*Puskesmas Kecamatan Tebet*\n"
        "Jl. Prof. Soepomo No. 54, Kota Jakarta Selatan\n*Monday, 25-01-2021*, 08:00-12:00 WIB",
        "Thank you, your data is verified.\n\nName: S*** R********\nNIK: 320101**********\n"
        "Profession: Nurse\nHealth facility: RSUD Cengkareng",
        "Verifikasi untuk nomor ini *masih dikunci* sampai 15-01-2026 07:00 WIB.",
        # a random test facility code whose letters spell an English word ("be")
        "Kami akan terus mencari jadwal kosong di Puskesmas T09BE89 setiap hari.",
    ],
)
def test_places_names_and_codes_belong_to_neither_language(reply: str) -> None:
    assert not mixed(reply)


def test_what_a_user_sees_of_a_send_is_its_body_buttons_and_list_titles() -> None:
    send = {
        "type": "interactive",
        "interactive": {
            "type": "list",
            "body": {"text": "Pilih fasilitas"},
            "action": {
                "button": "Choose facility",
                "sections": [{"title": "Workplace", "rows": [{"id": "fac.X", "title": "Pusk"}]}],
            },
        },
    }
    assert visible_texts(send) == ["Pilih fasilitas", "Choose facility", "Workplace"]
    assert mixed(" ".join(visible_texts(send)))
