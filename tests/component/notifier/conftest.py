"""The notifier against real NATS JetStream, real Postgres and the fake Graph API, with Meta's
status webhooks coming back through the real webhook edge (services/ingress/http.py)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import nats
import pytest
from aiohttp import web
from faststream.nats import NatsBroker
from prometheus_client import REGISTRY

from services.common.contracts.notifier import SendMessage, TextMessage
from services.common.contracts.streams import NOTIFIER, NOTIFIER_DLQ, WA_INBOUND
from services.common.contracts.subjects import (
    WA_INBOUND_STATUS,
    inbound_message_subject,
    send_subject,
)
from services.common.contracts.whatsapp import DeliveryStatus, InboundMessage
from services.common.embedded import free_port
from services.common.service import ServiceHost
from services.common.settings import Settings
from services.devtools.fake_graph import FakeGraph
from services.ingress.http import add_webhook_routes
from services.notifier import repository
from services.notifier.app import build_host


@dataclass
class Harness:
    settings: Settings
    client: NatsBroker
    fake: FakeGraph
    pool: asyncpg.Pool
    hosts: list[ServiceHost] = field(default_factory=list)

    async def start_notifier(self, **overrides: Any) -> ServiceHost:
        host = build_host(
            self.settings.model_copy(update={"health_port": free_port(), **overrides})
        )
        await host.start()
        self.hosts.append(host)
        return host

    async def stop_notifiers(self) -> None:
        while self.hosts:
            await self.hosts.pop().stop()

    async def send(self, cmd: SendMessage, *, msg_id: str | None = None) -> None:
        await self.client.publish(
            cmd,
            send_subject(cmd.to, self.settings.notifier_partitions),
            stream=NOTIFIER.name,
            headers={"Nats-Msg-Id": msg_id or cmd.command_id},
            timeout=5.0,
        )

    async def status(
        self,
        wamid: str,
        status: str,
        error_codes: list[int] | None = None,
        recipient_id: str | None = None,
    ) -> None:
        """A status webhook as the edge publishes it (without going through the fake)."""
        body = DeliveryStatus(
            wamid=wamid,
            status=status,
            timestamp=int(time.time()),
            recipient_id=recipient_id,
            error_codes=error_codes or [],
        )
        await self.client.publish(
            body,
            WA_INBOUND_STATUS,
            stream=WA_INBOUND.name,
            headers={"Nats-Msg-Id": f"{wamid}:{status}:{secrets.token_hex(4)}"},
            timeout=5.0,
        )

    async def inbound(self, wa_id: str, *, at: float | None = None) -> str:
        """The user writes to us (as the webhook edge publishes it); returns the wamid."""
        wamid = f"wamid.IN{secrets.token_hex(8)}"
        message = InboundMessage(
            wamid=wamid,
            wa_id=wa_id,
            phone_number_id=self.settings.whatsapp_phone_number_id,
            timestamp=int(time.time() if at is None else at),
            type="text",
            text="VAKSIN",
        )
        await self.client.publish(
            message,
            inbound_message_subject(wa_id, self.settings.dialog_partitions),
            stream=WA_INBOUND.name,
            headers={"Nats-Msg-Id": wamid},
            timeout=5.0,
        )
        return wamid

    async def dead_letters(self, command_id: str) -> list[dict[str, Any]]:
        return await _stream_bodies(self.settings, NOTIFIER_DLQ.name, command_id)

    async def send_failed(self, command_id: str) -> list[dict[str, Any]]:
        found = await _stream_bodies(self.settings, NOTIFIER.name, command_id)
        return [f for f in found if "reason" in f and "command" not in f]


async def _stream_bodies(settings: Settings, stream: str, command_id: str) -> list[dict[str, Any]]:
    """Bodies of the stream's messages about one command (read directly, no consumer)."""
    nc = await nats.connect(settings.nats_url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(stream)
        found = []
        # A stream that never held a message reports first_seq 0, which is no message's seq.
        for seq in range(max(info.state.first_seq, 1), info.state.last_seq + 1):
            try:
                raw = await js.get_msg(stream, seq)
            except nats.js.errors.NotFoundError:
                continue
            if raw.data and command_id.encode() in raw.data:
                body = json.loads(raw.data)
                if body.get("command_id") == command_id:
                    found.append(body)
        return found
    finally:
        await nc.close()


async def _webhook_edge(settings: Settings, broker: NatsBroker) -> web.AppRunner:
    app = web.Application()
    add_webhook_routes(app, broker, settings)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", settings.ingress_port).start()
    return runner


async def _clean_slate(settings: Settings, pool: asyncpg.Pool) -> None:
    """Nothing left over from an earlier test: no queued command, no pending stream message, a
    fresh throughput budget (tests share the servers)."""
    await pool.execute("UPDATE notifier.outbound_message SET queued = false WHERE queued")
    await pool.execute("DELETE FROM notifier.rate_budget")
    nc = await nats.connect(settings.nats_url)
    try:
        js = nc.jetstream()
        for stream in (NOTIFIER.name, WA_INBOUND.name):
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await js.purge_stream(stream)
    finally:
        await nc.close()


@pytest.fixture
async def harness(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[Harness]:
    await _clean_slate(settings, pool)
    settings = settings.model_copy(update={"ingress_port": free_port()})
    fake = FakeGraph(
        access_token=settings.whatsapp_access_token,
        phone_number_id=settings.whatsapp_phone_number_id,
        webhook_url=f"http://127.0.0.1:{settings.ingress_port}/webhook",
        app_secret=settings.whatsapp_app_secret,
        status_delay=0.01,
    )
    base = await fake.start()
    settings = settings.model_copy(update={"whatsapp_api_base": base})
    client = NatsBroker(settings.nats_url)
    # Declare the streams the way their owners do, for a test that starts no notifier first.
    client.publisher(WA_INBOUND_STATUS, stream=WA_INBOUND)
    client.publisher(send_subject("0", settings.notifier_partitions), stream=NOTIFIER)
    await client.start()
    edge = await _webhook_edge(settings, client)
    harness = Harness(settings, client, fake, pool)
    try:
        yield harness
    finally:
        await harness.stop_notifiers()
        await edge.cleanup()
        await client.stop()
        await fake.stop()


@pytest.fixture
async def notifier(harness: Harness) -> Harness:
    await harness.start_notifier()
    return harness


# --- helpers ------------------------------------------------------------------------------------


def recipient() -> str:
    return "628" + "".join(secrets.choice("0123456789") for _ in range(10))


def text(to: str, body: str, command_id: str | None = None, **extra: Any) -> SendMessage:
    return SendMessage(
        command_id=command_id or f"cmd-{secrets.token_hex(6)}",
        to=to,
        message=TextMessage(body=body),
        **extra,
    )


def png(marker: bytes = b"") -> str:
    """A small PNG, base64 (distinct per marker: another ticket)."""
    return base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16 + marker).decode()


async def eventually(
    check: Callable[[], Awaitable[Any]], within: float = 10.0, what: str = "condition"
) -> Any:
    deadline = time.monotonic() + within
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {within}s (last: {result!r})")
        await asyncio.sleep(0.05)


async def outbound_with(
    pool: asyncpg.Pool, command_id: str, within: float = 10.0, **expected: Any
) -> repository.Outbound:
    async def check() -> repository.Outbound | None:
        row = await repository.fetch(pool, command_id)
        if row and all(getattr(row, k) == v for k, v in expected.items()):
            return row
        return None

    return await eventually(check, within, what=f"{command_id} with {expected}")


async def window_open(harness: Harness, wa_id: str) -> bool:
    """Whether the notifier has recorded a message from this user (their window is open)."""
    row = await harness.pool.fetchrow(
        "SELECT last_inbound_at FROM notifier.recipient WHERE wa_id = $1", wa_id
    )
    return row is not None and row["last_inbound_at"] is not None


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def overall_rate(times: list[float]) -> float:
    """Messages per second from the first of these times to the last (sorted)."""
    return (len(times) - 1) / (times[-1] - times[0])


def bodies(messages: list[dict[str, Any]]) -> list[str]:
    out = []
    for m in messages:
        body = m["body"]
        if body["type"] == "text":
            out.append(body["text"]["body"])
        elif body["type"] == "template":
            out.append(f"template:{body['template']['name']}")
        else:
            out.append(body["type"])
    return out
