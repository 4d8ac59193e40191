"""notifier.cmd.send: what to send to one WhatsApp user. Limits are WhatsApp's own, checked here so
that an invalid message is refused where it is built, not by Meta after it is queued."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, model_validator


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


OutboundMessage = Annotated[TextMessage | ButtonsMessage | ListMessage, Field(discriminator="kind")]


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
