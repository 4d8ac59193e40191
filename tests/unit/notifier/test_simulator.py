"""The chat simulator's server side: what the page posts becomes a webhook signed as Meta signs
it, which the ingress's own parser reads as the user's message; bad requests get a 400."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from services.devtools import simulator
from services.devtools.fake_graph import FakeGraph
from services.ingress.webhook import Signature, check_signature, parse_notification

SECRET = "simulator-test-secret"


class Webhook:
    """A stand-in for the ingress: checks the signature and keeps what it parsed."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.received: list[Any] = []
        self.signatures: list[Signature] = []

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        self.signatures.append(
            check_signature(raw, request.headers.get("X-Hub-Signature-256"), SECRET)
        )
        self.received.extend(parse_notification(await request.json()).messages)
        return web.json_response({}, status=self.status)


@pytest.fixture
async def webhook() -> AsyncIterator[tuple[Webhook, str]]:
    hook = Webhook()
    app = web.Application()
    app.router.add_post("/webhook", hook.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield hook, f"http://127.0.0.1:{runner.addresses[0][1]}/webhook"
    await runner.cleanup()


@pytest.fixture
async def fake(webhook: tuple[Webhook, str]) -> AsyncIterator[str]:
    fake = FakeGraph(webhook_url=webhook[1], app_secret=SECRET)
    base = await fake.start()
    yield base.rsplit("/", 1)[0]
    await fake.stop()


async def test_typed_text_and_taps_reach_the_webhook_signed_as_meta_signs(
    fake: str, webhook: tuple[Webhook, str]
) -> None:
    hook, _ = webhook
    async with aiohttp.ClientSession() as http:
        for spec in (
            {"from": "+62 812-0000-0001", "name": "Siti", "text": "VAKSIN"},
            {"from": "6281200000001", "reply_id": "nakes.yes", "title": "Ya"},
            {"from": "081200000001", "reply_id": "loc.F3201001", "title": "PKM", "list": True},
        ):
            async with http.post(f"{fake}/simulator/say", json=spec) as resp:
                assert resp.status == 200, await resp.text()
                assert (await resp.json())["wamid"].startswith("wamid.")
    assert hook.signatures == [Signature.OK] * 3
    assert [(m.wa_id, m.text, m.reply_id) for m in hook.received] == [
        ("6281200000001", "VAKSIN", None),
        ("6281200000001", "Ya", "nakes.yes"),
        ("6281200000001", "PKM", "loc.F3201001"),
    ]


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ({"from": "12", "text": "VAKSIN"}, "8 to 15 digits"),
        ({"from": "6281200000001", "text": "   "}, "write something"),
        ({"from": "6281200000001", "text": "x" * 4097}, "at most 4096"),
        (["not", "an", "object"], "JSON object"),
    ],
)
async def test_a_bad_request_is_refused_with_its_reason_and_posts_nothing(
    fake: str, webhook: tuple[Webhook, str], spec: Any, reason: str
) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{fake}/simulator/say", json=spec) as resp,
    ):
        assert resp.status == 400
        assert reason in (await resp.json())["error"]
    assert webhook[0].received == []


async def test_a_webhook_that_refuses_is_reported_to_the_page(
    fake: str, webhook: tuple[Webhook, str]
) -> None:
    webhook[0].status = 503
    async with aiohttp.ClientSession() as http:
        spec = {"from": "6281200000001", "text": "VAKSIN"}
        async with http.post(f"{fake}/simulator/say", json=spec) as resp:
            assert resp.status == 502
            assert "503" in (await resp.json())["error"]


async def test_the_page_and_the_sample_people_are_served(fake: str) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{fake}/simulator/") as resp:
            assert resp.status == 200 and "chat simulator" in (await resp.text())
        async with http.get(f"{fake}/simulator/static/simulator.js") as resp:
            assert resp.status == 200
        async with http.get(f"{fake}/simulator/people") as resp:
            people = await resp.json()
    siti = next(p for p in people if p["name"] == "Siti Rahmawati")
    assert siti["wa_id"] == "6281200000001" and siti["nik_suffix"] == "850001"


def test_phone_numbers_are_read_as_whatsapp_writes_them() -> None:
    assert simulator.wa_id_of("+62 812-0000-0002") == "6281200000002"
    assert simulator.wa_id_of("0812 0000 0003") == "6281200000003"
    with pytest.raises(simulator.BadMessage):
        simulator.wa_id_of("call me")
