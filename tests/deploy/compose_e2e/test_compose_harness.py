"""The compose harness driven from outside, as Meta, a health worker and a facility desk would: only
through its published ports (the webhook, the desk API, the fake Graph API's record of sends, and
Postgres for the registry import). `make e2e-compose` starts the harness, sets VAKSIN_COMPOSE_E2E
to the env file it runs with, runs this module and removes the harness; without that variable
every test is skipped."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from services.common.settings import Settings
from services.identity.registry_import import import_registry_file
from services.ingress.webhook import sign
from services.ticketing.token import load_signing_key, public_pem
from tests.deploy.conftest import read_env_file
from tests.e2e.conftest import body_of, envelope, new_person

ENV_FILE = os.environ.get("VAKSIN_COMPOSE_E2E", "")
pytestmark = pytest.mark.skipif(
    not ENV_FILE, reason="needs the compose harness: run `make e2e-compose` (Docker)"
)


@dataclass
class Harness:
    secrets: dict[str, str]
    http: aiohttp.ClientSession
    webhook: str = f"http://127.0.0.1:{os.environ.get('INGRESS_HOST_PORT', '8080')}"
    fake_graph: str = f"http://127.0.0.1:{os.environ.get('FAKE_GRAPH_HOST_PORT', '9090')}"
    desk: str = f"http://127.0.0.1:{os.environ.get('TICKETING_HOST_PORT', '8087')}"

    @property
    def database_url(self) -> str:
        if os.environ.get("VAKSIN_E2E_DATABASE_URL"):  # a harness of your own
            return os.environ["VAKSIN_E2E_DATABASE_URL"]
        port = os.environ.get("POSTGRES_HOST_PORT", "55432")
        return f"postgresql://vaksin:{self.secrets['POSTGRES_PASSWORD']}@127.0.0.1:{port}/vaksin"

    async def post(self, body: bytes, *, signed: bool = True) -> int:
        headers = {"Content-Type": "application/json"}
        if signed:
            headers["X-Hub-Signature-256"] = sign(body, self.secrets["WHATSAPP_APP_SECRET"])
        async with self.http.post(f"{self.webhook}/webhook", data=body, headers=headers) as resp:
            return resp.status

    async def sent_to(self, wa_id: str) -> list[dict]:
        async with self.http.get(f"{self.fake_graph}/_fake/messages", params={"to": wa_id}) as r:
            return await r.json()

    async def turn(self, wa_id: str, text: str = "", reply_id: str | None = None) -> dict:
        """One user message through the webhook; the one reply it causes, as Meta received it."""
        before = len(await self.sent_to(wa_id))
        message: dict = {"from": wa_id, "id": f"wamid.compose{time.time_ns()}"}
        message["timestamp"] = str(int(time.time()))
        if reply_id:
            reply = {"type": "button_reply", "button_reply": {"id": reply_id, "title": text}}
            message |= {"type": "interactive", "interactive": reply}
        else:
            message |= {"type": "text", "text": {"body": text}}
        assert await self.post(json.dumps(envelope(wa_id, message)).encode()) == 200
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            sent = await self.sent_to(wa_id)
            if len(sent) > before:
                return sent[before]
            await asyncio.sleep(0.2)
        raise AssertionError(f"no reply to {text or reply_id!r} within 30 s")


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        yield Harness(read_env_file(Path(ENV_FILE)), http)


async def test_the_system_is_ready(harness: Harness) -> None:
    async with harness.http.get(f"{harness.webhook}/readyz") as resp:
        assert resp.status == 200
        assert (await resp.json())["ready"] is True


async def test_the_webhook_handshake_needs_the_verify_token(harness: Harness) -> None:
    query = {"hub.mode": "subscribe", "hub.challenge": "1158201444"}
    good = query | {"hub.verify_token": harness.secrets["WHATSAPP_VERIFY_TOKEN"]}
    async with harness.http.get(f"{harness.webhook}/webhook", params=good) as resp:
        assert (resp.status, await resp.text()) == (200, "1158201444")
    bad = query | {"hub.verify_token": "wrong"}
    async with harness.http.get(f"{harness.webhook}/webhook", params=bad) as resp:
        assert resp.status == 403


async def test_the_desk_api_shows_the_key_of_the_env_file_and_wants_the_operator_token(
    harness: Harness,
) -> None:
    async with harness.http.get(f"{harness.desk}/tickets/public-key") as resp:
        assert resp.status == 200
        shown = await resp.json()
    ours = load_signing_key(harness.secrets["TICKET_SIGNING_KEY"]).public_key()
    assert (shown["alg"], shown["pem"]) == ("EdDSA", public_pem(ours))
    body = {"token": "not-a-ticket"}
    async with harness.http.post(f"{harness.desk}/tickets/verify", json=body) as resp:
        assert resp.status == 401
    operator = {"Authorization": f"Bearer {harness.secrets['OPERATOR_TOKEN']}"}
    verify = f"{harness.desk}/tickets/verify"
    async with harness.http.post(verify, json=body, headers=operator) as resp:
        assert resp.status == 200
        assert (await resp.json())["status"] == "forged"


async def test_an_unsigned_notification_is_refused(harness: Harness) -> None:
    assert await harness.post(b'{"object": "whatsapp_business_account"}', signed=False) == 401


async def test_a_registered_health_worker_is_verified(harness: Harness, tmp_path: Path) -> None:
    nakes = new_person("Siti Rahmawati")
    registry = tmp_path / "registry.csv"
    registry.write_text(
        "nik,name,phone,profession,facility_code\n"
        f"{nakes.nik},{nakes.name},{nakes.phone},{nakes.profession},{nakes.facility_code}\n"
    )
    settings = Settings(
        database_url=harness.database_url,
        nik_pepper=harness.secrets["NIK_PEPPER"],
        data_dir=tmp_path,
    )
    assert await import_registry_file(settings, registry) == 0

    greeting = await harness.turn(nakes.phone, "VAKSIN")
    buttons = greeting["body"]["interactive"]["action"]["buttons"]
    assert [b["reply"]["id"] for b in buttons] == ["nakes.yes", "nakes.no"]
    await harness.turn(nakes.phone, "Ya", reply_id="nakes.yes")
    verified = body_of(await harness.turn(nakes.phone, nakes.suffix))
    assert nakes.facility_code in verified and nakes.name not in verified
