"""Unique test data for the identity component tests (the database is shared by the session)."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from services.common.contracts.identity import NumberStatus, VerifyResult
from services.common.service import ServiceHost


def random_nik(*, female: bool = False) -> str:
    """A structurally valid NIK, random enough not to collide within a test session."""
    regency, district = secrets.randbelow(79) + 1, secrets.randbelow(99) + 1
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
