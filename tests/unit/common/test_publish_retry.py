"""A JetStream publish rides out its stream's leader moving (services/common/jetstream.py): tried
again with the same Nats-Msg-Id, with short growing pauses, for a bounded time; anything else
fails at once."""

from __future__ import annotations

import asyncio
from typing import Any

import nats.errors
import nats.js.errors
import pytest

from services.common import jetstream
from services.common.jetstream import PUBLISH_RETRIES, RetryPolicy, publish_durably

QUICK = RetryPolicy(within=0.3, first_pause=0.01, max_pause=0.05)


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jetstream, "PUBLISH_RETRY", QUICK)


class Stream:
    """A publish that fails with each of `failures` in turn, then is acknowledged."""

    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    async def publish(self, *args: Any, **kwargs: Any) -> str:
        self.calls.append((args, kwargs))
        if self.failures:
            raise self.failures.pop(0)
        return "ack"

    def message_ids(self) -> list[str]:
        return [kwargs["headers"]["Nats-Msg-Id"] for _, kwargs in self.calls]


def _count(outcome: str) -> float:
    return PUBLISH_RETRIES.labels(outcome)._value.get()


def test_pauses_double_up_to_the_cap_and_stop_after_the_window() -> None:
    policy = RetryPolicy(within=10.0, first_pause=0.05, max_pause=0.5)
    assert [policy.pause(n, 1.0) for n in range(1, 7)] == [0.05, 0.1, 0.2, 0.4, 0.5, 0.5]
    assert policy.pause(3, 9.9) == pytest.approx(0.1)  # never past the window
    assert policy.pause(1, 10.0) is None
    assert policy.pause(1, 12.0) is None


def test_the_default_outlasts_a_leader_election_after_a_node_dies() -> None:
    # nats-server's followers wait 4 to 9 s without a heartbeat before electing a new leader.
    assert RetryPolicy().within > 9.0
    assert RetryPolicy().max_pause <= 0.5  # a new leader is used within half a second


async def test_a_publish_that_succeeds_is_made_once() -> None:
    stream = Stream()
    ack = await publish_durably(stream.publish, "body", "wa.x", headers={"Nats-Msg-Id": "w1"})
    assert ack == "ack"
    assert stream.calls == [(("body", "wa.x"), {"headers": {"Nats-Msg-Id": "w1"}})]


@pytest.mark.parametrize(
    "leaderless",
    [
        nats.errors.NoRespondersError(),
        nats.js.errors.NoStreamResponseError(),
        nats.errors.TimeoutError(),
        TimeoutError(),
        nats.js.errors.ServiceUnavailableError(code=503),
    ],
)
async def test_a_leaderless_stream_is_tried_again_with_the_same_message_id(
    leaderless: BaseException,
) -> None:
    stream = Stream(leaderless, leaderless)
    retried = _count("retried")
    ack = await publish_durably(
        stream.publish, b"body", "wa.x", stream="WA_INBOUND", headers={"Nats-Msg-Id": "w1"}
    )
    assert ack == "ack"
    assert stream.message_ids() == ["w1", "w1", "w1"]
    assert all(args == (b"body", "wa.x") for args, _ in stream.calls)
    assert _count("retried") == retried + 2


async def test_it_gives_up_after_the_window_with_the_last_error() -> None:
    stream = Stream(*[nats.js.errors.NoStreamResponseError()] * 1000)
    given_up = _count("gave_up")
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(nats.js.errors.NoStreamResponseError):
        await publish_durably(stream.publish, "body", headers={"Nats-Msg-Id": "w1"})
    took = loop.time() - started
    assert QUICK.within <= took < QUICK.within + 0.2
    # 0.01, 0.02, 0.04, then 0.05 apart: about 8 tries in 0.3 s, not a busy loop.
    assert 5 <= len(stream.calls) <= 10
    assert _count("gave_up") == given_up + 1


@pytest.mark.parametrize(
    "failure",
    [
        nats.js.errors.BadRequestError(code=400, err_code=10054),
        nats.errors.MaxPayloadError(),
        nats.errors.ConnectionClosedError(),
        ValueError("unencodable"),
    ],
)
async def test_other_failures_are_not_retried(failure: BaseException) -> None:
    stream = Stream(failure)
    with pytest.raises(type(failure)):
        await publish_durably(stream.publish, "body", headers={"Nats-Msg-Id": "w1"})
    assert len(stream.calls) == 1


@pytest.mark.parametrize("headers", [None, {}, {"other": "x"}])
async def test_a_publish_without_message_id_is_never_repeated(
    headers: dict[str, str] | None,
) -> None:
    # Its repeat could be stored twice: the stream has nothing to drop it by.
    stream = Stream(nats.js.errors.NoStreamResponseError())
    with pytest.raises(nats.js.errors.NoStreamResponseError):
        await publish_durably(stream.publish, "body", headers=headers)
    assert len(stream.calls) == 1


async def test_a_cancelled_publish_stops_retrying() -> None:
    stream = Stream(*[nats.errors.NoRespondersError()] * 1000)
    task = asyncio.create_task(
        publish_durably(stream.publish, "body", headers={"Nats-Msg-Id": "w1"})
    )
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    calls = len(stream.calls)
    await asyncio.sleep(0.1)
    assert len(stream.calls) == calls
