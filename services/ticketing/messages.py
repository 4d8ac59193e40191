"""What the chat shows of a ticket: the QR image with its caption (code, person, place, day and
time) and the video on how the vaccine works, as notifier commands.

A ticket issued after a booking may come days after the user last wrote (dose 2 is booked by the
scheduler when dose 1 is recorded), so the image carries the approved template `ticket_ready`
(parameter: the ticket code; its text asks the user to reply TIKET) for a closed 24-hour window,
and the video is optional: it is skipped rather than failed when the window is closed.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import date, time

from services.common.contracts.notifier import (
    ImageMessage,
    SendMessage,
    TemplateFallback,
    TextMessage,
    VideoMessage,
)
from services.ticketing.catalog import CATALOG

TICKET_TEMPLATE = "ticket_ready"


@dataclass(frozen=True)
class Face:
    """What the caption says of a ticket."""

    code: str
    dose: int
    masked_name: str
    facility_name: str
    facility_address: str
    session_date: date
    start: time
    end: time


def _face_text(key: str, face: Face, lang: str) -> str:
    """A catalog text about one ticket, its placeholders filled from the ticket's face."""
    return CATALOG.t(
        lang,
        key,
        dose=face.dose,
        code=face.code,
        name=face.masked_name,
        facility=face.facility_name,
        address=face.facility_address,
        date=CATALOG.day_text(lang, face.session_date),
        time=CATALOG.time_text(lang, face.start, face.end),
    )


def ticket_image(face: Face, png: bytes, lang: str) -> ImageMessage:
    caption = _face_text("ticket.caption", face, lang)
    return ImageMessage(png_base64=base64.b64encode(png).decode("ascii"), caption=caption)


def issued(
    ticket_id: str, face: Face, png: bytes, to: str, lang: str, video_url: str
) -> list[SendMessage]:
    """The commands that deliver a newly issued ticket: the image, then the video."""
    image = SendMessage(
        command_id=f"ticketing:ticket:{ticket_id}",
        to=to,
        message=ticket_image(face, png, lang),
        template=TemplateFallback(name=TICKET_TEMPLATE, lang=lang, params=[face.code]),
    )
    video = SendMessage(
        command_id=f"ticketing:video:{ticket_id}",
        to=to,
        message=VideoMessage(link=video_url, caption=CATALOG.t(lang, "video.caption")),
        optional=True,
    )
    return [image, video]


def issued_sms(ticket_id: str, face: Face, to: str, lang: str) -> SendMessage:
    """A new ticket for a person reached by SMS (services/channels): its code, to be read
    aloud or shown at the desk, which takes codes as it takes the QR."""
    return SendMessage(
        command_id=f"ticketing:ticket:{ticket_id}", to=to, message=ticket_text(face, lang)
    )


def ticket_text(face: Face, lang: str) -> TextMessage:
    """The ticket as a text with its code, for a channel without images (SMS, USSD)."""
    return TextMessage(body=_face_text("ticket.sms", face, lang))
