"""`vaksin up` as a developer runs it: a real process tree with embedded servers, found by the
other commands through DATA_DIR, restarting a dead service, stopping cleanly on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import urllib.request
from pathlib import Path

import pytest

from services.common.embedded import free_port
from services.ingress.webhook import sign
from services.registry import SERVICES
from tests.integration.local_up import VAKSIN, children, cmdline, get, wait_for

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
