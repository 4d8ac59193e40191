"""The messages the scheduler sends by itself: dose 2 booked (or still looked for, or not found),
a booking moved after its session was cancelled, and the day-before reminder.

Each is a `SendMessage` with a command id derived from what it is about (the notifier sends a
command id at most once) and, since all of them are business-initiated and may come days after
the user last wrote, the approved template the notifier sends instead when WhatsApp's 24-hour
window is closed. Template names and parameters (in order) are listed in `TEMPLATES`.
"""

from __future__ import annotations

from datetime import date, time

from services.common.contracts.notifier import SendMessage, TemplateFallback, TextMessage
from services.common.contracts.scheduler import Booking, Facility
from services.scheduler.catalog import day_text, t, time_text

# catalog key -> (approved template name, what its body parameters are, in order)
TEMPLATES: dict[str, tuple[str, tuple[str, ...]]] = {
    "dose2.booked": ("dose2_scheduled", ("facility", "date", "time")),
    "dose2.waiting": ("dose2_waiting", ("facility", "earliest", "latest")),
    "dose2.missed": ("appointment_not_found", ("facility", "latest")),
    "rebook.booked": ("appointment_moved", ("facility", "date", "time", "dose")),
    "rebook.waiting": ("appointment_waiting", ("facility",)),
    "rebook.missed": ("appointment_not_found", ("facility", "latest")),
    "session_cancelled": ("session_cancelled", ("facility", "date", "time")),
    "reminder": ("appointment_reminder", ("dose", "facility", "date", "time")),
}


def _notice(key: str, about: str, to: str, lang: str, **params: str) -> SendMessage:
    name, order = TEMPLATES[key]
    return SendMessage(
        command_id=f"scheduler:{key}:{about}",
        to=to,
        message=TextMessage(body=t(lang, key, **params)),
        template=TemplateFallback(name=name, lang=lang, params=[params[p] for p in order]),
    )


def _when(lang: str, day: date, start: time, end: time) -> dict[str, str]:
    return {"date": day_text(lang, day), "time": time_text(lang, start, end)}


def _appointment(lang: str, booking: Booking) -> dict[str, str]:
    when = _when(lang, booking.date, booking.start, booking.end)
    text = t(
        lang,
        "appointment",
        facility=booking.facility.name,
        address=booking.facility.address,
        **when,
    )
    return {"appointment": text, "facility": booking.facility.name, **when}


def booked(kind: str, booking: Booking, to: str, lang: str) -> SendMessage:
    """A booking the scheduler made on its own (`kind` dose2 or rebook)."""
    return _notice(
        f"{kind}.booked",
        str(booking.booking_id),
        to,
        lang,
        dose=str(booking.dose),
        **_appointment(lang, booking),
    )


def waiting(
    kind: str, plan_id: int, facility: Facility, earliest: date, latest: date, to: str, lang: str
) -> SendMessage:
    return _notice(
        f"{kind}.waiting",
        str(plan_id),
        to,
        lang,
        facility=facility.name,
        earliest=day_text(lang, earliest),
        latest=day_text(lang, latest),
    )


def missed(
    kind: str, plan_id: int, facility: Facility, latest: date, to: str, lang: str
) -> SendMessage:
    return _notice(
        f"{kind}.missed",
        str(plan_id),
        to,
        lang,
        facility=facility.name,
        latest=day_text(lang, latest),
    )


def session_cancelled(
    booking_id: int, facility: Facility, day: date, start: time, end: time, to: str, lang: str
) -> SendMessage:
    return _notice(
        "session_cancelled",
        str(booking_id),
        to,
        lang,
        facility=facility.name,
        **_when(lang, day, start, end),
    )


def reminder(booking: Booking, to: str, lang: str) -> SendMessage:
    return _notice(
        "reminder",
        str(booking.booking_id),
        to,
        lang,
        dose=str(booking.dose),
        **_appointment(lang, booking),
    )
