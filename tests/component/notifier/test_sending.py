"""Sending: one command is sent once, in order per user, as the right Cloud API payload, and a
user waiting (retry, pair budget) holds back nobody else."""

from __future__ import annotations

import asyncio
import secrets
import time

import pytest
import structlog

from services.common.contracts.notifier import (
    Button,
    ButtonsMessage,
    ImageMessage,
    SendMessage,
    TextMessage,
    VideoMessage,
)
from services.notifier import repository
from services.notifier.domain import to_graph_payload
from tests.component.notifier.conftest import (
    Harness,
    bodies,
    eventually,
    metric,
    outbound_with,
    png,
    recipient,
    text,
)

pytestmark = pytest.mark.servers


async def test_text_command_is_sent_once_with_its_payload(notifier: Harness) -> None:
    to = recipient()
    cmd = text(to, "Halo, ketik VAKSIN untuk mendaftar")
    await notifier.send(cmd)

    [sent] = await notifier.fake.wait_for_messages(to, 1)
    assert sent["body"] == to_graph_payload(cmd)
    assert sent["body"]["biz_opaque_callback_data"] == cmd.command_id
    row = await outbound_with(notifier.pool, cmd.command_id, queued=False)
    assert (row.status, row.wamid, row.attempts, row.sent_as) in {
        ("accepted", sent["wamid"], 1, "message"),
        ("sent", sent["wamid"], 1, "message"),
        ("delivered", sent["wamid"], 1, "message"),
    }
    # The fake's status webhooks come back through the webhook edge.
    await outbound_with(notifier.pool, cmd.command_id, status="delivered")


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
    duplicates = metric("notifier_commands_total", outcome="duplicate")
    await notifier.send(cmd, msg_id="publish-1")
    await notifier.send(cmd, msg_id="publish-2")  # a new Nats-Msg-Id: JetStream keeps both
    await notifier.send(text(to, "penanda"))

    await notifier.fake.wait_for_messages(to, 2)
    await eventually(
        lambda: _gt(metric("notifier_commands_total", outcome="duplicate"), duplicates),
        what="the second copy seen as a duplicate",
    )
    await asyncio.sleep(0.3)
    assert bodies(notifier.fake.messages_to(to)) == ["pertama", "penanda"]


async def _gt(value: float, than: float) -> bool:
    return value > than


async def test_messages_to_one_user_leave_in_publish_order(notifier: Harness) -> None:
    users = [recipient() for _ in range(5)]
    for i in range(6):
        for to in users:
            await notifier.send(text(to, f"pesan {i}"))
    for to in users:
        sent = await notifier.fake.wait_for_messages(to, 6)
        assert bodies(sent) == [f"pesan {i}" for i in range(6)]


async def test_one_users_retry_does_not_hold_back_another_user(notifier: Harness) -> None:
    slow, fast = recipient(), recipient()
    notifier.fake.fail_next(131056, retry_after=3)  # pair rate limit on slow's first message
    await notifier.send(text(slow, "lambat 0"))
    await eventually(
        lambda: _rejected(notifier, slow), what="the slow user's first attempt refused"
    )
    started = time.monotonic()
    for i in range(3):
        await notifier.send(text(fast, f"cepat {i}"))
    await notifier.send(text(slow, "lambat 1"))

    assert bodies(await notifier.fake.wait_for_messages(fast, 3)) == [
        "cepat 0",
        "cepat 1",
        "cepat 2",
    ]
    assert time.monotonic() - started < 2.5, "the other user waited for the retry"
    # The slow user's messages keep their order behind the retry.
    assert bodies(await notifier.fake.wait_for_messages(slow, 2)) == ["lambat 0", "lambat 1"]


async def _rejected(harness: Harness, to: str) -> bool:
    return any(r["to"] == to for r in harness.fake.rejected)


async def test_ticket_image_is_uploaded_once_and_never_overtakes_its_text(
    notifier: Harness,
) -> None:
    to, other = recipient(), recipient()
    ticket = png(b"ticket-1")
    uploads_before = len(notifier.fake.media)
    for user in (to, other):
        await notifier.send(text(user, "Tiket Anda:"))
        await notifier.send(
            SendMessage(
                command_id=f"cmd-{secrets.token_hex(6)}",
                to=user,
                message=ImageMessage(png_base64=ticket, caption="Kode: ABC123"),
            )
        )
        await notifier.send(
            SendMessage(
                command_id=f"cmd-{secrets.token_hex(6)}",
                to=user,
                message=VideoMessage(link="https://example.org/vaksin.mp4", caption="Cara kerja"),
            )
        )
    for user in (to, other):
        sent = await notifier.fake.wait_for_messages(user, 3)
        assert bodies(sent) == ["Tiket Anda:", "image", "video"]
        image = sent[1]["body"]["image"]
        assert image["caption"] == "Kode: ABC123"
        assert notifier.fake.media[image["id"]]["data"].startswith(b"\x89PNG")
        assert sent[2]["body"]["video"]["link"] == "https://example.org/vaksin.mp4"
    # The same PNG went to Meta once and its media id was reused.
    assert len(notifier.fake.media) == uploads_before + 1
    ids = {m["body"]["image"]["id"] for m in notifier.fake.sent if m["type"] == "image"}
    assert len(ids & set(notifier.fake.media)) >= 1


async def test_an_expired_media_id_is_uploaded_again(notifier: Harness) -> None:
    to = recipient()
    ticket = png(b"ticket-expiring")

    def image() -> SendMessage:
        return SendMessage(
            command_id=f"cmd-{secrets.token_hex(6)}",
            to=to,
            message=ImageMessage(png_base64=ticket),
        )

    await notifier.send(image())
    [first] = await notifier.fake.wait_for_messages(to, 1)
    notifier.fake.expire_media(first["body"]["image"]["id"])  # Meta dropped it
    await notifier.send(image())
    second = (await notifier.fake.wait_for_messages(to, 2))[1]
    assert second["body"]["image"]["id"] != first["body"]["image"]["id"]
    assert second["body"]["image"]["id"] in notifier.fake.media
    assert [r["code"] for r in notifier.fake.rejected if r["to"] == to] == [131053]


async def test_a_chatty_user_waits_for_the_pair_budget_without_131056(harness: Harness) -> None:
    # Meta's pair limit played by the fake: a 4th message to one user within 1 s is refused.
    harness.fake.pair_limit = (3, 1.0)
    await harness.start_notifier(whatsapp_pair_burst=3, whatsapp_pair_interval=1.0)
    chatty, quiet = recipient(), recipient()
    waits = metric("notifier_rate_limit_waits_total", limit="pair")
    for i in range(6):
        await harness.send(text(chatty, f"pesan {i}"))
    await harness.send(text(quiet, "halo"))

    await harness.fake.wait_for_messages(quiet, 1, timeout=3)
    sent = await harness.fake.wait_for_messages(chatty, 6, timeout=15)
    assert bodies(sent) == [f"pesan {i}" for i in range(6)]
    assert not [r for r in harness.fake.rejected if r["to"] == chatty], "131056 was hit"
    # Three at once, then about one a second.
    assert sent[5]["at"] - sent[0]["at"] >= 2.5
    assert metric("notifier_rate_limit_waits_total", limit="pair") > waits


async def test_logs_never_name_the_recipient_or_the_text(notifier: Harness) -> None:
    to = recipient()
    with structlog.testing.capture_logs() as logs:
        notifier.fake.fail_next(131000, retry_after=0)  # transient: a warning with error details
        await notifier.send(text(to, "rahasia pribadi"))
        await notifier.fake.wait_for_messages(to, 1)
        notifier.fake.fail_next(131026)  # permanent: an error line
        failing = text(to, "rahasia kedua")
        await notifier.send(failing)
        await outbound_with(notifier.pool, failing.command_id, status="failed")
    events = {e["event"] for e in logs}
    assert {"graph send failed, will retry", "send failed for good"} <= events
    assert "message accepted by graph" in events
    flat = repr(logs)
    assert to not in flat
    assert "rahasia" not in flat


async def test_a_command_queued_twice_by_redelivery_keeps_one_row(notifier: Harness) -> None:
    to = recipient()
    cmd = SendMessage(
        command_id=f"cmd-{secrets.token_hex(6)}", to=to, message=TextMessage(body="x")
    )
    await notifier.send(cmd)
    await notifier.fake.wait_for_messages(to, 1)
    assert not await repository.enqueue(
        notifier.pool, cmd.command_id, to, "text", cmd.model_dump_json()
    )
    assert [r.command_id for r in await repository.rows_of(notifier.pool, to)] == [cmd.command_id]
