"""The conversation as a pure state machine: (conversation, what the user sent) -> next decision.

Commands (`VAKSIN`, `BANTUAN`, `STATUS`, `EN`/`ID`, ...) work in every step; otherwise the step
the user is in decides. Typed words work wherever a button does. No message meets silence or a
plain "not understood" where the user is in a state of their own: a locked number hears until
when and where to get help, a request waiting for an operator hears since when and what next.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from services.common.contracts.notifier import OutboundMessage
from services.ingress.dialog import intake, registration, scheduling, screening, tickets
from services.ingress.dialog.model import (
    SILENT_TYPES,
    Ask,
    Context,
    Conversation,
    Decision,
    Intent,
    Step,
    Turn,
    UserInput,
    coalesce,
    prepend,
    text,
)

__all__ = [
    "Ask",
    "Context",
    "Conversation",
    "Decision",
    "Step",
    "Turn",
    "UserInput",
    "busy",
    "coalesce",
    "handle",
]

SCREENING_STEPS = (Step.SCREENING_SUMMARY, Step.SCREENING_QUESTION)
SCHEDULING_STEPS = (Step.LOCATION, Step.LOCATION_LIST, Step.SLOT, Step.SLOT_LIST)
INTAKE_STEPS = (Step.INTAKE_OFFER, Step.INTAKE_NIK, Step.INTAKE_NAME, Step.INTAKE_PROFESSION,
                Step.INTAKE_FACILITY, Step.INTAKE_CONFIRM)  # fmt: skip


def handle(conv: Conversation, user: UserInput, *, request_id: str, ctx: Context) -> Decision:
    if user.type in SILENT_TYPES:
        return Turn(conv, [])
    if conv.data.get("undelivered"):
        # One of our messages never reached them (notifier.evt.send_failed): say so first.
        cleared = conv.at(conv.step, undelivered=None)
        return prepend([text(conv.lang, "undelivered")], handle(cleared, user,
                       request_id=request_id, ctx=ctx))  # fmt: skip
    lang, intent = conv.lang, user.intent
    if intent in (Intent.LANG_EN, Intent.LANG_ID):
        switched = replace(conv, lang="en" if intent == Intent.LANG_EN else "id")
        said = [text(switched.lang, "language_set")]
        if switched.step in SCREENING_STEPS:
            return prepend(said, screening.relocalize(switched))
        if switched.step == Step.LOCKED:
            return prepend(said, registration.while_locked(switched, UserInput(), request_id, ctx))
        return Turn(switched, [*said, *prompt(switched)])
    if intent == Intent.HELP:
        if conv.step == Step.LOCKED:
            helped = [text(lang, "help")]
            return prepend(helped, registration.while_locked(conv, UserInput(), request_id, ctx))
        return Turn(conv, [text(lang, "help"), *prompt(conv)])
    if conv.step == Step.LOCKED:  # whatever they send, even VAKSIN or STATUS
        return registration.while_locked(conv, user, request_id, ctx)
    if intent == Intent.START:
        return _start(conv, request_id, ctx)
    if intent == Intent.STATUS:
        if conv.step == Step.BOOKED:
            return tickets.with_tickets(conv, scheduling.bookings(conv), ctx.channel)
        if conv.step == Step.INTAKE_WAITING:  # the status is all its prompt would say
            return Turn(conv, [_status(conv)])
        return Turn(conv, [_status(conv), *prompt(conv)])
    if intent in (Intent.CANCEL, Intent.RESCHEDULE, Intent.TICKET):
        return _booking_command(conv, intent, request_id, ctx)

    person_id = str(conv.data.get("person_id", ""))
    match conv.step:
        case Step.ASK_NAKES:
            return registration.on_nakes_answer(conv, user, request_id, ctx)
        case Step.ASK_SUFFIX:
            return registration.on_suffix(conv, user, request_id, ctx)
        case Step.SCREENING_SUMMARY:
            return screening.on_summary_answer(conv, user, person_id, request_id, ctx)
        case Step.SCREENING_QUESTION:
            return screening.on_question_answer(conv, user, person_id, request_id, ctx)
        case Step.INTAKE_OFFER:
            return intake.on_offer_answer(conv, user)
        case Step.INTAKE_NIK:
            return intake.on_nik(conv, user)
        case Step.INTAKE_NAME:
            return intake.on_name(conv, user)
        case Step.INTAKE_PROFESSION:
            return intake.on_profession(conv, user)
        case Step.INTAKE_FACILITY:
            return intake.on_facility(conv, user)
        case Step.INTAKE_CONFIRM:
            return intake.on_confirm(conv, user, request_id, ctx.wa_id)
        case Step.INTAKE_WAITING:
            return Turn(conv, [intake.waiting(conv)])
        case Step.LOCATION:
            return scheduling.on_location_answer(conv, user, request_id, ctx)
        case Step.LOCATION_LIST:
            return scheduling.on_location_choice(conv, user, request_id, ctx)
        case Step.SLOT:
            return scheduling.on_slot_answer(conv, user, request_id, ctx)
        case Step.SLOT_LIST:
            return scheduling.on_slot_choice(conv, user, request_id, ctx)
    return Turn(conv, [text(lang, "unknown")])


def _booking_command(conv: Conversation, intent: Intent, request_id: str, ctx: Context) -> Decision:
    """BATAL, UBAH, TIKET: they act on a booking, so only once there is one."""
    if conv.step != Step.BOOKED:
        return Turn(conv, [text(conv.lang, "no_booking"), *prompt(conv)])
    if intent == Intent.CANCEL:
        return scheduling.cancel(conv, request_id)
    if intent == Intent.RESCHEDULE:
        return scheduling.reschedule(conv, ctx)
    return tickets.resend(conv, ctx.channel)


def _start(conv: Conversation, request_id: str, ctx: Context) -> Decision:
    """`VAKSIN`: start, or carry on from wherever the user is."""
    lang = conv.lang
    match conv.step:
        case Step.VERIFIED | Step.NOT_ELIGIBLE | Step.REFERRED:

            def begin(named: Conversation) -> Decision:
                said = [text(lang, "already_verified", **registration.summary(named))]
                return prepend(said, screening.begin(named, ctx))

            return registration.with_facility_name(conv, begin)
        case step if step in (*INTAKE_STEPS, *SCREENING_STEPS, *SCHEDULING_STEPS):
            return Turn(conv, [text(lang, "resume"), *prompt(conv)])
        case Step.INTAKE_WAITING:
            return Turn(conv, [intake.waiting(conv)])
        case Step.ELIGIBLE:
            return scheduling.offer_assigned(conv, request_id, ctx)
        case Step.BOOKED:
            return scheduling.bookings(conv)
        case Step.POSTPONED:
            rescreen_on = conv.data.get("rescreen_on")
            if rescreen_on and date.fromisoformat(rescreen_on) > ctx.today:
                when = date.fromisoformat(rescreen_on).strftime("%d-%m-%Y")
                return Turn(conv, [text(lang, "still_postponed", date=when)])
            return screening.begin(conv, ctx)
    return registration.start(conv)


def prompt(conv: Conversation) -> list[OutboundMessage]:
    """Re-ask what the current step is waiting for (after help, status or a language switch)."""
    if conv.step == Step.ASK_NAKES:
        return [registration.ask_nakes(conv.lang, "ask_nakes_again")]
    if conv.step == Step.ASK_SUFFIX:
        return [text(conv.lang, "ask_suffix")]
    if conv.step in SCHEDULING_STEPS:
        return scheduling.prompt(conv)
    if conv.step in (*INTAKE_STEPS, Step.INTAKE_WAITING):
        return intake.prompt(conv)
    return screening.prompt(conv)


def _status(conv: Conversation) -> OutboundMessage:
    lang = conv.lang
    if conv.step == Step.IDLE:
        return text(lang, "status_none")
    if conv.step in (Step.ASK_NAKES, Step.ASK_SUFFIX, *INTAKE_STEPS, *SCREENING_STEPS,
                     *SCHEDULING_STEPS):  # fmt: skip
        return text(lang, "status_pending")
    if conv.step == Step.INTAKE_WAITING:
        return intake.waiting(conv)
    key = {
        Step.VERIFIED: "already_verified",
        Step.ELIGIBLE: "already_eligible",
        Step.POSTPONED: "status_postponed",
        Step.NOT_ELIGIBLE: "status_not_eligible",
        Step.REFERRED: "status_referred",
    }[conv.step]
    rescreen_on = conv.data.get("rescreen_on")
    when = date.fromisoformat(rescreen_on).strftime("%d-%m-%Y") if rescreen_on else "-"
    return text(lang, key, date=when, **registration.summary(conv))


def busy(conv: Conversation) -> Turn:
    """What the user hears when their message could not be processed after every retry."""
    return Turn(conv, [text(conv.lang, "busy")])
