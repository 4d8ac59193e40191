"""The notifier against real NATS JetStream, real Postgres and the fake Graph API: at most one
send per command, retries of transient errors only, per-user order, statuses never backwards."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
import structlog
from faststream.nats import NatsBroker
from prometheus_client import REGISTRY

from services.common.contracts.notifier import Button, ButtonsMessage, SendMessage, TextMessage
from services.common.contracts.streams import WA_INBOUND
from services.common.contracts.subjects import WA_INBOUND_STATUS, send_subject
from services.common.contracts.whatsapp import DeliveryStatus
from services.common.embedded import free_port
from services.common.service import ServiceHost
from services.common.settings import Settings
from services.devtools.fake_graph import FakeGraph
from services.notifier import repository
from services.notifier.app import build_host
from services.notifier.domain import to_graph_payload
from services.notifier.handlers import SEND_MAX_DELIVER

pytestmark = pytest.mark.servers


@dataclass
class Harness:
    settings: Settings
    host: ServiceHost
    client: NatsBroker
    fake: FakeGraph
    pool: asyncpg.Pool

    async def send(self, cmd: SendMessage, *, msg_id: str | None = None) -> None:
        await self.client.publish(
            cmd,
            send_subject(cmd.to, self.settings.notifier_partitions),
            stream="NOTIFIER",
            headers={"Nats-Msg-Id": msg_id or cmd.command_id},
            timeout=5.0,
        )

    async def status(self, wamid: str, status: str, error_codes: list[int] | None = None) -> None:
        body = DeliveryStatus(
            wamid=wamid, status=status, timestamp=int(time.time()), error_codes=error_codes or []
        )
        await self.client.publish(
            body,
            WA_INBOUND_STATUS,
            stream="WA_INBOUND",
            headers={"Nats-Msg-Id": f"{wamid}:{status}"},
            timeout=5.0,
        )


@pytest.fixture
async def notifier(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[Harness]:
    fake = FakeGraph(
        access_token=settings.whatsapp_access_token,
        phone_number_id=settings.whatsapp_phone_number_id,
    )
    base = await fake.start()
    client = NatsBroker(settings.nats_url)
    # WA_INBOUND belongs to the ingress; declare it the way the ingress does so the notifier's
    # bind-only subscriber has a stream to attach to.
    client.publisher(WA_INBOUND_STATUS, stream=WA_INBOUND)
    await client.start()
    host = build_host(
        settings.model_copy(update={"whatsapp_api_base": base, "health_port": free_port()})
    )
    await host.start()
    try:
        yield Harness(settings, host, client, fake, pool)
    finally:
        await host.stop()
        await client.stop()
        await fake.stop()


def recipient() -> str:
    return "628" + "".join(secrets.choice("0123456789") for _ in range(10))


def text(to: str, body: str, command_id: str | None = None) -> SendMessage:
    return SendMessage(
        command_id=command_id or f"cmd-{secrets.token_hex(6)}",
        to=to,
        message=TextMessage(body=body),
    )


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
    pool: asyncpg.Pool, command_id: str, **expected: Any
) -> repository.Outbound:
    async def check() -> repository.Outbound | None:
        row = await repository.fetch(pool, command_id)
        if row and all(getattr(row, k) == v for k, v in expected.items()):
            return row
        return None

    return await eventually(check, what=f"{command_id} with {expected}")


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def bodies(messages: list[dict[str, Any]]) -> list[str]:
    return [m["body"]["text"]["body"] for m in messages]


async def test_text_command_is_sent_once_with_its_payload(notifier: Harness) -> None:
    to = recipient()
    cmd = text(to, "Halo, ketik VAKSIN untuk mendaftar")
    await notifier.send(cmd)

    [sent] = await notifier.fake.wait_for_messages(to, 1)
    assert sent["body"] == to_graph_payload(cmd)
    row = await outbound_with(notifier.pool, cmd.command_id, status="accepted")
    assert (row.wamid, row.attempts) == (sent["wamid"], 1)


async def test_buttons_with_reply_context_reach_graph_as_interactive(notifier: Harness) -> None:
    to = recipient()
    cmd = SendMessage(
        command_id=f"cmd-{secrets.token_hex(6)}",
        to=to,
        reply_to="wamid.INBOUND1",
        message=ButtonsMessage(
            body="Apakah Anda tenaga kesehatan?",
            buttons=[Button(id="nakes.yes", title="Ya"), Button(id="nakes.no", title="Tidak")],
        ),
    )
    await notifier.send(cmd)
    [sent] = await notifier.fake.wait_for_messages(to, 1)
    assert sent["type"] == "interactive"
    assert sent["body"]["context"] == {"message_id": "wamid.INBOUND1"}
    assert [b["reply"]["id"] for b in sent["body"]["interactive"]["action"]["buttons"]] == [
        "nakes.yes",
        "nakes.no",
    ]


async def test_same_command_published_twice_is_sent_once(notifier: Harness) -> None:
    to = recipient()
    cmd = text(to, "pertama")
    await notifier.send(cmd, msg_id="publish-1")
    await notifier.send(cmd, msg_id="publish-2")  # a new Nats-Msg-Id: JetStream keeps both
    # Same user, same partition, consumed in order: once this one is out, both copies were seen.
    await notifier.send(text(to, "penanda"))

    sent = await notifier.fake.wait_for_messages(to, 2)
    await asyncio.sleep(0.3)
    assert bodies(notifier.fake.messages_to(to)) == ["pertama", "penanda"]
    row = await repository.fetch(notifier.pool, cmd.command_id)
    assert row is not None and row.wamid == sent[0]["wamid"]


async def test_rate_limited_send_is_retried_and_sent_exactly_once(notifier: Harness) -> None:
    to = recipient()
    cmd = text(to, "coba lagi")
    retries_before = metric("notifier_send_retries_total", code="130429")
    notifier.fake.fail_next(130429)
    await notifier.send(cmd)

    [sent] = await notifier.fake.wait_for_messages(to, 1)
    row = await outbound_with(notifier.pool, cmd.command_id, status="accepted")
    assert (row.wamid, row.attempts, row.last_error_code) == (sent["wamid"], 2, 130429)
    assert [r["code"] for r in notifier.fake.rejected if r["to"] == to] == [130429]
    assert metric("notifier_send_retries_total", code="130429") == retries_before + 1
    await asyncio.sleep(0.3)
    assert len(notifier.fake.messages_to(to)) == 1


async def test_transient_errors_on_every_delivery_end_as_failed(notifier: Harness) -> None:
    to = recipient()
    cmd = text(to, "selalu sibuk")
    # Retry-After: 0 makes each redelivery immediate, so all eight deliveries run in a moment.
    notifier.fake.fail_next(131000, http_status=500, times=SEND_MAX_DELIVER, retry_after=0)
    await notifier.send(cmd)

    row = await outbound_with(notifier.pool, cmd.command_id, status="failed")
    assert (row.attempts, row.last_error_code) == (SEND_MAX_DELIVER, 131000)
    assert len([r for r in notifier.fake.rejected if r["to"] == to]) == SEND_MAX_DELIVER
    # Acked after the last delivery: the user's next message goes out.
    await notifier.send(text(to, "berikutnya"))
    assert bodies(await notifier.fake.wait_for_messages(to, 1)) == ["berikutnya"]


async def test_permanent_error_is_recorded_failed_and_not_retried(notifier: Harness) -> None:
    to = recipient()
    cmd = text(to, "tidak terkirim")
    notifier.fake.fail_next(131026)
    await notifier.send(cmd)

    row = await outbound_with(notifier.pool, cmd.command_id, status="failed")
    assert (row.wamid, row.attempts, row.last_error_code) == (None, 1, 131026)
    # The partition moved on (the command was acked, not parked for a retry) ...
    await notifier.send(text(to, "berikutnya"))
    await notifier.fake.wait_for_messages(to, 1)
    # ... and the failed one was never tried again.
    assert bodies(notifier.fake.messages_to(to)) == ["berikutnya"]
    assert len([r for r in notifier.fake.rejected if r["to"] == to]) == 1


async def test_messages_to_one_user_leave_in_publish_order(notifier: Harness) -> None:
    to = recipient()
    for i in range(6):
        await notifier.send(text(to, f"pesan {i}"))
    sent = await notifier.fake.wait_for_messages(to, 6)
    assert bodies(sent) == [f"pesan {i}" for i in range(6)]


async def test_a_retry_holds_back_the_users_later_messages(notifier: Harness) -> None:
    to = recipient()
    notifier.fake.fail_next(131056)  # pair rate limit on the first message
    for i in range(3):
        await notifier.send(text(to, f"pesan {i}"))
    sent = await notifier.fake.wait_for_messages(to, 3)
    assert bodies(sent) == ["pesan 0", "pesan 1", "pesan 2"]


async def test_late_statuses_never_move_a_message_backwards(notifier: Harness) -> None:
    to = recipient()
    cmd = text(to, "status")
    await notifier.send(cmd)
    row = await outbound_with(notifier.pool, cmd.command_id, status="accepted")
    assert row.wamid is not None
    wamid = row.wamid

    await notifier.status(wamid, "delivered")
    await outbound_with(notifier.pool, cmd.command_id, status="delivered")

    stale_sent = metric("notifier_status_updates_total", status="sent", outcome="stale")
    stale_failed = metric("notifier_status_updates_total", status="failed", outcome="stale")
    await notifier.status(wamid, "sent")
    await notifier.status(wamid, "failed", error_codes=[131026])

    async def both_seen() -> bool:
        return (
            metric("notifier_status_updates_total", status="sent", outcome="stale")
            == stale_sent + 1
            and metric("notifier_status_updates_total", status="failed", outcome="stale")
            == stale_failed + 1
        )

    await eventually(both_seen, what="late sent and failed handled")
    row = await repository.fetch(notifier.pool, cmd.command_id)
    assert row is not None and row.status == "delivered"

    await notifier.status(wamid, "played")  # a read voice note: moves forward to read
    await outbound_with(notifier.pool, cmd.command_id, status="read")


async def test_failed_status_after_acceptance_marks_the_message_failed(notifier: Harness) -> None:
    to = recipient()
    cmd = text(to, "di luar jendela 24 jam")
    await notifier.send(cmd)
    row = await outbound_with(notifier.pool, cmd.command_id, status="accepted")
    assert row.wamid is not None
    await notifier.status(row.wamid, "failed", error_codes=[131047])
    failed = await outbound_with(notifier.pool, cmd.command_id, status="failed")
    assert failed.last_error_code == 131047


async def test_status_that_overtakes_its_wamid_is_applied_on_redelivery(
    notifier: Harness,
) -> None:
    command_id = f"cmd-{secrets.token_hex(6)}"
    wamid = f"wamid.EARLY{secrets.token_hex(8)}"
    retried = metric("notifier_status_updates_total", status="delivered", outcome="retry")
    await notifier.status(wamid, "delivered")

    async def retried_once() -> bool:
        return (
            metric("notifier_status_updates_total", status="delivered", outcome="retry") > retried
        )

    await eventually(retried_once, what="unknown wamid parked for a retry")
    # The send's own bookkeeping lands only now, after its status webhook.
    await repository.claim(notifier.pool, command_id, recipient(), "text", {"type": "text"})
    await repository.record_accepted(notifier.pool, command_id, wamid)
    await outbound_with(notifier.pool, command_id, status="delivered")


async def test_logs_never_name_the_recipient_or_the_text(notifier: Harness) -> None:
    to = recipient()
    with structlog.testing.capture_logs() as logs:
        notifier.fake.fail_next(131000)  # transient: a warning with error details
        await notifier.send(text(to, "rahasia pribadi"))
        await notifier.fake.wait_for_messages(to, 1)
        notifier.fake.fail_next(131026)  # permanent: an error line
        failing = text(to, "rahasia kedua")
        await notifier.send(failing)
        await outbound_with(notifier.pool, failing.command_id, status="failed")
    events = {e["event"] for e in logs}
    assert {"graph send failed, will retry", "graph send failed for good"} <= events
    assert "message accepted by graph" in events
    flat = repr(logs)
    assert to not in flat
    assert "rahasia" not in flat
