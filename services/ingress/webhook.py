"""Pure webhook logic: Meta's signature check and the envelope parser. No IO here.

The parser walks every entry, change, message and status, keeps what the dialog and the notifier
need, and ignores anything else (other fields, unknown types, placeholder ids) without failing:
a signed notification is always acknowledged, whatever it holds.
"""

from __future__ import annotations

import hashlib
import hmac
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


@dataclass
class Notification:
    messages: list[InboundMessage] = field(default_factory=list)
    statuses: list[DeliveryStatus] = field(default_factory=list)
    ignored: int = 0  # changes or items we do not act on (other fields, malformed items)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _text_and_reply(message: dict[str, Any]) -> tuple[str | None, str | None]:
    kind = message.get("type")
    if kind == "text":
        return _as_dict(message.get("text")).get("body"), None
    if kind == "interactive":
        interactive = _as_dict(message.get("interactive"))
        reply = _as_dict(interactive.get("button_reply") or interactive.get("list_reply"))
        return reply.get("title"), reply.get("id")
    if kind == "button":  # quick-reply button of a template message
        button = _as_dict(message.get("button"))
        return button.get("text"), button.get("payload")
    return None, None


def _message(raw: Any, phone_number_id: str) -> InboundMessage | None:
    message = _as_dict(raw)
    wamid, sender = message.get("id"), message.get("from")
    if not isinstance(wamid, str) or not wamid or not isinstance(sender, str) or not sender:
        return None
    text, reply_id = _text_and_reply(message)
    return InboundMessage(
        wamid=wamid,
        wa_id=sender,
        phone_number_id=phone_number_id,
        timestamp=_int(message.get("timestamp")),
        type=str(message.get("type") or "unknown"),
        text=text if isinstance(text, str) else None,
        reply_id=reply_id if isinstance(reply_id, str) else None,
    )


def _status(raw: Any) -> DeliveryStatus | None:
    status = _as_dict(raw)
    wamid, state = status.get("id"), status.get("status")
    if not isinstance(wamid, str) or not wamid or not isinstance(state, str):
        return None
    recipient = status.get("recipient_id")
    return DeliveryStatus(
        wamid=wamid,
        status=state,
        timestamp=_int(status.get("timestamp")),
        recipient_id=recipient if isinstance(recipient, str) else None,
        error_codes=[
            _int(e.get("code")) for e in _as_list(status.get("errors")) if isinstance(e, dict)
        ],
    )


def parse_notification(payload: Any) -> Notification:
    result = Notification()
    for entry in _as_list(_as_dict(payload).get("entry")):
        for change in _as_list(_as_dict(entry).get("changes")):
            change = _as_dict(change)
            value = _as_dict(change.get("value"))
            if change.get("field") != "messages":
                result.ignored += 1
                continue
            phone_number_id = str(_as_dict(value.get("metadata")).get("phone_number_id") or "")
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
