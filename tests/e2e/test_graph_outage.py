"""Meta's Graph API down for a minute (first answering 503, then not answering at all before the
notifier's timeout): every reply of every user arrives once it is back, each exactly once, and
nothing is dead-lettered."""

from __future__ import annotations

import asyncio
import time

import pytest
from prometheus_client import REGISTRY

from tests.e2e.conftest import System, body_of, new_phone

pytestmark = pytest.mark.servers

OUTAGE = 60.0  # seconds, half refusing with 503, half hanging


def dead_letters() -> float:
    return sum(
        sample.value
        for metric in REGISTRY.collect()
        if metric.name == "notifier_dead_letters"
        for sample in metric.samples
        if sample.name == "notifier_dead_letters_total"
    )


@pytest.mark.timeout(300)
async def test_a_minute_without_meta_loses_and_repeats_nothing(system: System) -> None:
    dead_before = dead_letters()
    users = [new_phone() for _ in range(6)]
    system.fake.outage(OUTAGE / 2)
    for wa_id in users[:3]:
        await system.say(wa_id, "VAKSIN")
    await asyncio.sleep(OUTAGE / 2)
    system.fake.outage(OUTAGE / 2, hang=True)
    for wa_id in users[3:]:
        await system.say(wa_id, "VAKSIN")
    await asyncio.sleep(OUTAGE / 2)
    assert not any(system.fake.messages_to(u) for u in users), "sent while Meta was down"
    assert system.fake.refused_while_down > 0
    back = time.monotonic()
    for wa_id in users:
        replies = await system.fake.wait_for_messages(wa_id, 1, timeout=150)
        assert "tenaga kesehatan" in body_of(replies[0]).lower()
    assert time.monotonic() - back < 150
    await asyncio.sleep(3)  # anything sent twice would show now
    assert [len(system.fake.messages_to(u)) for u in users] == [1] * len(users)
    assert dead_letters() == dead_before
