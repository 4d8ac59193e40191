"""The notifier's durable consumers (consumed by the engine with nats-py, services/notifier/
engine.py) against the real servers: a message whose handling fails once is delivered again after
a delay and its effect happens once (the intake `notifier-send-p<p>`, the statuses
`notifier-status`, the users' messages `notifier-inbound`); a status failing on every delivery
ends in DEAD_LETTERS, as it was stored."""

from __future__ import annotations

import asyncio
import secrets
import time
from datetime import UTC, datetime

import nats
import pytest

from services.common import consumers
from services.common.contracts.deadletters import DeadMessage
from services.common.contracts.streams import WA_INBOUND
from services.common.contracts.subjects import (
    WA_INBOUND_STATUS,
    partition_of,
)
from services.common.contracts.whatsapp import DeliveryStatus
from services.notifier import repository
from services.notifier.engine import send_durable
from services.notifier.handlers import INBOUND_DURABLE, STATUS_DURABLE, STATUS_MAX_DELIVER
from tests.component.notifier.conftest import (
    Harness,
    eventually,
    metric,
    outbound_with,
    recipient,
    text,
    window_open,
)
from tests.faults import FailsOnce, dead_letters, redeliveries, stored

pytestmark = pytest.mark.servers


async def test_a_send_command_whose_intake_fails_once_is_queued_and_sent_once(
    notifier: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    to = recipient()
    cmd = text(to, "Tiket Anda siap")
    enqueue = FailsOnce(
        repository.enqueue, lambda _pool, command_id, *_: command_id == cmd.command_id
    )
    monkeypatch.setattr(repository, "enqueue", enqueue)
    queued = metric("notifier_commands_total", outcome="queued")
    duplicates = metric("notifier_commands_total", outcome="duplicate")
    consumer = send_durable(partition_of(to, notifier.settings.notifier_partitions))
    before = redeliveries(consumer)

    await notifier.send(cmd)
    await notifier.fake.wait_for_messages(to, 1, timeout=15)
    await outbound_with(notifier.pool, cmd.command_id, status="delivered")
    await asyncio.sleep(2.5)  # a further delivery (2 s after the second) would have come by now

    assert len(enqueue.calls) == 2
    # The intake's delay after delivery 1: a partition's first, 1 s, not an instant NAK.
    assert enqueue.redelivered_after >= 0.9
    rows = await notifier.pool.fetchval(
        "SELECT count(*) FROM notifier.outbound_message WHERE command_id = $1", cmd.command_id
    )
    assert rows == 1
    assert len(notifier.fake.messages_to(to)) == 1
    assert metric("notifier_commands_total", outcome="queued") == queued + 1
    assert metric("notifier_commands_total", outcome="duplicate") == duplicates
    assert redeliveries(consumer) == before + 1
    nc = await nats.connect(notifier.settings.nats_url)
    try:
        info = await nc.jetstream().consumer_info("NOTIFIER", consumer)
    finally:
        await nc.close()
    assert info.num_ack_pending == 0 and info.num_redelivered == 0  # acked, nothing left


async def test_a_status_that_fails_once_is_applied_once(
    notifier: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    to = recipient()
    cmd = text(to, "Halo")
    await notifier.send(cmd)
    row = await outbound_with(notifier.pool, cmd.command_id, status="delivered")
    assert row.wamid is not None
    apply = FailsOnce(repository.apply_statuses, lambda _pool, statuses: row.wamid in statuses)
    monkeypatch.setattr(repository, "apply_statuses", apply)
    before = redeliveries(STATUS_DURABLE)
    applied = metric("notifier_status_updates_total", status="read", outcome="applied")
    stale = metric("notifier_status_updates_total", status="read", outcome="stale")

    await notifier.status(row.wamid, "read", recipient_id=to)
    await outbound_with(notifier.pool, cmd.command_id, status="read")
    await asyncio.sleep(1.5)  # a further delivery would have come by now

    assert len(apply.calls) == 2
    assert apply.redelivered_after >= 0.8  # the first delay is 1 s, not an instant NAK
    assert redeliveries(STATUS_DURABLE) == before + 1
    assert metric("notifier_status_updates_total", status="read", outcome="applied") == (
        applied + 1
    )
    assert metric("notifier_status_updates_total", status="read", outcome="stale") == stale


async def test_an_inbound_message_that_fails_once_opens_the_window_once(
    notifier: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    to = recipient()
    record = FailsOnce(repository.record_inbound, lambda _pool, latest: to in latest)
    monkeypatch.setattr(repository, "record_inbound", record)

    at = int(time.time()) - 5
    wamid = await notifier.inbound(to, at=at)
    await eventually(lambda: window_open(notifier, to), what="window recorded")

    async def read() -> bool:
        return wamid in notifier.fake.reads

    await eventually(read, what="marked read")
    await asyncio.sleep(1.5)  # a further delivery would have come by now

    assert len(record.calls) == 2
    assert record.redelivered_after >= 0.8
    last = await notifier.pool.fetchval(
        "SELECT last_inbound_at FROM notifier.recipient WHERE wa_id = $1", to
    )
    assert last == datetime.fromtimestamp(at, UTC)
    assert notifier.fake.reads.count(wamid) == 1  # handled (and acked) once


async def test_a_status_failing_on_every_delivery_is_dead_lettered_as_stored(
    notifier: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The production delays (1, 2, 5, 10, 30 s ...) shrunk for this test.
    monkeypatch.setattr(consumers, "REDELIVERY_DELAYS", (0.05,))
    wamid = f"wamid.DEAD{secrets.token_hex(8)}"
    apply = FailsOnce(
        repository.apply_statuses, lambda _pool, statuses: wamid in statuses, always=True
    )
    monkeypatch.setattr(repository, "apply_statuses", apply)
    dead_before = metric("vaksin_dead_letters_total", consumer=STATUS_DURABLE, reason="failed")

    status = DeliveryStatus(wamid=wamid, status="delivered", timestamp=int(time.time()))
    ack = await notifier.client.publish(
        status, WA_INBOUND_STATUS, stream=WA_INBOUND.name, headers={"Nats-Msg-Id": wamid}
    )

    async def ours() -> list[DeadMessage]:
        found = await dead_letters(notifier.settings, STATUS_DURABLE)
        return [d for d in found if d.stream_seq == ack.seq]

    [dead] = await eventually(ours, within=20.0, what="the status's dead letter")
    await asyncio.sleep(0.5)  # terminated: no delivery after the last one

    assert len(apply.calls) == STATUS_MAX_DELIVER
    assert dead.source == STATUS_DURABLE
    assert dead.subject == WA_INBOUND_STATUS
    assert dead.delivered == STATUS_MAX_DELIVER
    assert "ConnectionResetError" in dead.error
    assert dead.body.encode() == await stored(notifier.settings, WA_INBOUND.name, ack.seq)
    assert DeliveryStatus.model_validate_json(dead.body) == status
    assert metric("vaksin_dead_letters_total", consumer=STATUS_DURABLE, reason="failed") == (
        dead_before + 1
    )


async def test_an_inbound_message_failing_on_every_delivery_is_dead_lettered(
    notifier: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(consumers, "REDELIVERY_DELAYS", (0.05,))
    to = recipient()
    record = FailsOnce(repository.record_inbound, lambda _pool, latest: to in latest, always=True)
    monkeypatch.setattr(repository, "record_inbound", record)

    wamid = await notifier.inbound(to)

    async def ours() -> list[DeadMessage]:
        found = await dead_letters(notifier.settings, INBOUND_DURABLE)
        return [d for d in found if wamid in d.body]

    [dead] = await eventually(ours, within=12.0, what="the inbound message's dead letter")
    assert dead.source == INBOUND_DURABLE and "ConnectionResetError" in dead.error
