"""Registering an unlisted health worker in the chat: NIK (checked by identity, never echoed),
full name, profession, workplace facility, a read-back, then the request goes to the operators'
verification queue. Their decision arrives later as `identity.evt.intake_decided` (see
`services/ingress/intake_decisions.py`).

The workplace is typed as a facility code or searched by name (words of the name, address or
regency, abbreviations understood; scheduler.rpc.facilities_search): one match is taken, up to 10
are listed (`fac.<code>`, picked by tap, row number or code), more ask for more words; when none
has every word, the closest few (typos) are listed to pick from, never taken unasked.

The 16-digit NIK typed where "register now?" stands is taken as "yes" plus the NIK. While the
request waits for an operator, every message is told since when and what happens next.

The NIK typed by the user is kept in the conversation only until the request is submitted.
"""

from __future__ import annotations

import re
from datetime import datetime

from services.common.clock import WIB
from services.common.contracts.identity import (
    PROFESSIONS,
    CheckNikRequest,
    CheckNikResult,
    IntakeOutcome,
    IntakeSubmitRequest,
    IntakeSubmitResult,
    find_profession,
)
from services.common.contracts.notifier import (
    Button,
    ButtonsMessage,
    ListMessage,
    ListRow,
    ListSection,
    OutboundMessage,
)
from services.common.contracts.scheduler import (
    FACILITY_QUERY_MAX,
    FACILITY_QUERY_MIN,
    ErrorCode,
    Facility,
    FacilityReply,
    FacilityRequest,
    FacilitySearchReply,
    FacilitySearchRequest,
    error_code,
)
from services.ingress.catalog import t
from services.ingress.dialog.model import (
    LIST_ROWS,
    Ask,
    Conversation,
    Decision,
    Intent,
    Step,
    Turn,
    UserInput,
    chosen_row,
    cut,
    list_message,
    text,
)

NIK_DIGITS = 16
_NAME = re.compile(r"^[^\W\d_][^\d_]{1,99}$")  # letters, spaces, dots, apostrophes, hyphens
_CODE = re.compile(r"^[A-Za-z0-9._-]{1,32}$")
_NO_LIST = {"rows": None, "list_intro": None, "list_kind": None}  # no workplace list shown


def offer(conv: Conversation) -> Turn:
    """The number is not in the registry: offer to register it."""
    asking = Conversation(Step.INTAKE_OFFER, conv.lang)
    return Turn(asking, [_offer_question(conv.lang)])


def _offer_question(lang: str) -> ButtonsMessage:
    return ButtonsMessage(
        body=t(lang, "intake_offer"),
        buttons=[
            Button(id="intake.yes", title=t(lang, "btn.intake_yes")),
            Button(id="intake.no", title=t(lang, "btn.intake_no")),
        ],
    )


def on_offer_answer(conv: Conversation, user: UserInput) -> Decision:
    if user.is_number(NIK_DIGITS):  # the NIK typed at once: "yes", and the next answer
        return on_nik(conv.at(Step.INTAKE_NIK), user)
    if user.intent == Intent.YES:
        return Turn(conv.at(Step.INTAKE_NIK), [text(conv.lang, "intake_ask_nik")])
    if user.intent == Intent.NO:
        return Turn(Conversation(Step.IDLE, conv.lang), [text(conv.lang, "not_listed")])
    return Turn(conv, [_offer_question(conv.lang)])


def on_nik(conv: Conversation, user: UserInput) -> Decision:
    typed = user.digits
    return Ask(CheckNikRequest(nik=typed), lambda result: _after_nik(conv, typed, result))


def _after_nik(conv: Conversation, typed: str, result: CheckNikResult) -> Turn:
    lang = conv.lang
    if not result.valid:
        key = f"nik_invalid.{result.code}" if result.code else "nik_invalid.length"
        return Turn(conv, [text(lang, key), text(lang, "intake_ask_nik")])
    noted = conv.at(Step.INTAKE_NAME, nik=typed, masked_nik=result.masked_nik,
                    birth_date=result.birth_date.isoformat() if result.birth_date else None,
                    sex=result.sex)  # fmt: skip
    return Turn(noted, [text(lang, "intake_ask_name")])


def on_name(conv: Conversation, user: UserInput) -> Turn:
    name = " ".join(user.text.split())
    if not _NAME.match(name):
        return Turn(conv, [text(conv.lang, "intake_name_invalid")])
    noted = conv.at(Step.INTAKE_PROFESSION, full_name=name)
    return Turn(noted, [_professions(conv.lang)])


def _professions(lang: str) -> ListMessage:
    rows = [ListRow(id=f"prof.{p.id}", title=p.label(lang)) for p in PROFESSIONS]
    return ListMessage(
        body=t(lang, "intake_ask_profession"),
        button=t(lang, "list.prof_button"),
        sections=[ListSection(title=t(lang, "list.prof_section"), rows=rows)],
    )


def on_profession(conv: Conversation, user: UserInput) -> Turn:
    profession = find_profession(user.reply_id or user.text)
    if profession is None:
        return Turn(conv, [_professions(conv.lang)])
    noted = conv.at(Step.INTAKE_FACILITY, profession=profession.id, **_NO_LIST)
    return Turn(noted, [text(conv.lang, "intake_ask_facility")])


def on_facility(conv: Conversation, user: UserInput) -> Decision:
    """A row of the list shown (tapped, its number or its code), a facility code, or a search."""
    typed = " ".join(user.text.split())
    picked = chosen_row(conv, user) or (user.reply_id if _is_row(user.reply_id) else None)
    if picked is not None:
        return _look_up(conv, picked.removeprefix("fac."), then_search="")
    if conv.data.get("rows") and typed.isdigit() and len(typed) <= 2:  # a row that is not there
        return Turn(conv, [text(conv.lang, "choose_from_list"), list_message(conv)])
    if _CODE.match(typed):
        return _look_up(conv, typed.upper(), then_search=typed)
    return _search(conv, typed)


def _is_row(reply_id: str | None) -> bool:
    """A tap on a row of a workplace list, even one older than the list the state holds."""
    return bool(reply_id and reply_id.startswith("fac."))


def _look_up(conv: Conversation, code: str, then_search: str) -> Decision:
    """The facility with this code; when there is none, search for `then_search` instead."""

    def then(reply: FacilityReply) -> Decision:
        if reply.facility is None:
            return _search(conv, then_search)
        return _take(conv, reply.facility)

    return Ask(FacilityRequest(code=code), then)


def _search(conv: Conversation, typed: str) -> Decision:
    if len(typed) < FACILITY_QUERY_MIN:
        return Turn(conv.at(conv.step, **_NO_LIST), [text(conv.lang, "intake_facility_unknown")])
    request = FacilitySearchRequest(query=typed[:FACILITY_QUERY_MAX], limit=LIST_ROWS)
    return Ask(request, lambda reply: _after_search(conv, reply))


def _after_search(conv: Conversation, reply: FacilitySearchReply) -> Turn:
    lang, unlisted = conv.lang, conv.at(conv.step, **_NO_LIST)
    if reply.error and error_code(reply.error) != ErrorCode.INVALID:
        return Turn(conv, [text(lang, "busy")])
    if reply.total == 1 and reply.facilities and not reply.approximate:
        return _take(conv, reply.facilities[0])
    if reply.total > LIST_ROWS and not reply.approximate:
        return Turn(unlisted, [text(lang, "intake_facility_too_many", count=reply.total)])
    if not reply.facilities:
        return Turn(unlisted, [text(lang, "intake_facility_unknown")])
    intro = "intake_facility_closest" if reply.approximate else "intake_facility_list_intro"
    listing = conv.at(conv.step, rows=[_row(f) for f in reply.facilities],
                      list_intro=intro, list_kind="workplaces")  # fmt: skip
    return Turn(listing, [list_message(listing)])


def _row(facility: Facility) -> dict[str, str]:
    title = cut(facility.name, 24)
    # Names cut short often differ only at the end (Tebet Barat, Tebet Timur): then say it whole.
    detail = facility.name if title != facility.name else facility.address
    return {
        "id": f"fac.{facility.code}",
        "title": title,
        "description": cut(f"{detail}, {facility.regency}", 72),
    }


def _take(conv: Conversation, facility: Facility) -> Turn:
    noted = conv.at(Step.INTAKE_CONFIRM, facility_code=facility.code,
                    facility_name=facility.name, **_NO_LIST)  # fmt: skip
    return Turn(noted, [_read_back(noted)])


def _read_back(conv: Conversation) -> ButtonsMessage:
    lang, data = conv.lang, conv.data
    profession = find_profession(data["profession"])
    sex = t(lang, "sex.female") if data.get("sex") == "F" else t(lang, "sex.male")
    body = t(
        lang,
        "intake_read_back",
        nik=data["masked_nik"],
        born=_born(data),
        sex=sex,
        name=data["full_name"],
        profession=profession.label(lang) if profession else "-",
        facility=f"{data['facility_name']} ({data['facility_code']})",
    )
    return ButtonsMessage(
        body=body,
        buttons=[
            Button(id="intake.ok", title=t(lang, "btn.intake_ok")),
            Button(id="intake.fix", title=t(lang, "btn.intake_fix")),
        ],
    )


def _born(data: dict) -> str:
    born = data.get("birth_date")
    return "-" if not born else "-".join(reversed(born.split("-")))


def on_confirm(conv: Conversation, user: UserInput, request_id: str, wa_id: str) -> Decision:
    choice = {"1": Intent.YES, "2": Intent.NO}.get(user.normalized, user.intent)
    if user.reply_id == "intake.fix" or choice == Intent.NO:
        return Turn(conv.at(Step.INTAKE_NIK, nik=None), [text(conv.lang, "intake_ask_nik")])
    if user.reply_id != "intake.ok" and choice != Intent.YES:
        return Turn(conv, [_read_back(conv)])
    data = conv.data
    request = IntakeSubmitRequest(request_id=request_id, wa_id=wa_id, nik=data["nik"],
                                  full_name=data["full_name"], profession=data["profession"],
                                  facility_code=data["facility_code"], lang=conv.lang)  # fmt: skip
    return Ask(request, lambda result: _after_submit(conv, result))


def _after_submit(conv: Conversation, result: IntakeSubmitResult) -> Turn:
    lang = conv.lang
    # The NIK leaves the conversation with the request, whatever the outcome.
    since = result.submitted_at.isoformat() if result.submitted_at else None
    done = Conversation(Step.INTAKE_WAITING, lang,
                        {"masked_nik": result.masked_nik, "intake_since": since})  # fmt: skip
    match result.outcome:
        case IntakeOutcome.SUBMITTED:
            return Turn(done, [text(lang, "intake_submitted", nik=result.masked_nik or "-")])
        case IntakeOutcome.DUPLICATE_OPEN:
            return Turn(done, [waiting(done)])
        case IntakeOutcome.CANNOT_MATCH:
            return Turn(Conversation(Step.IDLE, lang), [text(lang, "intake_cannot_match")])
        case IntakeOutcome.LIMIT_REACHED:
            return Turn(Conversation(Step.IDLE, lang), [text(lang, "intake_limit")])
        case IntakeOutcome.ALREADY_LISTED:
            return Turn(Conversation(Step.ASK_SUFFIX, lang), [text(lang, "ask_suffix")])
        case IntakeOutcome.INVALID:
            return Turn(
                conv.at(Step.INTAKE_NIK, nik=None),
                [text(lang, "intake_invalid"), text(lang, "intake_ask_nik")],
            )
        case _:
            return Turn(conv, [text(lang, "busy")])


def waiting(conv: Conversation) -> OutboundMessage:
    """Where a request waiting for an operator stands: since when, and what happens next."""
    nik = conv.data.get("masked_nik") or "-"
    since = conv.data.get("intake_since")
    if not since:  # a request submitted before its time was kept in the conversation
        return text(conv.lang, "intake_waiting_undated", nik=nik)
    when = datetime.fromisoformat(since).astimezone(WIB).strftime("%d-%m-%Y %H:%M")
    return text(conv.lang, "intake_waiting", nik=nik, since=when)


def prompt(conv: Conversation) -> list[OutboundMessage]:
    lang = conv.lang
    match conv.step:
        case Step.INTAKE_OFFER:
            return [_offer_question(lang)]
        case Step.INTAKE_NIK:
            return [text(lang, "intake_ask_nik")]
        case Step.INTAKE_NAME:
            return [text(lang, "intake_ask_name")]
        case Step.INTAKE_PROFESSION:
            return [_professions(lang)]
        case Step.INTAKE_FACILITY if conv.data.get("rows"):
            return [list_message(conv)]
        case Step.INTAKE_FACILITY:
            return [text(lang, "intake_ask_facility")]
        case Step.INTAKE_CONFIRM:
            return [_read_back(conv)]
        case Step.INTAKE_WAITING:
            return [waiting(conv)]
    return []
