"""The edge's answers when a publish fails, against a fake broker that serializes like FastStream
and enforces NATS's max_payload: poison items are acknowledged and kept as one dead letter, an
outage is 503, and nothing is acknowledged that is neither stored nor kept."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import nats.errors
import nats.js.errors
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import REGISTRY
from pydantic import BaseModel
from pydantic_core import PydanticSerializationError

from services.common import jetstream
from services.common.contracts.deadletters import DeadMessage
from services.common.contracts.streams import DEAD_LETTERS, WA_INBOUND
from services.common.contracts.subjects import DEADLETTER_WEBHOOK
from services.common.contracts.whatsapp import InboundMessage
from services.common.jetstream import RetryPolicy
from services.common.settings import Settings
from services.ingress import http
from services.ingress.webhook import Notification, parse_notification, sign

SECRET = "app-secret"
MAX_PAYLOAD = 1024 * 1024


@dataclass
class FakeBroker:
    """Publishes like FastStream on NATS: JSON of the model, refused over max_payload."""

    outage_on: Callable[[str], bool] = lambda subject: False
    dead_letter_error: Exception | None = None
    stored: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)

    async def publish(
        self,
        message: BaseModel,
        subject: str,
        *,
        stream: str,
        headers: dict[str, str],
        timeout: float | None = None,  # noqa: ASYNC109 (FastStream publish's own parameter)
    ) -> None:
        if self.outage_on(subject):
            raise nats.errors.TimeoutError
        if subject == DEADLETTER_WEBHOOK and self.dead_letter_error:
            raise self.dead_letter_error
        data = message.model_dump_json().encode()  # PydanticSerializationError on a surrogate
        if len(data) > MAX_PAYLOAD:
            raise nats.errors.MaxPayloadError
        self.stored.append((stream, subject, headers, data))

    def on(self, stream: str) -> list[bytes]:
        return [data for s, _, _, data in self.stored if s == stream]


@pytest.fixture(autouse=True)
def quick_publish_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """An outage is tried again for seconds before it is a 503 (services/common/jetstream.py):
    here for a fraction of one."""
    monkeypatch.setattr(jetstream, "PUBLISH_RETRY", RetryPolicy(within=0.05, first_pause=0.01))


@pytest.fixture
def broker() -> FakeBroker:
    return FakeBroker()


@pytest.fixture
async def client(broker: FakeBroker) -> AsyncIterator[TestClient]:
    app = web.Application(client_max_size=3 * 1024 * 1024)
    http.add_webhook_routes(app, broker, Settings(whatsapp_app_secret=SECRET))  # type: ignore[arg-type]
    async with TestClient(TestServer(app)) as client:
        yield client


async def _post(client: TestClient, body: bytes) -> tuple[int, dict]:
    headers = {"X-Hub-Signature-256": sign(body, SECRET), "Content-Type": "application/json"}
    async with client.post("/webhook", data=body, headers=headers) as resp:
        return resp.status, await resp.json()


def _message(i: int, text: str) -> dict:
    return {"from": f"62811000{i}", "id": f"wamid.{i}", "type": "text", "text": {"body": text}}


def _body(*messages: dict) -> bytes:
    value = {"metadata": {"phone_number_id": "1"}, "messages": list(messages)}
    return json.dumps({"entry": [{"changes": [{"field": "messages", "value": value}]}]}).encode()


def _poison_count(reason: str) -> float:
    return REGISTRY.get_sample_value("vaksin_webhook_poison_total", {"reason": reason}) or 0.0


@pytest.fixture
def uncleaned(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """Let one text through uncleaned, as a gap in the cleaner would: the poison to catch."""

    def let_through(text: str) -> None:
        def parse(payload: Any) -> Notification:
            parsed = parse_notification(payload)
            parsed.messages = [
                m.model_copy(update={"text": text}) if m.text == "POISON" else m
                for m in parsed.messages
            ]
            return parsed

        monkeypatch.setattr(http, "parse_notification", parse)

    return let_through


async def test_one_poison_message_of_three_the_others_are_stored_the_body_kept(
    client: TestClient, broker: FakeBroker, uncleaned: Callable[[str], None]
) -> None:
    uncleaned("628123456789 \ud800 NIK 3201014503900001")
    before = _poison_count("unencodable")
    body = _body(_message(1, "VAKSIN"), _message(2, "POISON"), _message(3, "ya"))

    status, answer = await _post(client, body)

    assert status == 200
    assert answer == {"messages": 2, "statuses": 0, "ignored": 0, "dead_lettered": 1}
    stored = [InboundMessage.model_validate_json(d).wamid for d in broker.on(WA_INBOUND.name)]
    assert sorted(stored) == ["wamid.1", "wamid.3"]
    [raw_dead] = broker.on(DEAD_LETTERS.name)
    dead = DeadMessage.model_validate_json(raw_dead)
    assert dead.source == "webhook" and dead.body.encode() == body and dead.body_bytes == len(body)
    assert dead.error == "message#1 PydanticSerializationError: unencodable"
    [headers] = [h for s, _, h, _ in broker.stored if s == DEAD_LETTERS.name]
    assert headers["Nats-Msg-Id"] == f"webhook:{dead.body_sha256}"
    assert _poison_count("unencodable") == before + 1


async def test_message_over_max_payload_is_dead_lettered_as_too_large(
    client: TestClient, broker: FakeBroker, uncleaned: Callable[[str], None]
) -> None:
    uncleaned("x" * (MAX_PAYLOAD + 1))
    before = _poison_count("too_large")
    status, answer = await _post(client, _body(_message(1, "POISON")))
    assert (status, answer["dead_lettered"], answer["messages"]) == (200, 1, 0)
    dead = DeadMessage.model_validate_json(broker.on(DEAD_LETTERS.name)[0])
    assert dead.error == "message#0 MaxPayloadError: too_large"
    assert _poison_count("too_large") == before + 1


async def test_cleaned_hostile_texts_are_stored_not_dead_lettered(
    client: TestClient, broker: FakeBroker
) -> None:
    body = _body(_message(1, "\ud800" * 10), _message(2, "x" * 1_500_000))
    status, answer = await _post(client, body)
    assert (status, answer["messages"], answer["dead_lettered"]) == (200, 2, 0)
    assert broker.on(DEAD_LETTERS.name) == []


async def test_outage_is_503_and_nothing_is_dead_lettered(
    client: TestClient, broker: FakeBroker, uncleaned: Callable[[str], None]
) -> None:
    uncleaned("\ud800")
    broker.outage_on = lambda subject: subject.startswith("wa.inbound.message.")
    status, _ = await _post(client, _body(_message(1, "VAKSIN"), _message(2, "POISON")))
    assert status == 503
    assert broker.on(DEAD_LETTERS.name) == []


@pytest.mark.parametrize(
    ("error", "status"),
    [(nats.errors.TimeoutError(), 503), (nats.errors.NoRespondersError(), 503),
     (nats.js.errors.APIError(code=400, err_code=10999), 500)],
)  # fmt: skip
async def test_body_neither_stored_nor_kept_is_not_acknowledged(
    client: TestClient,
    broker: FakeBroker,
    uncleaned: Callable[[str], None],
    error: Exception,
    status: int,
) -> None:
    uncleaned("\ud800")
    broker.dead_letter_error = error
    assert (await _post(client, _body(_message(1, "POISON"))))[0] == status


async def test_parser_failure_is_acknowledged_and_kept(
    client: TestClient, broker: FakeBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(payload: Any) -> Notification:
        raise KeyError("628123456789")

    monkeypatch.setattr(http, "parse_notification", broken)
    before = _poison_count("other")
    status, answer = await _post(client, _body(_message(1, "VAKSIN")))
    assert (status, answer["dead_lettered"]) == (200, 1)
    dead = DeadMessage.model_validate_json(broker.on(DEAD_LETTERS.name)[0])
    assert dead.error == "body KeyError: other"
    assert _poison_count("other") == before + 1


async def test_deeply_nested_json_is_400_not_500(client: TestClient) -> None:
    status, _ = await _post(client, b"[" * 200_000 + b"]" * 200_000)
    assert status == 400


@pytest.mark.parametrize(
    ("error", "outage"),
    [
        (nats.errors.TimeoutError(), True),
        (nats.errors.NoRespondersError(), True),
        (nats.errors.ConnectionClosedError(), True),
        (nats.errors.OutboundBufferLimitError(), True),
        (nats.js.errors.NoStreamResponseError(), True),
        (nats.js.errors.ServiceUnavailableError(code=503), True),
        (nats.errors.MaxPayloadError(), False),
        (nats.errors.BadHeaderError(), False),
        (nats.js.errors.APIError(code=400, err_code=10054), False),
        (PydanticSerializationError("surrogates not allowed"), False),
        (ValueError("x"), False),
    ],
)
def test_only_nats_being_unreachable_or_slow_is_an_outage(error: Exception, outage: bool) -> None:
    assert http.is_outage(error) is outage
