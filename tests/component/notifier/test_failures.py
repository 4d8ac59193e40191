"""Meta's errors: transient ones are retried (honouring Retry-After) until every message arrives
exactly once and in order; permanent ones are dead-lettered at once; failures are visible (dead
letter stream, send_failed fact, metrics); delivery statuses never move backwards; lost answers
are settled by status webhooks instead of a second send."""

from __future__ import annotations

import asyncio
import time

import pytest

from services.notifier import repository
from services.notifier.domain import MAX_ATTEMPTS
from tests.component.notifier.conftest import (
    Harness,
    bodies,
    eventually,
    metric,
    outbound_with,
    recipient,
    text,
)

pytestmark = pytest.mark.servers


async def test_a_130429_burst_is_retried_and_every_message_arrives_once_in_order(
    notifier: Harness,
) -> None:
    users = [recipient() for _ in range(40)]
    retries = metric("notifier_send_retries_total", code="130429")
    notifier.fake.fail_next(130429, times=60, retry_after=0)
    for i in range(4):
        for to in users:
            await notifier.send(text(to, f"{to}-{i}"))

    for to in users:
        sent = await notifier.fake.wait_for_messages(to, 4, timeout=30)
        assert bodies(sent) == [f"{to}-{i}" for i in range(4)]
    assert metric("notifier_send_retries_total", code="130429") == retries + 60
    await asyncio.sleep(0.5)
    assert sum(len(notifier.fake.messages_to(to)) for to in users) == 160  # once each


async def test_meta_refusing_an_overload_loses_and_repeats_nothing(harness: Harness) -> None:
    # The notifier believes in 200/s; Meta (the fake) takes 60/s and answers 130429 beyond.
    harness.fake.mps_limit = 60
    await harness.start_notifier(whatsapp_mps=200)
    users = [recipient() for _ in range(60)]
    for i in range(3):
        for to in users:
            await harness.send(text(to, f"{to}-{i}"))

    for to in users:
        sent = await harness.fake.wait_for_messages(to, 3, timeout=40)
        assert bodies(sent) == [f"{to}-{i}" for i in range(3)]
    assert any(r["code"] == 130429 for r in harness.fake.rejected), "Meta never throttled"
    assert harness.fake.max_rate(1.0) <= 60
    await asyncio.sleep(0.5)
    assert sum(len(harness.fake.messages_to(to)) for to in users) == 180


async def test_retry_after_is_honoured(notifier: Harness) -> None:
    to = recipient()
    notifier.fake.fail_next(131056, retry_after=2)
    await notifier.send(text(to, "tunggu"))

    [sent] = await notifier.fake.wait_for_messages(to, 1, timeout=10)
    [refused] = [r for r in notifier.fake.rejected if r["to"] == to]
    waited = sent["at"] - refused["at"]
    assert 1.95 <= waited < 5.0


@pytest.mark.parametrize("code", [131026, 100])
async def test_a_permanent_error_is_dead_lettered_without_retry(
    notifier: Harness, code: int
) -> None:
    to = recipient()
    dead_before = metric("notifier_dead_letters_total", reason="permanent_error")
    cmd = text(to, "tidak terkirim")
    notifier.fake.fail_next(code)
    await notifier.send(cmd)

    row = await outbound_with(notifier.pool, cmd.command_id, status="failed")
    assert (row.queued, row.wamid, row.attempts, row.last_error_code) == (False, None, 1, code)
    [dead] = await eventually(lambda: notifier.dead_letters(cmd.command_id), what="dead letter")
    assert dead["reason"] == "permanent_error"
    assert dead["error"]["code"] == code
    assert dead["command"]["message"]["body"] == "tidak terkirim"
    [failed] = await eventually(lambda: notifier.send_failed(cmd.command_id), what="send_failed")
    assert (failed["to"], failed["reason"], failed["error_code"]) == (to, "permanent_error", code)
    assert metric("notifier_dead_letters_total", reason="permanent_error") == dead_before + 1
    # Never tried again, and the user's next message goes out.
    await notifier.send(text(to, "berikutnya"))
    await notifier.fake.wait_for_messages(to, 1)
    await asyncio.sleep(0.3)
    assert bodies(notifier.fake.messages_to(to)) == ["berikutnya"]
    assert len([r for r in notifier.fake.rejected if r["to"] == to]) == 1


async def test_transient_errors_on_every_attempt_end_in_the_dead_letter(
    notifier: Harness,
) -> None:
    to = recipient()
    cmd = text(to, "selalu sibuk")
    notifier.fake.fail_next(131000, http_status=500, times=MAX_ATTEMPTS, retry_after=0)
    await notifier.send(cmd)

    row = await outbound_with(notifier.pool, cmd.command_id, status="failed")
    assert (row.attempts, row.last_error_code) == (MAX_ATTEMPTS, 131000)
    [dead] = await eventually(lambda: notifier.dead_letters(cmd.command_id), what="dead letter")
    assert (dead["reason"], dead["attempts"]) == ("attempts_exhausted", MAX_ATTEMPTS)
    assert len([r for r in notifier.fake.rejected if r["to"] == to]) == MAX_ATTEMPTS
    await notifier.send(text(to, "berikutnya"))
    assert bodies(await notifier.fake.wait_for_messages(to, 1)) == ["berikutnya"]


async def test_late_statuses_never_move_a_message_backwards(notifier: Harness) -> None:
    to = recipient()
    cmd = text(to, "status")
    await notifier.send(cmd)
    row = await outbound_with(notifier.pool, cmd.command_id, status="delivered")
    assert row.wamid is not None
    wamid = row.wamid

    await notifier.status(wamid, "read")
    await outbound_with(notifier.pool, cmd.command_id, status="read")
    stale_sent = metric("notifier_status_updates_total", status="sent", outcome="stale")
    stale_failed = metric("notifier_status_updates_total", status="failed", outcome="stale")
    await notifier.status(wamid, "delivered")
    await notifier.status(wamid, "sent")
    await notifier.status(wamid, "failed", error_codes=[131026])

    async def all_seen() -> bool:
        return (
            metric("notifier_status_updates_total", status="sent", outcome="stale")
            >= stale_sent + 1
            and metric("notifier_status_updates_total", status="failed", outcome="stale")
            == stale_failed + 1
        )

    await eventually(all_seen, what="late sent and failed handled")
    row = await repository.fetch(notifier.pool, cmd.command_id)
    assert row is not None and row.status == "read"


async def test_a_failed_status_with_a_retryable_code_is_sent_again(notifier: Harness) -> None:
    to = recipient()
    cmd = text(to, "coba sekali lagi")
    await notifier.send(cmd)
    row = await outbound_with(notifier.pool, cmd.command_id, status="delivered")
    assert row.wamid is not None
    # Meta took it, then could not deliver it for a temporary reason.
    await notifier.pool.execute(
        "UPDATE notifier.outbound_message SET status = 'sent' WHERE command_id = $1",
        cmd.command_id,
    )
    await notifier.status(row.wamid, "failed", error_codes=[131000])

    sent = await notifier.fake.wait_for_messages(to, 2)
    assert bodies(sent) == ["coba sekali lagi", "coba sekali lagi"]
    rows = await repository.rows_of(notifier.pool, to)
    assert (rows[0].command_id, rows[0].status) == (cmd.command_id, "failed")
    resend = await outbound_with(notifier.pool, f"{cmd.command_id}#2", queued=False)
    assert (resend.origin, resend.attempts) == (cmd.command_id, 2)


async def test_a_failed_status_with_a_permanent_code_is_dead_lettered(notifier: Harness) -> None:
    to = recipient()
    cmd = text(to, "nomor tidak aktif")
    await notifier.send(cmd)
    row = await outbound_with(notifier.pool, cmd.command_id, queued=False)
    await outbound_with(notifier.pool, cmd.command_id, status="delivered")
    await notifier.pool.execute(
        "UPDATE notifier.outbound_message SET status = 'sent' WHERE command_id = $1",
        cmd.command_id,
    )
    assert row.wamid is not None
    await notifier.status(row.wamid, "failed", error_codes=[131026])

    [failed] = await eventually(lambda: notifier.send_failed(cmd.command_id), what="send_failed")
    assert (failed["reason"], failed["error_code"]) == ("failed_status", 131026)
    await outbound_with(notifier.pool, cmd.command_id, status="failed")
    assert len(notifier.fake.messages_to(to)) == 1


async def test_a_status_names_an_attempt_whose_answer_was_lost(harness: Harness) -> None:
    to = recipient()
    cmd = text(to, "terkirim sebelum crash")
    await repository.enqueue(harness.pool, cmd.command_id, to, "text", cmd.model_dump_json())
    # A sender took it and died after Meta accepted it: its lease is still on.
    [leased] = await repository.lease(harness.pool, 1, 60.0, "ghost")
    assert leased.command_id == cmd.command_id
    resolved = metric("notifier_in_doubt_total", resolution="status")
    await harness.start_notifier()
    await harness.status("wamid.LOST1", "sent", recipient_id=to)

    row = await outbound_with(harness.pool, cmd.command_id, queued=False)
    assert (row.wamid, row.status) == ("wamid.LOST1", "sent")
    # Its user's queue moves on, and the message itself was never sent a second time.
    await harness.send(text(to, "berikutnya"))
    assert bodies(await harness.fake.wait_for_messages(to, 1)) == ["berikutnya"]
    assert metric("notifier_in_doubt_total", resolution="status") == resolved


async def test_a_status_ahead_of_the_senders_record_spends_the_pair_budget_once(
    harness: Harness,
) -> None:
    # Meta's status webhook can come before the sender records Meta's answer: the user's next
    # message becomes the head at once, so the claim spends the pair budget, not the record.
    pool, to, interval = harness.pool, recipient(), 6.0
    cmd = text(to, "status lebih dulu")
    await repository.enqueue(pool, cmd.command_id, to, "text", cmd.model_dump_json())
    [leased] = await repository.lease(pool, 1, 60.0, "live-sender")

    claimed = await repository.claim_unknown_wamid(pool, "wamid.EARLY1", to, interval)
    assert claimed is not None and not claimed.in_doubt
    spent = await _pair_budget(harness, to)
    assert spent > time.time() + interval - 1.0

    payload = {"type": "text", "text": {"body": "status lebih dulu"}}
    accepted = repository.Accepted(leased.id, to, "wamid.EARLY1", payload, "message")
    await repository.record_accepted(pool, [accepted], interval)
    assert await _pair_budget(harness, to) == spent
    row = await repository.fetch(pool, cmd.command_id)
    assert row is not None
    assert (row.queued, row.attempts, row.wamid, row.payload) == (
        False,
        1,
        "wamid.EARLY1",
        payload,
    )


async def _pair_budget(harness: Harness, wa_id: str) -> float:
    tat = await harness.pool.fetchval(
        "SELECT pair_tat FROM notifier.recipient WHERE wa_id = $1", wa_id
    )
    return tat.timestamp()


async def test_an_attempt_nobody_answered_for_is_sent_after_its_lease(harness: Harness) -> None:
    to = recipient()
    cmd = text(to, "dikirim ulang")
    await repository.enqueue(harness.pool, cmd.command_id, to, "text", cmd.model_dump_json())
    await repository.lease(harness.pool, 1, 0.5, "ghost")  # died before sending
    resent = metric("notifier_in_doubt_total", resolution="resent")
    await harness.start_notifier()

    assert bodies(await harness.fake.wait_for_messages(to, 1)) == ["dikirim ulang"]
    row = await outbound_with(harness.pool, cmd.command_id, queued=False)
    assert row.leased_by != "ghost"
    assert metric("notifier_in_doubt_total", resolution="resent") == resent + 1


async def test_a_malformed_command_is_dead_lettered_and_the_partition_moves_on(
    notifier: Harness,
) -> None:
    to = recipient()
    subject = notifier.settings.notifier_partitions and f"notifier.cmd.send.{0}"
    bad = {"command_id": "cmd-malformed-1", "to": to, "message": {"kind": "telepathy"}}
    await notifier.client.publish(bad, subject, stream="NOTIFIER", timeout=5.0)
    good = text(to, "sesudahnya")
    await notifier.send(good)

    [dead] = await eventually(lambda: notifier.dead_letters("cmd-malformed-1"), what="dead")
    assert dead["reason"] == "malformed"
    assert dead["command"] == bad
    assert bodies(await notifier.fake.wait_for_messages(to, 1)) == ["sesudahnya"]


async def test_queue_depth_is_published(notifier: Harness) -> None:
    to = recipient()
    notifier.fake.fail_next(131000, retry_after=30)  # parked for a while
    await notifier.send(text(to, "menunggu"))
    await eventually(
        lambda: _at_least(metric("notifier_queue_depth", state="queued"), 1),
        within=6,
        what="queue depth",
    )


async def _at_least(value: float, than: float) -> bool:
    return value >= than


async def test_graph_latency_is_observed(notifier: Harness) -> None:
    before = metric("notifier_graph_seconds_count", call="send")
    to = recipient()
    started = time.monotonic()
    await notifier.send(text(to, "x"))
    await notifier.fake.wait_for_messages(to, 1)
    assert time.monotonic() - started < 5
    assert metric("notifier_graph_seconds_count", call="send") == before + 1
