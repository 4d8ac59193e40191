"""The fake Graph API refuses what Meta refuses, in Meta's envelopes, and records what it took."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from services.devtools.fake_graph import FakeGraph, sign

TOKEN = {"Authorization": "Bearer test-token"}
TO = "6281200000001"


@pytest.fixture
async def fake() -> AsyncIterator[FakeGraph]:
    fake = FakeGraph()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def text(body: str = "Halo", to: str = TO) -> dict[str, Any]:
    return {"messaging_product": "whatsapp", "to": to, "type": "text", "text": {"body": body}}


def buttons(*titles: str) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "to": TO,
        "type": "interactive",
        "interactive": {
            "type": "button",
            "body": {"text": "Pilih"},
            "action": {
                "buttons": [
                    {"type": "reply", "reply": {"id": f"b{i}", "title": t}}
                    for i, t in enumerate(titles)
                ]
            },
        },
    }


def a_list(rows: int, *, row_title: str = "Baris", description: str | None = None) -> dict:
    row = {"title": row_title} | ({"description": description} if description else {})
    return {
        "messaging_product": "whatsapp",
        "to": TO,
        "type": "interactive",
        "interactive": {
            "type": "list",
            "body": {"text": "Pilih lokasi"},
            "action": {
                "button": "Pilih",
                "sections": [
                    {"title": "Lokasi", "rows": [row | {"id": f"r{i}"} for i in range(rows)]}
                ],
            },
        },
    }


async def post(
    http: aiohttp.ClientSession, url: str, body: Any, headers: dict | None = None
) -> tuple[int, dict, Any]:
    async with http.post(url, json=body, headers=TOKEN if headers is None else headers) as r:
        return r.status, dict(r.headers), await r.json()


async def test_accepted_text_gets_a_wamid_and_is_recorded(fake, http) -> None:
    status, _, answer = await post(http, f"{fake.base_url}/123/messages", text())
    assert status == 200
    wamid = answer["messages"][0]["id"]
    assert wamid.startswith("wamid.")
    assert answer["contacts"] == [{"input": TO, "wa_id": TO}]
    assert [(m["index"], m["type"], m["wamid"]) for m in fake.messages_to(TO)] == [
        (1, "text", wamid)
    ]
    assert fake.sent[0]["body"] == text()


async def test_missing_token_is_401_with_code_190(fake, http) -> None:
    status, _, answer = await post(http, f"{fake.base_url}/123/messages", text(), headers={})
    assert status == 401
    assert answer["error"]["code"] == 190
    assert answer["error"]["type"] == "OAuthException"
    assert fake.sent == []


async def test_only_the_configured_token_and_number_id_are_accepted(http) -> None:
    fake = FakeGraph(access_token="right", phone_number_id="123")
    await fake.start()
    try:
        url = f"{fake.base_url}/123/messages"
        wrong = {"Authorization": "Bearer wrong"}
        assert (await post(http, url, text(), wrong))[0] == 401
        right = {"Authorization": "Bearer right"}
        status, _, answer = await post(http, f"{fake.base_url}/999/messages", text(), right)
        assert (status, answer["error"]["code"]) == (400, 100)
        assert (await post(http, url, text(), right))[0] == 200
    finally:
        await fake.stop()
    assert len(fake.sent) == 1


async def test_empty_bearer_token_is_401(fake, http) -> None:
    headers = {"Authorization": "Bearer "}
    status, _, answer = await post(http, f"{fake.base_url}/123/messages", text(), headers)
    assert (status, answer["error"]["code"]) == (401, 190)


@pytest.mark.parametrize(
    "body",
    [
        buttons("A title of 21 chars!!"),
        buttons("A", "B", "C", "D"),
        buttons(),
        buttons("Ya", "Ya"),
        a_list(11),
        a_list(1, row_title="x" * 25),
        a_list(1, description="x" * 73),
        text("x" * 4097),
        text(to="not-a-number"),
        {"messaging_product": "sms", "to": TO, "type": "text", "text": {"body": "x"}},
        {"messaging_product": "whatsapp", "to": TO, "type": "telepathy", "telepathy": {}},
    ],
    ids=[
        "button-title-21",
        "four-buttons",
        "no-buttons",
        "duplicate-titles",
        "eleven-rows",
        "row-title-25",
        "description-73",
        "text-4097",
        "bad-to",
        "wrong-product",
        "unknown-type",
    ],
)
async def test_invalid_sends_are_400_code_100(fake, http, body) -> None:
    status, _, answer = await post(http, f"{fake.base_url}/123/messages", body)
    assert status == 400
    assert answer["error"]["code"] == 100
    assert answer["error"]["message"].startswith("(#100)")
    assert answer["error"]["error_data"]["messaging_product"] == "whatsapp"
    assert fake.sent == []


async def test_limits_themselves_are_accepted(fake, http) -> None:
    for body in (
        buttons("x" * 20, "B", "C"),
        a_list(10, row_title="x" * 24, description="y" * 72),
        text("x" * 4096),
    ):
        status, _, answer = await post(http, f"{fake.base_url}/123/messages", body)
        assert status == 200, answer
    assert len(fake.messages_to(TO)) == 3


async def test_injected_errors_answer_the_next_sends_then_stop(fake, http) -> None:
    fake.fail_next(130429, times=2, retry_after=3)
    url = f"{fake.base_url}/123/messages"
    for _ in range(2):
        status, headers, answer = await post(http, url, text())
        assert status == 400
        assert headers["Retry-After"] == "3"
        assert answer["error"]["code"] == 130429
        assert answer["error"]["message"] == "(#130429) Rate limit hit"
        assert answer["error"]["fbtrace_id"]
    status, _, _ = await post(http, url, text())
    assert status == 200
    assert len(fake.sent) == 1
    assert [r["code"] for r in fake.rejected] == [130429, 130429]


async def test_failures_can_be_injected_over_http(fake, http) -> None:
    root = fake.base_url.rsplit("/", 1)[0]
    async with http.post(
        f"{root}/_fake/fail", json={"code": 131000, "http_status": 500, "times": 1}
    ) as r:
        assert r.status == 200
    status, _, answer = await post(http, f"{fake.base_url}/123/messages", text())
    assert (status, answer["error"]["code"]) == (500, 131000)


async def test_mark_as_read_is_recorded_not_sent(fake, http) -> None:
    body = {"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.IN1"}
    status, _, answer = await post(http, f"{fake.base_url}/123/messages", body)
    assert (status, answer) == (200, {"success": True})
    assert fake.reads == ["wamid.IN1"]
    assert fake.sent == []


async def test_media_upload_returns_a_digit_id_and_keeps_the_file(fake, http) -> None:
    form = aiohttp.FormData()
    form.add_field("messaging_product", "whatsapp")
    form.add_field("type", "image/png")
    form.add_field("file", b"\x89PNG...", filename="ticket.png", content_type="image/png")
    async with http.post(f"{fake.base_url}/123/media", data=form, headers=TOKEN) as r:
        assert r.status == 200
        media_id = (await r.json())["id"]
    assert media_id.isdigit()
    assert fake.media[media_id]["data"] == b"\x89PNG..."
    assert fake.media[media_id]["type"] == "image/png"
    root = fake.base_url.rsplit("/", 1)[0]
    async with http.get(f"{root}/_fake/media/{media_id}") as r:
        assert (r.status, r.content_type, await r.read()) == (200, "image/png", b"\x89PNG...")
    async with http.get(f"{root}/_fake/media/999") as r:
        assert r.status == 404


async def test_introspection_lists_sends_to_one_number_after_an_index(fake, http) -> None:
    url = f"{fake.base_url}/123/messages"
    await post(http, url, text("satu"))
    await post(http, url, text("lain", to="6281299999999"))
    await post(http, url, text("dua"))
    root = fake.base_url.rsplit("/", 1)[0]
    async with http.get(f"{root}/_fake/messages", params={"to": TO, "after": "1"}) as r:
        listed = await r.json()
    assert [(m["index"], m["body"]["text"]["body"]) for m in listed] == [(3, "dua")]


async def test_wait_for_messages_reports_what_it_has_on_timeout(fake, http) -> None:
    await post(http, f"{fake.base_url}/123/messages", text("satu"))
    with pytest.raises(AssertionError, match="got 1"):
        await fake.wait_for_messages(TO, 2, timeout=0.2)


async def test_status_webhooks_are_signed_and_follow_each_send(http) -> None:
    received: list[tuple[str, dict]] = []
    arrived = asyncio.Event()

    async def webhook(request: web.Request) -> web.Response:
        raw = await request.read()
        assert request.headers["X-Hub-Signature-256"] == sign(raw, "secret")
        received.append((request.headers["X-Hub-Signature-256"], json.loads(raw)))
        if len(received) == 2:
            arrived.set()
        return web.Response(text="ok")

    hook_app = web.Application()
    hook_app.router.add_post("/webhook", webhook)
    runner = web.AppRunner(hook_app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    fake = FakeGraph(
        webhook_url=f"http://127.0.0.1:{port}/webhook", app_secret="secret", status_delay=0
    )
    await fake.start()
    try:
        _, _, answer = await post(http, f"{fake.base_url}/123/messages", text())
        await asyncio.wait_for(arrived.wait(), 5)
        # And on demand, for statuses Meta sends later (read, failed).
        assert await fake.post_status(answer["messages"][0]["id"], "read") == 200
    finally:
        await fake.stop()
        await runner.cleanup()
    wamid = answer["messages"][0]["id"]
    statuses = [body["entry"][0]["changes"][0]["value"]["statuses"][0] for _, body in received]
    assert [(s["id"], s["status"], s["recipient_id"]) for s in statuses] == [
        (wamid, "sent", TO),
        (wamid, "delivered", TO),
        (wamid, "read", TO),
    ]
    assert all(isinstance(s["timestamp"], str) for s in statuses)
    assert received[0][1]["object"] == "whatsapp_business_account"


def test_sign_is_hex_hmac_sha256() -> None:
    # Value computed independently: printf 'body' | openssl dgst -sha256 -hmac key
    assert sign(b"body", "key") == (
        "sha256=515aae133b435d4000956731f68ae5cf5eb85d4f0dc6a546d2bfcd3595ec1ae1"
    )


# --- Meta's rules the notifier relies on: templates, window, media, limits -------------------


def template(name: str, params: list[str], lang: str = "id") -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "language": {"code": lang}}
    if params:
        body["components"] = [
            {"type": "body", "parameters": [{"type": "text", "text": p} for p in params]}
        ]
    return {"messaging_product": "whatsapp", "to": TO, "type": "template", "template": body}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (template("rescreen_reminder", ["31-01-2021"]), None),
        (template("rescreen_reminder", ["31-01-2021"], lang="en"), None),
        (template("never_approved", ["x"]), 132001),
        (template("rescreen_reminder", ["31-01-2021"], lang="fr"), 132001),
        (template("rescreen_reminder", []), 132000),
        (template("rescreen_reminder", ["a", "b"]), 132000),
        (template("rescreen_reminder", ["two\nlines"]), 100),
    ],
    ids=["ok", "ok-en", "unknown", "language", "too-few", "too-many", "newline"],
)
async def test_templates_are_checked_like_meta_does(fake, http, body, code) -> None:
    status, _, answer = await post(http, f"{fake.base_url}/123/messages", body)
    if code is None:
        assert status == 200
        assert fake.messages_to(TO)[0]["type"] == "template"
    else:
        assert (status, answer["error"]["code"]) == (400, code)
        assert fake.sent == []


async def test_a_free_form_send_outside_the_window_fails_by_status_webhook(http) -> None:
    received: list[dict] = []
    arrived = asyncio.Event()

    async def webhook(request: web.Request) -> web.Response:
        received.append(json.loads(await request.read()))
        arrived.set()
        return web.Response(text="ok")

    hook_app = web.Application()
    hook_app.router.add_post("/webhook", webhook)
    runner = web.AppRunner(hook_app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    fake = FakeGraph(
        webhook_url=f"http://127.0.0.1:{port}/webhook",
        app_secret="secret",
        status_delay=0,
        enforce_window=True,
    )
    await fake.start()
    try:
        url = f"{fake.base_url}/123/messages"
        status, _, answer = await post(http, url, text("di luar jendela"))
        assert status == 200  # accepted: the failure comes later, as Meta does it
        await asyncio.wait_for(arrived.wait(), 5)
        fake.customer_wrote(TO)
        assert (await post(http, url, text("di dalam jendela")))[0] == 200
        assert (await post(http, url, template("rescreen_reminder", ["1"])))[0] == 200
    finally:
        await fake.stop()
        await runner.cleanup()
    [failed] = received[0]["entry"][0]["changes"][0]["value"]["statuses"]
    assert (failed["id"], failed["status"]) == (answer["messages"][0]["id"], "failed")
    assert failed["errors"][0]["code"] == 131047
    assert [m["body"]["type"] for m in fake.sent] == ["text", "template"]
    assert [m["body"]["text"]["body"] for m in fake.undelivered] == ["di luar jendela"]


async def test_a_send_by_an_unknown_or_expired_media_id_is_131053(fake, http) -> None:
    form = aiohttp.FormData()
    form.add_field("messaging_product", "whatsapp")
    form.add_field("type", "image/png")
    form.add_field("file", b"\x89PNG...", filename="t.png", content_type="image/png")
    async with http.post(f"{fake.base_url}/123/media", data=form, headers=TOKEN) as r:
        media_id = (await r.json())["id"]
    image = {"messaging_product": "whatsapp", "to": TO, "type": "image", "image": {"id": media_id}}
    assert (await post(http, f"{fake.base_url}/123/messages", image))[0] == 200
    fake.expire_media(media_id)
    status, _, answer = await post(http, f"{fake.base_url}/123/messages", image)
    assert (status, answer["error"]["code"]) == (400, 131053)


async def test_throughput_and_pair_limits_answer_like_meta(http) -> None:
    fake = FakeGraph(mps_limit=3, pair_limit=(2, 60.0))
    await fake.start()
    try:
        url = f"{fake.base_url}/123/messages"
        answers = [await post(http, url, text(to=f"62812000000{i:02d}")) for i in range(4)]
        assert [a[0] for a in answers] == [200, 200, 200, 400]
        assert answers[3][2]["error"]["code"] == 130429
        fake.mps_limit = None
        pair = [(await post(http, url, text(to="6281299999999")))[2] for _ in range(3)]
        assert [p.get("error", {}).get("code") for p in pair] == [None, None, 131056]
    finally:
        await fake.stop()
    assert fake.max_rate(1.0) == 5


async def test_typing_indicator_and_read_failures_are_recorded(fake, http) -> None:
    url = f"{fake.base_url}/123/messages"
    read = {"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.IN2"}
    typing = read | {"message_id": "wamid.IN3", "typing_indicator": {"type": "text"}}
    assert (await post(http, url, read))[0] == 200
    assert (await post(http, url, typing))[0] == 200
    fake.failing_reads = 1
    status, _, answer = await post(http, url, read | {"message_id": "wamid.IN4"})
    assert (status, answer["error"]["code"]) == (500, 131000)
    assert fake.reads == ["wamid.IN2", "wamid.IN3"]
    assert fake.typing == ["wamid.IN3"]


async def test_timeline_lists_send_times_for_benchmarks(fake, http) -> None:
    url = f"{fake.base_url}/123/messages"
    for _ in range(3):
        await post(http, url, text())
    root = fake.base_url.rsplit("/", 1)[0]
    async with http.get(f"{root}/_fake/timeline", params={"after": "1"}) as r:
        timeline = await r.json()
    assert (timeline["sent"], timeline["last_index"], len(timeline["times"])) == (3, 3, 2)
    assert timeline["times"] == [m["at"] for m in fake.sent[1:]]
