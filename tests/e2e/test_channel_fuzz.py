"""Hostile bodies against the USSD and SMS callbacks, as the webhook's are fuzzed: with the key,
the adapters never answer 5xx while NATS is up (4xx with a reason for what cannot be a request),
store what they accept cleaned, and a real person is still answered afterwards. Seeded: a
failure replays."""

from __future__ import annotations

import asyncio
import collections
import random
import urllib.parse
from typing import Any

import pytest

from tests.e2e.channels import SMS_SECRET, Channels, channels_fixture  # noqa: F401
from tests.e2e.test_webhook_fuzz import HOSTILE_VALUES, ODD_TEXTS

pytestmark = pytest.mark.servers

SEED = 20210113
BODIES = 1_500  # per callback
IN_FLIGHT = 16


def _value(rng: random.Random) -> Any:
    roll = rng.random()
    if roll < 0.6:
        return rng.choice(ODD_TEXTS)
    if roll < 0.8:
        return rng.choice(HOSTILE_VALUES)
    return "".join(chr(rng.randrange(0, 0x110000)) for _ in range(rng.randrange(1, 40)))


def _phone(rng: random.Random) -> str:
    return rng.choice(["+62812", "62812", "0812"]) + "".join(rng.choices("0123456789", k=8))


def _encode(fields: dict[str, Any]) -> bytes:
    parts = []
    for key, value in fields.items():
        text = value if isinstance(value, str) else str(value)
        raw = text.encode("utf-8", "surrogatepass")
        parts.append(f"{urllib.parse.quote_plus(key)}={urllib.parse.quote_plus(raw)}")
    return "&".join(parts).encode()


def _ussd_body(rng: random.Random) -> bytes:
    fields: dict[str, Any] = {
        "sessionId": rng.choice([f"ATUid_{rng.getrandbits(48):x}", _value(rng)]),
        "serviceCode": rng.choice(["*119#", _value(rng)]),
        "phoneNumber": rng.choice([_phone(rng), _value(rng)]) if rng.random() < 0.2 else "x",
        "networkCode": "51010",
        "text": rng.choice(["", "1", "1*2", "0", "00", "*" * 50, "1*" * 600, _value(rng)]),
    }
    return _raw(rng, fields)


def _sms_body(rng: random.Random) -> bytes:
    fields: dict[str, Any] = {
        "id": rng.choice([f"{rng.getrandbits(64):x}", _value(rng)]),
        "from": rng.choice([_phone(rng), _value(rng)]) if rng.random() < 0.2 else "Jasmin",
        "to": "1199",
        "origin-connector": "smppc01",
        "coding": rng.choice(["0", "8", "x", ""]),
        "content": _value(rng),
    }
    if rng.random() < 0.2:
        fields["binary"] = rng.choice(["zz", "00", "d800", "0041" * 3000, _value(rng)])
    return _raw(rng, fields)


def _raw(rng: random.Random, fields: dict[str, Any]) -> bytes:
    """The fields with up to two of them dropped or garbled, usually form-encoded, sometimes not
    a form at all."""
    for _ in range(rng.randrange(0, 3)):
        key = rng.choice(list(fields))
        if rng.random() < 0.5:
            fields.pop(key)
        else:
            fields[key] = _value(rng)
    roll = rng.random()
    if roll < 0.85:
        return _encode(fields)
    if roll < 0.9:
        return bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 300)))
    if roll < 0.95:
        return b"%" * rng.randrange(1, 100) + b"=%zz&&&==&"
    return b"text=" + b"1*" * 100_000


async def _fire(channels: Channels, url: str, bodies: list[bytes]) -> collections.Counter[int]:
    statuses: collections.Counter[int] = collections.Counter()
    queue = list(enumerate(bodies))
    http = channels.system.http

    async def worker() -> None:
        while queue:
            i, body = queue.pop()
            headers = {"Content-Type": "application/x-www-form-urlencoded"}
            async with http.post(url, data=body, headers=headers) as resp:
                await resp.read()
                statuses[resp.status] += 1
                assert resp.status < 500, (i, resp.status, body[:200])

    await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
    return statuses


async def test_hostile_ussd_callbacks_never_break_the_adapter(channels: Channels) -> None:
    rng = random.Random(SEED)
    bodies = [_ussd_body(rng) for _ in range(BODIES)]
    channels.settings.ussd_reply_seconds = 0.2  # most never get an answer: do not wait for one
    statuses = await _fire(channels, channels.ussd_url, bodies)
    assert statuses[400] > 0 and statuses[200] > 0
    assert set(statuses) <= {200, 400, 413}
    channels.settings.ussd_reply_seconds = 8.0
    ussd = channels.dial("62812" + "".join(random.choices("0123456789", k=8)))
    answer = await ussd.dial()
    assert answer.status == 200 and answer.kind == "CON"


async def test_hostile_sms_callbacks_never_break_the_adapter(channels: Channels) -> None:
    rng = random.Random(SEED + 1)
    bodies = [_sms_body(rng) for _ in range(BODIES)]
    url = f"{channels.sms_base}/sms/inbound?key={SMS_SECRET}"
    statuses = await _fire(channels, url, bodies)
    assert statuses[400] > 0 and statuses[200] > 0
    assert set(statuses) <= {200, 400, 413}
    dlr = [_sms_body(rng) for _ in range(200)]
    statuses = await _fire(channels, f"{channels.sms_base}/sms/dlr?key={SMS_SECRET}", dlr)
    assert set(statuses) <= {200, 400, 413}
    phone = "62812" + "".join(random.choices("0123456789", k=8))
    status, answer = await channels.jasmin.deliver(phone, "VAKSIN")
    assert (status, answer) == (200, "ACK/Jasmin")
    await channels.jasmin.wait_for(phone, 1)
