"""The notifier's pure rules, no IO: how a send command becomes a Cloud API request body (the
message itself, or its approved template when the 24-hour window is closed, or nothing for an
optional message then), which Graph errors are worth retrying and after how long, the per-user
pair-rate budget, which inbound messages take a slot of the number's throughput, and the order of
delivery statuses."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from services.common.contracts.notifier import (
    ButtonsMessage,
    ImageMessage,
    ListMessage,
    ListRow,
    SendMessage,
    TemplateFallback,
    TextMessage,
    VideoMessage,
)
from services.common.contracts.whatsapp import InboundMessage
from services.common.settings import WhatsAppTemplate

# --- the 24-hour customer-service window ---------------------------------------------------------

WINDOW = timedelta(hours=24)
# A message may wait in the queue and in flight: a window about to close is treated as closed.
WINDOW_MARGIN = timedelta(minutes=10)


class Form(StrEnum):
    MESSAGE = "message"  # the free-form message of the command
    TEMPLATE = "template"  # its approved template
    SKIP = "skip"  # nothing: an optional message while the window is closed


def window_open(last_inbound_at: datetime | None, now: datetime) -> bool:
    """Whether a free-form message may be sent: the user wrote within the last 24 hours."""
    return last_inbound_at is not None and now - last_inbound_at < WINDOW - WINDOW_MARGIN


def skippable(cmd: SendMessage) -> bool:
    """An optional message (the vaccine video, say) that is left out rather than failed when the
    window is closed; with a template the template goes instead, so `optional` does not apply."""
    return cmd.optional and cmd.template is None


def choose_form(
    cmd: SendMessage, last_inbound_at: datetime | None, now: datetime, *, force_template: bool
) -> Form:
    """A command without a template is a reply in a live conversation: always free-form (if the
    window has closed after all, Meta's 131047 says so), unless it is optional, which is skipped
    once the window is closed. A business-initiated command (with a template) is free-form only
    while the window is open."""
    if cmd.template is None:
        if skippable(cmd) and not window_open(last_inbound_at, now):
            return Form.SKIP
        return Form.MESSAGE
    if force_template or not window_open(last_inbound_at, now):
        return Form.TEMPLATE
    return Form.MESSAGE


# --- rendering ----------------------------------------------------------------------------------


def _base(cmd: SendMessage) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": cmd.to,
        # Echoed by Meta on every status webhook of this message: correlation for operators.
        "biz_opaque_callback_data": cmd.command_id,
    }


def to_graph_payload(cmd: SendMessage, media_id: str | None = None) -> dict[str, Any]:
    """The JSON body of `POST /{phone_number_id}/messages` for the command's own message.

    An inline PNG must have been uploaded first: `media_id` is its Meta media id."""
    payload = _base(cmd)
    message = cmd.message
    if isinstance(message, TextMessage):
        payload["type"] = "text"
        payload["text"] = {"preview_url": False, "body": message.body}
    elif isinstance(message, ImageMessage):
        if message.png_base64 is not None:
            if media_id is None:
                raise ValueError("an inline PNG is sent by media id: upload it first")
            image: dict[str, Any] = {"id": media_id}
        else:
            image = {"link": message.link}
        if message.caption:
            image["caption"] = message.caption
        payload["type"] = "image"
        payload["image"] = image
    elif isinstance(message, VideoMessage):
        video: dict[str, Any] = {"link": message.link}
        if message.caption:
            video["caption"] = message.caption
        payload["type"] = "video"
        payload["video"] = video
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


class TemplateProblem(Exception):
    """The command's template cannot be sent as configured; `reason` names why."""

    def __init__(self, reason: str, details: str) -> None:
        super().__init__(details)
        self.reason = reason


# Meta refuses template parameters with newlines, tabs or more than 4 consecutive spaces (132018).
_TEMPLATE_SPACE = re.compile(r"[\t\r\n]+| {5,}")
TEMPLATE_PARAM_MAX = 1024


def template_payload(cmd: SendMessage, templates: Mapping[str, WhatsAppTemplate]) -> dict[str, Any]:
    """The approved template for the command's notification type (`cmd.template.name`), in the
    user's language, with its body parameters; refused here rather than by Meta (132000/132001)
    when it is not configured or its parameters do not match."""
    fallback: TemplateFallback | None = cmd.template
    if fallback is None:
        raise TemplateProblem("window_closed", "no template for a message outside the window")
    config = templates.get(fallback.name)
    if config is None:
        raise TemplateProblem(
            "template_not_configured", f"no approved template configured for {fallback.name!r}"
        )
    if len(fallback.params) != config.params:
        raise TemplateProblem(
            "template_params_mismatch",
            f"{fallback.name!r} takes {config.params} parameter(s), got {len(fallback.params)}",
        )
    language = config.languages.get(fallback.lang) or config.languages.get("id")
    if language is None:
        language = next(iter(config.languages.values()), fallback.lang)
    template: dict[str, Any] = {"name": config.name, "language": {"code": language}}
    if fallback.params:
        template["components"] = [
            {
                "type": "body",
                "parameters": [
                    {"type": "text", "text": _template_text(p)} for p in fallback.params
                ],
            }
        ]
    payload = _base(cmd)
    payload["type"] = "template"
    payload["template"] = template
    return payload


def _template_text(value: str) -> str:
    return _TEMPLATE_SPACE.sub(" ", value).strip()[:TEMPLATE_PARAM_MAX] or "-"


# --- errors and retries -------------------------------------------------------------------------


class ErrorClass(StrEnum):
    TRANSIENT = "transient"  # retry later with the same command
    PERMANENT = "permanent"  # retrying cannot help: dead letter
    WINDOW_CLOSED = "window_closed"  # 131047: only a template may go now
    MEDIA_INVALID = "media_invalid"  # 131053 on a media id: upload again, then retry


# Throttling (4, 80007, 130429, 131056), temporary faults (1, 2, 131000, 131016) and
# maintenance (131057): Meta's own advice is to back off and retry these.
TRANSIENT_CODES = frozenset({1, 2, 4, 80007, 130429, 131000, 131016, 131056, 131057})
WINDOW_CLOSED_CODE = 131047
MEDIA_ERROR_CODE = 131053
THROUGHPUT_CODE = 130429
PAIR_RATE_CODE = 131056


def classify_error(http_status: int | None, code: int | None) -> ErrorClass:
    """Network errors, 5xx, 429 and Meta's throttling/temporary codes are retried; 131047 asks
    for a template; everything else (bad parameters, token, undeliverable recipient, template
    mismatch, ...) is permanent."""
    if code == WINDOW_CLOSED_CODE:
        return ErrorClass.WINDOW_CLOSED
    if code == MEDIA_ERROR_CODE:
        return ErrorClass.MEDIA_INVALID
    if http_status is None:
        return ErrorClass.TRANSIENT
    if code is not None and code in TRANSIENT_CODES:
        return ErrorClass.TRANSIENT
    if http_status >= 500 or http_status == 429:
        return ErrorClass.TRANSIENT
    return ErrorClass.PERMANENT


def failed_status_retryable(code: int | None) -> bool:
    """A `failed` status webhook worth sending again (Meta failed for a temporary reason)."""
    return code is not None and code in TRANSIENT_CODES


# Attempts of one command before it is dead-lettered (every Graph call counts, also a status
# webhook's `failed` with a retryable code). With the delays below (1, 2, 4 ... s, then a minute
# each, jittered over their upper half) the last attempt comes at least 3 minutes after the
# first: an outage of Meta's of a few minutes loses nothing.
MAX_ATTEMPTS = 10
BACKOFF_BASE = 1.0
BACKOFF_CAP = 60.0
PAIR_BACKOFF_CAP = 300.0  # 131056: Meta suggests 4^X seconds
MAINTENANCE_DELAY = 60.0  # 131057: a throughput upgrade takes about a minute
# A Retry-After beyond this is treated as this.
RETRY_AFTER_CAP = 900.0


def retry_delay(
    attempt: int,
    retry_after: float | None = None,
    *,
    code: int | None = None,
    jitter: float | None = None,
) -> float:
    """Seconds to wait before attempt `attempt + 1` (attempt counts from 1).

    Meta's `Retry-After` wins when given. Otherwise: 4^(attempt-1) s for the pair rate limit
    (131056, as Meta advises), about a minute for maintenance (131057), else exponential
    (1, 2, 4, ... s up to a minute). `jitter` in [0, 1) (a random draw from the caller) spreads
    a delay over its upper half so that users throttled together do not retry together."""
    if retry_after is not None and retry_after >= 0:
        return min(float(retry_after), RETRY_AFTER_CAP)
    exponent = max(attempt - 1, 0)
    if code == PAIR_RATE_CODE:
        delay = min(PAIR_BACKOFF_CAP, 4.0**exponent)
    elif code == 131057:
        delay = MAINTENANCE_DELAY
    else:
        delay = min(BACKOFF_CAP, BACKOFF_BASE * 2**exponent)
    if jitter is not None:
        delay *= 0.5 + jitter / 2
    return delay


# --- the pair rate limit (one business number -> one user) -----------------------------------


def pair_allowed_at(
    tat: datetime | None, now: datetime, *, interval: float, burst: int
) -> datetime | None:
    """When the next message to this user conforms to its pair budget (None: now).

    A GCRA with `tat` the theoretical arrival time of the user's next message if they were
    spaced `interval` apart: up to `burst` messages may go at once, then one per `interval`."""
    if tat is None:
        return None
    allowed = tat - timedelta(seconds=interval * (burst - 1))
    return allowed if allowed > now else None


def next_pair_tat(tat: datetime | None, now: datetime, *, interval: float) -> datetime:
    """The user's theoretical arrival time after one more message sent at `now`."""
    start = now if tat is None or tat < now else tat
    return start + timedelta(seconds=interval)


# --- the number's throughput, inbound messages included ---------------------------------------

# Meta counts inbound messages in a number's throughput. One that arrived longer ago than this
# took its slot in a second long past: charging it now (a consumer catching up after an outage,
# a replay) would only hold back today's sends. The margin covers Meta's whole-second timestamps
# and its webhook delay.
INBOUND_SLOT_HORIZON = timedelta(seconds=10)


def inbound_slots(messages: Iterable[InboundMessage], phone_number_id: str, now: datetime) -> int:
    """How many of these inbound messages take a slot of this business number's throughput
    budget now: those it received (another number has its own budget) within the horizon."""
    return sum(
        1
        for message in messages
        if message.phone_number_id == phone_number_id
        and now - datetime.fromtimestamp(message.timestamp, UTC) < INBOUND_SLOT_HORIZON
    )


# --- delivery statuses --------------------------------------------------------------------------

PENDING, ACCEPTED, SENT, DELIVERED, READ, FAILED, SKIPPED = (
    "pending",
    "accepted",
    "sent",
    "delivered",
    "read",
    "failed",
    "skipped",  # ours, not Meta's: an optional message left out while the window was closed
)
# The forward order of a message's life; a status only ever moves right.
STATUS_ORDER: tuple[str, ...] = (PENDING, ACCEPTED, SENT, DELIVERED, READ)
# `failed` is terminal and wins only over statuses that do not yet prove delivery.
FAILED_OVERRIDES: tuple[str, ...] = (PENDING, ACCEPTED, SENT)
STATUSES = frozenset((*STATUS_ORDER, FAILED))
# A message out of the queue in one of these has nothing more coming but late status webhooks
# (Meta retries one for up to 7 days): after the retention it may be deleted. `accepted` is
# among them because a message whose statuses never came will not get them after that.
FINISHED: tuple[str, ...] = (ACCEPTED, SENT, DELIVERED, READ, FAILED, SKIPPED)


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
