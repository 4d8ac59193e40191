"""TIKET and STATUS once booked: the person's usable tickets sent again (the QR image with its
caption), after the appointment for STATUS; when no ticket is there yet (it is issued moments
after the booking), the appointment and that the ticket follows."""

from __future__ import annotations

from services.common.contracts.ticketing import TicketsReply, TicketsRequest
from services.ingress.dialog import scheduling
from services.ingress.dialog.model import Ask, Conversation, Decision, Step, Turn


def with_tickets(conv: Conversation, decision: Decision) -> Decision:
    """The same decision, then the usable tickets, if it leaves the person booked."""
    if isinstance(decision, Ask):
        return Ask(decision.request, lambda reply: with_tickets(conv, decision.then(reply)))
    if decision.conversation.step != Step.BOOKED:
        return decision

    def then(reply: TicketsReply) -> Turn:
        images = [ticket.image for ticket in reply.tickets]
        return Turn(decision.conversation, [*decision.replies, *images])

    return Ask(_request(conv), then)


def resend(conv: Conversation) -> Decision:
    """TIKET: the tickets alone (their captions say it all), or the appointment meanwhile."""

    def then(reply: TicketsReply) -> Decision:
        if reply.tickets:
            return Turn(conv, [ticket.image for ticket in reply.tickets])
        return scheduling.bookings(conv, "ticket_pending")

    return Ask(_request(conv), then)


def _request(conv: Conversation) -> TicketsRequest:
    return TicketsRequest(person_id=str(conv.data.get("person_id", "")), lang=conv.lang)
