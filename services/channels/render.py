"""What SMS and USSD can show of the dialog's channel-neutral replies. Pure: no IO.

A turn's replies (text, buttons, list, image caption; a video has nothing to show on a basic
phone) become one screen: the texts in order, then the options of the last menu numbered from 1,
which the user answers by number (`choose`) or by the same words that work on WhatsApp.

- SMS (`sms_texts`): GSM-7 when every character has one (160 septets for one part, 153 per part
  of a concatenated message; `^{}\\[~]|€` take two), else UCS-2 (70, and 67 per part). Texts are
  first made GSM-friendly: WhatsApp's `*bold*` marks, emoji and typographic punctuation go, so that
  a reply in Bahasa Indonesia costs GSM-7 parts rather than UCS-2 ones. A text longer than
  `SMS_MAX_PARTS` parts is split at line ends into several messages.
- USSD (`ussd_pages`): pages of at most 182 characters; `0` shows the next page, `00` the one
  before (the option numbers stay the same on every page).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Literal

from services.channels.catalog import t
from services.common.contracts.notifier import (
    ButtonsMessage,
    ImageMessage,
    ListMessage,
    OutboundMessage,
    TextMessage,
)

USSD_MAX = 182
NEXT, BACK = "0", "00"
SMS_MAX_PARTS = 5  # Jasmin's default long_content_max_parts

# GSM 03.38: the basic table (one septet each) and the extension table (escape + one septet).
GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡"
    "ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENDED = frozenset("^{}\\[~]|€\f")

Coding = Literal["gsm7", "ucs2"]


@dataclass(frozen=True)
class Option:
    reply_id: str
    title: str


@dataclass(frozen=True)
class Screen:
    """A turn as SMS and USSD show it: its text and the options of its last menu."""

    text: str
    options: list[Option] = field(default_factory=list)


# --- making text GSM-friendly -------------------------------------------------------------------

_TYPOGRAPHY = str.maketrans(
    {
        "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201c": '"', "\u201d": '"', "\u201e": '"',
        "\u2013": "-", "\u2014": "-", "\u2022": "-", "\u00a0": " ", "\u2026": "...", "\t": " ",
    }
)  # fmt: skip
_BOLD = re.compile(r"(?<![\w*])\*(?=\S)([^*\n]*?\S)\*(?![\w*])")
_ITALIC = re.compile(r"(?<![\w_])_(?=\S)([^_\n]*?\S)_(?![\w_])")
_STRIKE = re.compile(r"(?<![\w~])~(?=\S)([^~\n]*?\S)~(?![\w~])")
_SPACES = re.compile(r"[ ]{2,}")


def _keep(char: str) -> bool:
    """Emoji, pictographs, variation selectors and joiners show as boxes on a basic phone."""
    return unicodedata.category(char) not in ("So", "Sk", "Cs", "Co", "Cn", "Mn", "Cf") or (
        char in GSM_BASIC or char in GSM_EXTENDED
    )


def _fold(char: str) -> str:
    """A character GSM-7 lacks, as the closest one it has (ê -> e), when there is one."""
    if char in GSM_BASIC or char in GSM_EXTENDED:
        return char
    base = unicodedata.normalize("NFKD", char).encode("ascii", "ignore").decode()
    return base if base and all(c in GSM_BASIC for c in base) else char


def plain(text: str) -> str:
    """`text` without WhatsApp's formatting marks and emoji, in GSM-7 where it can be."""
    text = _STRIKE.sub(r"\1", _ITALIC.sub(r"\1", _BOLD.sub(r"\1", text)))
    text = "".join(_fold(c) for c in text.translate(_TYPOGRAPHY) if _keep(c))
    lines = [_SPACES.sub(" ", line).strip() for line in text.replace("\r", "").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


# --- a turn as one screen -----------------------------------------------------------------------


def compose(messages: list[OutboundMessage]) -> Screen:
    texts: list[str] = []
    options: list[Option] = []
    for message in messages:
        if isinstance(message, TextMessage):
            texts.append(message.body)
        elif isinstance(message, ButtonsMessage):
            texts.append(message.body)
            options = [Option(b.id, b.title) for b in message.buttons]
        elif isinstance(message, ListMessage):
            texts.append(message.body)
            options = [Option(r.id, r.title) for s in message.sections for r in s.rows]
        elif isinstance(message, ImageMessage) and message.caption:
            texts.append(message.caption)
        # A video: nothing a basic phone can play.
    body = "\n\n".join(plain(text) for text in texts if plain(text))
    return Screen(body, [Option(o.reply_id, plain(o.title) or o.reply_id) for o in options])


def choose(options: list[Option] | list[dict[str, str]], typed: str) -> str | None:
    """The reply id of the option whose number was typed, if it is one."""
    typed = typed.strip().rstrip(".")
    if not (typed.isascii() and typed.isdigit() and len(typed) <= 2):
        return None
    number = int(typed)
    if not 1 <= number <= len(options):
        return None
    option = options[number - 1]
    return option.reply_id if isinstance(option, Option) else option["reply_id"]


def _menu_lines(screen: Screen) -> list[str]:
    return [f"{i}. {o.title}" for i, o in enumerate(screen.options, start=1)]


# --- SMS ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SmsSize:
    coding: Coding
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    parts: int


def sms_size(text: str) -> SmsSize:
    """How a text travels by SMS: its coding and how many parts it takes."""
    if all(c in GSM_BASIC or c in GSM_EXTENDED for c in text):
        septets = [2 if c in GSM_EXTENDED else 1 for c in text]
        total = sum(septets)
        if total <= 160:
            return SmsSize("gsm7", total, 1)
        # An escaped character is never split over two parts.
        parts, used = 1, 0
        for size in septets:
            if used + size > 153:
                parts, used = parts + 1, 0
            used += size
        return SmsSize("gsm7", total, parts)
    units = len(text.encode("utf-16-be")) // 2
    if units <= 70:
        return SmsSize("ucs2", units, 1)
    # A surrogate pair (two units) is never split over two parts either.
    parts, used = 1, 0
    for char in text:
        size = 2 if ord(char) > 0xFFFF else 1
        if used + size > 67:
            parts, used = parts + 1, 0
        used += size
    return SmsSize("ucs2", units, parts)


def sms_text(screen: Screen, lang: str) -> str:
    lines = [screen.text] if screen.text else []
    if screen.options:
        lines += ["", *_menu_lines(screen), t(lang, "menu_hint")]
    return "\n".join(lines).strip()


def sms_texts(screen: Screen, lang: str, max_parts: int = SMS_MAX_PARTS) -> list[str]:
    """The SMS messages that carry a screen, each within `max_parts` parts (split at line ends,
    or inside a line too long by itself)."""
    messages: list[str] = []
    current = ""
    for line in _fitting_lines(sms_text(screen, lang), max_parts):
        candidate = f"{current}\n{line}" if current else line
        if current and sms_size(candidate).parts > max_parts:
            messages.append(current)
            candidate = line
        current = candidate
    if current:
        messages.append(current)
    return messages


def _fitting_lines(text: str, max_parts: int) -> list[str]:
    lines: list[str] = []
    for line in text.split("\n"):
        while sms_size(line).parts > max_parts:
            cut = _cut_at_word(line, lambda s: sms_size(s).parts <= max_parts)
            lines.append(line[:cut].rstrip())
            line = line[cut:].lstrip()
        lines.append(line)
    return lines


def _cut_at_word(line: str, fits: object) -> int:
    """The longest prefix of `line` that `fits`, ending at a space when there is one."""
    assert callable(fits)
    low, high = 1, len(line)
    while low < high:  # the longest prefix that fits
        mid = (low + high + 1) // 2
        if fits(line[:mid]):
            low = mid
        else:
            high = mid - 1
    space = line.rfind(" ", 0, low + 1)
    return space if space > low // 2 else low


# --- USSD ---------------------------------------------------------------------------------------


def ussd_pages(screen: Screen, lang: str, limit: int = USSD_MAX) -> list[str]:
    """The screen as USSD pages of at most `limit` characters: the text, then the menu; a page
    that is not the last ends with `0 Next`, one that is not the first with `00 Back`."""
    lines = ([*screen.text.split("\n")] if screen.text else []) + _menu_lines(screen)
    nav_next, nav_back = t(lang, "next"), t(lang, "back")
    footer = len(nav_next) + len(nav_back) + 2  # both, each on a line of its own
    budget = limit - footer
    pieces: list[str] = []
    for line in lines:
        while len(line) > budget:
            cut = _cut_at_word(line, lambda s: len(s) <= budget)
            pieces.append(line[:cut].rstrip())
            line = line[cut:].lstrip()
        pieces.append(line)
    pages: list[list[str]] = [[]]
    for piece in pieces:
        page = pages[-1]
        if page and len("\n".join([*page, piece])) > budget:
            pages.append([piece])
        else:
            page.append(piece)
    if len(pages) == 1 and len("\n".join(pages[0])) <= limit:
        return ["\n".join(pages[0]).strip()]
    rendered = []
    for i, page in enumerate(pages):
        nav = ([nav_next] if i < len(pages) - 1 else []) + ([nav_back] if i > 0 else [])
        rendered.append("\n".join([*page, *nav]).strip())
    return rendered
