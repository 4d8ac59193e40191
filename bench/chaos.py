"""Chaos harness (issue 12): health workers walk from `VAKSIN` to their ticket while processes die.

    .venv/bin/python bench/chaos.py --journeys 12 --fault-seconds 30
    .venv/bin/python bench/chaos.py --journeys 1000 --fault-seconds 45 --kill-every 3
    .venv/bin/python bench/chaos.py --node-loss --journeys 200 --fault-seconds 45

Self-contained. It starts the whole system as `vaksin up` does for an operator (a subprocess, a
fresh temporary DATA_DIR, embedded NATS and PostgreSQL, WHATSAPP_MPS=1000), with Meta's side
played by the fake Graph API (services/devtools/fake_graph.py) in this process, so that every send
is seen as it is accepted; the fake posts signed `sent`/`delivered` status webhooks back to the
ingress, again until they are answered 200. It imports a registry of N health workers,
facilities and enough seats with `vaksin registry|facilities|sessions import`, then:

- runs N journeys, started evenly over `--ramp` seconds (default: the fault window and 30 s for
  the rolling restart, so that every fault meets journeys under way): each user
  sends `VAKSIN`, presses "yes, I am a health worker" (`nakes.yes`), types the last 6 digits of
  the NIK, answers the screening checklist with "none apply" (`scr.none`), confirms the place
  and time offered with it (`slot.ok`), and waits for the QR ticket image and the video. Every
  message is a signed webhook posted again (short backoff) until it is answered 200, as Meta does;
  the next message goes once the reply that ends the turn (the next question) has reached the
  fake, after a think time. A user who gets no answer does not write again: they wait (a turn
  that waits longer than `--stall` seconds counts as a stall) until the deadline.
- meanwhile, for `--fault-seconds`: every `--kill-every` seconds SIGKILLs a random service process
  (identity, screening, scheduler, ticketing, notifier, dialog, ingress), once each the embedded
  nats-server and postgres (unless `--no-infra`), then a rolling restart (unless `--no-rolling`):
  SIGTERM to each service in turn, waiting until the supervisor has it back and ready. Pids come
  from `DATA_DIR/runtime.json` (`processes`) or else from /proc and the servers' pid files.
  `--nats-nodes 3` runs NATS as a three-node cluster (every stream R3) and `--replicas 2` two
  processes of every service (VAKSIN_NATS_NODES, VAKSIN_REPLICAS); the kills then pick among all
  processes, a random node stands for `nats`, and the webhooks go to the ingress processes in turn.
- or, with `--node-loss` (issue 19; 3 nodes and 2 replicas unless told otherwise), this plan
  instead: at 20-35 % of the window the nats node that leads WA_INBOUND (asked of the JetStream
  API, $JS.API.STREAM.INFO) is SIGKILLed and kept down for `--node-down-seconds` (SIGKILLed again
  each time the supervisor brings it back sooner), then let back; and one process of each service,
  picked at random, is SIGKILLed, in a random order spread over the window. It notes who leads the
  stream next, how long it had no leader, and when the node is a current replica again.
- waits up to `--settle` seconds after the last fault for the journeys to finish (the deadline).
  For journeys unfinished by then it waits up to `--drain` more seconds, while JetStream still has
  work pending, to tell a late answer from a lost message. Then it reports: journeys completed,
  late, answered "busy, send again" (the dialog's last resort), messages lost (answered 200,
  never answered), duplicate effects (a send command delivered twice, replies beyond the one that
  ends a turn, a second ticket image or video, two bookings or two tickets of one person in
  PostgreSQL, an overbooked session), the longest stall after the last fault (from the last
  fault to the last journey's end), the slowest turns with their dialog partition, and for
  unfinished journeys where they stopped and what the system knows of their message (consumed by
  the dialog? at which conversation step? which sends?), with the warnings of the system's log.

Exit code 0 only when the target holds: every journey completed within `--settle` seconds of
the last fault (so none late, none given up, none lost) and 0 duplicate effects (1 otherwise, 2
when the system could not be started or seeded, 130 when interrupted). The last line of the
output is the summary as one JSON object. `vaksin up` is always stopped and the temporary
directory removed (`--keep` keeps it, with the system's log in `up.log`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import io
import itertools
import json
import math
import os
import random
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import nats
import uvloop

from services.common.clock import jakarta_today
from services.common.contracts.subjects import partition_of
from services.common.embedded import EmbeddedNats, EmbeddedNatsCluster, free_port
from services.common.settings import Settings, nats_servers
from services.devtools.fake_graph import FakeGraph
from services.ingress.catalog import t
from services.ingress.webhook import sign
from services.registry import SERVICES
from services.runner import process_name

SERVICE_NAMES = tuple(SERVICES)  # identity ... ingress, in the order `vaksin up` starts them
ASK_SUFFIX = t("id", "ask_suffix")
BUSY = t("id", "busy")
CONFIRMED = "*terkonfirmasi*"
TICKET_PREFIX, VIDEO_PREFIX = "ticketing:ticket:", "ticketing:video:"
ACCESS_TOKEN = "chaos-" + secrets.token_hex(8)
STATUS_REPOST_SECONDS = 60.0  # how long the fake re-posts a status webhook not answered 200
NAMES = ("Siti Rahmawati", "Dewi Lestari", "Budi Santoso", "Agus Setiawan", "Rina Wulandari")
LEADER_OF = "WA_INBOUND"  # --node-loss kills the node leading this stream (the webhooks' way in)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="N journeys from VAKSIN to ticket while service processes, NATS and "
        "Postgres are killed and the services restarted one by one.",
    )
    parser.add_argument("--journeys", type=int, default=12, help="health workers (default 12)")
    parser.add_argument(
        "--fault-seconds", type=float, default=30, help="length of the fault window (default 30)"
    )
    parser.add_argument(
        "--kill-every", type=float, default=3, help="seconds between SIGKILLs (0: none)"
    )
    parser.add_argument("--no-infra", action="store_true", help="leave NATS and Postgres alone")
    parser.add_argument("--no-rolling", action="store_true", help="no rolling restart at the end")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    parser.add_argument(
        "--settle", type=float, default=60, help="seconds after the last fault to finish"
    )
    parser.add_argument(
        "--ramp",
        type=float,
        default=None,
        help="seconds over which journeys start (default: the fault window, plus 30 s for the "
        "rolling restart)",
    )
    parser.add_argument(
        "--think", type=float, default=2.0, help="mean seconds a user takes to answer"
    )
    parser.add_argument(
        "--stall", type=float, default=5.0, help="a turn answered later than this is a stall"
    )
    parser.add_argument("--mps", type=float, default=1000, help="WHATSAPP_MPS (default 1000)")
    parser.add_argument(
        "--startup-timeout", type=float, default=180, help="seconds for `vaksin up` to be ready"
    )
    parser.add_argument(
        "--drain",
        type=float,
        default=120,
        help="seconds to wait for late answers after the "
        "deadline, to tell them from lost ones (default 120)",
    )
    parser.add_argument(
        "--nats-nodes",
        type=int,
        default=None,
        help="nats-servers of `vaksin up`'s cluster, streams in up to 3 copies (VAKSIN_NATS_NODES; "
        "default 1, 3 with --node-loss)",
    )
    parser.add_argument(
        "--replicas",
        type=int,
        default=None,
        help="processes of every service (VAKSIN_REPLICAS; default 1, 2 with --node-loss)",
    )
    parser.add_argument(
        "--node-loss",
        action="store_true",
        help=f"the fault plan instead: SIGKILL the nats node leading {LEADER_OF}, keep it down, "
        "and SIGKILL one process of each service",
    )
    parser.add_argument(
        "--node-down-seconds",
        type=float,
        default=10,
        help="--node-loss: seconds the node stays down (SIGKILLed again each time the supervisor "
        "brings it back; 0: the supervisor's immediate restart stands; default 10)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary DATA_DIR")
    opts = parser.parse_args(argv)
    if not 1 <= opts.journeys <= 9999:
        parser.error("--journeys: 1 to 9999")
    if opts.seed is None:
        opts.seed = random.randrange(1_000_000)
    if opts.nats_nodes is None:
        opts.nats_nodes = 3 if opts.node_loss else 1
    if opts.replicas is None:
        opts.replicas = 2 if opts.node_loss else 1
    if opts.node_loss:
        if opts.nats_nodes < 3:
            parser.error("--node-loss: at least 3 nats nodes (a majority must outlive one)")
        # The node loss and one kill per service are the whole plan.
        opts.kill_every, opts.no_infra, opts.no_rolling = 0, True, True
    if opts.ramp is None:
        opts.ramp = opts.fault_seconds + (0 if opts.no_rolling else 30)
    return opts


def say(*parts: object) -> None:
    print(*parts, flush=True)


# --- processes, from /proc ---------------------------------------------------------------------


def alive(pid: int | None) -> bool:
    """A live process (a zombie is dead)."""
    if not pid:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (part.decode(errors="replace").partition("=") for part in raw.split(b"\0") if part)
    return {key: value for key, _, value in pairs}


def descendants(root: int) -> list[int]:
    parent: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = Path(f"/proc/{entry.name}/stat").read_text()
                parent[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [root]
    while frontier:
        pid = frontier.pop()
        kids = [child for child, ppid in parent.items() if ppid == pid]
        found += kids
        frontier += kids
    return found


def belongs_to(pid: int, data_dir: Path) -> bool:
    """A process of the system on `data_dir`: its DATA_DIR, its working directory (postgres) or
    its command line (nats-server) is there."""
    target = str(data_dir)
    inside = target + os.sep
    with contextlib.suppress(OSError):
        cwd = os.readlink(f"/proc/{pid}/cwd")
        if cwd == target or cwd.startswith(inside):
            return True
    if environ(pid).get("DATA_DIR") == target:
        return True
    return any(a == target or inside in a for a in cmdline(pid))


class Up:
    """`vaksin up` as an operator runs it, on a DATA_DIR of its own."""

    def __init__(self, data_dir: Path, env: dict[str, str]) -> None:
        self.data_dir = data_dir
        self.env = env
        self.log_path = data_dir / "up.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.seen: set[int] = set()  # every pid we learnt of, for the final sweep

    def start(self) -> None:
        vaksin = Path(sys.executable).with_name("vaksin")
        argv = (
            [str(vaksin), "up"] if vaksin.exists() else [sys.executable, "-m", "services.cli", "up"]
        )
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def runtime(self) -> dict[str, Any]:
        try:
            return json.loads((self.data_dir / "runtime.json").read_text())
        except (OSError, ValueError):
            return {}

    def pids(self) -> dict[str, int]:
        """name -> pid of every process of the system: runtime.json's `processes`, else found in
        /proc (`services.cli service NAME` under `vaksin up`) and the servers' pid files."""
        found = {k: v for k, v in (self.runtime().get("processes") or {}).items() if v}
        if self.proc is not None and not all(name in found for name in SERVICE_NAMES):
            for pid in descendants(self.proc.pid):
                argv = cmdline(pid)
                if "services.cli" in argv and "service" in argv[:-1]:
                    found.setdefault(argv[argv.index("service") + 1], pid)
        pid_files = {
            "nats": self.data_dir / "nats" / "nats.pid",
            "postgres": self.data_dir / "postgres" / "data" / "postmaster.pid",
        }
        for name, pid_file in pid_files.items():
            if name not in found:
                with contextlib.suppress(OSError, ValueError, IndexError):
                    found[name] = int(pid_file.read_text().split()[0])
        self.seen.update(found.values())
        return found

    def service_processes(self) -> list[str]:
        """Every service process by name, in the order `vaksin up` starts them (`identity`,
        `identity-2` with VAKSIN_REPLICAS=2, `screening`, ...)."""
        replicas = int(self.runtime().get("replicas") or 1)
        return [process_name(s, r) for s in SERVICE_NAMES for r in range(1, replicas + 1)]

    def nats_nodes(self) -> list[str]:
        """The nats-servers by name: `nats`, or a cluster's `nats-1` ... `nats-N`."""
        return [node["name"] for node in self.runtime().get("nats_nodes") or []] or ["nats"]

    def exited(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 90) -> None:
        """SIGTERM and wait (it stops the services, then the servers); then SIGKILL what is left."""
        if self.proc is None:
            return
        self.seen.update(descendants(self.proc.pid))
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                say(f"`vaksin up` still running after {timeout:.0f} s: killing it")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        # Anything left (a service that outlived it, postgres backends, which lead sessions of
        # their own) is found by its DATA_DIR, not by a process group that may be gone.
        leftovers = {pid for pid in self.seen if alive(pid) and belongs_to(pid, self.data_dir)}
        for entry in os.scandir("/proc"):
            if entry.name.isdigit() and int(entry.name) != os.getpid():
                pid = int(entry.name)
                if alive(pid) and belongs_to(pid, self.data_dir):
                    leftovers.add(pid)
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        if leftovers:
            say(f"killed {len(leftovers)} process(es) left behind")
        self.proc = None


class SupervisedNode(EmbeddedNats):
    """A node of `vaksin up`'s nats cluster seen from outside: its URLs from runtime.json
    (`nats_nodes`), running while the pid there (`processes`) is alive."""

    def __init__(self, up: Up, entry: dict[str, Any]) -> None:
        super().__init__(Path(entry["data_dir"]).parent, entry["name"])
        self.up = up
        self.url, self.monitor_url = entry["url"], entry["monitor_url"]

    @property
    def pid(self) -> int | None:
        return self.up.pids().get(self.name)

    def running(self) -> bool:
        return alive(self.pid)


def cluster_of(up: Up) -> EmbeddedNatsCluster:
    """`vaksin up`'s nats cluster, asked through EmbeddedNatsCluster's JetStream API calls
    (`stream_leader`, `stream_info`) with the supervised nodes."""
    entries = up.runtime().get("nats_nodes") or []
    cluster = EmbeddedNatsCluster(up.data_dir, nodes=len(entries))
    cluster.nodes = [SupervisedNode(up, entry) for entry in entries]
    return cluster


# --- Meta's side ---------------------------------------------------------------------------------


class MetaFake(FakeGraph):
    """The fake Graph API, posting each status webhook again until it is answered 200 (Meta
    does so for days; here for STATUS_REPOST_SECONDS), so an ingress restart loses none."""

    async def _post_webhook(self, payload: dict[str, Any]) -> int | None:
        deadline, delay = time.monotonic() + STATUS_REPOST_SECONDS, 0.2
        while True:
            status = await super()._post_webhook(payload)
            if status == 200 or time.monotonic() + delay > deadline:
                return status
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


def callback_of(record: dict[str, Any]) -> str:
    """The notifier's command id, echoed in every send (`biz_opaque_callback_data`)."""
    return str(record["body"].get("biz_opaque_callback_data") or "")


def reply_index(record: dict[str, Any], wamid: str) -> int | None:
    """i for a dialog reply `{wamid}:{i}` to this user message, else None."""
    head, _, index = callback_of(record).rpartition(":")
    return int(index) if head == wamid and index.isdigit() else None


def body_text(body: dict[str, Any]) -> str:
    kind = body.get("type")
    if kind == "text":
        return body["text"]["body"]
    if kind == "interactive":
        return body["interactive"]["body"]["text"]
    if kind in ("image", "video"):
        return f"[{kind}] {body[kind].get('caption', '')}"
    return f"[{kind}]"


def has_button(reply_id: str) -> Callable[[dict[str, Any]], bool]:
    def check(body: dict[str, Any]) -> bool:
        if body.get("type") != "interactive":
            return False
        action = body["interactive"].get("action", {})
        ids = [b["reply"]["id"] for b in action.get("buttons", [])]
        ids += [r["id"] for s in action.get("sections", []) for r in s.get("rows", [])]
        return reply_id in ids

    return check


def says(fragment: str, *, exactly: bool = False) -> Callable[[dict[str, Any]], bool]:
    def check(body: dict[str, Any]) -> bool:
        text = body_text(body)
        return text == fragment if exactly else fragment in text

    return check


class Inboxes:
    """What the fake accepted, per user, as it arrives (the fake lives in this event loop)."""

    def __init__(self, fake: FakeGraph) -> None:
        self.fake = fake
        self.by_user: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._events: dict[str, asyncio.Event] = {}
        self._seen = 0

    async def follow(self) -> None:
        while True:
            self.collect()
            await asyncio.sleep(0.02)

    def collect(self) -> None:
        sent = self.fake.sent
        for record in sent[self._seen :]:
            self.by_user[record["to"]].append(record)
            event = self._events.pop(record["to"], None)
            if event is not None:
                event.set()
        self._seen = len(sent)

    async def wait(
        self, user: str, found: Callable[[list[dict[str, Any]]], Any], deadline: Callable[[], float]
    ) -> Any:
        """found(sends to user) once it is not None, or None at the deadline (which may move)."""
        while True:
            result = found(self.by_user[user])
            if result is not None:
                return result
            remaining = deadline() - time.monotonic()
            if remaining <= 0:
                return None
            event = self._events.setdefault(user, asyncio.Event())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout=min(remaining, 1.0))


# --- users ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Worker:
    nik: str
    name: str
    phone: str
    facility: str

    @property
    def suffix(self) -> str:
        return self.nik[-6:]


def make_workers(count: int, facilities: list[str], rng: random.Random) -> list[Worker]:
    """Registered health workers with structurally valid, distinct NIKs (the serial is the
    journey's number) and distinct numbers; women, born 1975-1999 (eligible under any rule set)."""
    prefix = f"62813{rng.randrange(100):02d}"
    workers = []
    for i in range(count):
        day, month, year = rng.randint(41, 68), rng.randint(1, 12), rng.randint(75, 99)
        nik = f"320101{day:02d}{month:02d}{year:02d}{i + 1:04d}"
        workers.append(
            Worker(nik, NAMES[i % len(NAMES)], f"{prefix}{i:06d}", facilities[i % len(facilities)])
        )
    return workers


@dataclass(frozen=True)
class Step:
    name: str
    text: str  # typed text, or the title of the button pressed
    reply_id: str | None  # the button pressed, if any
    ends_turn: Callable[[dict[str, Any]], bool]  # the reply the user waits for (the next question)


def script(worker: Worker) -> list[Step]:
    """The happy path (tests/e2e/test_booking_flow.py): five turns, then the ticket and video."""
    return [
        Step("keyword", "VAKSIN", None, has_button("nakes.yes")),
        Step("nakes", "Ya", "nakes.yes", says(ASK_SUFFIX, exactly=True)),
        Step("suffix", worker.suffix, None, has_button("scr.none")),
        Step("screening", "Tidak ada", "scr.none", has_button("slot.ok")),  # place and time
        Step("time", "Ya", "slot.ok", says(CONFIRMED)),
    ]


def inbound_body(worker: Worker, wamid: str, step: Step) -> bytes:
    message: dict[str, Any] = {
        "from": worker.phone,
        "id": wamid,
        "timestamp": str(int(time.time())),
    }
    if step.reply_id:
        message |= {
            "type": "interactive",
            "interactive": {
                "type": "button_reply",
                "button_reply": {"id": step.reply_id, "title": step.text},
            },
        }
    else:
        message |= {"type": "text", "text": {"body": step.text}}
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "6281100000000", "phone_number_id": "100000000000001"},
        "contacts": [{"profile": {"name": worker.name}, "wa_id": worker.phone}],
        "messages": [message],
    }
    envelope = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": value}]}],
    }
    return json.dumps(envelope).encode()


@dataclass
class Turn:
    step: Step
    wamid: str
    posted_at: float
    accepted_at: float | None = None
    answered_at: float | None = None
    last: int | None = None  # index of the reply that ended the turn ({wamid}:{last})

    def end_in(self, sends: list[dict[str, Any]]) -> int | None:
        """The index of the reply that ends this turn, once it is among the sends."""
        for record in sends:
            index = reply_index(record, self.wamid)
            if index is not None and self.step.ends_turn(record["body"]):
                return index
        return None


def ticket_and_video(sends: list[dict[str, Any]]) -> bool | None:
    """True once a ticket image and a video have reached the user."""
    return True if {"image", "video"} <= {r["body"].get("type") for r in sends} else None


@dataclass
class Journey:
    number: int
    worker: Worker
    offset: float  # seconds after the start of the run
    turns: list[Turn] = field(default_factory=list)
    step: str = "not started"
    started: float | None = None
    booked_at: float | None = None
    finished: float | None = None
    late_at: float | None = None  # what it waited for came after the deadline

    @property
    def pending(self) -> Turn | None:
        return self.turns[-1] if self.turns and self.turns[-1].answered_at is None else None


@dataclass
class Fault:
    at: float  # monotonic
    kind: str  # SIGKILL, SIGTERM
    target: str
    pid: int
    back_after: float | None = None  # rolling restart: seconds until it was ready again


@dataclass
class NodeLoss:
    """--node-loss: what happened to the nats node leading LEADER_OF (monotonic moments)."""

    node: str = ""  # the leader when it was killed
    killed_at: float | None = None
    kills: int = 0  # the first, and one each time the supervisor brought it back too soon
    back_at: float | None = None  # up again for good, answering /healthz
    new_leader: str | None = None
    led_at: float | None = None  # when the stream had a leader again
    caught_up_at: float | None = None  # the leader reports the node current, no lag, again
    leader_after: str | None = None  # the stream's leader once the node had caught up


@dataclass
class Run:
    opts: argparse.Namespace
    up: Up
    fake: FakeGraph
    inboxes: Inboxes
    http: aiohttp.ClientSession
    edges: list[str]  # the ingress processes' URLs (one per VAKSIN_REPLICAS)
    secret: str
    rng: random.Random
    journeys: list[Journey] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    node_loss: NodeLoss | None = None
    replica_kills: dict[str, str] = field(default_factory=dict)  # service -> process killed
    posts: itertools.count[int] = field(default_factory=itertools.count)
    t0: float = 0.0
    faults_over: float | None = None  # when the fault window (and rolling restart) ended
    last_fault: float | None = None
    reposts: Counter[str] = field(default_factory=Counter)
    unaccepted: int = 0

    def deadline(self) -> float:
        """Until the faults are over, none; then --settle seconds after the last one."""
        if self.faults_over is None:
            return math.inf
        return self.last_fault_or_end() + self.opts.settle

    def last_fault_or_end(self) -> float:
        """When the last fault was injected (the end of the fault window if there was none)."""
        return self.last_fault or self.faults_over or self.t0

    def at(self, moment: float | None) -> str:
        return "-" if moment is None else f"+{moment - self.t0:.1f}s"

    async def post_until_accepted(self, body: bytes) -> bool:
        """Post a signed webhook again and again (backoff 0.1 s doubling to 2 s) until it is
        answered 200, as Meta does; False if the deadline came first. With several ingress
        processes each attempt goes to the next one, as a load balancer in front of them would."""
        headers = {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": sign(body, self.secret),
        }
        delay = 0.1
        while True:
            try:
                edge = self.edges[next(self.posts) % len(self.edges)]
                async with self.http.post(f"{edge}/webhook", data=body, headers=headers) as resp:
                    await resp.read()
                    outcome = str(resp.status)
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                outcome = type(exc).__name__
            if outcome == "200":
                return True
            self.reposts[outcome] += 1
            if time.monotonic() + delay > self.deadline():
                return False
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def walk(self, journey: Journey) -> None:
        await asyncio.sleep(max(0.0, self.t0 + journey.offset - time.monotonic()))
        journey.started = time.monotonic()
        phone = journey.worker.phone
        for step in script(journey.worker):
            journey.step = step.name
            turn = Turn(step, f"wamid.chaos.{uuid.uuid4().hex}", time.monotonic())
            journey.turns.append(turn)
            if not await self.post_until_accepted(inbound_body(journey.worker, turn.wamid, step)):
                self.unaccepted += 1
                return
            turn.accepted_at = time.monotonic()
            turn.last = await self.inboxes.wait(phone, turn.end_in, self.deadline)
            if turn.last is None:
                return
            turn.answered_at = time.monotonic()
            if step.name != "time":
                await asyncio.sleep(self.opts.think * self.rng.uniform(0.5, 1.5))
        journey.booked_at = time.monotonic()
        journey.step = "ticket"
        if await self.inboxes.wait(phone, ticket_and_video, self.deadline):
            journey.finished = time.monotonic()
            journey.step = "done"

    def answered_now(self, journey: Journey) -> bool:
        """What the unfinished journey waits for (its turn's answer, or the ticket) is there."""
        sends = self.inboxes.by_user[journey.worker.phone]
        turn = journey.pending
        if turn is not None:
            return turn.accepted_at is not None and turn.end_in(sends) is not None
        return journey.step == "ticket" and bool(ticket_and_video(sends))

    async def drain(self) -> None:
        """After the deadline, tell late answers from lost messages: wait (up to --drain s)
        while the system still works through a backlog; stop once JetStream has had nothing
        pending or unacknowledged for 10 s."""
        waiting = [j for j in self.journeys if j.finished is None and not gave_up(self, j)]
        if not waiting or self.opts.drain <= 0:
            return
        say(
            f"{self.at(time.monotonic())}  {len(waiting)} journeys unfinished at the deadline: "
            f"waiting up to {self.opts.drain:g} s for late answers"
        )
        end, quiet_since = time.monotonic() + self.opts.drain, None
        url = str(self.up.runtime().get("nats_url"))
        checks = 0
        while waiting and time.monotonic() < end:
            await asyncio.sleep(0.25)
            self.inboxes.collect()
            for journey in [j for j in waiting if self.answered_now(j)]:
                journey.late_at = time.monotonic()
                waiting.remove(journey)
            checks += 1
            if checks % 8:
                continue  # JetStream every 2 s
            try:
                backlog, _ = await jetstream_state(url)
            except Exception:
                backlog = {"unknown": (0, 0)}
            if backlog:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= 10:
                break

    # --- faults ---------------------------------------------------------------------------------

    def _signal(self, name: str, sig: signal.Signals) -> Fault | None:
        pid = self.up.pids().get(name)
        if not alive(pid):
            return None
        assert pid is not None
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        fault = Fault(time.monotonic(), sig.name, name, pid)
        self.faults.append(fault)
        self.last_fault = fault.at
        say(f"{self.at(fault.at)}  {sig.name} {name} (pid {pid})")
        return fault

    async def inject(self) -> None:
        opts, start = self.opts, time.monotonic()
        end = start + opts.fault_seconds
        pending: list[tuple[float, str]] = []
        if opts.kill_every > 0:
            moment = start + opts.kill_every
            while moment < end:
                pending.append((moment, "service"))
                moment += opts.kill_every
        if not opts.no_infra:
            pending.append((start + opts.fault_seconds * self.rng.uniform(0.2, 0.4), "nats"))
            pending.append((start + opts.fault_seconds * self.rng.uniform(0.55, 0.75), "postgres"))
        if opts.node_loss:
            pending.append((start + opts.fault_seconds * self.rng.uniform(0.2, 0.35), "node"))
            # One process of each service, in a random order, spread over the window.
            order = list(SERVICE_NAMES)
            self.rng.shuffle(order)
            for i, service in enumerate(order):
                share = (i + self.rng.uniform(0.2, 0.8)) / len(order)
                pending.append((start + opts.fault_seconds * share, f"replica:{service}"))
        node_lost: asyncio.Task[None] | None = None
        for moment, what in sorted(pending):
            await asyncio.sleep(max(0.0, moment - time.monotonic()))
            if what == "service":
                running = [n for n in self.up.service_processes() if alive(self.up.pids().get(n))]
                if running:
                    self._signal(self.rng.choice(running), signal.SIGKILL)
            elif what == "node":
                node_lost = asyncio.create_task(self.lose_node())
            elif what.startswith("replica:"):
                self.kill_replica(what.partition(":")[2])
            elif what == "nats" and len(nodes := self.up.nats_nodes()) > 1:
                self._signal(self.rng.choice(nodes), signal.SIGKILL)  # any node of a cluster
            else:
                self._signal(what, signal.SIGKILL)
        await asyncio.sleep(max(0.0, end - time.monotonic()))
        if node_lost is not None:
            await node_lost
        if not opts.no_rolling:
            await self.rolling_restart()
        self.faults_over = time.monotonic()
        say(f"{self.at(time.monotonic())}  faults over; last at {self.at(self.last_fault)}")

    async def rolling_restart(self, limit: float = 90) -> None:
        """SIGTERM each service in turn; the next only once the supervisor has it back, ready."""
        say(f"{self.at(time.monotonic())}  rolling restart")
        for name in self.up.service_processes():
            deadline = time.monotonic() + limit
            while time.monotonic() < deadline:  # it may still be coming back from a SIGKILL
                if await self.ready(name):
                    break
                await asyncio.sleep(0.25)
            fault = self._signal(name, signal.SIGTERM)
            if fault is None:
                say(f"  {name} not running: skipped")
                continue
            while time.monotonic() < deadline:
                if self.up.pids().get(name) != fault.pid and await self.ready(name):
                    fault.back_after = time.monotonic() - fault.at
                    say(f"  {name} back and ready after {fault.back_after:.1f} s")
                    break
                await asyncio.sleep(0.25)
            else:
                say(f"  {name} not back within {limit:.0f} s")

    async def ready(self, name: str) -> bool:
        """The process `name` runs and answers /readyz 200 (its port read from its environment)."""
        pid = self.up.pids().get(name)
        if not alive(pid):
            return False
        assert pid is not None
        env = environ(pid)
        edge = name.partition("-")[0] == "ingress"  # `ingress`, `ingress-2`, ...
        port = env.get("INGRESS_PORT") if edge else env.get("HEALTH_PORT")
        return bool(port) and await self.answers(f"http://127.0.0.1:{port}/readyz")

    def kill_replica(self, service: str) -> None:
        """SIGKILL one running process of the service, picked at random."""
        running = [
            name
            for name in self.up.service_processes()
            if name.partition("-")[0] == service and alive(self.up.pids().get(name))
        ]
        if running and self._signal(name := self.rng.choice(running), signal.SIGKILL):
            self.replica_kills[service] = name

    async def lose_node(self) -> None:
        """SIGKILL the nats node that leads LEADER_OF (asked of the cluster's JetStream API), keep
        it down for --node-down-seconds (SIGKILLed again whenever the supervisor brings it back
        sooner), then let it come back; meanwhile note who leads the stream next and when, and
        when the node is a current replica again."""
        cluster, loss = cluster_of(self.up), NodeLoss()
        self.node_loss = loss
        loss.node = await cluster.stream_leader(LEADER_OF, within=30)
        fault = self._signal(loss.node, signal.SIGKILL)
        if fault is None:
            say(f"  {loss.node} not running: no node lost")
            return
        loss.killed_at, loss.kills, killed = fault.at, 1, {fault.pid}
        say(f"  {loss.node} led {LEADER_OF}")
        election = asyncio.create_task(self.next_leader(cluster, loss))
        until = fault.at + self.opts.node_down_seconds
        while time.monotonic() < until:
            pid = self.up.pids().get(loss.node)
            if alive(pid) and pid not in killed and self._signal(loss.node, signal.SIGKILL):
                loss.kills += 1
                killed.add(pid)
            await asyncio.sleep(0.05)
        node, limit = cluster.node(loss.node), time.monotonic() + 90
        while time.monotonic() < limit:
            if node.running() and await self.answers(f"{node.monitor_url}/healthz"):
                loss.back_at = time.monotonic()
                say(f"{self.at(loss.back_at)}  {loss.node} back (pid {node.pid})")
                break
            await asyncio.sleep(0.1)
        await election
        while loss.back_at is not None and time.monotonic() < limit:
            with contextlib.suppress(Exception):  # an answer lost to a leader change: ask again
                info = await cluster.stream_info(LEADER_OF)
                placement = info.get("cluster") or {}
                replicas = {r["name"]: r for r in placement.get("replicas") or []}
                replica = replicas.get(loss.node) or {}
                if replica.get("current") and not replica.get("lag"):
                    loss.caught_up_at, loss.leader_after = time.monotonic(), placement.get("leader")
                    say(
                        f"{self.at(loss.caught_up_at)}  {loss.node} a current replica of "
                        f"{LEADER_OF} again; leader {loss.leader_after}"
                    )
                    break
            await asyncio.sleep(0.2)

    async def next_leader(self, cluster: EmbeddedNatsCluster, loss: NodeLoss) -> None:
        """Until another node than the one killed leads the stream (90 s at most)."""
        limit = time.monotonic() + 90
        while time.monotonic() < limit:
            with contextlib.suppress(Exception):  # no node to ask for a moment
                leader = await cluster.stream_leader(LEADER_OF, within=limit - time.monotonic())
                if leader != loss.node:
                    loss.new_leader, loss.led_at = leader, time.monotonic()
                    assert loss.killed_at is not None
                    say(
                        f"{self.at(loss.led_at)}  {LEADER_OF} led by {leader} after "
                        f"{loss.led_at - loss.killed_at:.1f} s without a leader"
                    )
                    return
            await asyncio.sleep(0.1)

    async def answers(self, url: str) -> bool:
        """A GET of the URL is answered 200 within 2 s."""
        try:
            async with self.http.get(url, timeout=aiohttp.ClientTimeout(total=2)) as resp:
                return resp.status == 200
        except (aiohttp.ClientError, OSError, TimeoutError):
            return False

    async def progress(self) -> None:
        while True:
            await asyncio.sleep(10)
            steps = Counter(j.step for j in self.journeys)
            say(f"{self.at(time.monotonic())}  journeys: {dict(sorted(steps.items()))}")


# --- the system ----------------------------------------------------------------------------------


async def start_system(up: Up, limit: float) -> str:
    """Start `vaksin up` and wait until runtime.json is written and the ingress is ready."""
    up.start()
    deadline = time.monotonic() + limit
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as http:
        while time.monotonic() < deadline:
            if up.exited() is not None:
                raise RuntimeError(f"`vaksin up` exited ({up.exited()}):\n{up.log_tail()}")
            url = up.runtime().get("ingress_url")
            if url:
                with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                    async with http.get(f"{url}/readyz") as resp:
                        if resp.status == 200:
                            return str(url)
            await asyncio.sleep(0.5)
    raise RuntimeError(f"`vaksin up` not ready within {limit:.0f} s:\n{up.log_tail()}")


def _csv(header: list[str], rows: list[list[object]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


async def seed(up: Up, workers: list[Worker], facilities: list[str]) -> None:
    """Registry, facilities and seats (two sessions tomorrow, each for all of a facility's
    workers), imported as an operator does it."""
    folder = up.data_dir / "seed"
    folder.mkdir(exist_ok=True)
    per_facility = math.ceil(len(workers) / len(facilities)) + 5
    tomorrow = (jakarta_today() + timedelta(days=1)).isoformat()
    files = {
        "registry": _csv(
            ["nik", "name", "phone", "profession", "facility_code"],
            [[w.nik, w.name, w.phone, "perawat", w.facility] for w in workers],
        ),
        "facilities": _csv(
            ["code", "name", "address", "regency", "province"],
            [
                [c, f"Puskesmas {c}", f"Jl. Kebal {c}", "Kab. Bogor", "Jawa Barat"]
                for c in facilities
            ],
        ),
        "sessions": _csv(
            ["facility_code", "date", "start", "end", "capacity", "vaccine"],
            [
                [c, tomorrow, s, e, per_facility, "CoronaVac"]
                for c in facilities
                for s, e in (("08:00", "12:00"), ("13:00", "16:00"))
            ],
        ),
    }
    for what, text in files.items():
        path = folder / f"{what}.csv"
        path.write_text(text)
        command = ["registry", "import"] if what == "registry" else [what, "import"]
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "services.cli",
            *command,
            str(path),
            env=up.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"vaksin {' '.join(command)} failed:\n{output.decode()[-3000:]}")
    say(
        f"seeded {len(workers)} health workers, {len(facilities)} facilities, "
        f"{2 * len(facilities)} sessions of {per_facility} seats on {tomorrow}"
    )


# --- the verdict ---------------------------------------------------------------------------------


async def database_findings(database_url: str, stuck: list[Journey]) -> dict[str, Any]:
    """Duplicate effects in the services' own tables, and what the system knows of the messages
    of stuck journeys."""
    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        bookings = await conn.fetch(
            "SELECT person_id, count(*) AS n FROM scheduler.booking GROUP BY person_id"
        )
        tickets = await conn.fetch(
            "SELECT person_id, count(*) AS n FROM ticketing.ticket GROUP BY person_id"
        )
        overbooked = await conn.fetchval(
            """SELECT count(*) FROM scheduler.session s
               WHERE (SELECT count(*) FROM scheduler.booking b
                      WHERE b.session_id = s.id AND b.status = 'active') > s.capacity"""
        )
        outboxes = {}
        for row in await conn.fetch(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = 'outbox'"
        ):
            schema = row["table_schema"]
            outboxes[schema] = await conn.fetchval(f'SELECT count(*) FROM "{schema}".outbox')
        wamids = [j.pending.wamid for j in stuck if j.pending]
        phones = [j.worker.phone for j in stuck]
        processed = {
            r["wamid"]
            for r in await conn.fetch(
                "SELECT wamid FROM ingress.processed_message WHERE wamid = ANY($1::text[])", wamids
            )
        }
        steps = {
            r["wa_id"]: r["step"]
            for r in await conn.fetch(
                "SELECT wa_id, step FROM ingress.conversation WHERE wa_id = ANY($1::text[])", phones
            )
        }
        outbound = defaultdict(list)
        for r in await conn.fetch(
            """SELECT recipient, command_id, status, attempts, last_error_code
               FROM notifier.outbound_message WHERE recipient = ANY($1::text[])
               ORDER BY created_at""",
            phones,
        ):
            outbound[r["recipient"]].append(
                f"{r['command_id'][-24:]} {r['status']} x{r['attempts']}"
                + (f" err {r['last_error_code']}" if r["last_error_code"] else "")
            )
    finally:
        await conn.close()
    return {
        "bookings": len(bookings),
        "extra_bookings": sum(r["n"] - 1 for r in bookings),
        "tickets": len(tickets),
        "extra_tickets": sum(r["n"] - 1 for r in tickets),
        "overbooked_sessions": overbooked,
        "outbox_rows": {k: v for k, v in outboxes.items() if v},
        "processed": processed,
        "steps": steps,
        "outbound": outbound,
    }


async def jetstream_state(nats_url: str) -> tuple[dict[str, tuple[int, int]], dict[str, int]]:
    """Consumers with messages not yet delivered or not yet acknowledged (pending, unacked), and
    the messages kept in dead-letter streams."""
    nc = await nats.connect(nats_servers(nats_url), connect_timeout=3, max_reconnect_attempts=0)
    try:
        js = nc.jsm()
        backlog: dict[str, tuple[int, int]] = {}
        dead: dict[str, int] = {}
        for stream in await js.streams_info():
            name = stream.config.name or ""
            if "DLQ" in name or "DEAD" in name:
                if stream.state.messages:
                    dead[name] = stream.state.messages
                continue
            for consumer in await js.consumers_info(name):
                if consumer.num_pending or consumer.num_ack_pending:
                    backlog[f"{name}/{consumer.name}"] = (
                        consumer.num_pending or 0,
                        consumer.num_ack_pending or 0,
                    )
        return backlog, dead
    finally:
        await nc.close()


def log_findings(path: Path, wamids: list[str]) -> tuple[Counter[str], dict[str, list[str]]]:
    """Warnings and errors of the system's log by service and event; log lines naming a wamid."""
    counts: Counter[str] = Counter()
    mentions: dict[str, list[str]] = defaultdict(list)
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return counts, mentions
    for line in lines:
        for wamid in wamids:
            if wamid in line and len(mentions[wamid]) < 4:
                mentions[wamid].append(line[:300])
        if not line.startswith("{"):
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("level") in ("warning", "error", "critical"):
            what = str(event.get("event", ""))[:90]
            error = event.get("exception") or event.get("error") or ""
            kind = str(error).strip().splitlines()[-1][:70] if error else ""
            who = event.get("process") or ""
            counts[f"{event.get('service', '?')}: {what} {who} {kind}".strip()] += 1
    return counts, mentions


def duplicate_sends(run: Run) -> dict[str, int]:
    """Effects seen twice at Meta's side: one send command sent twice, a reply beyond the one
    that ended its turn, a second ticket image or video to one person."""
    found = Counter[str]()
    for j in run.journeys:
        sends = run.inboxes.by_user[j.worker.phone]
        commands = Counter(callback_of(r) for r in sends)
        found["sends_of_one_command"] += sum(n - 1 for c, n in commands.items() if c and n > 1)
        for key, prefix in (("ticket_images", TICKET_PREFIX), ("videos", VIDEO_PREFIX)):
            found[key] += max(0, sum(1 for c in commands if c.startswith(prefix)) - 1)
        for turn in j.turns:
            if turn.last is not None:
                later = {reply_index(r, turn.wamid) for r in sends} - {None}
                found["replies_beyond_the_turn"] += sum(1 for i in later if i and i > turn.last)
    return {
        k: found[k]
        for k in ("sends_of_one_command", "replies_beyond_the_turn", "ticket_images", "videos")
    }


def gave_up(run: Run, journey: Journey) -> bool:
    """The dialog answered the pending message with its last resort, "busy, send it again"."""
    turn = journey.pending
    return turn is not None and any(
        reply_index(r, turn.wamid) is not None and body_text(r["body"]) == BUSY
        for r in run.inboxes.by_user[journey.worker.phone]
    )


def node_loss_figures(run: Run) -> dict[str, Any] | None:
    """--node-loss: the node killed, for how long, and the stream's leaders (seconds, rounded)."""
    loss = run.node_loss
    if loss is None or loss.killed_at is None:
        return None

    def since(start: float | None, end: float | None) -> float | None:
        return None if start is None or end is None else round(end - start, 1)

    return {
        "node": loss.node,
        "killed_at": run.at(loss.killed_at),
        "kills": loss.kills,
        "down_s": since(loss.killed_at, loss.back_at),
        "new_leader": loss.new_leader,
        "leaderless_s": since(loss.killed_at, loss.led_at),
        "caught_up_after_back_s": since(loss.back_at, loss.caught_up_at),
        "leader_after": loss.leader_after,
    }


async def verdict(run: Run) -> dict[str, Any]:
    opts, journeys = run.opts, run.journeys
    run.inboxes.collect()
    done = [j for j in journeys if j.finished is not None]
    stuck = [j for j in journeys if j.finished is None]
    busy = [j for j in stuck if gave_up(run, j)]
    late = [j for j in stuck if j.late_at is not None]
    never = [j for j in stuck if j.late_at is None and j not in busy]
    lost = [j for j in never if j.pending and j.pending.accepted_at]
    missing_tickets = [j for j in never if j.step == "ticket"]
    runtime = run.up.runtime()
    try:
        db = await database_findings(str(runtime["database_url"]), stuck)
    except Exception as exc:  # the verdict still tells what the fake saw
        say(f"could not read PostgreSQL: {exc!r}")
        db = {
            "error": repr(exc),
            "extra_bookings": 0,
            "extra_tickets": 0,
            "overbooked_sessions": 0,
            "processed": set(),
            "steps": {},
            "outbound": {},
        }
    try:
        backlog, dead_letters = await jetstream_state(str(runtime["nats_url"]))
    except Exception as exc:
        backlog, dead_letters = {f"(could not read JetStream: {exc!r})": (0, 0)}, {}
    duplicates = duplicate_sends(run) | {
        "bookings": db["extra_bookings"],
        "tickets": db["extra_tickets"],
        "overbooked_sessions": db["overbooked_sessions"],
    }
    duplicate_effects = sum(duplicates.values())
    last = run.last_fault_or_end()
    # From the last fault to the end of the last journey (late ones included); none if any
    # journey never ended.
    longest_after = None
    if len(done) + len(late) == len(journeys):
        ends = [j.finished or j.late_at or last for j in journeys]
        longest_after = max((max(0.0, end - last) for end in ends), default=0.0)
    slowest = sorted(
        (
            ((t.answered_at or time.monotonic()) - t.accepted_at, j, t)
            for j in journeys
            for t in j.turns
            if t.accepted_at is not None
        ),
        key=lambda found: found[0],
        reverse=True,
    )
    waits = [wait for wait, _, _ in slowest]
    target = not stuck and not duplicate_effects and "error" not in db
    kills = Counter(f.target for f in run.faults if f.kind == "SIGKILL")
    infra = sorted(k for k in kills if k == "postgres" or k.partition("-")[0] == "nats")
    partitions = Settings().dialog_partitions

    def partition(j: Journey) -> str:
        return f"p{partition_of(j.worker.phone, partitions)}"

    say("\n=== chaos run ===")
    say(
        f"seed {opts.seed}; {len(journeys)} journeys started over {opts.ramp:.0f} s; faults for "
        f"{opts.fault_seconds:.0f} s: {sum(kills.values())} SIGKILL {dict(kills)}, "
        f"{sum(1 for f in run.faults if f.kind == 'SIGTERM')} SIGTERM (rolling restart); "
        f"last fault at {run.at(run.last_fault)}"
    )
    loss = node_loss_figures(run)
    if loss:
        say(
            f"node loss: {loss['node']} (leader of {LEADER_OF}) SIGKILLed at "
            f"{loss['killed_at']} ({loss['kills']} time(s)), back after {loss['down_s']} s; "
            f"{LEADER_OF} led by {loss['new_leader']} after {loss['leaderless_s']} s without a "
            f"leader; {loss['node']} current again {loss['caught_up_after_back_s']} s after its "
            f"return (leader then {loss['leader_after']}); one process of each service "
            f"SIGKILLed: {sorted(run.replica_kills.values())}"
        )
    say(f"journeys completed: {len(done)}/{len(journeys)}")
    say(
        f"late: {len(late)} (what they waited for came after the deadline); answered 'busy, "
        f"send again': {len(busy)}"
    )
    say(
        f"messages lost: {len(lost)} (answered 200, never answered); confirmed bookings without "
        f"ticket and video: {len(missing_tickets)}"
    )
    say(f"duplicate effects: {duplicate_effects} {duplicates}")
    say(
        "longest stall after the last fault: "
        + (
            f"{longest_after:.1f} s"
            if longest_after is not None
            else "some journeys never finished"
        )
        + f" (target <= {opts.settle:g} s)"
    )
    say(
        f"turns answered later than {opts.stall:g} s: {sum(1 for w in waits if w > opts.stall)} "
        f"of {len(waits)}; slowest: "
        + ", ".join(
            f"#{j.number} {t.step.name} ({partition(j)}) from {run.at(t.accepted_at)} {wait:.1f} s"
            for wait, j, t in slowest[:5]
        )
    )
    say(
        f"webhook re-posts: {sum(run.reposts.values())} {dict(run.reposts)}; never accepted: "
        f"{run.unaccepted}"
    )
    say(
        f"people booked: {db.get('bookings')}; with a ticket: {db.get('tickets')}; outbox rows "
        f"left: {db.get('outbox_rows') or 0}"
    )
    if backlog:
        say(f"JetStream not drained (pending, unacked): {backlog}")
    if dead_letters:
        say(f"dead letters: {dead_letters}")

    stuck_report = []
    log_counts, mentions = log_findings(
        run.up.log_path, [j.pending.wamid for j in stuck if j.pending]
    )
    for j in stuck:
        turn, phone = j.pending, j.worker.phone
        stuck_report.append(
            {
                "journey": j.number,
                "step": j.step,
                "outcome": "late" if j in late else "busy" if j in busy else "lost",
                "partition": partition(j),
                "since": run.at(turn.accepted_at if turn else j.booked_at),
                "answered": run.at(j.late_at),
                "consumed_by_dialog": bool(turn and turn.wamid in db["processed"]),
                "conversation": db["steps"].get(phone),
                "replies_to_it": [
                    body_text(r["body"])[:60]
                    for r in run.inboxes.by_user[phone]
                    if turn and reply_index(r, turn.wamid) is not None
                ],
                "notifier_rows": db["outbound"].get(phone, [])[-4:],
                "wamid": turn.wamid if turn else None,
            }
        )
    if stuck_report:
        kinds = Counter(
            f"{e['outcome']} at {e['step']} (consumed {e['consumed_by_dialog']}, conversation "
            f"{e['conversation']})"
            for e in stuck_report
        )
        say("unfinished journeys: " + "; ".join(f"{n} {k}" for k, n in kinds.most_common()))
    order = {"lost": 0, "busy": 1, "late": 2}
    for entry in sorted(stuck_report, key=lambda e: order[e["outcome"]])[:10]:
        say(
            f"  #{entry['journey']} ({entry['partition']}) {entry['outcome']} at {entry['step']}: "
            f"sent {entry['since']}, answered {entry['answered']}, consumed by the dialog "
            f"{entry['consumed_by_dialog']}, conversation at {entry['conversation']}, replies "
            f"{entry['replies_to_it']}, last notifier rows {entry['notifier_rows']}"
        )
        for line in mentions.get(entry["wamid"] or "", [])[:2]:
            say(f"      log: {line}")
    if log_counts:
        say("warnings and errors in the system's log (top 15):")
        for what, n in log_counts.most_common(15):
            say(f"  {n:5d}  {what}")
    say(f"TARGET {'MET' if target else 'NOT MET'}")
    return {
        "target_met": target,
        "journeys": len(journeys),
        "completed": len(done),
        "lost": len(lost),
        "missing_tickets": len(missing_tickets),
        "busy_replies": len(busy),
        "late": len(late),
        "duplicate_effects": duplicate_effects,
        "duplicates": duplicates,
        "longest_stall_after_last_fault_s": None
        if longest_after is None
        else round(longest_after, 1),
        "longest_turn_wait_s": round(max(waits, default=0.0), 1),
        "stalled_turns": sum(1 for w in waits if w > opts.stall),
        "service_kills": sum(n for k, n in kills.items() if k not in infra),
        "infra_kills": infra,
        "rolling_restart": [
            [f.target, None if f.back_after is None else round(f.back_after, 1)]
            for f in run.faults
            if f.kind == "SIGTERM"
        ],
        "reposts": dict(run.reposts),
        "jetstream_backlog": {k: list(v) for k, v in backlog.items()},
        "dead_letters": dead_letters,
        "harness_cpu_s": round(sum(resource.getrusage(resource.RUSAGE_SELF)[:2]), 1),
        "stuck": stuck_report,
        "seed": opts.seed,
        "nats_nodes": opts.nats_nodes,
        "replicas": opts.replicas,
        "node_loss": loss,
        "replica_kills": dict(run.replica_kills),
        "fault_seconds": opts.fault_seconds,
        "settle_s": opts.settle,
    }


# --- the run -------------------------------------------------------------------------------------


async def chaos(opts: argparse.Namespace, up: Up) -> dict[str, Any]:
    rng = random.Random(opts.seed)
    secret = up.env["WHATSAPP_APP_SECRET"]
    ingress_url = f"http://127.0.0.1:{up.env['INGRESS_PORT']}"
    fake = MetaFake(
        webhook_url=f"{ingress_url}/webhook", app_secret=secret, access_token=ACCESS_TOKEN
    )
    up.env["WHATSAPP_API_BASE"] = await fake.start()
    tasks: list[asyncio.Task[Any]] = []
    try:
        say(f"starting `vaksin up` on {up.data_dir} (seed {opts.seed})")
        started = time.monotonic()
        await start_system(up, opts.startup_timeout)
        say(f"ready in {time.monotonic() - started:.1f} s: {sorted(up.pids())}")
        facilities = [f"CHAOS{i:02d}" for i in range(max(1, math.ceil(opts.journeys / 100)))]
        workers = make_workers(opts.journeys, facilities, rng)
        await seed(up, workers, facilities)
        timeout = aiohttp.ClientTimeout(total=10)
        connector = aiohttp.TCPConnector(limit=200)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
            inboxes = Inboxes(fake)
            edges = list(up.runtime().get("ingress_urls") or [ingress_url])
            run = Run(opts, up, fake, inboxes, http, edges, secret, rng)
            spacing = opts.ramp / opts.journeys
            run.journeys = [Journey(i + 1, w, i * spacing) for i, w in enumerate(workers)]
            run.t0 = time.monotonic()
            tasks = [asyncio.create_task(inboxes.follow()), asyncio.create_task(run.progress())]
            walking = [asyncio.create_task(run.walk(j)) for j in run.journeys]
            await run.inject()
            await asyncio.gather(*walking)
            await run.drain()
            await asyncio.sleep(3)  # late duplicates (a redelivered send) still count
            return await verdict(run)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.to_thread(up.stop)
        await fake.stop()


def execute(opts: argparse.Namespace) -> dict[str, Any]:
    """Run the harness with parsed options; the summary (`target_met` and the figures)."""
    data_dir = Path(tempfile.mkdtemp(prefix="vaksin-chaos-")).resolve()
    env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "DATABASE_URL")}
    env |= {
        "DATA_DIR": str(data_dir),
        "INGRESS_PORT": str(free_port()),
        "LOG_JSON": "true",
        "WHATSAPP_APP_SECRET": secrets.token_urlsafe(32),
        "WHATSAPP_ACCESS_TOKEN": ACCESS_TOKEN,
        "WHATSAPP_MPS": f"{opts.mps:g}",
        "VAKSIN_NATS_NODES": str(opts.nats_nodes),
        "VAKSIN_REPLICAS": str(opts.replicas),
    }
    up = Up(data_dir, env)
    try:
        return uvloop.run(chaos(opts, up))
    finally:
        up.stop()
        if opts.keep:
            say(f"kept {data_dir} (the system's log: {up.log_path})")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)

    def interrupted(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    try:
        summary = execute(opts)
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    except RuntimeError as exc:
        say(f"could not run: {exc}")
        return 2
    say(json.dumps({k: v for k, v in summary.items() if k != "stuck"}))
    return 0 if summary["target_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
