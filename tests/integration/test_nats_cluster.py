"""A three-node JetStream cluster (services/common/embedded.py EmbeddedNatsCluster), as
`VAKSIN_NATS_NODES=3` runs it: streams declared by a service's broker at NATS_STREAM_REPLICAS
copies, an R1 stream scaled up in place by either declarer, and publishes that ride out their
stream's leader stepping down or dying, with no message lost and none stored twice."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from faststream.nats import JStream, StorageType
from nats.js.api import ConsumerConfig, StreamConfig

from services.common import consumers
from services.common.consumers import durable_subscriber
from services.common.contracts import streams
from services.common.contracts.streams import DEAD_LETTERS, SCREENING, WA_INBOUND
from services.common.embedded import EmbeddedNatsCluster
from services.common.jetstream import PUBLISH_RETRIES, declare_stream, publish_durably
from services.common.service import make_broker
from services.common.settings import Settings

pytestmark = pytest.mark.servers


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[EmbeddedNatsCluster]:
    cluster = EmbeddedNatsCluster(tmp_path, nodes=3)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(autouse=True)
def stream_definitions(monkeypatch: pytest.MonkeyPatch) -> None:
    """The definitions are module-level and FastStream marks them declared once any broker of
    the process has declared them: declare them afresh here, and leave them as they were."""
    for stream in streams.STREAMS:
        monkeypatch.setattr(stream, "declare", True)
        monkeypatch.setattr(stream.config, "num_replicas", stream.config.num_replicas)
        monkeypatch.setattr(stream.config, "subjects", stream.config.subjects)


@pytest.fixture
async def client(cluster: EmbeddedNatsCluster) -> AsyncIterator[nats.NATS]:
    nc = await nats.connect(cluster.urls, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    yield nc
    await nc.close()


async def _ignore(body: Any) -> None:
    pass


def _replicas(info: dict[str, Any]) -> set[str]:
    """Every node holding a copy: the leader and its followers."""
    placement = info["cluster"]
    return {placement["leader"], *(r["name"] for r in placement.get("replicas") or [])}


async def _until(check: Any, within: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await check():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


def _cluster_settings(cluster: EmbeddedNatsCluster, **values: Any) -> Settings:
    return Settings(nats_url=cluster.url, database_url="postgresql://unused", **values)


async def test_a_service_broker_declares_its_streams_on_every_node(
    cluster: EmbeddedNatsCluster, client: nats.NATS
) -> None:
    # VAKSIN_NATS_NODES=3 without NATS_STREAM_REPLICAS: three copies.
    settings = _cluster_settings(cluster, vaksin_nats_nodes=3)
    assert settings.nats_servers == cluster.urls
    reader = consumers.router()
    durable_subscriber(
        reader, "screening.evt.>", stream=SCREENING, durable="cluster-test-reader", max_deliver=3
    )(_ignore)
    broker = make_broker(settings, "cluster-test", reader)
    await broker.start()
    try:
        for stream in (DEAD_LETTERS.name, SCREENING.name):
            info = await cluster.stream_info(stream)
            assert info["config"]["num_replicas"] == 3
            assert _replicas(info) == {"nats-1", "nats-2", "nats-3"}
        # Its consumer is replicated as well: it follows the stream (replicas not set).
        consumer = await client.jetstream().consumer_info(SCREENING.name, "cluster-test-reader")
        assert consumer.config.num_replicas in (None, 0)
        assert consumer.cluster is not None and len(consumer.cluster.replicas or []) == 2
    finally:
        await broker.stop()


async def test_an_r1_stream_is_scaled_up_in_place_by_either_declarer(
    cluster: EmbeddedNatsCluster, client: nats.NATS
) -> None:
    js = client.jetstream()
    # Two streams as a one-node deployment left them: one replica, messages and a consumer.
    for stream in (SCREENING, DEAD_LETTERS):
        await js.add_stream(StreamConfig(name=stream.name, subjects=list(stream.subjects)))
        await js.add_consumer(stream.name, ConsumerConfig(durable_name=f"{stream.name}-reader"))
    for n in range(5):
        await js.publish("screening.evt.done", b"%d" % n, headers={"Nats-Msg-Id": f"s{n}"})
        await js.publish("deadletter.x", b"%d" % n, headers={"Nats-Msg-Id": f"d{n}"})
    assert len(_replicas(await cluster.stream_info(SCREENING.name))) == 1

    # FastStream's broker (every service's, which declares DEAD_LETTERS) updates it to
    # NATS_STREAM_REPLICAS=3 ...
    broker = make_broker(_cluster_settings(cluster, nats_stream_replicas=3), "cluster-test")
    await broker.start()
    await broker.stop()
    # ... and nats-py's declarer (the notifier's engine) SCREENING.
    await declare_stream(js, SCREENING, 3)

    for stream in (SCREENING.name, DEAD_LETTERS.name):

        async def scaled(stream: str = stream) -> bool:
            info = await cluster.stream_info(stream)
            followers = info["cluster"].get("replicas") or []
            return len(followers) == 2 and all(f["current"] for f in followers)

        await _until(scaled, 15, f"{stream} at three current replicas")
        info = await cluster.stream_info(stream)
        assert info["config"]["num_replicas"] == 3
        assert info["state"]["messages"] == 5, "the messages it had are kept"

        async def consumer_scaled(stream: str = stream) -> bool:
            consumer = await js.consumer_info(stream, f"{stream}-reader")
            return consumer.cluster is not None and len(consumer.cluster.replicas or []) == 2

        # The consumer it had follows the stream to three nodes (a moment later).
        await _until(consumer_scaled, 15, f"{stream}'s consumer at three replicas")


LEADER_MOVES = JStream(
    name="LEADER_MOVES", subjects=["moves.>"], storage=StorageType.FILE,
    duplicate_window=600, num_replicas=3,
)  # fmt: skip


async def test_publishes_ride_out_a_leader_step_down_and_a_leader_kill(
    cluster: EmbeddedNatsCluster, tmp_path: Path
) -> None:
    settings = _cluster_settings(cluster)
    broker = make_broker(settings, "cluster-publisher")
    broker.publisher("moves.x", stream=LEADER_MOVES)  # declared at R3 (its own definition)
    await broker.start()
    published: list[str] = []
    retried = PUBLISH_RETRIES.labels("retried")._value.get()

    async def publish(until: asyncio.Event) -> None:
        n = 0
        while not until.is_set():
            message_id = f"move-{n}"
            await publish_durably(
                broker.publish,
                {"n": n},
                "moves.x",
                stream=LEADER_MOVES.name,
                headers={"Nats-Msg-Id": message_id},
                timeout=2.0,
            )
            published.append(message_id)
            n += 1
            await asyncio.sleep(0.005)

    done = asyncio.Event()
    publisher = asyncio.create_task(publish(done))
    try:
        await asyncio.sleep(0.5)
        first = await cluster.stream_leader(LEADER_MOVES.name)
        await cluster.step_down(LEADER_MOVES.name)
        await _until(
            lambda: _leader_is_not(cluster, first), 10, "another leader after the step-down"
        )
        await asyncio.sleep(0.5)

        killed = await cluster.stream_leader(LEADER_MOVES.name)
        before_kill = len(published)
        cluster.kill(killed)
        new_leader = await cluster.stream_leader(LEADER_MOVES.name, within=20)
        assert new_leader != killed
        # Publishing goes on under the new leader: the ones in flight at the kill came through.
        await _until(_grown(published, before_kill + 20), 20, "publishes under the new leader")
    finally:
        done.set()
        await asyncio.wait_for(publisher, 30)  # raises what a publish raised: none may fail
        await broker.stop()
    assert PUBLISH_RETRIES.labels("retried")._value.get() > retried, "no leaderless publish"

    # Every publish stored once: nothing lost, no repeat kept.
    nc = await nats.connect(cluster.urls)
    try:
        js = nc.jetstream()
        info = await js.stream_info(LEADER_MOVES.name)
        assert info.state.messages == len(published)
        ids = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            stored = await js.get_msg(LEADER_MOVES.name, seq)
            ids.append((stored.headers or {})["Nats-Msg-Id"])
        assert sorted(ids) == sorted(published) and len(set(ids)) == len(ids)
    finally:
        await nc.close()

    # The killed node comes back with its data on the same ports and catches up.
    node = cluster.node(killed)
    url = node.url
    await asyncio.to_thread(cluster.restart, killed)
    assert node.running() and node.url == url

    def caught_up() -> bool:
        jsz = f"{node.monitor_url}/jsz?streams=true"
        with urllib.request.urlopen(jsz, timeout=2) as resp:  # noqa: S310 (loopback)
            accounts = json.load(resp).get("account_details") or []
        held = [s for a in accounts for s in a.get("stream_detail") or []]
        return any(
            s["name"] == LEADER_MOVES.name and s["state"]["messages"] == len(published)
            for s in held
        )

    await _until(lambda: asyncio.to_thread(caught_up), 20, f"{killed} caught up")
    info = await cluster.stream_info(LEADER_MOVES.name)
    assert _replicas(info) == {"nats-1", "nats-2", "nats-3"}


async def _leader_is_not(cluster: EmbeddedNatsCluster, old: str) -> bool:
    return await cluster.stream_leader(LEADER_MOVES.name) != old


def _grown(published: list[str], size: int) -> Any:
    async def check() -> bool:
        return len(published) >= size

    return check


async def test_a_process_without_the_setting_never_scales_a_stream_down(
    cluster: EmbeddedNatsCluster,
) -> None:
    """A broker started with NATS_STREAM_REPLICAS unset (one copy: a CLI on a laptop, a pod with
    an old ConfigMap) leaves the production cluster's three copies as they are."""
    broker = make_broker(_cluster_settings(cluster, nats_stream_replicas=3), "cluster-test")
    await broker.start()
    await broker.stop()
    assert (await cluster.stream_info(WA_INBOUND.name))["config"]["num_replicas"] == 3

    broker = make_broker(_cluster_settings(cluster, nats_stream_replicas=1), "cluster-test")
    await broker.start()
    await broker.stop()
    for stream in streams.STREAMS:
        assert (await cluster.stream_info(stream.name))["config"]["num_replicas"] == 3, stream.name
