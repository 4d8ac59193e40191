"""The webhook edge as Meta and an attacker see it: handshake, signatures, bad bodies, fixtures."""

from __future__ import annotations

import asyncio
import json

import pytest

from services.ingress.webhook import sign
from tests.e2e.conftest import System, envelope, new_phone
from tests.unit.ingress.test_webhook import fixture_bodies

pytestmark = pytest.mark.servers


async def test_handshake(system: System) -> None:
    params = {
        "hub.mode": "subscribe",
        "hub.challenge": "1158201444",
        "hub.verify_token": system.settings.whatsapp_verify_token,
    }
    async with system.http.get(system.webhook, params=params) as resp:
        assert resp.status == 200 and await resp.text() == "1158201444"
    async with system.http.get(system.webhook, params={**params, "hub.verify_token": "x"}) as resp:
        assert resp.status == 403


def _text_body(phone: str, text: str = "VAKSIN") -> bytes:
    message = {
        "from": phone,
        "id": f"wamid.edge.{phone}",
        "timestamp": "1700000000",
        "type": "text",
        "text": {"body": text},
    }
    return json.dumps(envelope(phone, message)).encode()


@pytest.mark.parametrize(
    ("signature", "status"),
    [(None, 401), ("sha256=" + "0" * 64, 403), ("sign-with-other-secret", 403)],
)
async def test_unsigned_or_badly_signed_bodies_are_refused_and_change_nothing(
    system: System, signature: str | None, status: int
) -> None:
    phone = new_phone()
    body = _text_body(phone)
    if signature == "sign-with-other-secret":
        signature = sign(body, "not-the-app-secret")
    assert (await system.post(body, signature=signature)).status == status
    await asyncio.sleep(1.0)
    assert system.fake.messages_to(phone) == []


async def test_tampered_body_with_original_signature_is_refused(system: System) -> None:
    phone = new_phone()
    body = _text_body(phone)
    signature = sign(body, system.settings.whatsapp_app_secret)
    assert (
        await system.post(body.replace(b"VAKSIN", b"DAFTAR"), signature=signature)
    ).status == 403


async def test_malformed_json_is_400(system: System) -> None:
    assert (await system.post(b'{"object": "whatsapp_business_account", "entry": [')).status == 400


async def test_huge_body_is_413(system: System) -> None:
    body = b'{"pad": "' + b"x" * (4 * 1024 * 1024) + b'"}'
    assert (await system.post(body)).status == 413


async def test_every_fixture_body_is_acknowledged(system: System) -> None:
    for name, body in fixture_bodies():
        resp = await system.post(body)
        assert resp.status == 200, name
    # The edge stayed healthy and the dialog kept working after all of them.
    async with system.http.get(system.webhook.replace("/webhook", "/readyz")) as resp:
        assert resp.status == 200
    phone = new_phone()
    assert (await system.turn(phone, "VAKSIN"))["body"]["type"] == "interactive"
