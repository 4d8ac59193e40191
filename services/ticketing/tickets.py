"""Issuing, revoking, checking and redeeming tickets: the use cases behind the booking consumers,
the chat's TIKET, the desk's HTTP API and the CLI. Each change commits with its outbox rows (the
ticket's messages, or ticketing.evt.dose_given) in one transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.common import outbox
from services.common.clock import WIB
from services.common.contracts import channels
from services.common.contracts.identity import PersonCard
from services.common.contracts.scheduler import BookingFact
from services.common.contracts.streams import NOTIFIER, TICKETING
from services.common.contracts.subjects import TICKETING_EVT_DOSE_GIVEN, send_subject
from services.common.contracts.ticketing import DoseGiven, TicketCheck, TicketStatus, TicketView
from services.common.contracts.whatsapp import Channel
from services.ticketing import domain, messages, qr
from services.ticketing import repository as repo
from services.ticketing import token as tokens

SCHEMA = "ticketing"
_CODE_ATTEMPTS = 5


@dataclass(frozen=True)
class Delivery:
    """Where a new ticket's messages go."""

    wa_id: str
    lang: str
    video_url: str
    notifier_partitions: int
    channel: Channel = "whatsapp"  # sms: the code by SMS (no image, no video)


def _claims(
    ticket_id: str, code: str, fact: BookingFact, name: str, now: datetime
) -> tokens.Claims:
    return tokens.Claims(
        jti=ticket_id,
        code=code,
        bid=fact.booking_id,
        dose=fact.dose,
        fac=fact.facility.code,
        day=fact.date.isoformat(),
        t=f"{fact.start:%H:%M}-{fact.end:%H:%M}",
        nm=name,
        exp=int(domain.expiry(fact.date).timestamp()),
        iat=int(now.timestamp()),
    )


def _face(ticket: repo.NewTicket) -> messages.Face:
    return messages.Face(
        code=ticket.code,
        dose=ticket.dose,
        masked_name=ticket.masked_name,
        facility_name=ticket.facility_name,
        facility_address=ticket.facility_address,
        session_date=ticket.session_date,
        start=ticket.start_time,
        end=ticket.end_time,
    )


async def issue(
    pool: asyncpg.Pool,
    fact: BookingFact,
    person: PersonCard,
    key: Ed25519PrivateKey,
    delivery: Delivery,
    now: datetime,
) -> repo.Ticket | None:
    """The ticket of a new booking, stored and queued for the user with its video. None when
    there is nothing to do: the booking has its ticket already, or was voided meanwhile."""
    name = person.masked_name or "-"
    subject, stream = send_subject(delivery.wa_id, delivery.notifier_partitions), NOTIFIER.name
    for _ in range(_CODE_ATTEMPTS):
        ticket_id, code = domain.new_ticket_id(), domain.new_code()
        token = tokens.sign(_claims(ticket_id, code, fact, name, now), key)
        # Rendered on the event loop: half a millisecond of pure Python, which a thread would
        # only hand over to run under the same GIL, at the cost of the hand-off.
        new = repo.NewTicket(
            ticket_id=ticket_id,
            code=code,
            booking_id=fact.booking_id,
            person_id=fact.person_id,
            dose=fact.dose,
            vaccine=fact.vaccine,
            facility_code=fact.facility.code,
            facility_name=fact.facility.name,
            facility_address=fact.facility.address,
            session_date=fact.date,
            start_time=fact.start,
            end_time=fact.end,
            masked_name=name,
            masked_nik=person.masked_nik,
            token=token,
            qr_png=qr.render_png(token),
            expires_at=domain.expiry(fact.date),
        )
        commands = messages.issued(
            ticket_id, _face(new), new.qr_png, delivery.wa_id, delivery.lang, delivery.video_url
        )
        payloads = [command.model_dump(mode="json") for command in commands]
        if delivery.channel != "whatsapp":
            sms = messages.issued_sms(ticket_id, _face(new), delivery.wa_id, delivery.lang)
            subject, stream, payload = channels.outbound(
                delivery.channel, sms, delivery.lang, delivery.notifier_partitions
            )
            payloads = [payload]
        async with pool.acquire() as conn, conn.transaction():
            await repo.lock_booking(conn, fact.booking_id)
            ticket = await repo.insert_ticket(conn, new, subject, stream, payloads)
            if ticket is not None:
                return ticket
            if await repo.settled(conn, fact.booking_id):  # a void or a twin won meanwhile
                return None
        # The code was taken (about 1 in 10^12 per ticket issued so far): draw another.
    raise RuntimeError(f"no free ticket code after {_CODE_ATTEMPTS} attempts")


async def settled(pool: asyncpg.Pool, booking_id: int) -> bool:
    """Nothing to issue for this booking (a redelivered fact, or a void booking): what the
    consumer checks when identity cannot answer, so that such a fact does not wait for it."""
    return await repo.settled(pool, booking_id)


async def void(
    pool: asyncpg.Pool, booking_id: int, reason: str, now: datetime
) -> repo.Ticket | None:
    async with pool.acquire() as conn, conn.transaction():
        return await repo.void_booking(conn, booking_id, reason, now)


async def usable(pool: asyncpg.Pool, person_id: str, lang: str, now: datetime) -> list[TicketView]:
    """The person's usable tickets, each with its image ready to send (TIKET in the chat)."""
    views = []
    for ticket in await repo.usable_tickets(pool, person_id, now):
        views.append(
            TicketView(
                ticket_id=ticket.ticket_id,
                code=ticket.code,
                booking_id=ticket.booking_id,
                dose=ticket.dose,
                facility_code=ticket.facility_code,
                facility_name=ticket.facility_name,
                date=ticket.session_date,
                start=ticket.start_time,
                end=ticket.end_time,
                expires_at=ticket.expires_at,
                image=messages.ticket_image(_face(ticket), ticket.qr_png, lang),
                text=messages.ticket_text(_face(ticket), lang),
            )
        )
    return views


# --- at the desk --------------------------------------------------------------------------------


def _answer(status: TicketStatus, ticket: repo.Ticket | None = None) -> TicketCheck:
    check = TicketCheck(status=status, detail=domain.DETAILS[status])
    if ticket is None:
        return check
    return check.model_copy(
        update={
            "ticket_id": ticket.ticket_id,
            "code": ticket.code,
            "masked_name": ticket.masked_name,
            "masked_nik": ticket.masked_nik,
            "dose": ticket.dose,
            "facility_code": ticket.facility_code,
            "facility_name": ticket.facility_name,
            "date": ticket.session_date,
            "start": ticket.start_time,
            "end": ticket.end_time,
            "expires_at": ticket.expires_at,
            "revoked_at": ticket.revoked_at,
            "revoked_reason": ticket.revoked_reason,
            "redeemed_at": ticket.redeemed_at,
            "redeemed_by": ticket.redeemed_by,
            "dose_given_at": ticket.dose_given_at,
        }
    )


async def _authentic(
    conn: asyncpg.Connection | asyncpg.Pool, token: str, key: Ed25519PrivateKey
) -> repo.Ticket | None:
    """The stored ticket a token stands for; None unless we signed it and issued it as such."""
    try:
        claims = tokens.read(token, key.public_key())
    except tokens.Forged:
        return None
    ticket = await repo.find(conn, claims.jti)
    if ticket is None or ticket.token != token.strip():
        return None
    return ticket


async def check(
    pool: asyncpg.Pool, token: str, key: Ed25519PrivateKey, now: datetime
) -> TicketCheck:
    ticket = await _authentic(pool, token, key)
    if ticket is None:
        return _answer(TicketStatus.FORGED)
    return _answer(domain.status(ticket.state, now), ticket)


async def checkin(
    pool: asyncpg.Pool,
    token: str,
    key: Ed25519PrivateKey,
    *,
    by: str,
    via: str,
    measured: domain.Measurements,
    dose_given: bool,
    now: datetime,
) -> TicketCheck:
    """Redeem a ticket once (and record the dose, which books dose 2 through
    ticketing.evt.dose_given). A ticket checked in without the dose can have it recorded by a
    second check-in with `dose_given`: the injection comes after the on-site screening."""
    async with pool.acquire() as conn, conn.transaction():
        ticket = await _authentic(conn, token, key)
        return await _redeem(
            conn, ticket, by=by, via=via, measured=measured, dose_given=dose_given, now=now
        )


async def _redeem(
    conn: asyncpg.Connection,
    ticket: repo.Ticket | None,
    *,
    by: str,
    via: str,
    measured: domain.Measurements,
    dose_given: bool,
    now: datetime,
    desk_id: int | None = None,
) -> TicketCheck:
    if ticket is None:
        return _answer(TicketStatus.FORGED)
    status = domain.status(ticket.state, now)
    if status is TicketStatus.VALID:
        redeemed = await repo.redeem(
            conn,
            ticket.ticket_id,
            by=by,
            via=via,
            measured=measured,
            dose_given=dose_given,
            now=now,
            desk_id=desk_id,
        )
        if redeemed is not None:
            if dose_given:
                await _dose_given(conn, redeemed, now)
            return _answer(TicketStatus.REDEEMED, redeemed)
        # A concurrent check-in won the row: tell what it did.
        ticket = await repo.find(conn, ticket.ticket_id)
        assert ticket is not None
        status = domain.status(ticket.state, now)
    if status is TicketStatus.ALREADY_USED and dose_given and ticket.dose_given_at is None:
        recorded = await repo.record_dose_given(
            conn, ticket.ticket_id, by=by, now=now, desk_id=desk_id
        )
        if recorded is not None:
            await _dose_given(conn, recorded, now)
            return _answer(TicketStatus.DOSE_RECORDED, recorded)
    return _answer(status, ticket)


# --- at a facility desk (the desk app, with a desk credential) ----------------------------------


@dataclass(frozen=True)
class TicketRef:
    """What a desk scanned or typed: the QR code's text, or the 8-character code read aloud."""

    token: str | None = None
    code: str | None = None


async def _lookup(
    conn: asyncpg.Connection | asyncpg.Pool, ref: TicketRef, key: Ed25519PrivateKey
) -> repo.Ticket | None:
    if ref.token is not None:
        return await _authentic(conn, ref.token, key)
    code = domain.ticket_code(ref.code or "")
    return await repo.find_by_code(conn, code) if code else None


def _another_facility(desk: repo.Desk, ticket: repo.Ticket | None) -> bool:
    return ticket is not None and ticket.facility_code != desk.facility_code


async def desk_check(
    pool: asyncpg.Pool, desk: repo.Desk, ref: TicketRef, key: Ed25519PrivateKey, now: datetime
) -> TicketCheck:
    """What a scan means to this desk: a ticket of another facility is not its to judge."""
    ticket = await _lookup(pool, ref, key)
    if ticket is None:
        return _answer(TicketStatus.FORGED)
    if _another_facility(desk, ticket):
        return _answer(TicketStatus.ANOTHER_FACILITY, ticket)
    return _answer(domain.status(ticket.state, now), ticket)


async def desk_checkin(
    pool: asyncpg.Pool,
    desk: repo.Desk,
    ref: TicketRef,
    key: Ed25519PrivateKey,
    *,
    client_id: str,
    measured: domain.Measurements,
    dose_given: bool,
    scanned_at: datetime | None,
    now: datetime,
) -> TicketCheck:
    """A desk's check-in, maybe queued offline and synced now. The server stays the judge of
    the single use: of two desks that checked one ticket in while offline, the first to sync
    redeems it and the other is told who did and when. Judged at the time of the scan (see
    `domain.judged_at`); the same `client_id` sent again gets the first answer, not a second
    effect."""
    at = domain.judged_at(scanned_at, now)
    async with pool.acquire() as conn, conn.transaction():
        first = await repo.claim_desk_checkin(conn, desk.desk_id, client_id, at, now)
        if first is not None:
            return TicketCheck.model_validate(first)
        ticket = await _lookup(conn, ref, key)
        if _another_facility(desk, ticket):
            check = _answer(TicketStatus.ANOTHER_FACILITY, ticket)
        else:
            check = await _redeem(
                conn,
                ticket,
                by=desk.name,
                via=DESK_CHANNEL,
                measured=measured,
                dose_given=dose_given,
                now=at,
                desk_id=desk.desk_id,
            )
        await repo.answer_desk_checkin(conn, desk.desk_id, client_id, check)
        return check


DESK_CHANNEL = "desk"


async def _dose_given(conn: asyncpg.Connection, ticket: repo.Ticket, now: datetime) -> None:
    fact = DoseGiven(
        booking_id=ticket.booking_id,
        person_id=ticket.person_id,
        dose=ticket.dose,
        given_on=now.astimezone(WIB).date(),
        ticket_id=ticket.ticket_id,
        occurred_at=now,
    )
    await outbox.enqueue(conn, SCHEMA, TICKETING_EVT_DOSE_GIVEN, fact, TICKETING.name)
