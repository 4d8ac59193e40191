"""Turns benchmark: the whole message path, from a signed webhook to the reply at the Graph API.

    .venv/bin/python bench/turns.py                                  # first turns, open loop
    .venv/bin/python bench/turns.py --mode later --users 50,100,200  # later turns, closed loop
    .venv/bin/python bench/turns.py --mode journeys --users 100      # VAKSIN to ticket
    .venv/bin/python bench/turns.py --rates 200,1000 --profile       # + py-spy of each service

Self-contained: it starts the whole system as `vaksin up` in a subprocess on a fresh temporary
DATA_DIR (embedded NATS and Postgres, every service its own process), with `WHATSAPP_MPS=0`
(no throughput limit: Meta's budget is not what is measured), its own app secret, and
`WHATSAPP_API_BASE` pointing at a fake Graph API (services/devtools/fake_graph.py) that runs in
this process and posts signed `sent`/`delivered` status webhooks back like Meta. The time a
reply arrives is taken where the fake records it (its `sent` list is replaced by a list that
notes each append; nothing is added to the fake).

Modes:
  first     open loop: each request a signed `VAKSIN` from a new number, request j of a step
            scheduled at start + j/rate (sent by `--workers` load-generator processes, whatever
            the answers: no coordinated omission); latency from the *scheduled* time to the
            first reply to that number at the fake.
  later     closed loop per user: registered health workers walk VAKSIN -> nakes.yes -> NIK
            suffix -> scr.none -> slot.ok, each message sent as soon as the previous
            turn's reply has arrived; a user who is done starts over as a new one.
            Latency from the POST to the turn's last reply.
  journeys  N registered users start within one second and walk VAKSIN to the ticket (QR image
            and video); journeys/s, journey p50/p99, messages in and out per journey.

For every step it reads utime+stime (and the reaped children's times) of each process from
/proc/<pid>/stat before and after, and prints the CPU seconds per answered turn of each service
(the children of `vaksin up`, by `services.cli service <name>`), nats-server, postgres (the
postmaster and its backends), the supervisor, this process (fake Graph API, closed-loop users)
and the load-generator processes, plus what the rest of the machine used meanwhile.

`--profile` records a py-spy speedscope profile of every service process during the busiest
step (install it with `.venv/bin/pip install py-spy`; skipped when absent) and prints each one's
hot spots. Always stops the system (SIGTERM to `vaksin up`, SIGKILL to what is left of it) and
removes the temporary directory unless `--keep`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import math
import multiprocessing as mp
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp
import uvloop
from ingest import (
    FIRST_NAMES,
    LAST_NAMES,
    StepResult,
    WorkerConfig,
    machine,
    percentile,
    run_schedule,
    text_notification,
    wamid,
)

from services.common.clock import jakarta_today
from services.common.embedded import free_port
from services.common.settings import RUNTIME_FILE, Settings
from services.devtools.fake_graph import FakeGraph
from services.identity.registry_import import import_registry_file
from services.ingress.webhook import sign
from services.registry import SERVICES
from services.scheduler.cli import import_facilities_file, import_sessions_file

ROOT = Path(__file__).resolve().parents[1]
PHONE_NUMBER_ID = Settings.model_fields["whatsapp_phone_number_id"].default
WABA_ID = "102290129340398"
DISPLAY_NUMBER = "15550783881"
CLK_TCK = os.sysconf("SC_CLK_TCK")
IPC_TIMEOUT = 120.0
PEOPLE_PER_FACILITY = 250
BENCH_MAIN = "bench: this process"  # the fake Graph API (+ the closed-loop users)
BENCH_GEN = "bench: load generator"
BENCH_SPY = "bench: py-spy"  # while profiling (what it used after it ended counts as the rest)
SUPERVISOR = "vaksin up"
OTHER = "rest of the machine"
NOT_SYSTEM = (BENCH_MAIN, BENCH_GEN, BENCH_SPY, OTHER)
ORDER = (*reversed(SERVICES), "nats-server", "postgres", SUPERVISOR)
# Environment of ours that must not leak into `vaksin up` (it would use other servers or ports).
DROP_ENV = (
    "NATS_URL", "DATABASE_URL", "DATA_DIR", "INGRESS_PORT", "HEALTH_PORT", "READYZ_DEPENDS",
    "FAKE_GRAPH_WEBHOOK_URL", "WHATSAPP_API_BASE", "WHATSAPP_ACCESS_TOKEN", "WHATSAPP_APP_SECRET",
    "WHATSAPP_MPS", "WHATSAPP_PHONE_NUMBER_ID",
)  # fmt: skip


class BenchError(Exception):
    """The run cannot go on (the system did not start, seeding failed); the text says why."""


# --- CPU from /proc ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    comm: str
    start: int  # starttime in ticks since boot: with the pid, a process's identity
    own: int  # utime + stime
    reaped: int  # cutime + cstime: children it has waited for (postgres backends that ended)

    @property
    def ticks(self) -> int:
        return self.own + self.reaped


def read_proc(pid: int) -> Proc | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode(errors="replace")
    except OSError:
        return None
    close = data.rindex(")")
    rest = data[close + 2 :].split()  # rest[0] is field 3 (state) of proc(5)
    utime, stime, cutime, cstime = (int(x) for x in rest[11:15])
    return Proc(
        pid=pid,
        ppid=int(rest[1]),
        comm=data[data.index("(") + 1 : close],
        start=int(rest[19]),
        own=utime + stime,
        reaped=cutime + cstime,
    )


def cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().decode(errors="replace").split("\0")
    except OSError:
        return []


def machine_busy_ticks() -> tuple[int, int]:
    """(busy, total) ticks of all CPUs since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (values + [0] * 8)[:8]
    busy = user + nice + system + irq + softirq + steal
    return busy, busy + idle + iowait


def child_label(proc: Proc) -> str:
    """What a direct child of `vaksin up` is: a service by name, nats-server or postgres."""
    argv = cmdline(proc.pid)
    if "services.cli" in argv and "service" in argv:
        index = argv.index("service")
        if index + 1 < len(argv):
            return argv[index + 1]
    if proc.comm.startswith("nats-server"):
        return "nats-server"
    if proc.comm.startswith("postgres") or proc.comm == "postmaster":
        return "postgres"
    return proc.comm


@dataclass
class Snapshot:
    at: float
    procs: dict[tuple[int, int], tuple[str, int]]  # (pid, start) -> (label, ticks)
    busy: int
    total: int

    def pids(self, label: str) -> list[int]:
        return [pid for (pid, _), (lab, _) in self.procs.items() if lab == label]


def snapshot(up_pid: int | None, own: dict[int, str]) -> Snapshot:
    """Every process of the system (the tree under `vaksin up`) and of this bench, labelled."""
    busy, total = machine_busy_ticks()
    procs: dict[int, Proc] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            proc = read_proc(int(entry.name))
            if proc is not None:
                procs[proc.pid] = proc
    children: dict[int, list[int]] = defaultdict(list)
    for proc in procs.values():
        children[proc.ppid].append(proc.pid)
    labelled: dict[tuple[int, int], tuple[str, int]] = {}
    for pid, label in own.items():  # without reaped children (py-spy, `vaksin up` at the end)
        if pid in procs:
            labelled[(pid, procs[pid].start)] = (label, procs[pid].own)
    if up_pid is not None and up_pid in procs:
        up = procs[up_pid]
        labelled[(up.pid, up.start)] = (SUPERVISOR, up.ticks)
        for child_pid in children[up_pid]:
            child = procs[child_pid]
            label = child_label(child)
            stack = [child_pid]
            while stack:  # the child and all its descendants (postgres backends)
                pid = stack.pop()
                proc = procs[pid]
                labelled[(pid, proc.start)] = (label, proc.ticks)
                stack.extend(children[pid])
    return Snapshot(time.monotonic(), labelled, busy, total)


def cpu_delta(before: Snapshot, after: Snapshot) -> dict[str, float]:
    """CPU seconds per label between two snapshots (a process seen only after counts whole)."""
    out: dict[str, float] = defaultdict(float)
    for key, (label, ticks) in after.procs.items():
        previous = before.procs.get(key)
        out[label] += (ticks - (previous[1] if previous else 0)) / CLK_TCK
    ours = sum(out.values())
    out[OTHER] = max(0.0, (after.busy - before.busy) / CLK_TCK - ours)
    return dict(out)


def cpu_rows(cpu: dict[str, float]) -> list[str]:
    """Labels in a fixed order: services (edge first), servers, supervisor, bench, the rest."""
    known = [label for label in ORDER if label in cpu]
    extra = sorted(k for k in cpu if k not in ORDER and k not in NOT_SYSTEM)
    tail = [k for k in NOT_SYSTEM if k in cpu]
    return [*known, *extra, *tail]


def system_total(cpu: dict[str, float]) -> float:
    return sum(v for k, v in cpu.items() if k not in NOT_SYSTEM)


def print_cpu(title: str, cpu: dict[str, float], seconds: float, turns: int) -> None:
    print(f"  CPU, {title}: {turns} turns answered in {seconds:.1f} s")
    print(f"    {'process':<24} {'CPU s':>7} {'% core':>7} {'ms/turn':>8}")

    def line(label: str, value: float) -> None:
        per = f"{value / turns * 1000:8.2f}" if turns else f"{'-':>8}"
        print(f"    {label:<24} {value:7.2f} {value / seconds * 100:7.1f} {per}")

    for label in cpu_rows(cpu):
        if label in NOT_SYSTEM:
            continue
        line(label, cpu[label])
    line("= the system", system_total(cpu))
    for label in NOT_SYSTEM:
        if label in cpu:
            line(label, cpu[label])


def ms_per_turn(cpu: dict[str, float], turns: int) -> dict[str, float]:
    if not turns:
        return {}
    out = {k: round(cpu[k] / turns * 1000, 3) for k in cpu_rows(cpu)}
    out["system"] = round(system_total(cpu) / turns * 1000, 3)
    return out


# --- the system under test ------------------------------------------------------------------


class LocalUp:
    """`vaksin up` on a fresh DATA_DIR, and everything needed to stop it without leftovers."""

    def __init__(self, *, keep: bool, mps: float) -> None:
        self.data_dir = Path(tempfile.mkdtemp(prefix="vaksin-turns-"))
        self.keep = keep
        self.mps = mps
        self.secret = secrets.token_urlsafe(32)
        self.token = "bench-" + secrets.token_hex(8)
        self.ingress_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.seen: dict[int, int] = {}  # pid -> start of every process of the system seen
        self.log_path = self.data_dir / "up.log"

    @property
    def ingress(self) -> str:
        return f"http://127.0.0.1:{self.ingress_port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self, api_base: str) -> None:
        env = {k: v for k, v in os.environ.items() if k.upper() not in DROP_ENV}
        env |= {
            "DATA_DIR": str(self.data_dir),
            "INGRESS_PORT": str(self.ingress_port),
            "WHATSAPP_API_BASE": api_base,
            "WHATSAPP_ACCESS_TOKEN": self.token,
            "WHATSAPP_APP_SECRET": self.secret,
            "WHATSAPP_MPS": f"{self.mps:g}",
        }
        script = Path(sys.executable).parent / "vaksin"
        argv = (
            [str(script), "up"] if script.exists() else [sys.executable, "-m", "services.cli", "up"]
        )
        with open(self.log_path, "wb") as log:
            # Its own session: a Ctrl-C here reaches only us, and we stop it in order.
            self.proc = subprocess.Popen(
                argv,
                env=env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    async def wait_ready(self, timeout: float) -> None:  # noqa: ASYNC109
        deadline = time.monotonic() + timeout
        url = f"{self.ingress}/readyz"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            while time.monotonic() < deadline:
                if self.proc is None or self.proc.poll() is not None:
                    raise BenchError(f"`vaksin up` exited while starting:\n{self.log_tail()}")
                with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                    async with http.get(url) as resp:
                        if resp.status == 200 and (self.data_dir / RUNTIME_FILE).exists():
                            return
                await asyncio.sleep(0.25)
        raise BenchError(f"not ready within {timeout:.0f} s ({url}):\n{self.log_tail()}")

    def settings(self) -> Settings:
        runtime = json.loads((self.data_dir / RUNTIME_FILE).read_text())
        return Settings(
            data_dir=self.data_dir,
            nats_url=runtime["nats_url"],
            database_url=runtime["database_url"],
        ).resolved()

    def remember(self, snap: Snapshot) -> None:
        for (pid, start), (label, _) in snap.procs.items():
            if label not in (BENCH_MAIN, BENCH_GEN, BENCH_SPY):
                self.seen[pid] = start

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(Exception):
            self.remember(snapshot(self.proc.pid, {}))
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                print("vaksin up did not stop within 60 s: killing it", file=sys.stderr)
                self.proc.kill()
                self.proc.wait()
        left = 0
        for pid, start in self.seen.items():
            proc = read_proc(pid)
            if proc is not None and proc.start == start:  # the same process, still there
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
                    left += 1
        if left:
            print(f"killed {left} leftover process(es) of the system", file=sys.stderr)
        self.proc = None
        if self.keep:
            print(f"kept DATA_DIR {self.data_dir} (the system is stopped; up.log is there)")
        else:
            shutil.rmtree(self.data_dir, ignore_errors=True)


# --- registered health workers, facilities, sessions ------------------------------------------


@dataclass(frozen=True)
class Person:
    nik: str
    name: str
    phone: str
    facility: str

    @property
    def suffix(self) -> str:
        return self.nik[-6:]


def people(count: int, run: int) -> list[Person]:
    """`count` distinct synthetic health workers (women born 1970-1999: eligible today) spread
    over facilities of PEOPLE_PER_FACILITY each; numbers 62813<run><index> (not used by `first`)."""
    out = []
    for i in range(count):
        k = i // 9999
        day, month, year = k % 28 + 1 + 40, (k // 28) % 12 + 1, 70 + (k // 336) % 30
        nik = f"320101{day:02d}{month:02d}{year:02d}{i % 9999 + 1:04d}"
        name = f"{FIRST_NAMES[i % len(FIRST_NAMES)]} {LAST_NAMES[(i // 7) % len(LAST_NAMES)]}"
        facility = f"BENCH{i // PEOPLE_PER_FACILITY:04d}"
        out.append(Person(nik, name.strip(), f"62813{run:03d}{i:06d}", facility))
    return out


async def seed(settings: Settings, persons: list[Person], work: Path) -> None:
    """The registry, one facility per PEOPLE_PER_FACILITY people and a big session tomorrow at
    each, through the same import code as `vaksin registry|facilities|sessions import`."""
    facilities = sorted({p.facility for p in persons})
    registry = work / "bench-registry.csv"
    registry.write_text(
        "nik,name,phone,profession,facility_code\n"
        + "".join(f"{p.nik},{p.name},{p.phone},perawat,{p.facility}\n" for p in persons)
    )
    fac = work / "bench-facilities.csv"
    fac.write_text(
        "code,name,address,regency,province\n"
        + "".join(
            f"{c},Puskesmas {c},Jl. Merdeka {c[-4:]},Kab. Bogor,Jawa Barat\n" for c in facilities
        )
    )
    tomorrow = (jakarta_today() + timedelta(days=1)).isoformat()
    ses = work / "bench-sessions.csv"
    ses.write_text(
        "facility_code,date,start,end,capacity,vaccine\n"
        + "".join(f"{c},{tomorrow},08:00,12:00,10000,CoronaVac\n" for c in facilities)
    )
    for what, importer, path in (
        ("registry", import_registry_file, registry),
        ("facilities", import_facilities_file, fac),
        ("sessions", import_sessions_file, ses),
    ):
        out, err = io.StringIO(), io.StringIO()
        if await importer(settings, path, out=out, err=err) != 0:
            raise BenchError(f"{what} import failed:\n{err.getvalue()[-2000:]}")


# --- Meta's inbound notifications -------------------------------------------------------------


def notification(wa_id: str, name: str, message_id: str, text: str, reply_id: str | None) -> bytes:
    """A text message, or a tap on a reply button, as Meta posts it."""
    if reply_id is None:
        return text_notification(wa_id, name, message_id, text, int(time.time()))
    payload = json.loads(text_notification(wa_id, name, message_id, "", int(time.time())))
    message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    del message["text"]
    message["type"] = "interactive"
    message["interactive"] = {
        "type": "button_reply",
        "button_reply": {"id": reply_id, "title": text},
    }
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def first_number(run: int, step: int, j: int) -> str:
    return f"6285{run:03d}{step:02d}{j:05d}"


# --- what the fake Graph API received ---------------------------------------------------------


class Recorder(list):
    """Stands in for FakeGraph.sent: every accepted send is appended here by the fake's handler,
    and noted at once (per number; first replies of the open loop; closed-loop waiters)."""

    def __init__(self) -> None:
        super().__init__()
        self.by_to: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.pending: dict[str, float] = {}  # first mode: number -> scheduled send (monotonic)
        self.answers: list[float] = []  # first mode: latency in ms of each first reply
        self.last_answer = 0.0
        self.last_append = time.monotonic()
        self.waiters: dict[str, tuple[Callable[[list[dict[str, Any]]], bool], asyncio.Future]] = {}

    def append(self, record: dict[str, Any]) -> None:
        super().append(record)
        now = time.monotonic()
        self.last_append = now
        to = record["to"]
        got = self.by_to[to]
        got.append(record)
        scheduled = self.pending.pop(to, None)
        if scheduled is not None:
            self.answers.append((now - scheduled) * 1000.0)
            self.last_answer = now
        waiter = self.waiters.get(to)
        if waiter is not None and waiter[0](got):
            del self.waiters[to]
            if not waiter[1].done():
                waiter[1].set_result(now)

    def expect(self, to: str, ready: Callable[[list[dict[str, Any]]], bool]) -> asyncio.Future:
        """A future set to the monotonic time at which `ready(sends to that number)` holds."""
        future = asyncio.get_running_loop().create_future()
        if ready(self.by_to[to]):
            future.set_result(time.monotonic())
        else:
            self.waiters[to] = (ready, future)
        return future


# --- the open-loop load generator (first turns), in processes of its own ----------------------


def generator_main(cfg: WorkerConfig, conn: Connection) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us
    with contextlib.suppress(EOFError, BrokenPipeError, OSError):
        uvloop.run(generator_loop(cfg, conn))
    conn.close()


async def generator_loop(cfg: WorkerConfig, conn: Connection) -> None:
    connector = aiohttp.TCPConnector(limit=cfg.concurrency, keepalive_timeout=60)
    timeout = aiohttp.ClientTimeout(total=cfg.timeout)
    run = int(cfg.run_id)
    requests: list[tuple[bytes, dict[str, str]]] = []
    rate = seconds = 0.0
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        while True:
            if not await asyncio.to_thread(conn.poll, IPC_TIMEOUT * 10):
                return
            command = conn.recv()
            if command[0] == "prepare":
                _, step, rate, seconds = command
                requests = []
                now = int(time.time())
                for j in range(cfg.index, int(rate * seconds), cfg.workers):
                    number = first_number(run, step, j)
                    name = f"{FIRST_NAMES[j % 20]} {LAST_NAMES[j % 16]}".strip()
                    body = text_notification(
                        number, name, wamid(number, f"{run}.{step}.{j}"), "VAKSIN", now
                    )
                    headers = {
                        "Content-Type": "application/json",
                        "User-Agent": "facebookexternalua",
                        "X-Hub-Signature-256": sign(body, cfg.secret),
                    }
                    requests.append((body, headers))
                conn.send(("ready", len(requests)))
            elif command[0] == "go":
                result = await run_schedule(session, cfg, requests, rate, seconds, command[1])
                requests = []
                conn.send(("done", result))
            else:
                return


class Generators:
    def __init__(self, cfgs: list[WorkerConfig]) -> None:
        ctx = mp.get_context("spawn")
        self.conns: list[Connection] = []
        self.procs: list[Any] = []
        for cfg in cfgs:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=generator_main, args=(cfg, child), daemon=True)
            proc.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(proc)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.pid is not None]

    async def _gather(self, what: str) -> list[Any]:
        replies = []
        for conn in self.conns:
            if not await asyncio.to_thread(conn.poll, IPC_TIMEOUT):
                raise BenchError(f"a load-generator process did not answer ({what})")
            replies.append(conn.recv()[1])
        return replies

    async def prepare(self, step: int, rate: float, seconds: float) -> None:
        for conn in self.conns:
            conn.send(("prepare", step, rate, seconds))
        await self._gather("prepare")

    async def run(self, start_at: float) -> StepResult:
        for conn in self.conns:
            conn.send(("go", start_at))
        total = StepResult()
        for part in await self._gather("run"):
            total.merge(part)
        return total

    def close(self) -> None:
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.send(("quit",))
        for proc in self.procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)


# --- results ----------------------------------------------------------------------------------


def pcts(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    out = {f"p{q}": percentile(ordered, q) for q in (50, 90, 99)}
    out["max"] = ordered[-1] if ordered else float("nan")
    return out


def fmt_ms(value: float) -> str:
    if value != value:  # NaN: nothing measured
        return "-"
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.1f} ms"


@dataclass
class FirstStep:
    rate: float
    seconds: float
    gen: StepResult
    answers: list[float]
    duration: float  # from the step's start to its last answer (at least `seconds`)
    cpu: dict[str, float]
    cpu_seconds: float

    @property
    def answered(self) -> int:
        return len(self.answers)

    @property
    def unanswered(self) -> int:
        return max(0, self.gen.accepted - self.answered)

    def errors(self) -> str:
        errs = Counter(self.gen.errors)
        if self.gen.unsent:
            errs["unsent"] += self.gen.unsent
        return ", ".join(f"{k}:{v}" for k, v in errs.most_common()) or "-"

    def summary(self) -> dict[str, Any]:
        p = pcts(self.answers)
        return {
            "offered_per_s": self.rate,
            "sent": self.gen.sent,
            "accepted": self.gen.accepted,
            "answered": self.answered,
            "answered_per_s": round(self.answered / self.duration, 1),
            **{k: round(v, 1) for k, v in p.items() if v == v},
            "ack_p99_ms": round(pcts(list(self.gen.lat_sched))["p99"], 1)
            if self.gen.lat_sched
            else None,
            "errors": self.errors(),
            "unanswered": self.unanswered,
            "cpu_ms_per_turn": ms_per_turn(self.cpu, self.answered),
        }


@dataclass
class TurnLog:
    ok: list[tuple[str, float, float]] = field(default_factory=list)  # (kind, ms, done at)
    failures: Counter[str] = field(default_factory=Counter)
    notes: Counter[str] = field(default_factory=Counter)  # things seen that are not failures
    exhausted: int = 0  # users who found no fresh registered person left

    def kinds(self) -> dict[str, list[float]]:
        out: dict[str, list[float]] = defaultdict(list)
        for kind, ms, _ in self.ok:
            out[kind].append(ms)
        return out


@dataclass
class LaterStep:
    users: int
    seconds: float
    log: TurnLog
    duration: float
    cpu: dict[str, float]
    cpu_seconds: float

    def summary(self) -> dict[str, Any]:
        p = pcts([ms for _, ms, _ in self.log.ok])
        return {
            "users": self.users,
            "turns": len(self.log.ok),
            "turns_per_s": round(len(self.log.ok) / self.duration, 1),
            **{k: round(v, 1) for k, v in p.items() if v == v},
            "per_turn_p99_ms": {k: round(pcts(v)["p99"], 1) for k, v in self.log.kinds().items()},
            "failures": dict(self.log.failures),
            "cpu_ms_per_turn": ms_per_turn(self.cpu, len(self.log.ok)),
        }


@dataclass
class JourneyRun:
    users: int
    log: TurnLog
    journeys: list[tuple[float, int]]  # (journey ms, messages sent to the user)
    duration: float
    reads: int
    cpu: dict[str, float]
    cpu_seconds: float

    def summary(self) -> dict[str, Any]:
        done = len(self.journeys)
        p = pcts([ms for ms, _ in self.journeys])
        out_msgs = sum(n for _, n in self.journeys)
        turns = len([k for k, _, _ in self.log.ok if k != "ticket"])
        return {
            "users": self.users,
            "journeys": done,
            "journeys_per_s": round(done / self.duration, 2) if self.duration else 0,
            "journey_p50_ms": round(p["p50"], 1) if done else None,
            "journey_p99_ms": round(p["p99"], 1) if done else None,
            "messages_in_per_journey": len(JOURNEY),
            "messages_out_per_journey": round(out_msgs / done, 2) if done else None,
            "per_turn_p99_ms": {k: round(pcts(v)["p99"], 1) for k, v in self.log.kinds().items()},
            "failures": dict(self.log.failures),
            "notes": dict(self.log.notes),
            "cpu_ms_per_turn": ms_per_turn(self.cpu, turns),
            "cpu_ms_per_journey": ms_per_turn(self.cpu, done),
        }


# --- the closed-loop conversation -------------------------------------------------------------


@dataclass(frozen=True)
class TurnSpec:
    kind: str
    text: str  # typed text, or the tapped button's title
    reply_id: str | None
    replies: int  # sends the turn causes
    expect: str | None  # a button id (or text) the turn's last reply must contain


JOURNEY = (
    TurnSpec("VAKSIN", "VAKSIN", None, 1, "nakes.yes"),
    TurnSpec("nakes.yes", "Ya", "nakes.yes", 1, None),
    TurnSpec("suffix", "", None, 1, "scr.none"),  # verified, and the screening summary
    TurnSpec("scr.none", "Tidak ada", "scr.none", 1, "slot.ok"),  # outcome, place and time, held
    TurnSpec("slot.ok", "Ya", "slot.ok", 1, "*terkonfirmasi*"),  # booked; the ticket follows
)


def shows(record: dict[str, Any], wanted: str) -> bool:
    return wanted in json.dumps(record["body"], ensure_ascii=False)


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.run_id = secrets.randbelow(1000)
        self.up = LocalUp(keep=args.keep, mps=args.mps)
        self.recorder = Recorder()
        self.fake: FakeGraph | None = None
        self.generators: Generators | None = None
        self.http: aiohttp.ClientSession | None = None
        self.pool: list[Person] = []
        self.results: list[Any] = []
        self.profiles: list[str] = []
        self.counter = 0
        self.spies: list[int] = []  # py-spy processes running
        self.idle: dict[str, float] = {}  # % of a core per process with no load
        self.started = datetime.now(UTC)

    # process bookkeeping

    def own(self) -> dict[int, str]:
        own = {os.getpid(): BENCH_MAIN}
        if self.generators:
            own |= dict.fromkeys(self.generators.pids, BENCH_GEN)
        own |= dict.fromkeys(self.spies, BENCH_SPY)
        return own

    def snap(self) -> Snapshot:
        snap = snapshot(self.up.pid, self.own())
        self.up.remember(snap)
        return snap

    async def quiesce(self, limit: float) -> None:
        """Until nothing was sent for a second and no status webhook is in flight (or `limit`)."""
        assert self.fake is not None
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            idle = time.monotonic() - self.recorder.last_append >= 1.0
            if idle and not getattr(self.fake, "_tasks", ()):
                return
            await asyncio.sleep(0.1)

    # start-up

    async def run(self) -> None:
        args = self.args
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        if args.mode == "first":
            url = f"{self.up.ingress}/webhook"
            cfgs = [
                WorkerConfig(
                    i,
                    args.workers,
                    url,
                    self.up.secret,
                    args.concurrency,
                    args.timeout,
                    0,
                    0,
                    str(self.run_id),
                )
                for i in range(args.workers)
            ]
            self.generators = Generators(cfgs)
        self.fake = FakeGraph(
            webhook_url=f"{self.up.ingress}/webhook",
            app_secret=self.up.secret,
            access_token=self.up.token,
        )
        self.fake.sent = self.recorder
        api_base = await self.fake.start()
        print(f"starting `vaksin up` on {self.up.data_dir} (fake Graph API {api_base})")
        started = time.monotonic()
        self.up.start(api_base)
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60)
        timeout = aiohttp.ClientTimeout(total=args.timeout)
        try:
            async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
                self.http = http
                await self.up.wait_ready(args.start_timeout)
                print(f"system ready in {time.monotonic() - started:.1f} s")
                if args.mode != "first":
                    count = args.pool or self.pool_size()
                    seeding = time.monotonic()
                    self.pool = people(count, self.run_id)
                    with tempfile.TemporaryDirectory() as work:
                        await seed(self.up.settings(), self.pool, Path(work))
                    print(
                        f"seeded {count} registered health workers at "
                        f"{math.ceil(count / PEOPLE_PER_FACILITY)} facilities with a session "
                        f"tomorrow in {time.monotonic() - seeding:.1f} s"
                    )
                    self.pool.reverse()  # pop() hands them out in order
                await self.warm_up()
                await self.idle_baseline()
                if args.mode == "first":
                    await self.first_mode()
                elif args.mode == "later":
                    await self.later_mode()
                else:
                    await self.journeys_mode()
        finally:
            if self.generators:
                self.generators.close()
            await self.fake.stop()

    def pool_size(self) -> int:
        args = self.args
        if args.mode == "journeys":
            return max(args.users) + 8
        # Enough fresh users for 200 journeys/s (1,200 turns/s) in every step.
        return 8 + sum(u + math.ceil(200 * args.step_seconds) for u in args.users)

    async def warm_up(self) -> None:
        """Open connections and caches: a few first turns, and a few journeys when registered
        users are used. Not reported."""
        if self.args.warmup <= 0:
            return
        print(f"warm-up ({self.args.warmup:g} s)")
        if self.generators:
            await self.generators.prepare(0, 50.0, self.args.warmup)
            await self.generators.run(time.monotonic() + 0.3)
        else:
            log = TurnLog()
            users = [self.pool.pop() for _ in range(min(8, len(self.pool)))]
            await asyncio.gather(*(self.walk(p, log, ticket=True) for p in users))
            if log.failures:
                raise BenchError(f"warm-up journeys failed: {dict(log.failures)}")
        await self.quiesce(self.args.drain)

    async def idle_baseline(self) -> None:
        """What each process uses with no load at all (timers, polls), to read the steps by."""
        if self.args.idle_seconds <= 0:
            return
        await self.quiesce(self.args.drain)
        before = self.snap()
        await asyncio.sleep(self.args.idle_seconds)
        after = self.snap()
        cpu, seconds = cpu_delta(before, after), after.at - before.at
        self.idle = {k: round(v / seconds * 100, 2) for k, v in cpu.items()}
        parts = ", ".join(
            f"{k} {self.idle[k]:.1f}"
            for k in cpu_rows(cpu)
            if k not in NOT_SYSTEM and self.idle[k] >= 0.1
        )
        print(
            f"idle for {seconds:.1f} s: the system used {system_total(cpu) / seconds * 100:.1f} % "
            f"of a core ({parts or 'nothing measurable'}); the rest of the machine "
            f"{self.idle.get(OTHER, 0):.0f} %"
        )

    # one turn of one user

    async def turn(self, person: Person, spec: TurnSpec, log: TurnLog) -> bool:
        assert self.http is not None
        got = self.recorder.by_to[person.phone]
        base = len(got)

        def answered(sends: list[dict[str, Any]]) -> bool:
            # The turn's replies have come, the expected one among them (a ticket sent for the
            # booking may come before its confirmation); far more than that: something else.
            new = sends[base:]
            if len(new) >= spec.replies + 3:
                return True
            if len(new) < spec.replies:
                return False
            return spec.expect is None or any(shows(r, spec.expect) for r in new)

        future = self.recorder.expect(person.phone, answered)
        self.counter += 1
        text = person.suffix if spec.kind == "suffix" else spec.text
        body = notification(
            person.phone,
            person.name,
            wamid(person.phone, f"{self.run_id}.{self.counter}"),
            text,
            spec.reply_id,
        )
        headers = {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": sign(body, self.up.secret),
        }
        sent = time.monotonic()
        try:
            async with self.http.post(
                f"{self.up.ingress}/webhook", data=body, headers=headers
            ) as r:
                await r.read()
                status = r.status
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            status = type(exc).__name__
        if status != 200:
            self.recorder.waiters.pop(person.phone, None)
            log.failures[f"{spec.kind}: webhook {status}"] += 1
            return False
        try:
            done = await asyncio.wait_for(future, self.args.turn_timeout)
        except TimeoutError:
            self.recorder.waiters.pop(person.phone, None)
            log.failures[f"{spec.kind}: no reply in {self.args.turn_timeout:g} s"] += 1
            return False
        if spec.expect and not any(shows(r, spec.expect) for r in got[base:]):
            log.failures[f"{spec.kind}: unexpected reply"] += 1
            if sum(log.failures.values()) <= 3:
                body = json.dumps(got[-1]["body"], ensure_ascii=False)[:300]
                print(f"  unexpected reply to {spec.kind}: {body}")
            return False
        log.ok.append((spec.kind, (done - sent) * 1000.0, done))
        return True

    async def walk(
        self, person: Person, log: TurnLog, *, ticket: bool, until: float = math.inf
    ) -> float | None:
        """One user from VAKSIN to the booking (and its ticket): the journey's ms, else None."""
        start = time.monotonic()
        base = len(self.recorder.by_to[person.phone])
        for spec in JOURNEY:
            if time.monotonic() >= until:
                return None
            if not await self.turn(person, spec, log):
                return None
        if not ticket:
            return (time.monotonic() - start) * 1000.0

        def ticketed(sends: list[dict[str, Any]]) -> bool:
            return {"image", "video"} <= {s["type"] for s in sends[base:]}

        confirmed = time.monotonic()
        try:
            done = await asyncio.wait_for(
                self.recorder.expect(person.phone, ticketed), self.args.turn_timeout
            )
        except TimeoutError:
            self.recorder.waiters.pop(person.phone, None)
            log.failures[f"ticket: not sent in {self.args.turn_timeout:g} s"] += 1
            return None
        log.ok.append(("ticket", (done - confirmed) * 1000.0, done))
        sends = self.recorder.by_to[person.phone][base:]
        kinds = [s["type"] for s in sends]
        confirmation = next(i for i, s in enumerate(sends) if shows(s, JOURNEY[-1].expect or ""))
        if kinds.index("image") < confirmation:
            log.notes["ticket image before the booking confirmation"] += 1
        return (done - start) * 1000.0

    # modes

    def busiest(self) -> int:
        values = self.args.rates if self.args.mode == "first" else self.args.users
        return max(range(len(values)), key=lambda i: values[i])

    async def first_mode(self) -> None:
        args = self.args
        assert self.generators is not None
        print(f"\nfirst turns, open loop: {len(args.rates)} steps x {args.step_seconds:g} s")
        print("  latency from the scheduled send to the first reply at the fake Graph API\n")
        for i, rate in enumerate(args.rates, start=1):
            await self.quiesce(args.drain)
            await self.generators.prepare(i, rate, args.step_seconds)
            total = int(rate * args.step_seconds)
            profiling = self.start_profiles(i - 1, f"first-{rate:g}")
            before = self.snap()
            start_at = time.monotonic() + 0.3
            self.recorder.answers = []
            self.recorder.pending = {
                first_number(self.run_id, i, j): start_at + j / rate for j in range(total)
            }
            gen = await self.generators.run(start_at)
            deadline = time.monotonic() + args.drain
            # The fake's handler counts the answers; polling them costs nothing measurable.
            while len(self.recorder.answers) < gen.accepted and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            answers = list(self.recorder.answers)
            last = self.recorder.last_answer
            self.recorder.pending = {}
            await self.quiesce(args.drain)
            after = self.snap()
            step = FirstStep(
                rate=rate,
                seconds=args.step_seconds,
                gen=gen,
                answers=answers,
                duration=max(args.step_seconds, last - start_at),
                cpu=cpu_delta(before, after),
                cpu_seconds=after.at - before.at,
            )
            self.results.append(step)
            s = step.summary()
            print(
                f"step {i}: offered {rate:g}/s  sent {gen.sent}  ok {gen.accepted}  "
                f"answered {step.answered} ({s['answered_per_s']:g}/s)  "
                f"p50 {fmt_ms(s.get('p50', math.nan))}  p90 {fmt_ms(s.get('p90', math.nan))}  "
                f"p99 {fmt_ms(s.get('p99', math.nan))}  max {fmt_ms(s.get('max', math.nan))}  "
                f"errors {step.errors()}  unanswered {step.unanswered}"
            )
            print_cpu(f"step {i} ({rate:g}/s)", step.cpu, step.cpu_seconds, step.answered)
            await self.finish_profiles(profiling)

    async def later_mode(self) -> None:
        args = self.args
        print(f"\nlater turns, closed loop: {len(args.users)} steps x {args.step_seconds:g} s")
        print("  latency from the POST to the turn's last reply at the fake Graph API\n")
        for i, users in enumerate(args.users, start=1):
            await self.quiesce(args.drain)
            log = TurnLog()
            profiling = self.start_profiles(i - 1, f"later-{users}")
            before = self.snap()
            start = time.monotonic()
            end = start + args.step_seconds
            ramp = min(1.0, args.step_seconds / 10)

            async def user(
                k: int, log: TurnLog = log, end: float = end, ramp: float = ramp, users: int = users
            ) -> None:
                await asyncio.sleep(k / users * ramp)
                while time.monotonic() < end:
                    if not self.pool:
                        log.exhausted += 1
                        return
                    await self.walk(self.pool.pop(), log, ticket=False, until=end)

            await asyncio.gather(*(user(k) for k in range(users)))
            last = max((at for _, _, at in log.ok), default=start)
            await self.quiesce(args.drain)  # tickets of the step's bookings included
            after = self.snap()
            step = LaterStep(
                users=users,
                seconds=args.step_seconds,
                log=log,
                duration=max(args.step_seconds, last - start),
                cpu=cpu_delta(before, after),
                cpu_seconds=after.at - before.at,
            )
            self.results.append(step)
            s = step.summary()
            print(
                f"step {i}: {users} users  {s['turns']} turns ({s['turns_per_s']:g}/s)  "
                f"p50 {fmt_ms(s.get('p50', math.nan))}  p90 {fmt_ms(s.get('p90', math.nan))}  "
                f"p99 {fmt_ms(s.get('p99', math.nan))}  max {fmt_ms(s.get('max', math.nan))}  "
                f"failures {dict(log.failures) or '-'}"
                + (f"  (pool exhausted for {log.exhausted} users)" if log.exhausted else "")
            )
            print_kinds(log)
            print_cpu(f"step {i} ({users} users)", step.cpu, step.cpu_seconds, len(log.ok))
            await self.finish_profiles(profiling)

    async def journeys_mode(self) -> None:
        args = self.args
        users = max(args.users)
        print(f"\njourneys: {users} registered users start within one second, VAKSIN to ticket\n")
        await self.quiesce(args.drain)
        log = TurnLog()
        journeys: list[tuple[float, int]] = []
        reads_before = len(self.fake.reads) if self.fake else 0
        profiling = self.start_profiles(0, f"journeys-{users}")
        before = self.snap()
        start = time.monotonic()

        async def one(k: int) -> None:
            await asyncio.sleep(k / users)
            person = self.pool.pop()
            ms = await self.walk(person, log, ticket=True)
            if ms is not None:
                journeys.append((ms, len(self.recorder.by_to[person.phone])))

        await asyncio.gather(*(one(k) for k in range(users)))
        last = max((at for _, _, at in log.ok), default=start)
        await self.quiesce(args.drain)
        after = self.snap()
        run = JourneyRun(
            users=users,
            log=log,
            journeys=journeys,
            duration=last - start,
            reads=(len(self.fake.reads) if self.fake else 0) - reads_before,
            cpu=cpu_delta(before, after),
            cpu_seconds=after.at - before.at,
        )
        self.results.append(run)
        s = run.summary()
        print(
            f"{s['journeys']}/{users} journeys in {run.duration:.1f} s: "
            f"{s['journeys_per_s']:g} journeys/s, journey p50 "
            f"{fmt_ms(s['journey_p50_ms'] or math.nan)} p99 {fmt_ms(s['journey_p99_ms'] or math.nan)}; "
            f"per journey {len(JOURNEY)} messages in, {s['messages_out_per_journey']} out "
            f"({run.reads / max(1, s['journeys']):.1f} mark-as-read calls); "
            f"failures {dict(log.failures) or '-'}"
        )
        for note, count in log.notes.items():
            print(f"  {note}: {count} of {len(journeys)} journeys")
        print_kinds(log)
        turns = len([k for k, _, _ in log.ok if k != "ticket"])
        print_cpu(f"{users} journeys", run.cpu, run.cpu_seconds, turns)
        if turns:
            total = system_total(run.cpu) / max(1, len(journeys)) * 1000
            print(f"    the system per journey: {total:.1f} ms CPU")
        await self.finish_profiles(profiling)

    # profiles

    def start_profiles(self, index: int, tag: str) -> list[tuple[str, str, Any]] | None:
        if not self.args.profile or index != self.busiest():
            return None
        spy = py_spy()
        if spy is None:
            print(
                "  --profile: py-spy not found (.venv/bin/py-spy or PATH); install it with "
                "`.venv/bin/pip install py-spy` (PyPI). Profiling skipped."
            )
            return None
        directory = self.args.profile_dir
        directory.mkdir(parents=True, exist_ok=True)
        snap = snapshot(self.up.pid, {})
        seconds = max(1, round(self.args.profile_seconds or self.args.step_seconds))
        started = []
        for name in SERVICES:
            for pid in snap.pids(name):
                out = directory / f"{tag}-{name}.speedscope.json"
                argv = [
                    spy,
                    "record",
                    "--pid",
                    str(pid),
                    "--duration",
                    str(seconds),
                    "--rate",
                    "100",
                    "--nonblocking",
                    "--function",
                    "--format",
                    "speedscope",
                    "--output",
                    str(out),
                ]
                proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                started.append((name, str(out), proc))
                self.spies.append(proc.pid)
        print(f"  profiling {len(started)} service processes for {seconds} s with py-spy")
        return started

    async def finish_profiles(self, started: list[tuple[str, str, Any]] | None) -> None:
        if not started:
            return
        self.spies = []
        for name, out, proc in started:
            try:
                await asyncio.to_thread(proc.wait, 120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.returncode != 0 or not await asyncio.to_thread(os.path.exists, out):
                err = proc.stderr.read().decode(errors="replace")[-300:] if proc.stderr else ""
                print(f"  py-spy on {name} failed ({proc.returncode}): {err}")
                continue
            self.profiles.append(out)
            print_hot_spots(name, Path(out), self.args.top)
        print(f"  profiles (open in https://www.speedscope.app): {self.args.profile_dir}")

    # the report

    def report(self) -> None:
        if not self.results:
            print("\nno step completed")
            return
        mode = self.args.mode
        print(f"\nsummary ({mode}), {self.started:%Y-%m-%d %H:%M} UTC")
        rows = [r.summary() for r in self.results]
        if mode == "first":
            print(
                "| offered/s | answered/s | p50 | p99 | max | errors | unanswered | CPU ms/turn |"
            )
            print("|---:|---:|---:|---:|---:|---|---:|---:|")
            for r in rows:
                print(
                    f"| {r['offered_per_s']:g} | {r['answered_per_s']:g} | "
                    f"{fmt_ms(r.get('p50', math.nan))} | {fmt_ms(r.get('p99', math.nan))} | "
                    f"{fmt_ms(r.get('max', math.nan))} | {r['errors']} | {r['unanswered']} | "
                    f"{r['cpu_ms_per_turn'].get('system', math.nan):.2f} |"
                )
        elif mode == "later":
            print("| users | turns/s | p50 | p90 | p99 | max | failures | CPU ms/turn |")
            print("|---:|---:|---:|---:|---:|---:|---|---:|")
            for r in rows:
                print(
                    f"| {r['users']} | {r['turns_per_s']:g} | {fmt_ms(r.get('p50', math.nan))} | "
                    f"{fmt_ms(r.get('p90', math.nan))} | {fmt_ms(r.get('p99', math.nan))} | "
                    f"{fmt_ms(r.get('max', math.nan))} | {r['failures'] or '-'} | "
                    f"{r['cpu_ms_per_turn'].get('system', math.nan):.2f} |"
                )
        else:
            print(
                "| users | journeys/s | journey p50 | p99 | in/out per journey | CPU ms/journey |"
            )
            print("|---:|---:|---:|---:|---|---:|")
            for r in rows:
                print(
                    f"| {r['users']} | {r['journeys_per_s']:g} | "
                    f"{fmt_ms(r['journey_p50_ms'] or math.nan)} | "
                    f"{fmt_ms(r['journey_p99_ms'] or math.nan)} | "
                    f"{r['messages_in_per_journey']}/{r['messages_out_per_journey']} | "
                    f"{r['cpu_ms_per_journey'].get('system', math.nan):.1f} |"
                )
        print(f"machine: {machine()}")
        print("note: the load generator and the fake Graph API share the machine's CPUs")
        summary = {
            "bench": "turns",
            "mode": mode,
            "date": self.started.isoformat(timespec="seconds"),
            "step_seconds": self.args.step_seconds,
            "whatsapp_mps": self.args.mps,
            "machine": machine(),
            "idle_percent_core": self.idle,
            "steps": rows,
            "profiles": self.profiles,
        }
        print(json.dumps(summary, separators=(",", ":")))


def print_kinds(log: TurnLog) -> None:
    kinds = log.kinds()
    if not kinds:
        return
    order = [s.kind for s in JOURNEY] + ["ticket"]
    parts = []
    for kind in order:
        if kind in kinds:
            p = pcts(kinds[kind])
            parts.append(f"{kind} {fmt_ms(p['p50'])}/{fmt_ms(p['p99'])}")
    print("  per turn p50/p99: " + ", ".join(parts))


# --- py-spy -----------------------------------------------------------------------------------


def py_spy() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    if local.exists():
        return str(local)
    return shutil.which("py-spy")


def where(path: str) -> str:
    """A frame's file as a package: `services.ingress.http`, `asyncpg`, `stdlib:asyncio`."""
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if "/services/" in path:
        tail = path.rsplit("/services/", 1)[1].removesuffix(".py")
        return "services." + tail.replace("/", ".")
    if "/lib/python3" in path:
        tail = path.split("/lib/python3", 1)[1].split("/", 1)[-1]
        return "stdlib:" + tail.split("/", 1)[0].removesuffix(".py")
    return path.rsplit("/", 1)[-1]


LOOP_FRAMES = ("Runner.run", "run_forever", "run_until_complete")  # uvloop's C code below them
ENTRY_FILES = ("services/cli.py", "services/runner.py", "services/common/service.py")


def print_hot_spots(name: str, path: Path, top: int) -> None:
    """From a py-spy speedscope file (stacks root first): the functions and packages with the
    most own time (the leaf of each sample), and our own functions with the most time in them
    or their callees."""
    data = json.loads(path.read_text())
    frames = data["shared"]["frames"]
    own: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    ours: Counter[str] = Counter()
    total = 0
    for profile in data["profiles"]:
        for stack in profile["samples"]:
            if not stack:
                continue
            total += 1
            leaf = frames[stack[-1]]
            file = leaf.get("file") or "?"
            if leaf["name"] in LOOP_FRAMES:
                label = "event loop (uvloop C code: sockets, callbacks)"
                packages["uvloop"] += 1
            else:
                label = f"{leaf['name']} ({where(file)})"
                packages[where(file)] += 1
            own[label] += 1
            seen = set()
            for index in stack:
                frame = frames[index]
                file = frame.get("file") or ""
                if "/services/" in file and not file.endswith(ENTRY_FILES):
                    key = f"{frame['name']} ({where(file)})"
                    if key not in seen:
                        seen.add(key)
                        ours[key] += 1
    if not total:
        print(f"  {name}: no samples")
        return
    print(f"  {name}: {total} samples (10 ms each, while runnable); top {top} by own time:")
    for function, count in own.most_common(top):
        print(f"    {count / total * 100:5.1f} %  {function}")
    shares = ", ".join(f"{k} {v / total * 100:.0f} %" for k, v in packages.most_common(top))
    print(f"    own time by package: {shares}")
    inclusive = ", ".join(f"{k} {v / total * 100:.0f} %" for k, v in ours.most_common(top))
    print(f"    our code, with what it calls: {inclusive or '-'}")


# --- command line -----------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--mode", choices=("first", "later", "journeys"), default="first")
    parser.add_argument(
        "--rates",
        default="100,200,300,400,600,1000",
        help="first: offered new conversations/s, one step each",
    )
    parser.add_argument("--step-seconds", type=float, default=5.0, help="length of each step")
    parser.add_argument(
        "--users",
        default="100",
        help="later: concurrent users per step (e.g. 50,100,200); journeys: N",
    )
    parser.add_argument(
        "--pool", type=int, default=0, help="registered health workers to seed (default: enough)"
    )
    parser.add_argument("--workers", type=int, default=1, help="first: load-generator processes")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=256,
        help="first: max webhooks in flight per load-generator process",
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="webhook timeout, seconds")
    parser.add_argument(
        "--turn-timeout",
        type=float,
        default=60.0,
        help="later/journeys: longest wait for a turn's replies",
    )
    parser.add_argument(
        "--drain",
        type=float,
        default=30.0,
        help="longest wait for a step's replies after its last send",
    )
    parser.add_argument(
        "--idle-seconds", type=float, default=3.0, help="idle baseline before the steps (0: none)"
    )
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds (0: none)")
    parser.add_argument(
        "--mps",
        type=float,
        default=0.0,
        help="WHATSAPP_MPS for the system (0: no limit, the default)",
    )
    parser.add_argument("--start-timeout", type=float, default=180.0)
    parser.add_argument("--keep", action="store_true", help="keep the temporary DATA_DIR")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="py-spy every service process during the busiest step",
    )
    parser.add_argument(
        "--profile-dir",
        type=Path,
        default=None,
        help="where the speedscope files go (default: a new temp directory)",
    )
    parser.add_argument(
        "--profile-seconds",
        type=float,
        default=0.0,
        help="profile length (default: --step-seconds)",
    )
    parser.add_argument("--top", type=int, default=5, help="hot spots shown per process")
    args = parser.parse_args(argv)
    try:
        args.rates = [float(r) for r in args.rates.split(",") if r.strip()]
        args.users = [int(u) for u in args.users.split(",") if u.strip()]
    except ValueError:
        parser.error("--rates and --users: comma-separated numbers")
    if not args.rates or any(not 0 < r <= 20_000 for r in args.rates):
        parser.error("--rates: each between 0 and 20000")
    if any(r * args.step_seconds >= 100_000 for r in args.rates):
        parser.error("--rates x --step-seconds: under 100,000 requests per step")
    if not args.users or any(not 1 <= u <= 5000 for u in args.users):
        parser.error("--users: each 1..5000")
    if not 0 < args.step_seconds <= 600 or not 1 <= args.workers <= 16:
        parser.error("--step-seconds 0..600, --workers 1..16")
    if not 0 <= args.mps <= 10_000:
        parser.error("--mps 0..10000 (0: no limit)")
    if args.profile and args.profile_dir is None:
        args.profile_dir = Path(tempfile.mkdtemp(prefix="vaksin-turns-profile-"))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bench = Bench(args)
    print(f"turns benchmark, mode {args.mode}; machine: {machine()}")
    code = 0
    try:
        uvloop.run(bench.run())
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("\ninterrupted: stopping", file=sys.stderr)
        code = 130
    except BenchError as exc:
        print(f"\nbench failed: {exc}", file=sys.stderr)
        code = 1
    finally:
        bench.up.stop()
    bench.report()
    return code


if __name__ == "__main__":
    sys.exit(main())
