"""`vaksin up` as a developer runs it: a real process tree with embedded servers, found by the
other commands through DATA_DIR, restarting a dead service, stopping cleanly on SIGTERM; and the
same with a three-node NATS cluster and two processes of every service."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import urllib.request
from dataclasses import replace
from pathlib import Path

import nats
import pytest
from nats.js.api import StreamInfo

from services.common.contracts.streams import WA_INBOUND
from services.common.embedded import free_port
from services.common.settings import nats_servers
from services.ingress.webhook import sign
from services.registry import SERVICES
from tests.integration.local_up import VAKSIN, LocalUp, children, cmdline, get, wait_for

pytestmark = pytest.mark.servers


def test_up_runs_everything_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "DATABASE_URL")}
    env |= {"DATA_DIR": str(tmp_path), "INGRESS_PORT": str(port), "LOG_JSON": "true"}
    log = (tmp_path / "up.log").open("wb")
    up = subprocess.Popen([*VAKSIN, "up"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: get(f"http://127.0.0.1:{port}/readyz")[0] == 200, 60, "readyz 200")
        _, body = get(f"http://127.0.0.1:{port}/readyz")
        checks = json.loads(body)["checks"]
        # The edge itself needs only NATS; the other services' /readyz come on top.
        assert checks.pop("nats") is True and "postgres" not in checks
        assert list(checks.values()) == [True] * (len(SERVICES) - 1)

        runtime = json.loads((tmp_path / "runtime.json").read_text())
        assert runtime["nats_url"].startswith("nats://127.0.0.1:")
        # Whom a fault-injection harness may kill: every service and both embedded servers.
        processes = runtime["processes"]
        assert set(processes) == {"nats", "postgres", "fake-graph", *SERVICES}
        assert sorted(processes.values()) == sorted(children(up.pid))
        # The desk app, where the ticketing service serves it.
        assert runtime["desk_url"].startswith("http://127.0.0.1:")
        assert runtime["desk_url"].endswith("/desk/")
        status, page = get(runtime["desk_url"])
        assert status == 200 and b"Meja Vaksinasi" in page

        # Another command finds the running system through DATA_DIR alone.
        loaded = subprocess.run([*VAKSIN, "demo-data"], env=env, capture_output=True, text=True)
        assert loaded.returncode == 0, loaded.stderr
        assert "imported 4 rows" in loaded.stdout

        # A signed webhook is answered through the whole pipeline and the local fake Graph API.
        secret = json.loads((tmp_path / "secrets.json").read_text())["whatsapp_app_secret"]
        message = {
            "from": "6281200000001",
            "id": "wamid.runner.1",
            "timestamp": "1",
            "type": "text",
            "text": {"body": "VAKSIN"},
        }
        body = json.dumps(
            {
                "object": "whatsapp_business_account",
                "entry": [
                    {
                        "changes": [
                            {
                                "field": "messages",
                                "value": {
                                    "metadata": {"phone_number_id": "1"},
                                    "messages": [message],
                                },
                            }
                        ]
                    }
                ],
            }
        ).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/webhook",
            data=body,
            method="POST",
            headers={"X-Hub-Signature-256": sign(body, secret), "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as resp:  # noqa: S310 (loopback)
            assert resp.status == 200
        sent_url = f"{runtime['fake_graph_url']}/_fake/messages?to=6281200000001&after=-1"
        wait_for(lambda: len(json.loads(get(sent_url)[1] or b"[]")) == 1, 20, "the bot's reply")

        # A service that dies is restarted and the system is ready again.
        services = {p: cmdline(p) for p in children(up.pid)}
        [identity] = [p for p, cmd in services.items() if b"identity" in cmd.split(b"\0")]
        os.kill(identity, signal.SIGKILL)
        wait_for(
            lambda: any(
                b"identity" in cmdline(p).split(b"\0") for p in children(up.pid) if p != identity
            ),
            20,
            "identity restarted",
        )
        [restarted] = [p for p in children(up.pid) if b"identity" in cmdline(p).split(b"\0")]
        wait_for(
            lambda: (
                json.loads((tmp_path / "runtime.json").read_text())["processes"]["identity"]
                == restarted
            ),
            5,
            "the new identity pid in runtime.json",
        )
        wait_for(lambda: get(f"http://127.0.0.1:{port}/readyz")[0] == 200, 30, "ready again")
    finally:
        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=60) == 0
        log.close()
    assert not (tmp_path / "runtime.json").exists()
    assert children(up.pid) == []
    leftovers = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True)
    assert leftovers.stdout.strip() == "", "servers left running after stop"

    # Started again on the same DATA_DIR: the data is still there.
    up = subprocess.Popen(
        [*VAKSIN, "up"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for(
            lambda: get(f"http://127.0.0.1:{port}/readyz")[0] == 200, 60, "readyz after restart"
        )
        again = subprocess.run([*VAKSIN, "demo-data"], env=env, capture_output=True, text=True)
        assert "0 new, 4 updated" in again.stdout, again.stdout + again.stderr
    finally:
        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=60) == 0


def test_up_runs_a_nats_cluster_and_two_processes_of_every_service(tmp_path: Path) -> None:
    """VAKSIN_NATS_NODES=3 and VAKSIN_REPLICAS=2: three clustered nats-servers, streams in three
    copies, two processes of every service, each named in runtime.json; the system answers
    through either edge, and goes on answering when the node leading WA_INBOUND is killed (the
    supervisor starts it again with its data on the same ports)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "DATABASE_URL")}
    env |= {"DATA_DIR": str(tmp_path), "INGRESS_PORT": str(port), "LOG_JSON": "true"}
    env |= {"VAKSIN_NATS_NODES": "3", "VAKSIN_REPLICAS": "2"}
    env.pop("NATS_STREAM_REPLICAS", None)
    log = (tmp_path / "up.log").open("wb")
    proc = subprocess.Popen([*VAKSIN, "up"], env=env, stdout=log, stderr=subprocess.STDOUT)
    up = LocalUp(tmp_path, port, env, proc, log)
    try:
        wait_for(lambda: get(f"{up.ingress}/readyz")[0] == 200, 120, "readyz 200")
        runtime = up.runtime()
        nodes = {node["name"]: node for node in runtime["nats_nodes"]}
        assert list(nodes) == ["nats-1", "nats-2", "nats-3"]
        assert runtime["nats_url"] == ",".join(node["url"] for node in nodes.values())
        assert (runtime["replicas"], runtime["stream_replicas"]) == (2, 3)
        processes = runtime["processes"]
        replicas = {f"{name}-2" for name in SERVICES}
        assert set(processes) == {*nodes, "postgres", "fake-graph", *SERVICES, *replicas}
        assert sorted(processes.values()) == sorted(children(proc.pid))
        edges = runtime["ingress_urls"]
        assert edges[0] == up.ingress and len(edges) == 2
        assert get(f"{edges[1]}/readyz")[0] == 200

        stream = asyncio.run(_stream_info(runtime["nats_url"], WA_INBOUND.name))
        assert stream.config.num_replicas == 3
        assert stream.cluster is not None and len(stream.cluster.replicas or []) == 2

        # A user through the first edge, another through the second: both answered.
        up.send("6281200000011", "VAKSIN")
        replace(up, port=int(edges[1].rsplit(":", 1)[1])).send("6281200000012", "VAKSIN")
        for phone in ("6281200000011", "6281200000012"):
            wait_for(lambda phone=phone: len(up.replies(phone)) == 1, 30, f"a reply to {phone}")

        # The node leading WA_INBOUND dies: another leads, the supervisor restarts it.
        leader = stream.cluster.leader
        assert leader in nodes
        os.kill(processes[leader], signal.SIGKILL)
        up.send("6281200000013", "VAKSIN")
        wait_for(lambda: len(up.replies("6281200000013")) == 1, 30, "a reply after the kill")
        wait_for(
            lambda: up.runtime()["processes"][leader] not in (None, processes[leader]),
            20,
            f"{leader} restarted",
        )
        assert up.runtime()["nats_nodes"] == runtime["nats_nodes"], "same ports, same data"
        restarted = asyncio.run(_stream_info(runtime["nats_url"], WA_INBOUND.name))
        assert restarted.state.messages >= 3
    finally:
        assert up.stop() == 0
    assert not (tmp_path / "runtime.json").exists()
    assert children(proc.pid) == []
    leftovers = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True)
    assert leftovers.stdout.strip() == "", "servers left running after stop"


async def _stream_info(nats_url: str, stream: str) -> StreamInfo:
    nc = await nats.connect(nats_servers(nats_url), max_reconnect_attempts=2)
    try:
        return await nc.jetstream().stream_info(stream)
    finally:
        await nc.close()
