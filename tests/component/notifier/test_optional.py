"""Optional messages (the vaccine video): sent while the user's 24-hour window is open; while it is
closed, or when Meta says so with 131047, not sent and not failed but recorded as skipped: no dead
letter, no send_failed for the dialog, and the user's next message goes out as usual."""

from __future__ import annotations

import asyncio
import secrets
import time

import pytest

from services.common.contracts.notifier import SendMessage, VideoMessage
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

VIDEO_URL = "https://example.org/vaksin/cara-kerja-vaksin.mp4"


def vaccine_video(to: str) -> SendMessage:
    return SendMessage(
        command_id=f"video:{to}:{secrets.token_hex(4)}",
        to=to,
        message=VideoMessage(link=VIDEO_URL, caption="Cara kerja vaksin"),
        optional=True,
    )


async def assert_not_dead_lettered(harness: Harness, command_id: str) -> None:
    # Relayed through the outbox within milliseconds had it been dead-lettered.
    await asyncio.sleep(0.5)
    assert await harness.dead_letters(command_id) == []
    assert await harness.send_failed(command_id) == []


async def test_an_optional_video_is_skipped_while_the_window_is_closed(
    notifier: Harness,
) -> None:
    to = recipient()  # never wrote to us
    skipped = metric("notifier_sends_total", kind="video", outcome="skipped")
    cmd = vaccine_video(to)
    await notifier.send(cmd)
    after = text(to, "Tiket Anda menyusul.")
    await notifier.send(after)

    # The user's next message still goes: the skipped one is out of the queue.
    assert bodies(await notifier.fake.wait_for_messages(to, 1)) == ["Tiket Anda menyusul."]
    row = await outbound_with(notifier.pool, cmd.command_id, status="skipped")
    assert (row.queued, row.wamid, row.attempts) == (False, None, 0)
    await assert_not_dead_lettered(notifier, cmd.command_id)
    assert [m for m in notifier.fake.undelivered if m["to"] == to] == []
    assert metric("notifier_sends_total", kind="video", outcome="skipped") == skipped + 1


async def test_an_optional_video_is_sent_while_the_window_is_open(notifier: Harness) -> None:
    to = recipient()
    await notifier.inbound(to)
    await eventually(lambda: window_open(notifier, to), what="window recorded")
    cmd = vaccine_video(to)
    await notifier.send(cmd)

    [sent] = await notifier.fake.wait_for_messages(to, 1)
    assert sent["body"]["video"] == {"link": VIDEO_URL, "caption": "Cara kerja vaksin"}
    row = await outbound_with(notifier.pool, cmd.command_id, queued=False)
    assert (row.sent_as, row.wamid) == ("message", sent["wamid"])
    assert row.status != "skipped"


async def test_a_131047_status_for_an_optional_video_skips_it(harness: Harness) -> None:
    # We believe the window is open (the user wrote 23 hours ago); Meta knows better.
    harness.fake.enforce_window = True
    await harness.start_notifier()
    to = recipient()
    await harness.inbound(to, at=time.time() - 23 * 3600)
    await eventually(lambda: window_open(harness, to), what="window recorded")
    cmd = vaccine_video(to)
    await harness.send(cmd)

    row = await outbound_with(harness.pool, cmd.command_id, status="skipped")
    assert row.last_error_code == 131047
    [undelivered] = [m for m in harness.fake.undelivered if m["to"] == to]
    assert undelivered["wamid"] == row.wamid
    await assert_not_dead_lettered(harness, cmd.command_id)
    assert harness.fake.messages_to(to) == []
    # Not sent again, as itself or as a re-send.
    assert [r.command_id for r in await repository.rows_of(harness.pool, to)] == [cmd.command_id]


async def test_a_synchronous_131047_for_an_optional_video_skips_it(notifier: Harness) -> None:
    to = recipient()
    await notifier.inbound(to)
    await eventually(lambda: window_open(notifier, to), what="window recorded")
    notifier.fake.fail_next(131047)
    cmd = vaccine_video(to)
    await notifier.send(cmd)

    row = await outbound_with(notifier.pool, cmd.command_id, status="skipped")
    assert (row.queued, row.attempts, row.last_error_code) == (False, 1, 131047)
    await assert_not_dead_lettered(notifier, cmd.command_id)
    assert notifier.fake.messages_to(to) == []
