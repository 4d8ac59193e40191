"""The screening service running in-process against the session's real NATS and Postgres, a
separate NATS client to call it, and a reader of the SCREENING stream. The database is shared
by the whole session, so every test uses its own request ids, and rule sets loaded by a test take
effect on far-future dates that no other test screens on."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest
from faststream.nats import NatsBroker
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import ConsumerConfig, DeliverPolicy

from services.common.contracts.screening import (
    EvaluateRequest,
    EvaluateResult,
    Questionnaire,
    QuestionnaireRequest,
)
from services.common.contracts.streams import SCREENING
from services.common.contracts.subjects import (
    SCREENING_EVT_COMPLETED,
    SCREENING_RPC_EVALUATE,
    SCREENING_RPC_QUESTIONNAIRE,
)
from services.common.embedded import free_port
from services.common.service import ServiceHost
from services.common.settings import Settings
from services.screening.app import build_host

pytestmark = pytest.mark.servers


@dataclass(frozen=True)
class StreamMessage:
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass
class Screening:
    host: ServiceHost
    client: NatsBroker

    async def questionnaire(self, lang: str = "id", on: date | None = None) -> Questionnaire:
        resp = await self.client.request(
            QuestionnaireRequest(lang=lang, on=on), SCREENING_RPC_QUESTIONNAIRE, timeout=5
        )
        return Questionnaire.model_validate(await resp.decode())

    async def evaluate(self, request: EvaluateRequest) -> EvaluateResult:
        resp = await self.client.request(request, SCREENING_RPC_EVALUATE, timeout=5)
        return EvaluateResult.model_validate(await resp.decode())

    async def completed_events(
        self, screening_id: str, within: float = 10.0
    ) -> list[StreamMessage]:
        """Every screening.evt.completed in the stream for this screening, once there is one."""
        js = self.client.connection.jetstream()
        deadline = time.monotonic() + within
        while True:
            found = [m for m in await _read_all(js) if m.body["screening_id"] == screening_id]
            if found or time.monotonic() > deadline:
                return found
            await asyncio.sleep(0.1)


async def _read_all(js: Any) -> list[StreamMessage]:
    sub = await js.pull_subscribe(
        SCREENING_EVT_COMPLETED,
        stream=SCREENING.name,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL, inactive_threshold=5.0),
    )
    messages: list[StreamMessage] = []
    try:
        while True:
            try:
                batch = await sub.fetch(batch=100, timeout=0.5)
            except NatsTimeout:
                break
            for msg in batch:
                messages.append(StreamMessage(json.loads(msg.data), dict(msg.headers or {})))
                await msg.ack()
    finally:
        await sub.unsubscribe()
    return messages


@pytest.fixture
async def screening(settings: Settings) -> AsyncIterator[Screening]:
    host = build_host(settings.model_copy(update={"health_port": free_port()}))
    await host.start()
    client = NatsBroker(settings.nats_url)
    await client.connect()
    try:
        yield Screening(host, client)
    finally:
        await client.stop()
        await host.stop()


def request_id() -> str:
    return f"wamid.test-{secrets.token_hex(8)}"
