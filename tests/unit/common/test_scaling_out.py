"""Issue 19's settings, without servers: NATS_URL as a list of nodes, the streams' replica count
(one setting, applied wherever a stream is declared), and `vaksin up`'s plan of processes with
VAKSIN_REPLICAS."""

from __future__ import annotations

from pathlib import Path

import pytest
from faststream.nats import JStream

from services.common.contracts import streams
from services.common.settings import Settings, nats_servers
from services.registry import SERVICES
from services.runner import LocalSystem, _plan_children, process_name


@pytest.mark.parametrize(
    ("url", "servers"),
    [
        (None, ["nats://127.0.0.1:4222"]),
        ("", ["nats://127.0.0.1:4222"]),
        ("nats://a:4222", ["nats://a:4222"]),
        ("nats://a:1, nats://b:2 ,nats://c:3,", ["nats://a:1", "nats://b:2", "nats://c:3"]),
    ],
)
def test_nats_url_may_name_every_node_of_a_cluster(url: str | None, servers: list[str]) -> None:
    assert nats_servers(url) == servers
    assert Settings(nats_url=url).nats_servers == servers


@pytest.mark.parametrize(
    ("env", "replicas"),
    [
        ({}, 1),
        ({"VAKSIN_NATS_NODES": "3"}, 3),
        ({"VAKSIN_NATS_NODES": "2"}, 2),
        ({"VAKSIN_NATS_NODES": "5"}, 3),
        ({"VAKSIN_NATS_NODES": "3", "NATS_STREAM_REPLICAS": "1"}, 1),
        ({"NATS_STREAM_REPLICAS": "3"}, 3),
    ],
)
def test_stream_replicas_follow_the_local_cluster_unless_set(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], replicas: int
) -> None:
    for key in ("VAKSIN_NATS_NODES", "NATS_STREAM_REPLICAS"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert Settings().stream_replicas == replicas


def test_every_stream_definition_is_declared_by_every_broker() -> None:
    """`jetstream.declare_streams` (each broker, before it starts) walks STREAMS: a stream
    defined but missing there would be left to FastStream, with no replicas."""
    defined = {v.name for v in vars(streams).values() if isinstance(v, JStream)}
    assert {s.name for s in streams.STREAMS} == defined


def test_two_replicas_of_every_service_each_on_its_own_port(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path, vaksin_replicas=2, whatsapp_access_token="token", ingress_port=18080
    )
    system = LocalSystem(settings, tmp_path)
    _plan_children(system, {})

    names = [child.name for child in system.children]
    assert names == [process_name(s, r) for s in SERVICES for r in (1, 2)]
    assert {"dialog", "dialog-2", "ingress", "ingress-2"} <= set(names)
    assert system.runtime["replicas"] == 2
    ports = [c.env.get("HEALTH_PORT") or c.env["INGRESS_PORT"] for c in system.children]
    assert len(set(ports)) == len(ports), "two processes on one port"
    # Meta posts to INGRESS_PORT: the first edge; the second takes webhooks on a port of its own.
    ingress, ingress_2 = (c for c in system.children if c.argv[-1] == "ingress")
    assert ingress.env["INGRESS_PORT"] == "18080"
    assert system.runtime["ingress_url"] == "http://127.0.0.1:18080"
    assert system.runtime["ingress_urls"] == [
        "http://127.0.0.1:18080",
        f"http://127.0.0.1:{ingress_2.env['INGRESS_PORT']}",
    ]
    # Each edge is ready only once every other process is.
    depends = ingress.env["READYZ_DEPENDS"].split(",")
    assert depends == ingress_2.env["READYZ_DEPENDS"].split(",")
    assert len(depends) == 2 * (len(SERVICES) - 1)
    # The desk app and the console keep the address of the first process.
    [ticketing] = [c for c in system.children if c.name == "ticketing"]
    assert system.runtime["desk_url"] == f"http://127.0.0.1:{ticketing.env['HEALTH_PORT']}/desk/"
