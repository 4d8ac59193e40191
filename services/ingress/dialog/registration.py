"""Steps from the keyword to a verified health worker: the nakes question and the NIK suffix."""

from __future__ import annotations

import re
from datetime import datetime

from services.common.clock import WIB
from services.common.contracts.identity import (
    IntakeDecided,
    NumberStatus,
    NumberStatusRequest,
    VerifyOutcome,
    VerifyRequest,
    VerifyResult,
)
from services.common.contracts.notifier import ButtonsMessage, TextMessage
from services.ingress.dialog import intake, screening
from services.ingress.dialog.model import (
    Ask,
    Context,
    Conversation,
    Decision,
    Intent,
    Step,
    Turn,
    UserInput,
    buttons,
    prepend,
    text,
)

_DIGITS_ONLY = re.compile(r"^\d+$")


def ask_nakes(lang: str, key: str = "greeting") -> ButtonsMessage:
    return buttons(lang, key, [("nakes.yes", "btn.yes"), ("nakes.no", "btn.no")])


def start(conv: Conversation) -> Turn:
    return Turn(Conversation(Step.ASK_NAKES, conv.lang), [ask_nakes(conv.lang)])


def on_nakes_answer(conv: Conversation, user: UserInput, wa_id: str) -> Decision:
    lang = conv.lang
    if user.intent == Intent.YES:
        return Ask(NumberStatusRequest(wa_id=wa_id), lambda status: _after_status(conv, status))
    if user.intent == Intent.NO:
        return Turn(Conversation(Step.IDLE, lang), [text(lang, "not_nakes")])
    return Turn(conv, [ask_nakes(lang, "ask_nakes_again")])


def _after_status(conv: Conversation, status: NumberStatus) -> Turn:
    lang = conv.lang
    if status.locked_until is not None:
        return Turn(Conversation(Step.IDLE, lang), [locked(lang, status.locked_until)])
    if not status.listed:
        return intake.offer(conv)
    return Turn(Conversation(Step.ASK_SUFFIX, lang), [text(lang, "ask_suffix")])


def on_suffix(
    conv: Conversation, user: UserInput, wa_id: str, request_id: str, ctx: Context
) -> Decision:
    digits = user.digits
    if _DIGITS_ONLY.match(digits) and len(digits) == 6:
        request = VerifyRequest(wa_id=wa_id, suffix=digits, request_id=request_id)
        return Ask(request, lambda result: _after_verify(conv, result, ctx))
    if _DIGITS_ONLY.match(digits) and len(digits) == 16:
        return Turn(conv, [text(conv.lang, "suffix_full_nik")])
    return Turn(conv, [text(conv.lang, "suffix_format")])


def _after_verify(conv: Conversation, result: VerifyResult, ctx: Context) -> Decision:
    lang = conv.lang
    match result.outcome:
        case VerifyOutcome.VERIFIED:
            verified = verified_conversation(lang, result)
            said = text(lang, "verified", **summary(verified, full=True))
            return prepend([said], screening.begin(verified, ctx))
        case VerifyOutcome.MISMATCH:
            return Turn(conv, [text(lang, "mismatch", attempts_left=result.attempts_left or 0)])
        case VerifyOutcome.LOCKED:
            until = result.locked_until or datetime.now(WIB)
            return Turn(Conversation(Step.IDLE, lang), [locked(lang, until)])
        case VerifyOutcome.NOT_LISTED:
            return intake.offer(conv)
        case _:
            return Turn(conv, [text(lang, "suffix_format")])


def verified_conversation(lang: str, who: VerifyResult | IntakeDecided) -> Conversation:
    """A verified health worker: by the suffix, or by an operator's approval of their intake."""
    return Conversation(Step.VERIFIED, lang).at(
        Step.VERIFIED,
        person_id=who.person_id,
        name=who.masked_name or "-",
        nik=who.masked_nik or "-",
        profession=who.profession or "-",
        facility=who.facility_code or "-",
        birth_date=who.birth_date.isoformat() if who.birth_date else None,
    )


def summary(conv: Conversation, *, full: bool = False) -> dict[str, str]:
    keys = ("name", "nik", "profession", "facility") if full else ("name", "facility")
    return {k: str(conv.data.get(k, "-")) for k in keys}


def locked(lang: str, until: datetime) -> TextMessage:
    when = until.astimezone(WIB).strftime("%d-%m-%Y %H:%M")
    return text(lang, "locked", until=when)
