"""A reply that never reaches its user does not leave them in silence: the notifier's
`notifier.evt.send_failed` is noted on their conversation, their next message is answered with an
apology first, and a failure that may pass brings one nudge asking them to reply."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from faststream.nats import NatsBroker

from services.common.contracts.notifier import SendFailed
from services.common.contracts.streams import NOTIFIER
from services.common.contracts.subjects import NOTIFIER_EVT_SEND_FAILED
from tests.e2e.conftest import System, body_of, new_person

pytestmark = pytest.mark.servers


async def noted_failure(system: System, wa_id: str) -> str:
    """The failure reason noted on the user's conversation, once the dialog has it."""
    pool = await asyncpg.connect(system.settings.database_url)
    try:
        deadline = time.monotonic() + 15
        while True:
            reason = await pool.fetchval(
                "SELECT data ->> 'undelivered' FROM ingress.conversation WHERE wa_id = $1", wa_id
            )
            if reason:
                return reason
            assert time.monotonic() < deadline, "the failed send was not noted"
            await asyncio.sleep(0.05)
    finally:
        await pool.close()


async def test_a_reply_refused_for_good_is_apologised_for_on_the_next_message(
    system: System, tmp_path: Path
) -> None:
    nakes = new_person()
    await system.register(nakes, tmp=tmp_path)
    await system.turn(nakes.phone, "VAKSIN")
    system.fake.fail_next(131026)  # "message undeliverable": the question about the suffix is lost
    await system.say(nakes.phone, "ya")
    assert await noted_failure(system, nakes.phone) == "permanent_error"
    apology = body_of(await system.turn(nakes.phone, nakes.suffix))  # then what the turn says
    assert "tidak sampai kepada Anda" in apology and "STATUS" in apology
    assert apology.index("STATUS") < apology.index("terverifikasi")
    # said once: the next message is answered as usual
    again = await system.turn(nakes.phone, "STATUS")
    assert "tidak sampai" not in body_of(again)
    # no nudge for a number Meta cannot deliver to
    assert not [m for m in system.fake.messages_to(nakes.phone) if "gagal terkirim" in body_of(m)]


async def test_a_failure_that_may_pass_brings_one_nudge(system: System, tmp_path: Path) -> None:
    nakes = new_person()
    await system.register(nakes, tmp=tmp_path)
    await system.turn(nakes.phone, "VAKSIN")
    client = NatsBroker(system.settings.nats_url)
    await client.connect()
    try:
        for i in range(3):  # a whole turn's replies exhausted their retries (Meta was down)
            failure = SendFailed(command_id=f"wamid.lost{i}:{nakes.phone}", to=nakes.phone,
                                 reason="attempts_exhausted", error_code=131000,
                                 failed_at=datetime.now(UTC))  # fmt: skip
            await client.publish(failure, NOTIFIER_EVT_SEND_FAILED, stream=NOTIFIER.name)
    finally:
        await client.stop()
    deadline = time.monotonic() + 15
    while not (nudges := [m for m in system.fake.messages_to(nakes.phone)
                          if "gagal terkirim" in body_of(m)]):  # fmt: skip
        assert time.monotonic() < deadline, "no nudge was sent"
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)  # the other two failures are handled by now
    nudges = [m for m in system.fake.messages_to(nakes.phone) if "gagal terkirim" in body_of(m)]
    assert len(nudges) == 1
    assert await noted_failure(system, nakes.phone) == "attempts_exhausted"
