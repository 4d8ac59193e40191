"""The notifier's pure rules: how a send command becomes a Cloud API request body, which Graph
errors are worth retrying and after how long, and the order of delivery statuses. No IO here."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from services.common.contracts.notifier import (
    ButtonsMessage,
    ListMessage,
    ListRow,
    SendMessage,
    TextMessage,
)

# --- rendering ------------------------------------------------------------------------------


def to_graph_payload(cmd: SendMessage) -> dict[str, Any]:
    """The JSON body of `POST /{phone_number_id}/messages` for one command."""
    payload: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": cmd.to,
    }
    message = cmd.message
    if isinstance(message, TextMessage):
        payload["type"] = "text"
        payload["text"] = {"preview_url": False, "body": message.body}
    else:
        payload["type"] = "interactive"
        payload["interactive"] = _interactive(message)
    if cmd.reply_to:
        payload["context"] = {"message_id": cmd.reply_to}
    return payload


def _interactive(message: ButtonsMessage | ListMessage) -> dict[str, Any]:
    if isinstance(message, ButtonsMessage):
        body: dict[str, Any] = {
            "type": "button",
            "body": {"text": message.body},
            "action": {
                "buttons": [
                    {"type": "reply", "reply": {"id": b.id, "title": b.title}}
                    for b in message.buttons
                ]
            },
        }
    else:
        body = {
            "type": "list",
            "body": {"text": message.body},
            "action": {
                "button": message.button,
                "sections": [
                    {"title": s.title, "rows": [_row(r) for r in s.rows]} for s in message.sections
                ],
            },
        }
    if message.footer:
        body["footer"] = {"text": message.footer}
    return body


def _row(row: ListRow) -> dict[str, str]:
    rendered = {"id": row.id, "title": row.title}
    if row.description:
        rendered["description"] = row.description
    return rendered


# --- errors and retries ---------------------------------------------------------------------


class ErrorClass(StrEnum):
    TRANSIENT = "transient"  # retry later with the same command
    PERMANENT = "permanent"  # retrying cannot help: record and move on


# Throttling (4, 80007, 130429, 131056), temporary faults (1, 2, 131000, 131016) and
# maintenance (131057): Meta's own advice is to back off and retry these.
TRANSIENT_CODES = frozenset({1, 2, 4, 80007, 130429, 131000, 131016, 131056, 131057})


def classify_error(http_status: int | None, code: int | None) -> ErrorClass:
    """Network errors, 5xx, 429 and Meta's throttling/temporary codes are retried; everything
    else (bad parameters, token, undeliverable recipient, template mismatch, ...) is not."""
    if http_status is None:
        return ErrorClass.TRANSIENT
    if code is not None and code in TRANSIENT_CODES:
        return ErrorClass.TRANSIENT
    if http_status >= 500 or http_status == 429:
        return ErrorClass.TRANSIENT
    return ErrorClass.PERMANENT


BACKOFF_BASE = 1.0
BACKOFF_CAP = 60.0
# A Retry-After beyond this is treated as this: the command must stay within JetStream's reach.
RETRY_AFTER_CAP = 900.0


def retry_delay(
    attempt: int,
    retry_after: float | None = None,
    *,
    jitter: float | None = None,
    base: float = BACKOFF_BASE,
    cap: float = BACKOFF_CAP,
) -> float:
    """Seconds to wait before delivery attempt `attempt + 1` (attempt counts from 1).

    Meta's `Retry-After` wins when given; otherwise exponential (base, 2 base, 4 base, ...) up to
    `cap`. `jitter` in [0, 1) (a random draw from the caller) spreads the exponential delay over
    its upper half so that partitions throttled together do not retry together.
    """
    if retry_after is not None and retry_after >= 0:
        return min(float(retry_after), RETRY_AFTER_CAP)
    delay = min(cap, base * 2 ** max(attempt - 1, 0))
    if jitter is not None:
        delay *= 0.5 + jitter / 2
    return delay


# --- delivery statuses ----------------------------------------------------------------------

PENDING, ACCEPTED, SENT, DELIVERED, READ, FAILED = (
    "pending",
    "accepted",
    "sent",
    "delivered",
    "read",
    "failed",
)
# The forward order of a message's life; a status only ever moves right.
STATUS_ORDER: tuple[str, ...] = (PENDING, ACCEPTED, SENT, DELIVERED, READ)
# `failed` is terminal and wins only over statuses that do not yet prove delivery.
FAILED_OVERRIDES: tuple[str, ...] = (PENDING, ACCEPTED, SENT)
STATUSES = frozenset((*STATUS_ORDER, FAILED))


def normalize_status(status: str) -> str | None:
    """Meta's status name as we track it (`played` is a read voice note); None if untracked."""
    status = status.lower()
    if status == "played":
        return READ
    return status if status in STATUSES else None


def status_advances(current: str, new: str) -> bool:
    """Whether `new` may replace `current`: statuses arrive out of order and more than once."""
    if new == FAILED:
        return current in FAILED_OVERRIDES
    if current == FAILED or new not in STATUS_ORDER or current not in STATUS_ORDER:
        return False
    return STATUS_ORDER.index(new) > STATUS_ORDER.index(current)
