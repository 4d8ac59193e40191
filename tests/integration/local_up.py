"""`vaksin up` as a subprocess, for the tests that exercise the local runner: start it on a DATA_DIR,
wait for it, be a WhatsApp user (signed webhooks re-posted until 200, as Meta does) and read the
bot's replies back from the local fake Graph API."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from services.common.embedded import free_port
from services.devtools.chat import inbound
from services.ingress.webhook import sign

VAKSIN = [sys.executable, "-m", "services.cli"]


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 (loopback)
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def cmdline(pid: int) -> bytes:
    return Path(f"/proc/{pid}/cmdline").read_bytes()


def children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def alive(pid: int) -> bool:
    """A live process (a zombie is dead)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


@dataclass
class LocalUp:
    data_dir: Path
    port: int
    env: dict[str, str]
    proc: subprocess.Popen[bytes]
    log: IO[bytes]

    @property
    def ingress(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def runtime(self) -> dict[str, Any]:
        return json.loads((self.data_dir / "runtime.json").read_text())

    def log_events(self) -> list[dict[str, Any]]:
        """The runner's own JSON log lines (the services log to the same file)."""
        events = []
        for line in (self.data_dir / "up.log").read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    events.append(json.loads(line))
                except ValueError:
                    continue
        return events

    def send(self, phone: str, text: str, *, timeout: float = 60) -> None:
        """Post one signed message, again and again until it is answered 200."""
        secret = json.loads((self.data_dir / "secrets.json").read_text())["whatsapp_app_secret"]
        data = json.dumps(inbound(phone, "Tester", text, [])).encode()
        request = urllib.request.Request(  # noqa: S310 (loopback)
            f"{self.ingress}/webhook",
            data=data,
            method="POST",
            headers={"X-Hub-Signature-256": sign(data, secret), "Content-Type": "application/json"},
        )

        def accepted() -> bool:
            try:
                with urllib.request.urlopen(request, timeout=5) as resp:  # noqa: S310 (loopback)
                    return resp.status == 200
            except OSError:  # HTTPError (503 while NATS is away) included
                return False

        wait_for(accepted, timeout, f"webhook 200 for {text!r}")

    def replies(self, phone: str) -> list[dict[str, Any]]:
        """Every message the bot sent to `phone`, in order (bodies as posted to the Graph API)."""
        url = f"{self.runtime()['fake_graph_url']}/_fake/messages?to={phone}&after=-1"
        return [sent["body"] for sent in json.loads(get(url)[1] or b"[]")]

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=60)
        finally:
            self.log.close()


def start_up(data_dir: Path, *, timeout: float = 60) -> LocalUp:
    """`vaksin up` with embedded servers on `data_dir`, ready to take webhooks."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "DATABASE_URL")}
    env |= {"DATA_DIR": str(data_dir), "INGRESS_PORT": str(port), "LOG_JSON": "true"}
    log = (data_dir / "up.log").open("ab")
    proc = subprocess.Popen([*VAKSIN, "up"], env=env, stdout=log, stderr=subprocess.STDOUT)
    up = LocalUp(data_dir, port, env, proc, log)
    try:
        wait_for(lambda: get(f"{up.ingress}/readyz")[0] == 200, timeout, "readyz 200")
    except BaseException:
        up.stop()
        raise
    return up
