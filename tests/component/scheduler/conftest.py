"""The scheduler running in-process against the session's real NATS and Postgres, a separate NATS
client to call it, readers of the SCHEDULER and NOTIFIER streams, and a helper that lays out a
facility with sessions. The database is shared by the whole session, so every test makes its own
facility (random code, random regency) and its own people."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from typing import Any, TypeVar

import asyncpg
import pytest
from faststream.nats import NatsBroker
from nats.js.api import ConsumerConfig, DeliverPolicy
from pydantic import BaseModel

from services.common.clock import WIB
from services.common.contracts.scheduler import (
    AlternativesReply,
    AlternativesRequest,
    BookingReply,
    BookingsReply,
    BookingsRequest,
    CancelRequest,
    ConfirmRequest,
    FacilityReply,
    FacilityRequest,
    FacilitySearchReply,
    FacilitySearchRequest,
    HoldReply,
    HoldRequest,
    NearbyReply,
    NearbyRequest,
    OfferRequest,
)
from services.common.contracts.streams import NOTIFIER, SCHEDULER
from services.common.contracts.subjects import (
    NOTIFIER_CMD_SEND_ALL,
    SCHEDULER_RPC_ALTERNATIVES,
    SCHEDULER_RPC_BOOKINGS,
    SCHEDULER_RPC_CANCEL,
    SCHEDULER_RPC_CONFIRM,
    SCHEDULER_RPC_FACILITIES_NEARBY,
    SCHEDULER_RPC_FACILITIES_SEARCH,
    SCHEDULER_RPC_FACILITY,
    SCHEDULER_RPC_HOLD,
    SCHEDULER_RPC_OFFER,
)
from services.common.embedded import free_port
from services.common.service import ServiceHost
from services.common.settings import Settings
from services.scheduler.app import build_host

pytestmark = pytest.mark.servers

R = TypeVar("R", bound=BaseModel)

ROUTES: dict[type[BaseModel], tuple[str, type[BaseModel]]] = {
    FacilityRequest: (SCHEDULER_RPC_FACILITY, FacilityReply),
    NearbyRequest: (SCHEDULER_RPC_FACILITIES_NEARBY, NearbyReply),
    FacilitySearchRequest: (SCHEDULER_RPC_FACILITIES_SEARCH, FacilitySearchReply),
    OfferRequest: (SCHEDULER_RPC_OFFER, HoldReply),
    AlternativesRequest: (SCHEDULER_RPC_ALTERNATIVES, AlternativesReply),
    HoldRequest: (SCHEDULER_RPC_HOLD, HoldReply),
    ConfirmRequest: (SCHEDULER_RPC_CONFIRM, BookingReply),
    CancelRequest: (SCHEDULER_RPC_CANCEL, BookingReply),
    BookingsRequest: (SCHEDULER_RPC_BOOKINGS, BookingsReply),
}


def today() -> date:
    return datetime.now(WIB).date()


def rid() -> str:
    return f"wamid.test-{secrets.token_hex(8)}"


def wa_id() -> str:
    return "62812" + "".join(str(secrets.randbelow(10)) for _ in range(8))


@dataclass
class Person:
    person_id: str = field(default_factory=lambda: f"person-{secrets.token_hex(6)}")
    wa_id: str = field(default_factory=wa_id)
    lang: str = "id"


@dataclass(frozen=True)
class StreamMessage:
    subject: str
    body: dict[str, Any]
    headers: dict[str, str]


async def read_stream(client: NatsBroker, stream: str, subject: str) -> list[StreamMessage]:
    js = client.connection.jetstream()
    sub = await js.pull_subscribe(
        subject,
        stream=stream,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL, inactive_threshold=5.0),
    )
    messages: list[StreamMessage] = []
    try:
        while True:
            try:
                batch = await sub.fetch(batch=500, timeout=0.5)
            except TimeoutError:  # nats' own and asyncio's: both mean nothing more
                break
            for msg in batch:
                messages.append(
                    StreamMessage(msg.subject, json.loads(msg.data), dict(msg.headers or {}))
                )
                await msg.ack()
    finally:
        await sub.unsubscribe()
    return messages


async def wait_for(
    read: Callable[[], Any], ready: Callable[[Any], bool], within: float = 10.0
) -> Any:
    deadline = time.monotonic() + within
    while True:
        found = await read()
        if ready(found) or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.1)


@dataclass
class Scheduler:
    host: ServiceHost
    client: NatsBroker
    pool: asyncpg.Pool

    async def ask(self, request: BaseModel) -> Any:
        subject, reply = ROUTES[type(request)]
        resp = await self.client.request(request, subject, timeout=10)
        return reply.model_validate(await resp.decode())

    async def events(self, booking_id: int, count: int = 1) -> list[StreamMessage]:
        """scheduler.evt.* about this booking (new or previous), once there are `count`."""

        async def read() -> list[StreamMessage]:
            return [
                m
                for m in await read_stream(self.client, SCHEDULER.name, "scheduler.evt.>")
                if booking_id
                in (m.body["booking_id"], m.body.get("previous", {}).get("booking_id"))
            ]

        return await wait_for(read, lambda found: len(found) >= count)

    async def sends(self, prefix: str, count: int = 1, within: float = 10.0) -> list[StreamMessage]:
        """notifier.cmd.send.* whose command id starts with `prefix`, once there are `count`."""

        async def read() -> list[StreamMessage]:
            return [
                m
                for m in await read_stream(self.client, NOTIFIER.name, NOTIFIER_CMD_SEND_ALL)
                if m.body["command_id"].startswith(prefix)
            ]

        return await wait_for(read, lambda found: len(found) >= count, within)


@dataclass
class Place:
    """A facility of its own (random code and regency) with sessions made by `session`."""

    pool: asyncpg.Pool
    code: str = field(default_factory=lambda: f"T{secrets.token_hex(5).upper()}")
    regency: str = field(default_factory=lambda: f"Kab. Uji {secrets.token_hex(4)}")
    name: str = "Puskesmas Uji"

    async def create(self) -> Place:
        await self.pool.execute(
            """INSERT INTO scheduler.facility (code, name, address, regency, province)
               VALUES ($1, $2, 'Jl. Uji No. 1', $3, 'Jawa Barat')""",
            self.code,
            self.name,
            self.regency,
        )
        return self

    async def session(
        self,
        day: date,
        start: str = "08:00",
        capacity: int = 10,
        vaccine: str = "CoronaVac",
        end: str | None = None,
    ) -> int:
        starts = clock_time.fromisoformat(start)
        ends = clock_time.fromisoformat(end) if end else clock_time(starts.hour + 4, starts.minute)
        return await self.pool.fetchval(
            """INSERT INTO scheduler.session (facility_code, day, starts, ends, capacity, vaccine)
               VALUES ($1, $2, $3, $4, $5, $6) RETURNING id""",
            self.code,
            day,
            starts,
            ends,
            capacity,
            vaccine,
        )

    def offer(self, person: Person, on: date | None = None, **extra: Any) -> OfferRequest:
        return OfferRequest(
            request_id=rid(),
            person_id=person.person_id,
            wa_id=person.wa_id,
            lang=person.lang,
            facility_code=self.code,
            on=on or today(),
            **extra,
        )


def hold_request(person: Person, session_id: int, **extra: Any) -> HoldRequest:
    return HoldRequest(
        request_id=rid(),
        person_id=person.person_id,
        wa_id=person.wa_id,
        lang=person.lang,
        session_id=session_id,
        **extra,
    )


def confirm_request(person: Person, hold_id: int) -> ConfirmRequest:
    return ConfirmRequest(request_id=rid(), hold_id=hold_id, person_id=person.person_id)


async def seats(pool: asyncpg.Pool, session_id: int) -> dict[str, int]:
    """The counter and what it must equal: holds in status 'held' plus active bookings."""
    row = await pool.fetchrow(
        """SELECT s.capacity, s.reserved,
                  (SELECT count(*)::int FROM scheduler.hold h
                   WHERE h.session_id = s.id AND h.status = 'held') AS held,
                  (SELECT count(*)::int FROM scheduler.booking b
                   WHERE b.session_id = s.id AND b.status = 'active') AS booked
           FROM scheduler.session s WHERE s.id = $1""",
        session_id,
    )
    counts = dict(row)
    assert counts["reserved"] == counts["held"] + counts["booked"], counts
    assert counts["reserved"] <= counts["capacity"], counts
    return counts


async def lapse(pool: asyncpg.Pool, *hold_ids: int) -> None:
    """Holds past their expiry, as if the hold minutes had gone by."""
    await pool.execute(
        "UPDATE scheduler.hold SET expires_at = now() - interval '1 second' "
        "WHERE id = any($1::bigint[])",
        list(hold_ids),
    )


def in_days(days: int) -> date:
    return today() + timedelta(days=days)


def utc_at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=WIB).astimezone(UTC)


async def start_scheduler(settings: Settings, **changes: Any) -> ServiceHost:
    host = build_host(settings.model_copy(update={"health_port": free_port(), **changes}))
    await host.start()
    return host


@pytest.fixture
async def scheduler(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[Scheduler]:
    # Periodic jobs run once at start and then hourly: the tests run them when they mean to.
    host = await start_scheduler(settings, scheduler_job_seconds=3600)
    client = NatsBroker(settings.nats_url)
    await client.connect()
    try:
        yield Scheduler(host, client, pool)
    finally:
        await client.stop()
        await host.stop()


@pytest.fixture
async def place(pool: asyncpg.Pool) -> Place:
    return await Place(pool).create()
