"""TIKET and STATUS once booked: the person's usable tickets sent again (the QR image with its
caption; on SMS and USSD the ticket's text with its code), after the appointment for STATUS; when
no ticket is there yet (it is issued moments after the booking), the appointment and that the
ticket follows."""

from __future__ import annotations

from services.common.contracts.notifier import OutboundMessage
from services.common.contracts.ticketing import TicketsReply, TicketsRequest, TicketView
from services.ingress.dialog import scheduling
from services.ingress.dialog.model import Ask, Conversation, Decision, Step, Turn


def with_tickets(conv: Conversation, decision: Decision, channel: str = "whatsapp") -> Decision:
    """The same decision, then the usable tickets, if it leaves the person booked."""
    if isinstance(decision, Ask):
        return Ask(
            decision.request, lambda reply: with_tickets(conv, decision.then(reply), channel)
        )
    if decision.conversation.step != Step.BOOKED:
        return decision

    def then(reply: TicketsReply) -> Turn:
        shown = [_shown(ticket, channel) for ticket in reply.tickets]
        return Turn(decision.conversation, [*decision.replies, *shown])

    return Ask(_request(conv), then)


def resend(conv: Conversation, channel: str = "whatsapp") -> Decision:
    """TIKET: the tickets alone (their captions say it all), or the appointment meanwhile."""

    def then(reply: TicketsReply) -> Decision:
        if reply.tickets:
            return Turn(conv, [_shown(ticket, channel) for ticket in reply.tickets])
        return scheduling.bookings(conv, "ticket_pending")

    return Ask(_request(conv), then)


def _shown(ticket: TicketView, channel: str) -> OutboundMessage:
    """The QR image on WhatsApp; its code as text where no image can be shown."""
    if channel != "whatsapp" and ticket.text is not None:
        return ticket.text
    return ticket.image


def _request(conv: Conversation) -> TicketsRequest:
    return TicketsRequest(person_id=str(conv.data.get("person_id", "")), lang=conv.lang)
