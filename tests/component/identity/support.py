"""Unique test data for the identity component tests (the database is shared by the session)."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from faststream.nats import NatsBroker
from nats.js.api import ConsumerConfig, DeliverPolicy

from services.common.contracts.identity import (
    CheckNikResult,
    IntakeStatus,
    IntakeSubmitRequest,
    IntakeSubmitResult,
    NumberStatus,
    VerifyResult,
)
from services.common.contracts.streams import IDENTITY
from services.common.service import ServiceHost


def random_nik(*, female: bool = False, regency: int | None = None) -> str:
    """A structurally valid NIK, random enough not to collide within a test session."""
    regency = regency or secrets.randbelow(79) + 1
    district = secrets.randbelow(99) + 1
    day = secrets.randbelow(28) + 1 + (40 if female else 0)
    month, yy = secrets.randbelow(12) + 1, secrets.randbelow(40) + 60
    serial = secrets.randbelow(9999) + 1
    return f"32{regency:02d}{district:02d}{day:02d}{month:02d}{yy:02d}{serial:04d}"


def random_phone() -> str:
    """A `628...` wa_id with 13 digits."""
    return "628" + "".join(str(secrets.randbelow(10)) for _ in range(10))


def other_suffix(suffix: str) -> str:
    return f"{(int(suffix) + 1) % 1_000_000:06d}"


@dataclass(frozen=True)
class Registered:
    nik: str
    phone: str  # as WhatsApp sends it: 628...
    name: str
    profession: str
    facility_code: str

    @property
    def suffix(self) -> str:
        return self.nik[-6:]


RegisterFn = Callable[..., Awaitable[Registered]]
VerifyFn = Callable[..., Awaitable[VerifyResult]]  # (wa_id, suffix, request_id=None)
StatusFn = Callable[[str], Awaitable[NumberStatus]]
CheckNikFn = Callable[[str], Awaitable[CheckNikResult]]
SubmitFn = Callable[..., Awaitable[IntakeSubmitResult]]  # (request=None, **fields)
IntakeStatusFn = Callable[[str], Awaitable[IntakeStatus]]


def request_id() -> str:
    return f"wamid.test-{secrets.token_hex(8)}"


def facility_code() -> str:
    """A facility code of this test only, so list filters see only its own requests."""
    return f"PKM-T{secrets.token_hex(4).upper()}"


def intake_request(**fields: str) -> IntakeSubmitRequest:
    values = {
        "request_id": request_id(),
        "wa_id": random_phone(),
        "nik": random_nik(),
        "full_name": "Dewi Lestari",
        "profession": "perawat",
        "facility_code": facility_code(),
        "lang": "id",
    }
    values.update(fields)
    return IntakeSubmitRequest(**values)


async def identity_events(client: NatsBroker, subject: str, intake_id: int,
                          *, within: float = 10.0, at_least: int = 1) -> list[StreamMessage]:  # fmt: skip
    """The messages of `subject` in the IDENTITY stream for one intake request, once there are
    `at_least` of them (or `within` seconds have passed)."""
    js = client.connection.jetstream()
    deadline = time.monotonic() + within
    while True:
        found = [m for m in await _read_stream(js, subject) if m.body["intake_id"] == intake_id]
        if len(found) >= at_least or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.1)


@dataclass(frozen=True)
class StreamMessage:
    body: dict[str, Any]
    headers: dict[str, str]


async def _read_stream(js: Any, subject: str) -> list[StreamMessage]:
    sub = await js.pull_subscribe(
        subject,
        stream=IDENTITY.name,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL, inactive_threshold=5.0),
    )
    messages: list[StreamMessage] = []
    try:
        while True:
            try:
                batch = await sub.fetch(batch=200, timeout=0.5)
            except TimeoutError:  # nats' own, or asyncio's when the deadline passes first
                break
            for msg in batch:
                messages.append(StreamMessage(json.loads(msg.data), dict(msg.headers or {})))
                await msg.ack()
    finally:
        await sub.unsubscribe()
    return messages


def registry_line(nik: str, phone: str, name: str = "Siti Rahmawati",
                  profession: str = "Bidan", facility_code: str = "PKM-1") -> str:  # fmt: skip
    """A registry CSV line with the phone written the way facilities do: 0812-..."""
    local = "0" + phone[2:]
    return f"{nik},{name},{local[:4]}-{local[4:8]}-{local[8:]},{profession},{facility_code}"


def unique_niks(n: int) -> list[str]:
    found: set[str] = set()
    while len(found) < n:
        found.add(random_nik(female=len(found) % 2 == 1))
    return list(found)


async def start_and_sync(host: ServiceHost) -> None:
    """Start the host and wait until the server has its subscriptions: `broker.start()` only
    queues the SUBs, and a request sent before they arrive gets "no responders"."""
    await host.start()
    await host.broker.connection.flush(timeout=5)
