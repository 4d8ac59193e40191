"""The 24-hour window: the notifier follows each user's last inbound message (its own consumer of
WA_INBOUND), sends a business-initiated message as its approved template once the window is
closed, falls back to the template once when Meta says 131047, and marks inbound messages read
with the typing indicator, best effort."""

from __future__ import annotations

import asyncio
import secrets
import time

import pytest

from services.common.contracts.notifier import SendMessage, TemplateFallback, TextMessage
from services.common.settings import WhatsAppTemplate
from services.notifier import repository
from tests.component.notifier.conftest import (
    Harness,
    bodies,
    eventually,
    metric,
    outbound_with,
    recipient,
    text,
    window_open,
)

pytestmark = pytest.mark.servers


def reminder(to: str, lang: str = "id", name: str = "rescreen_reminder") -> SendMessage:
    return SendMessage(
        command_id=f"rescreen:{to}:{secrets.token_hex(4)}",
        to=to,
        message=TextMessage(body="Besok Anda bisa skrining ulang: ketik VAKSIN."),
        template=TemplateFallback(name=name, lang=lang, params=["31-01-2021"]),
    )


async def test_outside_the_window_the_approved_template_is_sent(notifier: Harness) -> None:
    to = recipient()  # never wrote to us
    fallbacks = metric("notifier_template_fallbacks_total", reason="window_closed")
    cmd = reminder(to, lang="en")
    await notifier.send(cmd)

    [sent] = await notifier.fake.wait_for_messages(to, 1)
    assert sent["type"] == "template"
    assert sent["body"]["template"] == {
        "name": "rescreen_reminder",
        "language": {"code": "en"},
        "components": [{"type": "body", "parameters": [{"type": "text", "text": "31-01-2021"}]}],
    }
    row = await outbound_with(notifier.pool, cmd.command_id, queued=False)
    assert row.sent_as == "template"
    assert metric("notifier_template_fallbacks_total", reason="window_closed") == fallbacks + 1


async def test_inside_the_window_the_message_itself_is_sent(notifier: Harness) -> None:
    to = recipient()
    await notifier.inbound(to, at=time.time() - 2 * 3600)  # wrote two hours ago
    await eventually(lambda: window_open(notifier, to), what="window recorded")
    await notifier.send(reminder(to))

    [sent] = await notifier.fake.wait_for_messages(to, 1)
    assert bodies([sent]) == ["Besok Anda bisa skrining ulang: ketik VAKSIN."]


async def test_a_reply_without_template_is_sent_as_is_even_without_a_known_window(
    notifier: Harness,
) -> None:
    to = recipient()
    await notifier.send(text(to, "Balasan percakapan"))
    assert bodies(await notifier.fake.wait_for_messages(to, 1)) == ["Balasan percakapan"]


async def test_a_131047_failed_status_falls_back_to_the_template_once(harness: Harness) -> None:
    # We believe the window is open (an old inbound message), Meta knows better.
    harness.fake.enforce_window = True
    await harness.start_notifier()
    to = recipient()
    await harness.inbound(to, at=time.time() - 23 * 3600)
    await eventually(lambda: window_open(harness, to), what="window recorded")
    cmd = reminder(to)
    await harness.send(cmd)

    [sent] = await harness.fake.wait_for_messages(to, 1)
    assert sent["type"] == "template"
    [undelivered] = harness.fake.undelivered
    assert undelivered["to"] == to and undelivered["type"] == "text"
    original = await outbound_with(harness.pool, cmd.command_id, status="failed")
    assert original.last_error_code == 131047
    resend = await outbound_with(harness.pool, f"{cmd.command_id}#2", queued=False)
    assert (resend.sent_as, resend.origin) == ("template", cmd.command_id)
    await asyncio.sleep(0.5)
    assert len(harness.fake.messages_to(to)) == 1


async def test_131047_without_a_template_is_dead_lettered_for_the_dialog(
    harness: Harness,
) -> None:
    harness.fake.enforce_window = True
    await harness.start_notifier()
    to = recipient()
    cmd = text(to, "Jawaban yang terlambat")
    await harness.send(cmd)

    [failed] = await eventually(lambda: harness.send_failed(cmd.command_id), what="send_failed")
    assert (failed["to"], failed["reason"], failed["error_code"]) == (to, "window_closed", 131047)
    assert harness.fake.messages_to(to) == []


async def test_a_synchronous_131047_switches_to_the_template(notifier: Harness) -> None:
    to = recipient()
    await notifier.inbound(to, at=time.time() - 3600)
    await eventually(lambda: window_open(notifier, to), what="window recorded")
    notifier.fake.fail_next(131047)
    cmd = reminder(to)
    await notifier.send(cmd)

    [sent] = await notifier.fake.wait_for_messages(to, 1)
    assert sent["type"] == "template"
    row = await outbound_with(notifier.pool, cmd.command_id, queued=False)
    assert (row.sent_as, row.attempts) == ("template", 2)


async def test_a_template_that_is_not_configured_is_dead_lettered_unsent(
    notifier: Harness,
) -> None:
    to = recipient()
    cmd = reminder(to, name="never_approved")
    await notifier.send(cmd)

    [dead] = await eventually(lambda: notifier.dead_letters(cmd.command_id), what="dead letter")
    assert dead["reason"] == "template_not_configured"
    row = await repository.fetch(notifier.pool, cmd.command_id)
    assert row is not None and (row.status, row.attempts) == ("failed", 0)
    assert notifier.fake.messages_to(to) == []


async def test_template_names_and_languages_come_from_the_configuration(
    harness: Harness,
) -> None:
    harness.fake.templates["vaksin_pengingat_v2"] = {"languages": {"id", "en_US"}, "params": 1}
    await harness.start_notifier(
        whatsapp_templates={
            "rescreen_reminder": WhatsAppTemplate(
                name="vaksin_pengingat_v2", params=1, languages={"id": "id", "en": "en_US"}
            )
        }
    )
    to = recipient()
    await harness.send(reminder(to, lang="en"))
    [sent] = await harness.fake.wait_for_messages(to, 1)
    assert sent["body"]["template"]["name"] == "vaksin_pengingat_v2"
    assert sent["body"]["template"]["language"] == {"code": "en_US"}


async def test_inbound_messages_are_marked_read_with_a_typing_indicator(
    notifier: Harness,
) -> None:
    to = recipient()
    wamid = await notifier.inbound(to)
    await eventually(lambda: _contains(notifier.fake.typing, wamid), what="typing indicator")
    assert wamid in notifier.fake.reads


async def test_an_old_message_replayed_is_not_marked_read_again(notifier: Harness) -> None:
    to, fresh = recipient(), recipient()
    old = await notifier.inbound(to, at=time.time() - 5 * 3600)
    new = await notifier.inbound(fresh)
    await eventually(lambda: _contains(notifier.fake.reads, new), what="fresh one read")
    assert old not in notifier.fake.reads
    assert await window_open(notifier, to)


async def test_a_failing_mark_as_read_is_counted_and_blocks_nothing(notifier: Harness) -> None:
    to = recipient()
    failed = metric("notifier_mark_read_total", outcome="failed")
    notifier.fake.failing_reads = 1
    wamid = await notifier.inbound(to)
    await eventually(
        lambda: _above(metric("notifier_mark_read_total", outcome="failed"), failed),
        what="failure counted",
    )
    await notifier.send(text(to, "tetap terkirim"))
    assert bodies(await notifier.fake.wait_for_messages(to, 1)) == ["tetap terkirim"]
    await asyncio.sleep(0.3)
    assert wamid not in notifier.fake.reads  # not retried


async def _contains(items: list[str], item: str) -> bool:
    return item in items


async def _above(value: float, than: float) -> bool:
    return value > than
