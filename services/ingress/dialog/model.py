"""The dialog's vocabulary: steps, conversation state, what the user sent, and what a turn does.

A step function is pure: it returns either a `Turn` (the new state and the replies) or an `Ask`
(a request for another service, and what to do with its answer). The handler performs the request
and calls `then` with the reply, until it reaches a `Turn`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ValidationError

from services.common.contracts.notifier import (
    Button,
    ButtonsMessage,
    ListMessage,
    ListRow,
    ListSection,
    OutboundMessage,
    TextMessage,
)
from services.ingress.catalog import DEFAULT_LANGUAGE, t


class Step(StrEnum):
    IDLE = "idle"  # nothing asked: keywords start things
    ASK_NAKES = "ask_nakes"  # "are you a health worker?"
    ASK_SUFFIX = "ask_suffix"  # "last 6 digits of your NIK"
    LOCKED = "locked"  # too many wrong suffixes: every message is told until when (identity)
    INTAKE_OFFER = "intake_offer"  # not in the registry: "register as a health worker?"
    INTAKE_NIK = "intake_nik"
    INTAKE_NAME = "intake_name"
    INTAKE_PROFESSION = "intake_profession"
    INTAKE_FACILITY = "intake_facility"
    INTAKE_CONFIRM = "intake_confirm"  # the read-back: send or correct
    INTAKE_WAITING = "intake_waiting"  # in the operators' verification queue
    VERIFIED = "verified"  # verified, screening not (yet) started
    SCREENING_SUMMARY = "screening_summary"  # "do any of these conditions apply?"
    SCREENING_QUESTION = "screening_question"  # one question at a time
    ELIGIBLE = "eligible"  # screened, no place yet (or none free)
    LOCATION = "location"  # "vaccinated at your facility?" (loc.ok / loc.other)
    LOCATION_LIST = "location_list"  # a list of facilities (loc.<code>)
    SLOT = "slot"  # place and time, a seat held: slot.ok / slot.other (times) / loc.other (places)
    SLOT_LIST = "slot_list"  # a list of sessions (slot.<session_id>)
    BOOKED = "booked"
    POSTPONED = "postponed"
    NOT_ELIGIBLE = "not_eligible"
    REFERRED = "referred"


class Intent(StrEnum):
    START = "start"
    HELP = "help"
    STATUS = "status"
    CANCEL = "cancel"  # BATAL
    RESCHEDULE = "reschedule"  # UBAH
    TICKET = "ticket"  # TIKET
    LANG_ID = "lang_id"
    LANG_EN = "lang_en"
    YES = "yes"
    NO = "no"
    NONE_APPLY = "none_apply"
    SOME_APPLY = "some_apply"
    OTHER_CHOICE = "other_choice"  # slot.other: show me other times (at LOCATION: other places)
    OTHER_PLACE = "other_place"  # loc.other: show me other places
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
    "tiket": Intent.TICKET,
    "ticket": Intent.TICKET,
    "batal": Intent.CANCEL,
    "cancel": Intent.CANCEL,
    "ubah": Intent.RESCHEDULE,
    "reschedule": Intent.RESCHEDULE,
    "intake.yes": Intent.YES,
    "intake.no": Intent.NO,
    "intake.ok": Intent.YES,
    "intake.fix": Intent.NO,
    "loc.ok": Intent.YES,
    "slot.ok": Intent.YES,
    "loc.other": Intent.OTHER_PLACE,
    "lokasi lain": Intent.OTHER_PLACE,
    "tempat lain": Intent.OTHER_PLACE,
    "another place": Intent.OTHER_PLACE,
    "other place": Intent.OTHER_PLACE,
    "slot.other": Intent.OTHER_CHOICE,
    "lain": Intent.OTHER_CHOICE,
    "lainnya": Intent.OTHER_CHOICE,
    "jadwal lain": Intent.OTHER_CHOICE,
    "waktu lain": Intent.OTHER_CHOICE,
    "other": Intent.OTHER_CHOICE,
    "other times": Intent.OTHER_CHOICE,
    "another time": Intent.OTHER_CHOICE,
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
    "scr.yes": Intent.YES,
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
    "scr.no": Intent.NO,
    "scr.none": Intent.NONE_APPLY,
    "tidak ada": Intent.NONE_APPLY,
    "none": Intent.NONE_APPLY,
    "tidak ada yang sesuai": Intent.NONE_APPLY,
    "none apply": Intent.NONE_APPLY,
    "scr.some": Intent.SOME_APPLY,
    "ada": Intent.SOME_APPLY,
    "some": Intent.SOME_APPLY,
    "ada yang sesuai": Intent.SOME_APPLY,
    "some apply": Intent.SOME_APPLY,
}

# Message types that need no answer: a user's reaction, an edit or deletion, a number change.
SILENT_TYPES = frozenset({"reaction", "system", "revoke", "edit", "ephemeral"})

_SPACES = re.compile(r"\s+")


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

    def is_number(self, length: int) -> bool:
        """The text is a number of exactly `length` digits (spaces, dots and dashes aside)."""
        digits = self.digits
        return len(digits) == length and digits.isascii() and digits.isdigit()

    @property
    def intent(self) -> Intent:
        if self.reply_id and self.reply_id in KEYWORDS:
            return KEYWORDS[self.reply_id]
        return KEYWORDS.get(self.normalized, Intent.OTHER)


@dataclass(frozen=True)
class Conversation:
    step: Step = Step.IDLE
    lang: str = DEFAULT_LANGUAGE
    data: dict[str, Any] = field(default_factory=dict)

    def at(self, step: Step, **data: Any) -> Conversation:
        """This conversation moved to `step`, with `data` merged into what it knows."""
        return replace(self, step=step, data={**self.data, **data})


@dataclass(frozen=True)
class Turn:
    conversation: Conversation
    replies: list[OutboundMessage]


@dataclass(frozen=True)
class Ask:
    """Ask another service `request`; `then` turns its reply into the next decision."""

    request: BaseModel
    then: Callable[[Any], Decision]


Decision = Turn | Ask


def prepend(replies: Sequence[OutboundMessage], decision: Decision) -> Decision:
    """The same decision, with `replies` sent before whatever it finally says."""
    if not replies:
        return decision
    if isinstance(decision, Turn):
        return Turn(decision.conversation, [*replies, *decision.replies])
    return Ask(decision.request, lambda reply: prepend(replies, decision.then(reply)))


# A text followed by one of these can be said as one message: the text leads its body.
_JOINABLE = (TextMessage, ButtonsMessage, ListMessage)


def coalesce(replies: Sequence[OutboundMessage]) -> list[OutboundMessage]:
    """A turn's replies in as few messages as they fit: a text followed by a text, buttons or a
    list becomes the start of that message's body (a blank line between) when the joined body
    stays within WhatsApp's limit for that kind (the contract's own validation decides). Every
    message saved is one fewer bubble for the user and one fewer against the number's throughput,
    which Meta counts in and out together."""
    said: list[OutboundMessage] = []
    for reply in replies:
        before = said[-1] if said else None
        if isinstance(before, TextMessage) and isinstance(reply, _JOINABLE):
            joined = {**reply.model_dump(), "body": f"{before.body}\n\n{reply.body}"}
            try:
                said[-1] = type(reply).model_validate(joined)
                continue
            except ValidationError:
                pass  # too long together: two messages
        said.append(reply)
    return said


@dataclass(frozen=True)
class Context:
    """What a step knows besides the conversation: who is writing, by which channel, and the
    date in Jakarta."""

    today: date
    wa_id: str = ""
    channel: str = "whatsapp"


def text(lang: str, key: str, **params: object) -> TextMessage:
    return TextMessage(body=t(lang, key, **params))


def buttons(
    lang: str, key: str, options: list[tuple[str, str]], **params: object
) -> ButtonsMessage:
    """A message with reply buttons: (reply id, catalog key of its title)."""
    return ButtonsMessage(
        body=t(lang, key, **params),
        buttons=[Button(id=reply_id, title=t(lang, title)) for reply_id, title in options],
    )


# --- lists: rows kept in the conversation (`rows`, `list_intro`, `list_kind`), so a typed row
# number or id works as well as a tap ---------------------------------------------------------

LIST_ROWS = 10  # WhatsApp: at most 10 rows in a list message


def list_message(conv: Conversation) -> ListMessage:
    lang, kind = conv.lang, conv.data["list_kind"]
    rows = [ListRow(**row) for row in conv.data["rows"]]
    return ListMessage(
        body=t(lang, conv.data["list_intro"]),
        button=t(lang, f"list.{kind}_button"),
        sections=[ListSection(title=t(lang, f"list.{kind}_section"), rows=rows)],
    )


def chosen_row(conv: Conversation, user: UserInput) -> str | None:
    """The id of the row the user picked: tapped, or typed as its number or its id."""
    ids = [row["id"] for row in conv.data.get("rows") or []]
    if user.reply_id in ids:
        return user.reply_id
    typed = user.normalized
    if typed.isdigit() and 1 <= int(typed) <= len(ids):
        return ids[int(typed) - 1]
    matches = [i for i in ids if i.split(".", 1)[1].lower() == typed]
    return matches[0] if matches else None


def cut(value: str, limit: int) -> str:
    """`value` within a WhatsApp field limit, with an ellipsis when it had to be cut."""
    return value if len(value) <= limit else value[: limit - 1] + "…"
