"""Steps from the keyword to a verified health worker: the nakes question, the NIK suffix, and the
lockout after too many wrong suffixes (every message is then told until when, and where to get
help, until identity says the lock is over).

An answer that clearly belongs to the next question is taken with the "yes" it implies: the NIK
suffix typed where "are you a health worker?" stands is verified at once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from services.common.clock import WIB
from services.common.contracts.identity import (
    IntakeDecided,
    NumberStatus,
    NumberStatusRequest,
    VerifyOutcome,
    VerifyRequest,
    VerifyResult,
    find_profession,
)
from services.common.contracts.notifier import ButtonsMessage, TextMessage
from services.common.contracts.scheduler import FacilityReply, FacilityRequest
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

SUFFIX_DIGITS = 6
NIK_DIGITS = 16


def ask_nakes(lang: str, key: str = "greeting") -> ButtonsMessage:
    return buttons(lang, key, [("nakes.yes", "btn.yes"), ("nakes.no", "btn.no")])


def start(conv: Conversation) -> Turn:
    return Turn(Conversation(Step.ASK_NAKES, conv.lang), [ask_nakes(conv.lang)])


def on_nakes_answer(conv: Conversation, user: UserInput, request_id: str, ctx: Context) -> Decision:
    lang = conv.lang
    # The suffix (or the whole NIK) typed one step early says "yes" and answers the next question.
    early = user.is_number(SUFFIX_DIGITS) or user.is_number(NIK_DIGITS)
    if user.intent == Intent.YES or early:
        request = NumberStatusRequest(wa_id=ctx.wa_id)
        answered = user if early else None
        return Ask(request, lambda status: _after_status(conv, status, answered, request_id, ctx))
    if user.intent == Intent.NO:
        return Turn(Conversation(Step.IDLE, lang), [text(lang, "not_nakes")])
    return Turn(conv, [ask_nakes(lang, "ask_nakes_again")])


def _after_status(
    conv: Conversation,
    status: NumberStatus,
    early: UserInput | None,
    request_id: str,
    ctx: Context,
) -> Decision:
    lang = conv.lang
    if status.locked_until is not None:
        return locked_turn(lang, status.locked_until)
    if not status.listed:
        return intake.offer(conv)
    asking = Conversation(Step.ASK_SUFFIX, lang)
    if early is not None:
        return on_suffix(asking, early, request_id, ctx)
    return Turn(asking, [text(lang, "ask_suffix")])


def on_suffix(conv: Conversation, user: UserInput, request_id: str, ctx: Context) -> Decision:
    if user.is_number(SUFFIX_DIGITS):
        request = VerifyRequest(wa_id=ctx.wa_id, suffix=user.digits, request_id=request_id)
        return Ask(request, lambda result: _after_verify(conv, result, ctx))
    if user.is_number(NIK_DIGITS):
        return Turn(conv, [text(conv.lang, "suffix_full_nik")])
    return Turn(conv, [text(conv.lang, "suffix_format")])


def _after_verify(conv: Conversation, result: VerifyResult, ctx: Context) -> Decision:
    lang = conv.lang
    match result.outcome:
        case VerifyOutcome.VERIFIED:

            def verified(named: Conversation) -> Decision:
                said = text(lang, "verified", **summary(named, full=True))
                return prepend([said], screening.begin(named, ctx))

            return with_facility_name(verified_conversation(lang, result), verified)
        case VerifyOutcome.MISMATCH:
            return Turn(conv, [text(lang, "mismatch", attempts_left=result.attempts_left or 0)])
        case VerifyOutcome.LOCKED:
            return locked_turn(lang, result.locked_until or datetime.now(WIB))
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


def with_facility_name(conv: Conversation, then: Callable[[Conversation], Decision]) -> Decision:
    """`then` with the name of the person's facility known (`facility_name`), asked of the
    scheduler once; a facility it does not know stays shown by its code."""
    code = str(conv.data.get("facility") or "-")
    if conv.data.get("facility_name") or code == "-":
        return then(conv)

    def named(reply: FacilityReply) -> Decision:
        if reply.facility is None:
            return then(conv)
        return then(conv.at(conv.step, facility_name=reply.facility.name))

    return Ask(FacilityRequest(code=code), named)


def summary(conv: Conversation, *, full: bool = False) -> dict[str, str]:
    """Who the person is, in the conversation's language: the profession as its label there (the
    registry holds the Indonesian one), the facility by its name once known."""
    data = conv.data
    shown = {
        "name": str(data.get("name", "-")),
        "facility": str(data.get("facility_name") or data.get("facility", "-")),
    }
    if full:
        raw = str(data.get("profession") or "-")
        profession = find_profession(raw)
        shown |= {
            "nik": str(data.get("nik", "-")),
            "profession": profession.label(conv.lang) if profession else raw,
        }
    return shown


# --- the lockout -----------------------------------------------------------------------------


def locked(lang: str, until: datetime, key: str = "locked") -> TextMessage:
    when = until.astimezone(WIB).strftime("%d-%m-%Y %H:%M")
    return text(lang, key, until=when)


def locked_turn(lang: str, until: datetime, key: str = "locked") -> Turn:
    """The number is locked: said now, and on every message until identity lifts it."""
    conv = Conversation(Step.LOCKED, lang, {"locked_until": until.isoformat()})
    return Turn(conv, [locked(lang, until, key)])


def while_locked(conv: Conversation, user: UserInput, request_id: str, ctx: Context) -> Decision:
    """Any message from a locked number: identity says whether the lock still holds (its time,
    or an operator's hand); if it does, the user hears until when; if not, the message is taken
    as it would be by a number asked for its suffix."""
    lang = conv.lang

    def then(status: NumberStatus) -> Decision:
        if status.locked_until is not None:
            return locked_turn(lang, status.locked_until, "still_locked")
        opened = [text(lang, "unlocked")]
        if not status.listed:
            return prepend(opened, intake.offer(conv))
        if user.intent == Intent.START:
            return prepend(opened, start(conv))
        asking = Conversation(Step.ASK_SUFFIX, lang)
        if user.is_number(SUFFIX_DIGITS):
            return prepend(opened, on_suffix(asking, user, request_id, ctx))
        return Turn(asking, [*opened, text(lang, "ask_suffix")])

    return Ask(NumberStatusRequest(wa_id=ctx.wa_id), then)
