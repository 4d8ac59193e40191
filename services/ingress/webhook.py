"""Pure webhook logic: Meta's signature check and the envelope parser. No IO here.

The parser walks every entry, change, message and status, keeps what the dialog and the notifier
need, and ignores anything else (other fields, unknown types, placeholder ids) without failing:
a signed notification is always acknowledged, whatever it holds.

What it keeps is cleaned so that it can always be stored and handled downstream: strings become
valid UTF-8 without NUL, texts are cut at WhatsApp's 4,096 characters, other strings and numbers
are bounded (see the limits below). Items whose ids are out of bounds are ignored.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from services.common.contracts.whatsapp import DeliveryStatus, InboundMessage


class Signature(Enum):
    OK = "ok"
    MISSING = "missing"
    INVALID = "invalid"


def sign(body: bytes, app_secret: str) -> str:
    """The `X-Hub-Signature-256` value Meta sends for `body`."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def check_signature(body: bytes, header: str | None, app_secret: str) -> Signature:
    """HMAC-SHA256 over the raw bytes (before any JSON parsing), compared in constant time."""
    if not header:
        return Signature.MISSING
    expected = sign(body, app_secret)
    if hmac.compare_digest(header.strip().encode(), expected.encode()):
        return Signature.OK
    return Signature.INVALID


def check_handshake(params: dict[str, str], verify_token: str) -> str | None:
    """The challenge to echo for a valid subscription handshake, else None."""
    token = params.get("hub.verify_token", "")
    if params.get("hub.mode") == "subscribe" and hmac.compare_digest(
        token.encode(), verify_token.encode()
    ):
        return params.get("hub.challenge", "")
    return None


# WhatsApp's own limit on a text message body; a longer text is not something a user typed.
TEXT_MAX = 4096
# Reply ids, titles, types and statuses: Meta caps reply ids at 256 characters (titles at 20-24),
# so 256 keeps everything real and bounds what a hostile body can make us store and log.
SHORT_MAX = 256
# wamid (about 60 characters), wa_id (at most 15 digits) and phone_number_id (about 15 digits).
# An id longer than this is not Meta's: the item is ignored rather than cut, because a cut id is a
# different id (wamids are the dedupe key). 256 characters, 1 KB of UTF-8 at most, also stays far
# below Postgres's b-tree entry limit (about 2.7 KB) where the dialog and notifier index them.
ID_MAX = 256
# A failed status carries one error in practice; the cap bounds what a body can make us publish.
ERROR_CODES_MAX = 16
# Postgres `integer` (error codes) and the range `datetime.fromtimestamp` accepts (timestamps):
# a number outside it would fail every delivery downstream, so it becomes 0 ("unknown") here.
INT32_MAX = 2**31 - 1
TIMESTAMP_MAX = 253402300799  # 9999-12-31T23:59:59Z

# json.loads leaves lone UTF-16 surrogates ("\ud800") in str, which cannot be encoded as UTF-8 (so
# never published); Postgres text cannot hold NUL. Both become U+FFFD.
_UNSTORABLE = re.compile(r"[\ud800-\udfff\x00]")


def clean_text(value: str, limit: int) -> str:
    """`value` as valid UTF-8 without NUL, cut to `limit` characters."""
    return _UNSTORABLE.sub("\ufffd", value[:limit])


@dataclass
class Notification:
    messages: list[InboundMessage] = field(default_factory=list)
    statuses: list[DeliveryStatus] = field(default_factory=list)
    ignored: int = 0  # changes or items we do not act on (other fields, malformed items)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _int(value: Any, maximum: int, minimum: int = 0) -> int:
    """An int in [minimum, maximum] (from a number or a numeric string), else 0."""
    if isinstance(value, str) and len(value) > 32:
        return 0  # far beyond any bound below; int() of a long digit string costs time
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):  # None, "x", NaN, Infinity
        return 0
    return number if minimum <= number <= maximum else 0


def _str(value: Any, limit: int) -> str | None:
    return clean_text(value, limit) if isinstance(value, str) else None


def _id(value: Any) -> str | None:
    """A non-empty id of plausible length, cleaned; None if there is none."""
    if not isinstance(value, str) or not value or len(value) > ID_MAX:
        return None
    return clean_text(value, ID_MAX)


def _text_and_reply(message: dict[str, Any]) -> tuple[str | None, str | None]:
    kind = message.get("type")
    if kind == "text":
        return _str(_as_dict(message.get("text")).get("body"), TEXT_MAX), None
    if kind == "interactive":
        interactive = _as_dict(message.get("interactive"))
        reply = _as_dict(interactive.get("button_reply") or interactive.get("list_reply"))
        return _str(reply.get("title"), SHORT_MAX), _str(reply.get("id"), SHORT_MAX)
    if kind == "button":  # quick-reply button of a template message
        button = _as_dict(message.get("button"))
        return _str(button.get("text"), SHORT_MAX), _str(button.get("payload"), SHORT_MAX)
    return None, None


def _message(raw: Any, phone_number_id: str) -> InboundMessage | None:
    message = _as_dict(raw)
    wamid, sender = _id(message.get("id")), _id(message.get("from"))
    if wamid is None or sender is None:
        return None
    text, reply_id = _text_and_reply(message)
    return InboundMessage(
        wamid=wamid,
        wa_id=sender,
        phone_number_id=phone_number_id,
        timestamp=_int(message.get("timestamp"), TIMESTAMP_MAX),
        type=_str(message.get("type"), SHORT_MAX) or "unknown",
        text=text,
        reply_id=reply_id,
    )


def _status(raw: Any) -> DeliveryStatus | None:
    status = _as_dict(raw)
    wamid, state = _id(status.get("id")), _str(status.get("status"), SHORT_MAX)
    if wamid is None or state is None:
        return None
    errors = [e for e in _as_list(status.get("errors")) if isinstance(e, dict)][:ERROR_CODES_MAX]
    return DeliveryStatus(
        wamid=wamid,
        status=state,
        timestamp=_int(status.get("timestamp"), TIMESTAMP_MAX),
        recipient_id=_id(status.get("recipient_id")),
        error_codes=[_int(e.get("code"), INT32_MAX, -INT32_MAX - 1) for e in errors],
    )


def _phone_number_id(metadata: dict[str, Any]) -> str:
    value = metadata.get("phone_number_id")
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return _id(value) or ""


def parse_notification(payload: Any) -> Notification:
    result = Notification()
    for entry in _as_list(_as_dict(payload).get("entry")):
        for change in _as_list(_as_dict(entry).get("changes")):
            change = _as_dict(change)
            value = _as_dict(change.get("value"))
            if change.get("field") != "messages":
                result.ignored += 1
                continue
            phone_number_id = _phone_number_id(_as_dict(value.get("metadata")))
            for raw in _as_list(value.get("messages")):
                parsed = _message(raw, phone_number_id)
                if parsed is None:
                    result.ignored += 1
                else:
                    result.messages.append(parsed)
            for raw in _as_list(value.get("statuses")):
                parsed_status = _status(raw)
                if parsed_status is None:
                    result.ignored += 1
                else:
                    result.statuses.append(parsed_status)
    return result
