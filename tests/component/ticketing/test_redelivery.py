"""Ticketing's durable consumers (`ticketing-booked`, `-rescheduled`, `-cancelled`) in-process
against the real servers, with identity's person rpc answered by the test: a booking fact whose
handling fails once is delivered again after a delay (services/common/consumers.py) and its effect
happens once; a fact failing on every delivery ends in DEAD_LETTERS, as it was stored."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from typing import Any

import asyncpg
import nats
import nats.js.errors
import pytest
from faststream.nats import NatsBroker
from prometheus_client import REGISTRY
from pydantic import BaseModel

from services.common import consumers
from services.common.clock import jakarta_today
from services.common.contracts.channels import RouteReply, RouteRequest
from services.common.contracts.deadletters import DeadMessage
from services.common.contracts.identity import PersonCard, PersonRequest
from services.common.contracts.scheduler import (
    BookingCancelled,
    BookingConfirmed,
    BookingRescheduled,
    CancelReason,
    Facility,
    PreviousBooking,
)
from services.common.contracts.streams import NOTIFIER, SCHEDULER
from services.common.contracts.subjects import (
    IDENTITY_RPC_PERSON,
    INGRESS_RPC_ROUTE,
    NOTIFIER_CMD_SEND_ALL,
    SCHEDULER_EVT_BOOKED,
    SCHEDULER_EVT_CANCELLED,
    SCHEDULER_EVT_RESCHEDULED,
)
from services.common.embedded import free_port
from services.common.service import ServiceHost
from services.common.settings import Settings
from services.ticketing import handlers, tickets
from services.ticketing.app import build_host
from services.ticketing.token import load_signing_key
from tests.faults import FailsOnce, dead_letters, redeliveries, stream_bodies

pytestmark = pytest.mark.servers

CARD = PersonCard(found=True, masked_name="B**i S*******", masked_nik="320101**********")


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def new_fact(day: date) -> dict[str, Any]:
    code = f"F{secrets.token_hex(3).upper()}"
    return {
        "booking_id": secrets.randbelow(2**40) + 1,
        "person_id": str(uuid.uuid4()),
        "wa_id": "62812" + "".join(str(secrets.randbelow(10)) for _ in range(8)),
        "lang": "id",
        "dose": 1,
        "vaccine": "CoronaVac",
        "session_id": 1,
        "facility": Facility(
            code=code,
            name=f"Puskesmas {code}",
            address="Jl. Merdeka 1",
            regency="Kab. Bogor",
            province="Jawa Barat",
        ),
        "date": day,
        "start": clock_time(8, 0),
        "end": clock_time(12, 0),
        "occurred_at": datetime.now(UTC),
    }


def booked(day: date | None = None) -> BookingConfirmed:
    return BookingConfirmed(**new_fact(day or jakarta_today() + timedelta(days=2)))


@dataclass
class Ticketing:
    host: ServiceHost
    client: NatsBroker
    pool: asyncpg.Pool
    settings: Settings

    async def publish(self, fact: BaseModel, subject: str) -> int:
        """The fact as the scheduler's outbox publishes it; its sequence in SCHEDULER."""
        ack = await self.client.publish(
            fact,
            subject,
            stream=SCHEDULER.name,
            headers={"Nats-Msg-Id": f"test-{secrets.token_hex(8)}"},
            timeout=5.0,
        )
        return ack.seq

    async def ticketed(self, booking: BookingConfirmed) -> tickets.repo.Ticket | None:
        """Issued straight through the real function (no consumer involved)."""
        key = load_signing_key(self.settings.ticket_signing_key)
        delivery = tickets.Delivery(booking.wa_id, "id", self.settings.vaccine_video_url, 4)
        return await tickets.issue(self.pool, booking, CARD, key, delivery, datetime.now(UTC))


async def tickets_of(pool: asyncpg.Pool, booking_id: int) -> list[asyncpg.Record]:
    return await pool.fetch(
        """SELECT ticket_id, revoked_at, revoked_reason FROM ticketing.ticket
           WHERE booking_id = $1""",
        booking_id,
    )


async def eventually(
    check: Callable[[], Awaitable[Any]],
    within: float = 15.0,
    ready: Callable[[Any], bool] = bool,
) -> Any:
    """What `check` returns once it is `ready`, or at the deadline (for the asserts to say)."""
    deadline = time.monotonic() + within
    while True:
        found = await check()
        if ready(found) or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.05)


async def sends_of(settings: Settings, ticket_id: str) -> list[str]:
    """The kinds of the send commands about this ticket that reached NOTIFIER (via the outbox)."""
    bodies = await stream_bodies(settings, NOTIFIER.name, NOTIFIER_CMD_SEND_ALL)
    commands = [json.loads(body) for body in bodies if ticket_id.encode() in body]
    return [c["message"]["kind"] for c in commands if c["command_id"].endswith(ticket_id)]


async def purge_booking_facts(settings: Settings) -> None:
    """No fact left over from an earlier test (the scheduler's tests publish real ones): each
    test counts only what its own facts do."""
    nc = await nats.connect(settings.nats_url)
    try:
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await nc.jetstream().purge_stream(SCHEDULER.name)
    finally:
        await nc.close()


@pytest.fixture
async def ticketing(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[Ticketing]:
    await purge_booking_facts(settings)
    client = NatsBroker(settings.nats_url)

    @client.subscriber(IDENTITY_RPC_PERSON)
    async def person(body: PersonRequest) -> PersonCard:  # identity, answering every request
        return CARD

    @client.subscriber(INGRESS_RPC_ROUTE)
    async def route(body: RouteRequest) -> RouteReply:  # the dialog: everyone on WhatsApp
        return RouteReply(channel="whatsapp")

    await client.start()
    host = build_host(settings.model_copy(update={"health_port": free_port()}))
    await host.start()
    try:
        yield Ticketing(host, client, pool, settings)
    finally:
        await host.stop()
        await client.stop()


async def test_a_booking_that_fails_once_gets_one_ticket_after_a_delay(
    ticketing: Ticketing, monkeypatch: pytest.MonkeyPatch
) -> None:
    booking = booked()
    issue = FailsOnce(tickets.issue, lambda _pool, fact, *_: fact.booking_id == booking.booking_id)
    monkeypatch.setattr(tickets, "issue", issue)
    before = redeliveries("ticketing-booked")
    issued = metric("vaksin_ticketing_tickets_total", event="issued")

    await ticketing.publish(booking, SCHEDULER_EVT_BOOKED)
    rows = await eventually(lambda: tickets_of(ticketing.pool, booking.booking_id))
    assert len(rows) == 1, "no ticket was issued"
    await asyncio.sleep(1.5)  # a further delivery would have come by now

    assert len(issue.calls) == 2
    assert issue.redelivered_after >= 0.8  # the first delay is 1 s, not an instant NAK
    assert redeliveries("ticketing-booked") == before + 1
    [ticket] = await tickets_of(ticketing.pool, booking.booking_id)
    assert ticket["revoked_at"] is None
    sends = await eventually(
        lambda: sends_of(ticketing.settings, ticket["ticket_id"]), ready=lambda k: len(k) >= 2
    )
    assert sorted(sends) == ["image", "video"]
    assert metric("vaksin_ticketing_tickets_total", event="issued") == issued + 1


async def test_a_reschedule_that_fails_once_revokes_once_and_issues_once(
    ticketing: Ticketing, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = booked()
    old = await ticketing.ticketed(first)
    assert old is not None
    moved = BookingRescheduled(
        **new_fact(jakarta_today() + timedelta(days=5)),
        previous=PreviousBooking(
            booking_id=first.booking_id,
            session_id=first.session_id,
            facility=first.facility,
            date=first.date,
            start=first.start,
            end=first.end,
        ),
    )
    # The new ticket fails once, after the old one was revoked: the redelivery revokes nothing
    # more and issues the new ticket once.
    issue = FailsOnce(tickets.issue, lambda _pool, fact, *_: fact.booking_id == moved.booking_id)
    monkeypatch.setattr(tickets, "issue", issue)
    before = redeliveries("ticketing-rescheduled")
    revoked = metric("vaksin_ticketing_tickets_total", event="revoked")
    issued = metric("vaksin_ticketing_tickets_total", event="issued")

    await ticketing.publish(moved, SCHEDULER_EVT_RESCHEDULED)
    rows = await eventually(lambda: tickets_of(ticketing.pool, moved.booking_id))
    assert len(rows) == 1, "the new booking got no ticket"
    await asyncio.sleep(1.5)

    assert len(issue.calls) == 2
    assert issue.redelivered_after >= 0.8
    assert redeliveries("ticketing-rescheduled") == before + 1
    [previous] = await tickets_of(ticketing.pool, first.booking_id)
    assert previous["revoked_at"] is not None and previous["revoked_reason"] == "rescheduled"
    [new] = await tickets_of(ticketing.pool, moved.booking_id)
    assert new["revoked_at"] is None
    sends = await eventually(
        lambda: sends_of(ticketing.settings, new["ticket_id"]), ready=lambda k: len(k) >= 2
    )
    assert sorted(sends) == ["image", "video"]
    assert metric("vaksin_ticketing_tickets_total", event="revoked") == revoked + 1
    assert metric("vaksin_ticketing_tickets_total", event="issued") == issued + 1


async def test_a_cancellation_that_fails_once_revokes_the_ticket_once(
    ticketing: Ticketing, monkeypatch: pytest.MonkeyPatch
) -> None:
    booking = booked()
    ticket = await ticketing.ticketed(booking)
    assert ticket is not None
    void = FailsOnce(tickets.void, lambda _pool, booking_id, *_: booking_id == booking.booking_id)
    monkeypatch.setattr(tickets, "void", void)
    before = redeliveries("ticketing-cancelled")
    revoked = metric("vaksin_ticketing_tickets_total", event="revoked")

    cancelled = BookingCancelled(**booking.model_dump(), reason=CancelReason.USER)
    await ticketing.publish(cancelled, SCHEDULER_EVT_CANCELLED)

    async def revoked_ticket() -> asyncpg.Record | None:
        [row] = await tickets_of(ticketing.pool, booking.booking_id)
        return row if row["revoked_at"] is not None else None

    row = await eventually(revoked_ticket)
    assert row is not None, "the ticket was never revoked"
    await asyncio.sleep(1.5)

    assert len(void.calls) == 2
    assert void.redelivered_after >= 0.8
    assert redeliveries("ticketing-cancelled") == before + 1
    assert row["revoked_reason"] == "cancelled: user"
    voids = await ticketing.pool.fetchval(
        "SELECT count(*) FROM ticketing.void_booking WHERE booking_id = $1", booking.booking_id
    )
    assert voids == 1
    assert metric("vaksin_ticketing_tickets_total", event="revoked") == revoked + 1


async def test_a_cancellation_failing_on_every_delivery_is_dead_lettered_as_stored(
    ticketing: Ticketing, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The production delays (about 25 minutes over 12 deliveries) shrunk for this test.
    monkeypatch.setattr(consumers, "REDELIVERY_DELAYS", (0.05,))
    booking = booked()
    ticket = await ticketing.ticketed(booking)
    assert ticket is not None
    void = FailsOnce(
        tickets.void, lambda _pool, booking_id, *_: booking_id == booking.booking_id, always=True
    )
    monkeypatch.setattr(tickets, "void", void)
    durable = "ticketing-cancelled"
    dead_before = metric("vaksin_dead_letters_total", consumer=durable, reason="failed")
    given_up = metric("vaksin_ticketing_issue_failures_total")

    cancelled = BookingCancelled(**booking.model_dump(), reason=CancelReason.USER)
    seq = await ticketing.publish(cancelled, SCHEDULER_EVT_CANCELLED)

    async def ours() -> list[DeadMessage]:
        return [d for d in await dead_letters(ticketing.settings, durable) if d.stream_seq == seq]

    found = await eventually(ours, within=20.0)
    assert len(found) == 1, "no dead letter for the cancellation"
    [dead] = found
    await asyncio.sleep(0.5)  # terminated: no delivery after the last one

    assert len(void.calls) == handlers.MAX_DELIVER
    assert dead.source == durable
    assert dead.subject == SCHEDULER_EVT_CANCELLED
    assert dead.delivered == handlers.MAX_DELIVER
    assert "ConnectionResetError" in dead.error
    nc = await nats.connect(ticketing.settings.nats_url)
    try:
        stored = await nc.jetstream().get_msg(SCHEDULER.name, seq)
    finally:
        await nc.close()
    assert dead.body.encode() == stored.data
    assert BookingCancelled.model_validate(json.loads(dead.body)) == cancelled
    assert metric("vaksin_dead_letters_total", consumer=durable, reason="failed") == dead_before + 1
    assert metric("vaksin_ticketing_issue_failures_total") == given_up + 1
    [row] = await tickets_of(ticketing.pool, booking.booking_id)
    assert row["revoked_at"] is None  # the effect never happened: an operator's case now
