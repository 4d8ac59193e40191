"""A signed body that can never be stored is acknowledged, kept in DEAD_LETTERS and counted, and
its good items still reach the dialog; 503 is only for NATS being down."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

import aiohttp
import nats
import pytest
from prometheus_client import REGISTRY

from services.common.contracts.deadletters import DeadMessage
from services.common.contracts.streams import DEAD_LETTERS, WA_INBOUND
from services.common.contracts.subjects import DEADLETTER_WEBHOOK
from services.common.embedded import EmbeddedNats, free_port
from services.common.settings import Settings
from services.ingress import http
from services.ingress.app import build_host as build_ingress
from services.ingress.webhook import Notification, parse_notification, sign
from tests.e2e.conftest import System, body_of, envelope, new_phone

pytestmark = pytest.mark.servers

POISON = "628123456789 \ud800 NIK 3201014503900001"  # content that must not reach the error


def _poison_count(reason: str) -> float:
    return REGISTRY.get_sample_value("vaksin_webhook_poison_total", {"reason": reason}) or 0.0


def _text(phone: str, wamid: str, text: str) -> dict:
    return {"from": phone, "id": wamid, "timestamp": "1700000000", "type": "text",
            "text": {"body": text}}  # fmt: skip


async def test_poison_item_is_kept_in_dead_letters_and_the_good_one_is_answered(
    system: System, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A gap in the cleaner, as a future field might open: one text reaches the publish raw.
    def parse_with_a_gap(payload: Any) -> Notification:
        parsed = parse_notification(payload)
        parsed.messages = [
            m.model_copy(update={"text": POISON}) if m.text == "POISON" else m
            for m in parsed.messages
        ]
        return parsed

    monkeypatch.setattr(http, "parse_notification", parse_with_a_gap)
    user, other = new_phone(), new_phone()
    payload = envelope(user, _text(user, f"wamid.good.{user}", "VAKSIN"))
    payload["entry"][0]["changes"][0]["value"]["messages"].append(
        _text(other, f"wamid.poison.{other}", "POISON")
    )
    body = json.dumps(payload).encode()
    before = _poison_count("unencodable")

    headers = {"X-Hub-Signature-256": sign(body, system.settings.whatsapp_app_secret)}
    async with system.http.post(system.webhook, data=body, headers=headers) as resp:
        assert resp.status == 200
        assert await resp.json() == {
            "messages": 1,
            "statuses": 0,
            "ignored": 0,
            "dead_lettered": 1,
        }

    assert _poison_count("unencodable") == before + 1
    nc = await nats.connect(system.settings.nats_url or "")
    try:
        stored = await nc.jetstream().get_last_msg(DEAD_LETTERS.name, DEADLETTER_WEBHOOK)
    finally:
        await nc.close()
    dead = DeadMessage.model_validate_json(stored.data or b"")
    assert dead.source == "webhook"
    assert dead.body_sha256 == hashlib.sha256(body).hexdigest()
    assert json.loads(dead.body) == payload  # kept whole, for an operator to replay
    assert dead.error == "message#1 PydanticSerializationError: unencodable"
    # The good message of the same body was stored and answered.
    [greeting] = await system.replies(user, 1)
    assert greeting["body"]["type"] == "interactive" and body_of(greeting)
    assert system.fake.messages_to(other) == []


async def test_edge_declares_its_streams_and_answers_503_while_nats_is_down(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # FastStream marks a JStream declared (`declare = False`) once any broker in the process has
    # declared it, and the stream objects are module-level: on this fresh server, have the edge
    # declare them again as it does when it starts in its own process.
    for stream in (WA_INBOUND, DEAD_LETTERS):
        monkeypatch.setattr(stream, "declare", True)
    server = EmbeddedNats(tmp_path)
    edge = build_ingress(
        settings.model_copy(
            update={"nats_url": server.start(), "ingress_port": free_port(),
                    "health_port": free_port()}
        )
    )  # fmt: skip
    await edge.start()
    try:
        nc = await nats.connect(server.url)
        try:
            info = await nc.jetstream().stream_info(DEAD_LETTERS.name)
            assert info.config.subjects == ["deadletter.>"]
        finally:
            await nc.close()
        async with aiohttp.ClientSession() as client:

            async def post(phone: str) -> int:
                body = json.dumps(envelope(phone, _text(phone, f"wamid.{phone}", "VAKSIN")))
                headers = {"X-Hub-Signature-256": sign(body.encode(), settings.whatsapp_app_secret)}
                url = f"http://127.0.0.1:{edge.port}/webhook"
                async with client.post(url, data=body, headers=headers) as resp:
                    return resp.status

            assert await post(new_phone()) == 200
            assert server.proc is not None
            server.proc.kill()  # SIGKILL: really down, not a graceful goodbye
            await asyncio.to_thread(server.proc.wait)
            assert await post(new_phone()) == 503
    finally:
        await asyncio.wait_for(edge.stop(), timeout=60)
        server.stop()
