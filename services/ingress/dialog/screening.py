"""Screening steps: one message listing the conditions ("none apply" is the happy path), or the
questions one at a time, follow-ups only where relevant; then the outcome in plain words.

The questionnaire shown is kept in the conversation, so answers survive a restart and the user is
evaluated against exactly what they were asked.
"""

from __future__ import annotations

import re
from datetime import date

from services.common.contracts.notifier import OutboundMessage, TextMessage
from services.common.contracts.screening import (
    EvaluateRequest,
    EvaluateResult,
    Question,
    QuestionKind,
    Questionnaire,
    QuestionnaireRequest,
    ScreeningOutcome,
)
from services.ingress.catalog import t
from services.ingress.dialog import scheduling
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

BUTTONS_BODY_LIMIT = 1024
_DATE = re.compile(r"^(\d{1,2})[-/. ](\d{1,2})[-/. ](\d{4})$")
_ISO_DATE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")


def begin(conv: Conversation, ctx: Context) -> Decision:
    """Fetch the questionnaire in force today and show its one-message summary."""
    request = QuestionnaireRequest(lang=conv.lang, on=ctx.today)
    return Ask(request, lambda q: _show_summary(conv, q, ctx.today))


def _show_summary(conv: Conversation, questionnaire: Questionnaire, on: date) -> Turn:
    if questionnaire.error:
        # No rule set in force (an operator error): say so plainly; VAKSIN tries again later.
        return Turn(conv.at(Step.VERIFIED), [text(conv.lang, "screening_unavailable")])
    started = conv.at(
        Step.SCREENING_SUMMARY,
        questionnaire=questionnaire.model_dump(mode="json"),
        screening_on=on.isoformat(),
        answers={},
        current=None,
    )
    return Turn(started, summary_messages(started))


def relocalize(conv: Conversation) -> Decision:
    """After a language switch mid-screening: the same rule set, in the new language."""
    on = date.fromisoformat(conv.data["screening_on"])
    request = QuestionnaireRequest(lang=conv.lang, on=on)

    def then(questionnaire: Questionnaire) -> Turn:
        if questionnaire.error:
            return Turn(conv, prompt(conv))  # keep the language the questions were asked in
        updated = conv.at(conv.step, questionnaire=questionnaire.model_dump(mode="json"))
        return Turn(updated, prompt(updated))

    return Ask(request, then)


def summary_messages(conv: Conversation) -> list[OutboundMessage]:
    """The conditions and the 'none / some apply' buttons: one message when it fits WhatsApp's
    1,024-character limit for a message with buttons, else the list first, then the question."""
    lang, conditions = conv.lang, _questionnaire(conv).summary
    options = [("scr.none", "btn.none_apply"), ("scr.some", "btn.some_apply")]
    body = t(lang, "screening_intro", conditions=conditions)
    if len(body) <= BUTTONS_BODY_LIMIT:
        return [buttons(lang, "screening_intro", options, conditions=conditions)]
    return [
        TextMessage(body=t(lang, "screening_conditions", conditions=conditions)),
        buttons(lang, "screening_any_apply", options),
    ]


def prompt(conv: Conversation) -> list[OutboundMessage]:
    """What the current screening step is waiting for."""
    if conv.step == Step.SCREENING_SUMMARY:
        return summary_messages(conv)
    if conv.step == Step.SCREENING_QUESTION:
        return [_question_message(conv.lang, _current(conv))]
    return []


def on_summary_answer(
    conv: Conversation, user: UserInput, person_id: str, request_id: str, ctx: Context
) -> Decision:
    # Typed digits follow the buttons' order: 1 = none apply, 2 = some apply.
    choice = {"1": Intent.NONE_APPLY, "2": Intent.SOME_APPLY}.get(user.normalized, user.intent)
    questionnaire = _questionnaire(conv)
    if choice in (Intent.NONE_APPLY, Intent.NO):
        answers: dict[str, object] = {
            q.id: False for q in questionnaire.questions if q.ask_if is None
        }
        return _evaluate(conv, answers, person_id, request_id, ctx)
    if choice in (Intent.SOME_APPLY, Intent.YES):
        return _ask_next(conv, {}, person_id, request_id, ctx)
    return Turn(conv, summary_messages(conv))


def on_question_answer(
    conv: Conversation, user: UserInput, person_id: str, request_id: str, ctx: Context
) -> Decision:
    question = _current(conv)
    answers = dict(conv.data.get("answers", {}))
    if question.kind == QuestionKind.DATE:
        answered = parse_past_date(user.text, ctx.today)
        if answered is None:
            return Turn(
                conv, [text(conv.lang, "date_format"), _question_message(conv.lang, question)]
            )
        answers[question.id] = answered.isoformat()
    elif user.intent in (Intent.YES, Intent.NO):
        answers[question.id] = user.intent == Intent.YES
    elif (follow_up := _date_follow_up(conv, question, answers, user, ctx)) is not None:
        answers |= follow_up  # a date where yes/no stands: "yes", and the date asked next
    else:
        return Turn(
            conv, [text(conv.lang, "yes_no_please"), _question_message(conv.lang, question)]
        )
    return _ask_next(conv, answers, person_id, request_id, ctx)


def _date_follow_up(
    conv: Conversation,
    question: Question,
    answers: dict[str, object],
    user: UserInput,
    ctx: Context,
) -> dict[str, object] | None:
    """The answers a date typed at a yes/no question gives when "yes" leads to a date question
    (have you had COVID-19? -> when did you recover?): yes, and that date; else None."""
    typed = parse_past_date(user.text, ctx.today)
    if typed is None:
        return None
    with_yes = {**answers, question.id: True}
    follow = next_question(_questionnaire(conv).questions, with_yes)
    if (
        follow is None
        or follow.kind != QuestionKind.DATE
        or question.id not in (follow.ask_if or {})
    ):
        return None
    return {question.id: True, follow.id: typed.isoformat()}


def _ask_next(
    conv: Conversation,
    answers: dict[str, object],
    person_id: str,
    request_id: str,
    ctx: Context,
) -> Decision:
    question = next_question(_questionnaire(conv).questions, answers)
    if question is None:
        return _evaluate(conv, answers, person_id, request_id, ctx, recap=True)
    asking = conv.at(Step.SCREENING_QUESTION, answers=answers, current=question.id)
    return Turn(asking, [_question_message(conv.lang, question)])


def next_question(questions: list[Question], answers: dict[str, object]) -> Question | None:
    """The first unanswered question whose conditions hold (follow-ups only where relevant)."""
    for question in questions:
        if question.id in answers:
            continue
        if question.ask_if and any(answers.get(k) != v for k, v in question.ask_if.items()):
            continue
        return question
    return None


def _evaluate(
    conv: Conversation,
    answers: dict[str, object],
    person_id: str,
    request_id: str,
    ctx: Context,
    *,
    recap: bool = False,
) -> Ask:
    questionnaire = _questionnaire(conv)
    birth_date = conv.data.get("birth_date")
    request = EvaluateRequest(
        request_id=request_id,
        person_id=person_id,
        rule_set_id=questionnaire.rule_set_id,
        lang=conv.lang,
        on=date.fromisoformat(conv.data["screening_on"]),
        birth_date=date.fromisoformat(birth_date) if birth_date else None,
        answers=answers,  # type: ignore[arg-type]  # iso dates are parsed by the model
    )
    answered = conv.at(conv.step, answers=answers, current=None)
    said = [_recap(conv.lang, questionnaire, answers)] if recap else []
    return Ask(request, lambda result: outcome(answered, result, said, request_id, ctx))


def outcome(
    conv: Conversation,
    result: EvaluateResult,
    said: list[OutboundMessage],
    request_id: str,
    ctx: Context,
) -> Decision:
    lang = conv.lang
    reasons = "\n".join(f"- {r}" for r in result.reason_texts) or "-"
    match result.outcome:
        case ScreeningOutcome.ELIGIBLE:
            checks = ", ".join(result.on_site_checks) or "-"
            done = conv.at(Step.ELIGIBLE, screening_id=result.screening_id)
            eligible = [*said, text(lang, "screening_eligible", checks=checks)]
            # The place and its earliest time at once (a seat held): confirming is the next turn.
            return prepend(eligible, scheduling.offer_assigned(done, request_id, ctx))
        case ScreeningOutcome.POSTPONE:
            when = result.rescreen_on.strftime("%d-%m-%Y") if result.rescreen_on else "-"
            done = conv.at(
                Step.POSTPONED,
                screening_id=result.screening_id,
                rescreen_on=result.rescreen_on.isoformat() if result.rescreen_on else None,
            )
            return Turn(done, [*said, text(lang, "screening_postpone", reasons=reasons, date=when)])
        case ScreeningOutcome.NOT_ELIGIBLE:
            done = conv.at(Step.NOT_ELIGIBLE, screening_id=result.screening_id)
            return Turn(done, [*said, text(lang, "screening_not_eligible", reasons=reasons)])
        case ScreeningOutcome.REFER:
            done = conv.at(Step.REFERRED, screening_id=result.screening_id)
            return Turn(done, [*said, text(lang, "screening_refer", reasons=reasons)])
        case _:
            # Refused (a rule set withdrawn meanwhile, say): start the screening over.
            return Turn(conv.at(Step.VERIFIED), [text(lang, "screening_restart")])


def parse_past_date(typed: str, today: date) -> date | None:
    """A date as people type it (31-01-2021, 31/1/2021, 2021-01-31), not in the future."""
    typed = typed.strip()
    if m := _DATE.match(typed):
        day, month, year = (int(g) for g in m.groups())
    elif m := _ISO_DATE.match(typed):
        year, month, day = (int(g) for g in m.groups())
    else:
        return None
    try:
        value = date(year, month, day)
    except ValueError:
        return None
    return value if date(1900, 1, 1) <= value <= today else None


def _recap(lang: str, questionnaire: Questionnaire, answers: dict[str, object]) -> OutboundMessage:
    lines = []
    for question in questionnaire.questions:
        answer = answers.get(question.id)
        if answer is True:
            lines.append(f"- {question.short}: {t(lang, 'btn.yes_short')}")
        elif isinstance(answer, str):
            lines.append(f"- {question.short}: {date.fromisoformat(answer).strftime('%d-%m-%Y')}")
    listed = "\n".join(lines) or t(lang, "recap_none")
    return text(lang, "screening_recap", answers=listed)


def _question_message(lang: str, question: Question) -> OutboundMessage:
    if question.kind == QuestionKind.DATE:
        return text(lang, "screening_date_question", question=question.text)
    return buttons(
        lang,
        "screening_question",
        [("scr.yes", "btn.yes_short"), ("scr.no", "btn.no_short")],
        question=question.text,
    )


def _questionnaire(conv: Conversation) -> Questionnaire:
    return Questionnaire.model_validate(conv.data["questionnaire"])


def _current(conv: Conversation) -> Question:
    current = conv.data.get("current")
    return next(q for q in _questionnaire(conv).questions if q.id == current)
