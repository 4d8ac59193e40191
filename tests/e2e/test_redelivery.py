"""A dialog consumer whose handler fails is delivered again after a delay, against the real
server, and its effect happens exactly once: a turn, an intake decision, a failed-send note. A
turn that waits for a restarting service is answered when it is back, not with "busy"; a turn
that fails on every delivery ends with the "busy" reply, once."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, date, datetime

import nats
import pytest
from faststream.nats import NatsBroker
from prometheus_client import REGISTRY

from services.common import consumers
from services.common.contracts.deadletters import DeadMessage
from services.common.contracts.identity import IntakeDecided
from services.common.contracts.notifier import SendFailed
from services.common.contracts.streams import DEAD_LETTERS, IDENTITY, NOTIFIER, WA_INBOUND
from services.common.contracts.subjects import (
    DEADLETTER_CONSUMER,
    IDENTITY_EVT_INTAKE_DECIDED,
    NOTIFIER_EVT_SEND_FAILED,
    WA_INBOUND_MESSAGE,
    partition_of,
)
from services.common.embedded import free_port
from services.ingress import delivery_failures, handlers, intake_decisions
from tests.e2e.conftest import BUILDERS, System, body_of, new_person, new_phone
from tests.faults import FailsOnce, redeliveries

pytestmark = pytest.mark.servers


async def publish(system: System, body, subject: str, stream: str) -> None:
    client = NatsBroker(system.settings.nats_url)
    await client.connect()
    try:
        await client.publish(body, subject, stream=stream)
    finally:
        await client.stop()


async def settled(system: System, wa_id: str, count: int, quiet: float = 2.5) -> list[dict]:
    """The user's replies once `count` have come and nothing more came for `quiet` seconds."""
    await system.replies(wa_id, count)
    await asyncio.sleep(quiet)
    return system.fake.messages_to(wa_id)


async def test_a_turn_that_fails_once_is_answered_once_after_a_delay(
    system: System, monkeypatch: pytest.MonkeyPatch
) -> None:
    decide = FailsOnce(handlers._decide)
    monkeypatch.setattr(handlers, "_decide", decide)
    wa_id = new_phone()
    partition = partition_of(wa_id, system.settings.dialog_partitions)
    consumer = f"ingress-dialog-p{partition}"
    subject = WA_INBOUND_MESSAGE.format(partition=partition)
    before = redeliveries(consumer)
    handled = {outcome: handled_count(subject, outcome) for outcome in ("ok", "retry")}
    await system.say(wa_id, "VAKSIN")
    sent = await settled(system, wa_id, 1)
    assert len(sent) == 1 and "tenaga kesehatan" in body_of(sent[0]).lower()
    assert decide.redelivered_after >= 0.9  # the first delay is 1 s, not an instant NAK
    assert redeliveries(consumer) == before + 1
    # and the subscription's figures saw one failed delivery and one handled message (at least:
    # other tests' users may share the partition)
    assert handled_count(subject, "retry") == handled["retry"] + 1
    assert handled_count(subject, "ok") >= handled["ok"] + 1


def handled_count(subject: str, outcome: str) -> float:
    labels = {"subject": subject, "outcome": outcome}
    return REGISTRY.get_sample_value("vaksin_messages_handled_total", labels) or 0.0


async def test_a_turn_stored_but_not_yet_sent_sends_its_replies_once_when_delivered_again(
    system: System, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The turn is committed, then publishing its replies fails (NATS blip, the process dies): the
    message comes back, the turn is not taken twice, and its stored replies leave, once."""
    send = FailsOnce(handlers._send)
    monkeypatch.setattr(handlers, "_send", send)
    turns = REGISTRY.get_sample_value("vaksin_dialog_turns_total", {"step": "ask_nakes"}) or 0.0
    wa_id = new_phone()
    await system.say(wa_id, "VAKSIN")
    sent = await settled(system, wa_id, 1)
    assert len(sent) == 1 and "tenaga kesehatan" in body_of(sent[0]).lower()
    assert send.redelivered_after >= 0.9
    after = REGISTRY.get_sample_value("vaksin_dialog_turns_total", {"step": "ask_nakes"}) or 0.0
    assert after == turns  # the second delivery found the turn stored: not decided again
    # and the conversation goes on from the stored state
    assert "belum terdaftar" in body_of(await system.turn(wa_id, "ya"))  # an unlisted number


async def test_a_turn_waits_for_a_restarting_service_instead_of_being_dropped(
    system: System, tmp_path
) -> None:
    nakes = new_person()
    await system.register(nakes, tmp=tmp_path)
    await system.turn(nakes.phone, "VAKSIN")
    async with system.stopped("identity"):  # "ya" needs identity: no responders for a while
        await system.say(nakes.phone, "ya")
        await asyncio.sleep(3)
        assert len(system.fake.messages_to(nakes.phone)) == 1  # nothing yet, and not "busy"
    sent = await settled(system, nakes.phone, 2)
    assert len(sent) == 2
    assert "6 digit terakhir" in body_of(sent[1]) and "sibuk" not in body_of(sent[1])
    # and the conversation goes on from there
    assert "terverifikasi" in body_of(await system.turn(nakes.phone, nakes.suffix))


async def test_a_turn_failing_on_every_delivery_gets_busy_once(
    system: System, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(consumers, "PARTITION_DELAYS", (0.1,))

    async def broken(*args, **kwargs):
        raise ConnectionResetError("injected: always fails")

    monkeypatch.setattr(handlers, "_decide", broken)
    wa_id = new_phone()
    await system.say(wa_id, "VAKSIN")
    sent = await settled(system, wa_id, 1)
    assert [body_of(m) for m in sent] == [
        "Maaf, sistem sedang sibuk dan pesan Anda belum dapat kami proses. "
        "Silakan kirim ulang dalam beberapa menit."
    ]


async def test_an_intake_decision_that_fails_once_is_told_once(
    system: System, monkeypatch: pytest.MonkeyPatch
) -> None:
    apply = FailsOnce(intake_decisions._apply)
    monkeypatch.setattr(intake_decisions, "_apply", apply)
    wa_id = new_phone()
    await system.turn(wa_id, "VAKSIN")  # the 24-hour window is open: no template needed
    decided = IntakeDecided(intake_id=int(time.time() * 1000) % 2**31, wa_id=wa_id, lang="id",
                            approved=False, reason="NIK tidak cocok", masked_name="S***",
                            masked_nik="3201**********01", profession="perawat",
                            facility_code="F3201001", birth_date=date(1980, 1, 1), sex="F",
                            decided_at=datetime.now(UTC))  # fmt: skip
    await publish(system, decided, IDENTITY_EVT_INTAKE_DECIDED, IDENTITY.name)
    sent = await settled(system, wa_id, 2)
    assert len(sent) == 2 and "NIK tidak cocok" in body_of(sent[1])
    assert apply.redelivered_after >= 0.9


async def test_a_failed_send_that_fails_once_is_noted_and_nudged_once(
    system: System, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    nakes = new_person()
    await system.register(nakes, tmp=tmp_path)
    await system.turn(nakes.phone, "VAKSIN")
    noted = FailsOnce(delivery_failures.noted)
    monkeypatch.setattr(delivery_failures, "noted", noted)
    failure = SendFailed(command_id=f"wamid.lost:{nakes.phone}", to=nakes.phone,
                         reason="attempts_exhausted", error_code=131000,
                         failed_at=datetime.now(UTC))  # fmt: skip
    await publish(system, failure, NOTIFIER_EVT_SEND_FAILED, NOTIFIER.name)
    sent = await settled(system, nakes.phone, 2)
    nudges = [m for m in sent if "gagal terkirim" in body_of(m)]
    assert len(sent) == 2 and len(nudges) == 1
    assert noted.redelivered_after >= 0.9


async def test_every_durable_on_the_server_gives_up_after_a_bounded_number_of_tries(
    system: System,
) -> None:
    """What the services declared is what the server runs: no consumer retries forever, and
    the middleware's idea of the last delivery is the server's."""
    nc = await nats.connect(system.settings.nats_url)
    try:
        js = nc.jsm()
        seen = {}
        for stream in await js.streams_info():
            for info in await js.consumers_info(stream.config.name):
                seen[info.name] = info.config.max_deliver
    finally:
        await nc.close()
    expected_dialog = {f"ingress-dialog-p{p}" for p in range(system.settings.dialog_partitions)}
    assert expected_dialog | {"dialog-intake-decided", "dialog-send-failed",
                              "scheduler-dose-given", "ticketing-booked", "ticketing-cancelled",
                              "ticketing-rescheduled", "notifier-status",
                              "notifier-inbound"} <= set(seen)  # fmt: skip
    for name, max_deliver in seen.items():
        assert max_deliver and max_deliver > 0, name
        if name in consumers._max_deliver:
            assert consumers._max_deliver[name] == max_deliver, name


async def test_a_turn_slower_than_ack_wait_is_not_delivered_twice(
    system: System, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dialog's ack_wait is short (a lost message comes back soon); a slow turn keeps its
    message by telling the server it is still working."""
    calls: list[float] = []
    real = handlers._decide

    async def slow(*args, **kwargs):
        calls.append(time.monotonic())
        await asyncio.sleep(consumers._ack_wait["ingress-dialog-p0"] + 3)
        return await real(*args, **kwargs)

    monkeypatch.setattr(handlers, "_decide", slow)
    duplicates = REGISTRY.get_sample_value("vaksin_dialog_duplicates_total") or 0.0
    # A second replica, idle: a message the server gives up on would go to it at once (where
    # the processed-message row makes it a duplicate: no second effect, but work twice).
    dialog = system.hosts["dialog"]
    replica = BUILDERS["dialog"](dialog.settings.model_copy(update={"health_port": free_port()}))
    await replica.start()
    try:
        wa_id = new_phone()
        await system.say(wa_id, "VAKSIN")
        sent = await system.fake.wait_for_messages(wa_id, 1, timeout=30)
        await asyncio.sleep(2)
    finally:
        await replica.stop()
    assert len(calls) == 1
    again = (REGISTRY.get_sample_value("vaksin_dialog_duplicates_total") or 0.0) - duplicates
    assert again == 0, "delivered again while the first delivery was still at work"
    assert len(system.fake.messages_to(wa_id)) == len(sent) == 1


async def test_a_body_that_never_decodes_is_dead_lettered_and_its_partition_goes_on(
    system: System, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(consumers, "PARTITION_DELAYS", (0.05,))
    wa_id = new_phone()
    partition = partition_of(wa_id, system.settings.dialog_partitions)
    subject = WA_INBOUND_MESSAGE.format(partition=partition)
    nc = await nats.connect(system.settings.nats_url)
    try:
        js = nc.jetstream()
        poison = await js.publish(subject, b'{"wamid": 42}', stream=WA_INBOUND.name)
        await system.say(wa_id, "VAKSIN")  # behind it, in the same partition
        replies = await system.fake.wait_for_messages(wa_id, 1, timeout=30)
        assert "tenaga kesehatan" in body_of(replies[0]).lower()
        sub = await js.pull_subscribe(
            DEADLETTER_CONSUMER.format(durable=f"ingress-dialog-p{partition}"),
            stream=DEAD_LETTERS.name,
        )
        [dead] = [DeadMessage.model_validate_json(m.data) for m in await sub.fetch(1, timeout=5)]
    finally:
        await nc.close()
    assert (dead.stream_seq, dead.body) == (poison.seq, '{"wamid": 42}')
    assert dead.delivered == handlers.MAX_DELIVER and "ValidationError" in dead.error
