"""Inbound WhatsApp facts, normalised by the ingress from Meta's webhook envelope.

The same `InboundMessage` also carries what a user sent by SMS or USSD (`channel`): the channel
adapters (services/channels) publish it on the same partition of WA_INBOUND, so one person's
turns stay in order whatever channel they come from, and the conversation (keyed by the number)
is the same on every channel."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Channel = Literal["whatsapp", "sms", "ussd"]


class InboundMessage(BaseModel):
    """One message a user sent to our number."""

    wamid: str
    wa_id: str = Field(description="sender's WhatsApp id: international digits, no plus")
    phone_number_id: str = Field(description="our business number that received it")
    timestamp: int = Field(description="Unix seconds, as Meta reports it")
    type: str = Field(description="text, interactive, button, image, ... (kept as Meta names it)")
    text: str | None = Field(default=None, description="typed text, or the title of a reply")
    reply_id: str | None = Field(
        default=None, description="button/list reply id, or a template button payload"
    )
    channel: Channel = Field(
        default="whatsapp",
        description="where it came from: whatsapp (Meta's webhook), sms or ussd (the channel "
        "adapters); replies go back the same way",
    )


class DeliveryStatus(BaseModel):
    """A status webhook for a message we sent (sent, delivered, read, failed, ...)."""

    wamid: str
    status: str
    timestamp: int
    recipient_id: str | None = None
    error_codes: list[int] = Field(default_factory=list)
