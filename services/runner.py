"""Process supervision: `vaksin service NAME` runs one service; `vaksin up` runs them all.

`vaksin up` starts embedded NATS and Postgres under DATA_DIR unless NATS_URL / DATABASE_URL are
set, migrates, then runs each service as its own process (as production does), restarts one that
dies, and records the local system's URLs in DATA_DIR/runtime.json so that the other commands
(`vaksin registry import`, `vaksin chat`, ...) find it. An embedded server that dies is started
again at once with its data on the same port; the services reconnect to it by themselves.
runtime.json also names every process it runs (`processes`: name -> pid), kept current, so that a
fault-injection harness knows whom to kill. Ctrl-C / SIGTERM stops everything cleanly.

Outgrowing one machine, in small: VAKSIN_NATS_NODES=3 runs NATS as a three-node JetStream cluster
(nodes `nats-1` ... `nats-3`, streams in NATS_STREAM_REPLICAS copies, by default one per node up
to three), and VAKSIN_REPLICAS=2 runs two processes of every service (`dialog`, `dialog-2`, ...),
as a Kubernetes Deployment with two replicas would.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import uvloop

from services.common import tracing
from services.common.embedded import (
    EmbeddedNats,
    EmbeddedNatsCluster,
    EmbeddedPostgres,
    free_port,
    http_ok,
)
from services.common.logging import configure_logging
from services.common.migrate import migrate
from services.common.settings import RUNTIME_FILE, Settings, load_settings
from services.common.tracing import configure_tracing
from services.registry import SERVICES, builder

DESK_PORT = 8087  # ticketing's default HEALTH_PORT
CONSOLE_PORT = 8088  # the console's default HEALTH_PORT
CHANNEL_PORTS = {"ussd": 8090, "sms": 8091}  # the adapters' defaults (services/channels)
# The first process of these services keeps a fixed port where it is free, and its address goes
# into runtime.json: a browser keeps an enrolled desk (and its offline queue) per origin,
# `vaksin chat --channel` finds the channels there, the console's address is printed once.
# service -> (port, runtime.json key, path)
FIXED_PORTS = {
    "ticketing": (DESK_PORT, "desk_url", "/desk/"),
    "ussd": (CHANNEL_PORTS["ussd"], "ussd_url", ""),
    "sms": (CHANNEL_PORTS["sms"], "sms_url", ""),
    "console": (CONSOLE_PORT, "console_url", "/console/"),
}
LOCAL_FAKE_TOKEN = "local-fake-graph"  # noqa: S105 (not a secret: the fake accepts any token)


def run_service(name: str, settings: Settings | None = None) -> int:
    settings = (settings or load_settings()).require_urls()
    configure_logging(name, settings.log_level, settings.log_json)
    configure_tracing(name)  # off unless OTEL_* or VAKSIN_TRACE_FILE ask for it
    try:
        uvloop.run(builder(name)(settings).run())
    finally:
        tracing.uninstall()  # flushes the spans still in the batch
    return 0


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    started_at: float = 0.0

    @property
    def pid(self) -> int | None:
        """The running process's pid (the last poll() found it alive)."""
        return self.proc.pid if self.proc and self.proc.returncode is None else None

    def start(self) -> None:
        self.proc = subprocess.Popen(self.argv, env=self.env)
        self.started_at = time.monotonic()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> None:
        if not self.proc:
            return
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@dataclass
class Server:
    """An embedded server under supervision. It is restarted at once: every service waits on it."""

    server: EmbeddedNats | EmbeddedPostgres
    failures: int = 0
    next_attempt: float = 0.0


@dataclass
class LocalSystem:
    settings: Settings
    data_dir: Path
    children: list[Child] = field(default_factory=list)
    servers: list[Server] = field(default_factory=list)
    runtime: dict[str, object] = field(default_factory=dict)

    def write_runtime(self) -> None:
        """Rewrite runtime.json with the current pids (null while a process is down, as its old
        pid may go to another process); readers never see half a file."""
        processes = {
            s.server.name: s.server.pid if s.server.running() else None for s in self.servers
        }
        processes |= {c.name: c.pid for c in self.children}
        self.runtime["processes"] = processes
        path = self.data_dir / RUNTIME_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.runtime, indent=2))
        tmp.replace(path)


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
        return True


def _start_nats(system: LocalSystem, env: dict[str, str], log) -> None:
    settings = system.settings
    nodes: list[EmbeddedNats] = []
    if settings.nats_url:
        env["NATS_URL"] = settings.nats_url
    elif settings.vaksin_nats_nodes > 1:
        cluster = EmbeddedNatsCluster(system.data_dir, settings.vaksin_nats_nodes)
        env["NATS_URL"] = cluster.start()
        nodes = cluster.nodes
        log.info("embedded nats cluster started", nodes=len(nodes), urls=env["NATS_URL"])
    else:
        nats = EmbeddedNats(system.data_dir)
        env["NATS_URL"] = nats.start()
        nodes = [nats]
        log.info("embedded nats-server started", url=env["NATS_URL"])
    system.servers += [Server(node) for node in nodes]
    # Each node by name, as in `processes` (where its current pid is): whom to kill, where its
    # data is, and its monitoring port (`/jsz`, `/healthz`).
    system.runtime["nats_nodes"] = [
        {"name": n.name, "url": n.url, "monitor_url": n.monitor_url, "data_dir": str(n.dir)}
        for n in nodes
    ]
    env["NATS_STREAM_REPLICAS"] = str(settings.stream_replicas)
    system.runtime["stream_replicas"] = settings.stream_replicas


def _start_infrastructure(system: LocalSystem, env: dict[str, str], log) -> None:
    settings = system.settings
    _start_nats(system, env, log)
    if settings.database_url:
        env["DATABASE_URL"] = settings.database_url
    else:
        pg = EmbeddedPostgres(system.data_dir)
        env["DATABASE_URL"] = pg.start()
        system.servers.append(Server(pg))
        log.info("embedded postgres started", url=env["DATABASE_URL"])
    system.runtime.update(nats_url=env["NATS_URL"], database_url=env["DATABASE_URL"])


def process_name(service: str, replica: int) -> str:
    """`dialog` for the first process of a service, `dialog-2` for its second, ..."""
    return service if replica == 1 else f"{service}-{replica}"


def _plan_children(system: LocalSystem, env: dict[str, str]) -> None:
    settings = system.settings
    python = sys.executable
    if not settings.whatsapp_access_token and "WHATSAPP_API_BASE" not in os.environ:
        # No Meta credentials: talk to a local fake Graph API instead (see `vaksin chat`).
        port = free_port()
        fake_env = {
            **env,
            "FAKE_GRAPH_WEBHOOK_URL": f"http://127.0.0.1:{settings.ingress_port}/webhook",
        }
        system.children.append(
            Child(
                "fake-graph",
                [python, "-m", "services.cli", "fake-graph", "--port", str(port)],
                fake_env,
            )
        )
        env["WHATSAPP_API_BASE"] = f"http://127.0.0.1:{port}/v25.0"
        env["WHATSAPP_ACCESS_TOKEN"] = LOCAL_FAKE_TOKEN
        system.runtime["fake_graph_url"] = f"http://127.0.0.1:{port}"
        system.runtime["simulator_url"] = f"http://127.0.0.1:{port}/simulator/"
    system.runtime["whatsapp_api_base"] = env.get("WHATSAPP_API_BASE", settings.whatsapp_api_base)
    replicas = settings.vaksin_replicas
    system.runtime["replicas"] = replicas
    ready_urls: list[str] = []
    edges: list[str] = []
    for name in SERVICES:
        for replica in range(1, replicas + 1):
            first = replica == 1
            child_env = dict(env)
            if name == "ingress":
                # Meta (and the fake Graph API) post to INGRESS_PORT: the first edge's. Another
                # edge takes webhooks on its own port, as a second Pod behind the Service would.
                port = settings.ingress_port if first else free_port()
                child_env["INGRESS_PORT"] = str(port)
                child_env["READYZ_DEPENDS"] = ",".join(ready_urls)
                edges.append(f"http://127.0.0.1:{port}")
            elif first and name in FIXED_PORTS:
                fixed, key, path = FIXED_PORTS[name]
                port = fixed if port_free(fixed) else free_port()
                system.runtime[key] = f"http://127.0.0.1:{port}{path}"
            else:
                port = free_port()
            if name != "ingress":
                child_env["HEALTH_PORT"] = str(port)
                ready_urls.append(f"http://127.0.0.1:{port}/readyz")
            system.children.append(
                Child(
                    process_name(name, replica),
                    [python, "-m", "services.cli", "service", name],
                    child_env,
                )
            )
    system.runtime["ingress_url"] = edges[0]
    system.runtime["ingress_urls"] = edges


def run_up(settings: Settings, *, trace: bool = False) -> int:
    log = configure_logging("up", settings.log_level, settings.log_json)
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    system = LocalSystem(settings, data_dir)
    env = {**os.environ, "DATA_DIR": str(data_dir)}
    if trace and not tracing.exporter_configured(env):
        # Every service appends its spans here; `vaksin trace WAMID` reads them.
        env[tracing.TRACE_FILE_ENV] = str(data_dir / tracing.TRACE_FILE)
    if tracing.TRACE_FILE_ENV in env:
        system.runtime["trace_file"] = env[tracing.TRACE_FILE_ENV]
    stopping = False

    def request_stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    runtime_file = data_dir / RUNTIME_FILE
    try:
        _start_infrastructure(system, env, log)
        applied = asyncio.run(migrate(env["DATABASE_URL"]))
        log.info("migrations applied", count=len(applied))
        _plan_children(system, env)
        system.runtime["pid"] = os.getpid()
        for child in system.children:
            child.start()
        system.write_runtime()
        _supervise(system, lambda: stopping, log)
    finally:
        for child in reversed(system.children):
            child.stop()
        for child in reversed(system.children):
            child.wait(timeout=20)
        for watched in reversed(system.servers):
            watched.server.stop()
        runtime_file.unlink(missing_ok=True)
        log.info("stopped")
    return 0


def _restart_servers(system: LocalSystem, log) -> bool:
    """Start again each embedded server that died; True when a pid changed."""
    changed = False
    for watched in system.servers:
        server = watched.server
        now = time.monotonic()
        if server.running() or now < watched.next_attempt:
            continue
        if watched.failures == 0:
            log.warning(
                "embedded server died; restarting",
                process=server.name,
                pid=server.pid,
                exit_code=server.exit_code(),
            )
        try:
            server.restart()
        except Exception as exc:
            # A server that cannot start (disk full, corrupt data) is tried again, less often.
            changed |= watched.failures == 0  # its pid leaves runtime.json
            watched.failures += 1
            delay = min(30.0, 2.0**watched.failures)
            watched.next_attempt = now + delay
            log.error(
                "embedded server did not restart",
                process=server.name,
                error=str(exc)[-1000:],
                retry_in_seconds=delay,
            )
        else:
            watched.failures = 0
            changed = True
            log.warning(
                "embedded server restarted",
                process=server.name,
                pid=server.pid,
                seconds=round(time.monotonic() - now, 2),
            )
    return changed


# A process that dies within this long of its start is crash-looping: its restarts back off.
CRASH_LOOP_SECONDS = 10.0


def restart_delay(quick_deaths: int) -> float:
    """Seconds before a dead process is started again: at once after it had been running (a
    kill, an OOM: every second down is a second of redeliveries elsewhere), then 1, 2, 4 ... 30 s
    while it keeps dying within CRASH_LOOP_SECONDS of its start."""
    return 0.0 if quick_deaths == 0 else min(30.0, 2.0 ** (quick_deaths - 1))


def _supervise(system: LocalSystem, stopping, log) -> None:
    readyz = f"{system.runtime['ingress_url']}/readyz"
    announced = False
    while not stopping():
        changed = _restart_servers(system, log)
        now = time.monotonic()
        for child in system.children:
            if child.proc is None or child.proc.poll() is None:
                continue
            if child.next_start == 0.0:
                if now - child.started_at > CRASH_LOOP_SECONDS:
                    child.restarts = 0
                delay = restart_delay(child.restarts)
                child.next_start = now + delay
                changed = True
                log.warning(
                    "process died; restarting",
                    process=child.name,
                    exit_code=child.proc.returncode,
                    in_seconds=delay,
                )
            elif now >= child.next_start:
                child.restarts += 1
                child.next_start = 0.0
                child.start()
                changed = True
        if changed:
            system.write_runtime()
        if not announced and http_ok(readyz):
            announced = True
            log.info(
                "system ready",
                webhook=f"{system.runtime['ingress_url']}/webhook",
                data_dir=str(system.data_dir),
            )
            simulator = system.runtime.get("simulator_url")
            try_it = (
                f"open {simulator} (chat simulator) or run `vaksin chat`"
                if simulator
                else "write to your WhatsApp business number"
            )
            print(
                f"\nvaksin is up. Webhook: {system.runtime['ingress_url']}/webhook\n"
                f"Facility desk app: {system.runtime.get('desk_url')} "
                "(enrol a device with `vaksin desk add`)\n"
                f"Operators' console: {system.runtime.get('console_url')} "
                "(add an account with `vaksin operator add NAME --role admin`)\n"
                f"Try it: `vaksin demo-data`, then {try_it}. Ctrl-C stops everything.\n",
                file=sys.stderr,
                flush=True,
            )
        time.sleep(0.25)
