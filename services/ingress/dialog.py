"""The conversation as a pure state machine: (conversation, what the user sent) -> next step.

No IO: when the dialog needs identity's answer it returns a request (`NeedNumberStatus`,
`NeedVerify`); the handler asks identity and feeds the answer to `after_number_status` /
`after_verify`. Typed words work wherever a button does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from typing import Any

from services.common.contracts.identity import NumberStatus, VerifyOutcome, VerifyResult
from services.common.contracts.notifier import Button, ButtonsMessage, OutboundMessage, TextMessage
from services.ingress.catalog import DEFAULT_LANGUAGE, t

WIB = timezone(timedelta(hours=7))


class Step(StrEnum):
    IDLE = "idle"  # nothing asked: keywords start things
    ASK_NAKES = "ask_nakes"  # "are you a health worker?"
    ASK_SUFFIX = "ask_suffix"  # "last 6 digits of your NIK"
    VERIFIED = "verified"


class Intent(StrEnum):
    START = "start"
    HELP = "help"
    STATUS = "status"
    BOOKING_COMMAND = "booking_command"  # BATAL / UBAH / TIKET: need a booking
    LANG_ID = "lang_id"
    LANG_EN = "lang_en"
    YES = "yes"
    NO = "no"
    OTHER = "other"


KEYWORDS: dict[str, Intent] = {
    "vaksin": Intent.START,
    "vaksinasi": Intent.START,
    "daftar": Intent.START,
    "menu": Intent.START,
    "mulai": Intent.START,
    "start": Intent.START,
    "bantuan": Intent.HELP,
    "help": Intent.HELP,
    "tolong": Intent.HELP,
    "status": Intent.STATUS,
    "cek status": Intent.STATUS,
    "tiket": Intent.BOOKING_COMMAND,
    "batal": Intent.BOOKING_COMMAND,
    "ubah": Intent.BOOKING_COMMAND,
    "en": Intent.LANG_EN,
    "english": Intent.LANG_EN,
    "lang.en": Intent.LANG_EN,
    "id": Intent.LANG_ID,
    "indonesia": Intent.LANG_ID,
    "bahasa": Intent.LANG_ID,
    "lang.id": Intent.LANG_ID,
    "ya": Intent.YES,
    "y": Intent.YES,
    "iya": Intent.YES,
    "yes": Intent.YES,
    "yup": Intent.YES,
    "benar": Intent.YES,
    "1": Intent.YES,
    "nakes.yes": Intent.YES,
    "ya, saya nakes": Intent.YES,
    "yes, health worker": Intent.YES,
    "tidak": Intent.NO,
    "tdk": Intent.NO,
    "ga": Intent.NO,
    "gak": Intent.NO,
    "enggak": Intent.NO,
    "bukan": Intent.NO,
    "no": Intent.NO,
    "n": Intent.NO,
    "2": Intent.NO,
    "nakes.no": Intent.NO,
}

_SPACES = re.compile(r"\s+")
_DIGITS_ONLY = re.compile(r"^\d+$")


# Message types that need no answer: a user's reaction, an edit or deletion, a number change.
SILENT_TYPES = frozenset({"reaction", "system", "revoke", "edit", "ephemeral"})


@dataclass(frozen=True)
class UserInput:
    text: str = ""
    reply_id: str | None = None
    type: str = "text"

    @property
    def normalized(self) -> str:
        return _SPACES.sub(" ", self.text).strip().strip(".!?").lower()

    @property
    def digits(self) -> str:
        """The text with the spaces, dots and dashes people put in numbers removed."""
        return re.sub(r"[\s.\-]", "", self.text)


def intent_of(user: UserInput) -> Intent:
    if user.reply_id and user.reply_id in KEYWORDS:
        return KEYWORDS[user.reply_id]
    return KEYWORDS.get(user.normalized, Intent.OTHER)


@dataclass(frozen=True)
class Conversation:
    step: Step = Step.IDLE
    lang: str = DEFAULT_LANGUAGE
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Turn:
    conversation: Conversation
    replies: list[OutboundMessage]


@dataclass(frozen=True)
class NeedNumberStatus:
    """Ask identity whether the sender's number is in the registry (and not locked)."""


@dataclass(frozen=True)
class NeedVerify:
    suffix: str


Decision = Turn | NeedNumberStatus | NeedVerify


def _text(lang: str, key: str, **params: object) -> TextMessage:
    return TextMessage(body=t(lang, key, **params))


def _ask_nakes(lang: str, key: str = "greeting") -> ButtonsMessage:
    return ButtonsMessage(
        body=t(lang, key),
        buttons=[
            Button(id="nakes.yes", title=t(lang, "btn.yes")),
            Button(id="nakes.no", title=t(lang, "btn.no")),
        ],
    )


def _prompt_for(conv: Conversation) -> list[OutboundMessage]:
    """Re-ask what the current step is waiting for (used after help or a language switch)."""
    if conv.step == Step.ASK_NAKES:
        return [_ask_nakes(conv.lang, "ask_nakes_again")]
    if conv.step == Step.ASK_SUFFIX:
        return [_text(conv.lang, "ask_suffix")]
    return []


def handle(conv: Conversation, user: UserInput) -> Decision:
    if user.type in SILENT_TYPES:
        return Turn(conv, [])
    intent = intent_of(user)
    lang = conv.lang

    if intent in (Intent.LANG_EN, Intent.LANG_ID):
        switched = replace(conv, lang="en" if intent == Intent.LANG_EN else "id")
        return Turn(switched, [_text(switched.lang, "language_set"), *_prompt_for(switched)])
    if intent == Intent.HELP:
        return Turn(conv, [_text(lang, "help"), *_prompt_for(conv)])
    if intent == Intent.START:
        if conv.step == Step.VERIFIED:
            return Turn(conv, [_text(lang, "already_verified", **_summary(conv))])
        return Turn(Conversation(Step.ASK_NAKES, lang), [_ask_nakes(lang)])
    if intent == Intent.STATUS:
        return Turn(conv, [_status_reply(conv), *_prompt_for(conv)])
    if intent == Intent.BOOKING_COMMAND:
        return Turn(conv, [_text(lang, "no_booking")])

    if conv.step == Step.ASK_NAKES:
        if intent == Intent.YES:
            return NeedNumberStatus()
        if intent == Intent.NO:
            return Turn(Conversation(Step.IDLE, lang), [_text(lang, "not_nakes")])
        return Turn(conv, [_ask_nakes(lang, "ask_nakes_again")])

    if conv.step == Step.ASK_SUFFIX:
        digits = user.digits
        if _DIGITS_ONLY.match(digits) and len(digits) == 6:
            return NeedVerify(digits)
        if _DIGITS_ONLY.match(digits) and len(digits) == 16:
            return Turn(conv, [_text(lang, "suffix_full_nik")])
        return Turn(conv, [_text(lang, "suffix_format")])

    return Turn(conv, [_text(lang, "unknown")])


def after_number_status(conv: Conversation, status: NumberStatus) -> Turn:
    lang = conv.lang
    if status.locked_until is not None:
        return Turn(Conversation(Step.IDLE, lang), [_locked(lang, status.locked_until)])
    if not status.listed:
        return Turn(Conversation(Step.IDLE, lang), [_text(lang, "not_listed")])
    return Turn(Conversation(Step.ASK_SUFFIX, lang), [_text(lang, "ask_suffix")])


def after_verify(conv: Conversation, result: VerifyResult) -> Turn:
    lang = conv.lang
    match result.outcome:
        case VerifyOutcome.VERIFIED:
            data = {
                "person_id": result.person_id,
                "name": result.masked_name or "-",
                "nik": result.masked_nik or "-",
                "profession": result.profession or "-",
                "facility": result.facility_code or "-",
            }
            verified = Conversation(Step.VERIFIED, lang, data)
            return Turn(verified, [_text(lang, "verified", **_summary(verified, full=True))])
        case VerifyOutcome.MISMATCH:
            return Turn(conv, [_text(lang, "mismatch", attempts_left=result.attempts_left or 0)])
        case VerifyOutcome.LOCKED:
            until = result.locked_until or datetime.now(WIB)
            return Turn(Conversation(Step.IDLE, lang), [_locked(lang, until)])
        case VerifyOutcome.NOT_LISTED:
            return Turn(Conversation(Step.IDLE, lang), [_text(lang, "not_listed")])
        case _:
            return Turn(conv, [_text(lang, "suffix_format")])


def busy(conv: Conversation) -> Turn:
    """What the user hears when their message could not be processed after every retry."""
    return Turn(conv, [_text(conv.lang, "busy")])


def _summary(conv: Conversation, *, full: bool = False) -> dict[str, str]:
    keys = ("name", "nik", "profession", "facility") if full else ("name", "facility")
    return {k: str(conv.data.get(k, "-")) for k in keys}


def _status_reply(conv: Conversation) -> TextMessage:
    if conv.step == Step.VERIFIED:
        return _text(conv.lang, "already_verified", **_summary(conv))
    if conv.step == Step.IDLE:
        return _text(conv.lang, "status_none")
    return _text(conv.lang, "status_pending")


def _locked(lang: str, until: datetime) -> TextMessage:
    when = until.astimezone(WIB).strftime("%d-%m-%Y %H:%M")
    return _text(lang, "locked", until=when)
