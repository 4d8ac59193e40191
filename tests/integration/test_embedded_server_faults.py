"""`vaksin up` rides through its embedded nats-server or PostgreSQL being SIGKILLed: the supervisor
starts the server again with its data on the same port, the services reconnect by themselves (no
service process dies for it), and a conversation carries on where it was."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import nats
import pytest

from services.common.contracts.streams import WA_INBOUND
from services.devtools.chat import render
from services.ingress.catalog import t
from tests.integration.local_up import LocalUp, alive, start_up, wait_for

pytestmark = pytest.mark.servers

RESTARTED_WITHIN = 5.0  # seconds from the SIGKILL to a new server recorded in runtime.json
ANSWERED_WITHIN = 60.0  # seconds from the SIGKILL to the bot's answer to the next message
# "ya" to "are you a health worker?" from a number identity does not know: the intake offer.
INTAKE_OFFER = t("id", "intake_offer")


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalUp]:
    system = start_up(tmp_path_factory.mktemp("up"))
    try:
        yield system
    finally:
        assert system.stop() == 0


def _stream_state(url: str) -> tuple[int, int]:
    """(last sequence, consumer count) of WA_INBOUND."""

    async def read() -> tuple[int, int]:
        nc = await nats.connect(url, connect_timeout=2, max_reconnect_attempts=0)
        try:
            info = await nc.jetstream().stream_info(WA_INBOUND.name)
            return info.state.last_seq, info.state.consumer_count
        finally:
            await nc.close()

    return asyncio.run(read())


def _undelivered(url: str) -> dict[str, int]:
    """Durable consumers with messages not yet delivered, and how many."""

    async def read() -> dict[str, int]:
        nc = await nats.connect(url, connect_timeout=2, max_reconnect_attempts=0)
        try:
            js = nc.jetstream()
            found = {}
            for stream in await js.streams_info():
                assert stream.config.name
                for consumer in await js.consumers_info(stream.config.name):
                    if consumer.num_pending:
                        found[f"{consumer.stream_name}/{consumer.name}"] = consumer.num_pending
            return found
        finally:
            await nc.close()

    return asyncio.run(read())


def _kill(up: LocalUp, name: str) -> float:
    """SIGKILL the process `name` of runtime.json; when, once the supervisor has replaced it."""
    old = up.runtime()["processes"][name]
    assert alive(old)
    os.kill(old, signal.SIGKILL)
    killed_at = time.monotonic()

    def replaced() -> bool:
        new = up.runtime()["processes"][name]
        return new != old and alive(new)

    wait_for(replaced, RESTARTED_WITHIN, f"{name} restarted and recorded in runtime.json")
    return killed_at


def _services_died(up: LocalUp) -> list[dict[str, Any]]:
    return [e for e in up.log_events() if e.get("event") == "process died; restarting"]


def _next_turn_survives(up: LocalUp, phone: str, server: str) -> None:
    up.send(phone, "VAKSIN")
    wait_for(lambda: len(up.replies(phone)) == 1, 30, "the greeting")
    deaths = len(_services_died(up))

    killed_at = _kill(up, server)
    up.send(phone, "ya", timeout=ANSWERED_WITHIN)
    remaining = ANSWERED_WITHIN - (time.monotonic() - killed_at)
    wait_for(lambda: len(up.replies(phone)) >= 2, remaining, "the answer after the restart")

    # The conversation went on from its stored state, through the dialog, identity (request and
    # reply, its database) and the notifier: one answer, the right one, not "system busy".
    answers = [render(body) for body in up.replies(phone)[1:]]
    assert len(answers) == 1 and answers[0].startswith(INTAKE_OFFER), answers
    restarts = [e for e in up.log_events() if e.get("event") == "embedded server restarted"]
    assert [e["process"] for e in restarts].count(server) == 1
    assert _services_died(up)[deaths:] == [], "a service crashed instead of reconnecting"


def test_a_turn_is_answered_after_nats_server_is_killed(up: LocalUp) -> None:
    url = up.runtime()["nats_url"]
    last_seq, consumers = _stream_state(url)
    assert consumers > 0

    _next_turn_survives(up, "6281200000101", "nats")

    # Same port (the services' URL), and JetStream came back from its store, not empty: the
    # stream kept its messages (at least our two more since) and every durable consumer.
    assert up.runtime()["nats_url"] == url
    last_seq_after, consumers_after = _stream_state(url)
    assert last_seq_after >= last_seq + 2
    assert consumers_after == consumers
    # Every consumer, FastStream's and the notifier's own pull loops alike, is fetching again:
    # what the new turn produced (the reply's delivery statuses too) has all been delivered.
    # (Not necessarily acknowledged yet: a message delivered, or an ack sent, just before the
    # kill is pending again after the restart until its ack_wait runs out.)
    wait_for(lambda: not _undelivered(url), 20, "every consumer fetching again")


def test_a_turn_is_answered_after_postgres_is_killed(up: LocalUp) -> None:
    url = up.runtime()["database_url"]

    _next_turn_survives(up, "6281200000102", "postgres")

    assert up.runtime()["database_url"] == url
