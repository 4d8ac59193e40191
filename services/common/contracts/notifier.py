"""notifier.cmd.send: what to send to one WhatsApp user. Limits are WhatsApp's own, checked here so
that an invalid message is refused where it is built, not by Meta after it is queued.

Also the notifier's facts about sends that failed for good: `notifier.evt.send_failed` (for the
dialog: the user must not be left waiting silently) and the dead letter `notifier.dlq.send` (the
command and its last error, for operators and replay)."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator


class Button(BaseModel):
    id: str = Field(max_length=256)
    title: str = Field(min_length=1, max_length=20)


class ListRow(BaseModel):
    id: str = Field(max_length=200)
    title: str = Field(min_length=1, max_length=24)
    description: str | None = Field(default=None, max_length=72)


class ListSection(BaseModel):
    title: str = Field(min_length=1, max_length=24)
    rows: list[ListRow] = Field(min_length=1)


class TextMessage(BaseModel):
    kind: Literal["text"] = "text"
    body: str = Field(min_length=1, max_length=4096)


class ButtonsMessage(BaseModel):
    kind: Literal["buttons"] = "buttons"
    body: str = Field(min_length=1, max_length=1024)
    buttons: list[Button] = Field(min_length=1, max_length=3)
    footer: str | None = Field(default=None, max_length=60)

    @model_validator(mode="after")
    def _unique_titles(self) -> ButtonsMessage:
        titles = [b.title for b in self.buttons]
        if len(set(titles)) != len(titles):
            raise ValueError("button titles must be unique")
        return self


class ListMessage(BaseModel):
    kind: Literal["list"] = "list"
    body: str = Field(min_length=1, max_length=4096)
    button: str = Field(min_length=1, max_length=20, description="label that opens the list")
    sections: list[ListSection] = Field(min_length=1, max_length=10)
    footer: str | None = Field(default=None, max_length=60)

    @model_validator(mode="after")
    def _at_most_ten_rows(self) -> ListMessage:
        if sum(len(s.rows) for s in self.sections) > 10:
            raise ValueError("a list holds at most 10 rows across all sections")
        return self


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# A command travels in one NATS message (1 MB by default), so an inline PNG stays well below it
# (Meta itself takes images up to 5 MB): 700,000 base64 characters are about 512 KB of PNG.
MAX_PNG_BASE64 = 700_000
HttpsUrl = Annotated[str, Field(pattern=r"^https://[^\s]+$", max_length=2000)]


class ImageMessage(BaseModel):
    """An image, e.g. a QR ticket: a PNG given inline (the notifier uploads it to Meta once and
    sends it by media id, reusing the id while Meta keeps the file) or a public HTTPS link."""

    kind: Literal["image"] = "image"
    png_base64: str | None = Field(
        default=None, max_length=MAX_PNG_BASE64, description="the PNG itself, base64 encoded"
    )
    link: HttpsUrl | None = Field(default=None, description="or a public https URL to fetch")
    caption: str | None = Field(default=None, min_length=1, max_length=1024)

    @field_validator("png_base64")
    @classmethod
    def _is_png(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                data = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise ValueError("png_base64 is not base64") from None
            if not data.startswith(PNG_SIGNATURE):
                raise ValueError("png_base64 is not a PNG")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> ImageMessage:
        if (self.png_base64 is None) == (self.link is None):
            raise ValueError("an image needs exactly one of png_base64 or link")
        return self

    def png(self) -> bytes:
        assert self.png_base64 is not None
        return base64.b64decode(self.png_base64)


class VideoMessage(BaseModel):
    """A video by link (mp4, H.264 + AAC, at most 16 MB), e.g. how the vaccine works."""

    kind: Literal["video"] = "video"
    link: HttpsUrl
    caption: str | None = Field(default=None, min_length=1, max_length=1024)


OutboundMessage = Annotated[
    TextMessage | ButtonsMessage | ListMessage | ImageMessage | VideoMessage,
    Field(discriminator="kind"),
]


class TemplateFallback(BaseModel):
    """The approved template to send instead when WhatsApp's 24-hour customer-service window is
    closed (a reminder days after the user last wrote, say)."""

    name: str = Field(pattern=r"^[a-z0-9_]{1,512}$", description="e.g. appointment_reminder")
    lang: str = Field(default="id", description="the user's language: id or en")
    params: list[str] = Field(default_factory=list, description="body parameters, in order")


class SendMessage(BaseModel):
    """One message to one user. `command_id` is the idempotency key: sent at most once per id."""

    command_id: str = Field(min_length=1, max_length=200)
    to: str = Field(pattern=r"^\d{6,15}$")
    message: OutboundMessage
    reply_to: str | None = Field(default=None, description="wamid to quote, if any")
    template: TemplateFallback | None = Field(
        default=None, description="sent instead of `message` outside the 24-hour window"
    )
    optional: bool = Field(
        default=False,
        description="nice to have (e.g. the vaccine video): when the 24-hour window is closed "
        "it is not sent and not failed, but recorded as skipped",
    )


# --- facts about sends that failed for good -----------------------------------------------------


class SendError(BaseModel):
    """The last answer that made a send fail: Meta's error code and HTTP status, or ours."""

    code: int | None = Field(default=None, description="Meta's error code, if Meta answered")
    http_status: int | None = Field(default=None, description="None: no answer (network)")
    message: str = Field(default="", max_length=1000)
    fbtrace_id: str | None = None


class SendFailed(BaseModel):
    """notifier.evt.send_failed: a command that will not reach the user (dead-lettered). The
    dialog can tell the user later, or another way, instead of leaving them waiting."""

    command_id: str
    to: str
    reason: str = Field(
        description="permanent_error, attempts_exhausted, window_closed, "
        "template_not_configured, failed_status or malformed"
    )
    error_code: int | None = None
    failed_at: datetime


class DeadLetter(BaseModel):
    """notifier.dlq.send (stream NOTIFIER_DLQ): the command as received and why it failed."""

    command_id: str
    to: str | None = None
    reason: str
    command: dict[str, Any] = Field(description="the SendMessage as received (raw if malformed)")
    error: SendError | None = None
    attempts: int = 0
    failed_at: datetime
