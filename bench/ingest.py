"""Ingest benchmark: signed WhatsApp webhooks at increasing rates against a running system.

    make up                                  # terminal 1 (or: .venv/bin/vaksin up)
    .venv/bin/python bench/ingest.py         # terminal 2

For every rate step it sends realistic, signed Meta text-message notifications (`POST /webhook`,
unique wamid, sender drawn from a pool of synthetic Indonesian numbers) on a fixed open-loop
schedule, whatever the answers, and prints the accepted (HTTP 200) rate and the acknowledgement
latency. Latency is measured from each request's *scheduled* send time (so a stalled system or a
lagging load generator shows up instead of being hidden: no coordinated omission) and from its
*actual* send time. The load is split over `--workers` processes, each with its own event loop and
keep-alive connection pool; bodies are built and signed before each step, off the hot path.

The system is found like the other commands find it: `DATA_DIR/runtime.json` (`ingress_url`) and
`DATA_DIR/secrets.json` (`whatsapp_app_secret`), or `--url` and `--secret` / `WHATSAPP_APP_SECRET`.
Target (issue "Foundation and the first conversation"): >= 2,000 accepted req/s, p99 < 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import math
import multiprocessing as mp
import os
import platform
import random
import re
import secrets
import signal
import sys
import time
import urllib.error
import urllib.request
from array import array
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp

from services.common.settings import RUNTIME_FILE, Settings
from services.ingress.webhook import sign

TARGET_RATE = 2000.0
TARGET_P99_MS = 50.0
WABA_ID = "102290129340398"
DISPLAY_NUMBER = "15550783881"
PHONE_NUMBER_ID = Settings.model_fields["whatsapp_phone_number_id"].default
IPC_TIMEOUT = 120.0  # longest a worker may take to prepare a step or to report one

FIRST_NAMES = (
    "Siti", "Dewi", "Sri", "Ahmad", "Budi", "Agus", "Nur", "Rina", "Putri", "Wahyu",
    "Eko", "Indah", "Fitri", "Rizky", "Yuli", "Dian", "Hendra", "Ayu", "Bambang", "Ratna",
)  # fmt: skip
LAST_NAMES = (
    "Rahayu", "Lestari", "Wijaya", "Santoso", "Hidayat", "Saputra", "Kurniawan", "Pratama",
    "Susanti", "Wulandari", "Nugroho", "Setiawan", "Handayani", "Siregar", "Nasution", "",
)  # fmt: skip
# What health workers actually type first: the keyword, greetings, answers, questions.
TEXTS = (
    "VAKSIN", "vaksin", "Vaksin", "Halo", "Selamat pagi", "1", "2", "BANTUAN", "EN",
    "Saya mau daftar vaksin", "Selamat siang, saya perawat di puskesmas, mau daftar vaksinasi",
    "Assalamualaikum, bagaimana cara daftar vaksin untuk nakes?", "TIKET", "ok",
)  # fmt: skip


# --- what one request is ---------------------------------------------------------------------


def sender_pool(size: int, seed: int) -> list[tuple[str, str]]:
    """`size` distinct synthetic Indonesian mobile numbers (628xxxxxxxxxx) with profile names."""
    rng = random.Random(seed)
    numbers: set[str] = set()
    while len(numbers) < size:
        numbers.add(f"628{rng.choice('15789')}{rng.randrange(10**9):09d}")
    return [
        (n, f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}".strip()) for n in sorted(numbers)
    ]


def wamid(wa_id: str, unique: str) -> str:
    """A wamid shaped like Meta's (`wamid.HBgN` + base64 of the number and a unique id)."""
    raw = bytes([0x18, len(wa_id)]) + wa_id.encode() + b"\x15\x02\x00\x12\x18\x14" + unique.encode()
    return "wamid." + base64.b64encode(raw).decode()


def text_notification(wa_id: str, name: str, message_id: str, text: str, ts: int) -> bytes:
    """The body Meta posts for one inbound text message (reference section 3.2), compact JSON."""
    payload = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": WABA_ID,
                "changes": [
                    {
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": DISPLAY_NUMBER,
                                "phone_number_id": PHONE_NUMBER_ID,
                            },
                            "contacts": [{"profile": {"name": name}, "wa_id": wa_id}],
                            "messages": [
                                {
                                    "from": wa_id,
                                    "id": message_id,
                                    "timestamp": str(ts),
                                    "type": "text",
                                    "text": {"body": text},
                                }
                            ],
                        },
                        "field": "messages",
                    }
                ],
            }
        ],
    }
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def build_requests(
    *,
    count: int,
    secret: str,
    senders: list[tuple[str, str]],
    run_id: str,
    step: int,
    worker: int,
    seed: int,
) -> list[tuple[bytes, dict[str, str]]]:
    """Bodies and headers, signed in advance so that HMAC is not on the load generator's hot path."""
    rng = random.Random(seed * 1_000_003 + step * 101 + worker)
    now = int(time.time())
    out = []
    for k in range(count):
        wa_id, name = rng.choice(senders)
        body = text_notification(
            wa_id,
            name,
            wamid(wa_id, f"{run_id}{step:02d}{worker:02d}{k:08d}"),
            rng.choice(TEXTS),
            now,
        )
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "facebookexternalua",
            "X-Hub-Signature-256": sign(body, secret),
        }
        out.append((body, headers))
    return out


# --- one worker process ----------------------------------------------------------------------


@dataclass
class WorkerConfig:
    index: int
    workers: int
    url: str
    secret: str
    concurrency: int
    timeout: float
    senders: int
    seed: int
    run_id: str


@dataclass
class StepResult:
    scheduled: int = 0
    sent: int = 0
    accepted: int = 0
    unsent: int = 0  # still unsent when the step's time was up (generator or system saturated)
    errors: Counter[str] = field(default_factory=Counter)
    lat_sched: array = field(default_factory=lambda: array("d"))  # ms, 200 answers only
    lat_send: array = field(default_factory=lambda: array("d"))
    start: float = 0.0
    end: float = 0.0  # monotonic time of the last answer (CLOCK_MONOTONIC is system-wide)
    max_lag_ms: float = 0.0  # how far behind schedule the generator launched a request at worst

    def merge(self, other: StepResult) -> None:
        self.scheduled += other.scheduled
        self.sent += other.sent
        self.accepted += other.accepted
        self.unsent += other.unsent
        self.errors.update(other.errors)
        self.lat_sched.extend(other.lat_sched)
        self.lat_send.extend(other.lat_send)
        self.start = min(self.start, other.start) if self.start else other.start
        self.end = max(self.end, other.end)
        self.max_lag_ms = max(self.max_lag_ms, other.max_lag_ms)


async def run_schedule(
    session: aiohttp.ClientSession,
    cfg: WorkerConfig,
    requests: list[tuple[bytes, dict[str, str]]],
    rate: float,
    seconds: float,
    start_at: float,
) -> StepResult:
    """Send request k of this worker at start_at + (k * workers + index) / rate, open loop.

    In-flight requests are bounded by `concurrency`; when the bound is reached the schedule waits
    for a slot, and the wait counts in the latency measured from the scheduled time.
    """
    result = StepResult(scheduled=len(requests), start=start_at)
    interval = 1.0 / rate
    offset = cfg.index * interval
    spacing = cfg.workers * interval
    deadline = start_at + seconds + max(2.0, seconds / 2)  # stop launching after this
    slots = asyncio.Semaphore(cfg.concurrency)
    tasks: set[asyncio.Task[None]] = set()
    clock = time.monotonic

    async def send(k: int, scheduled: float) -> None:
        body, headers = requests[k]
        sent = clock()
        try:
            async with session.post(cfg.url, data=body, headers=headers) as resp:
                await resp.read()
                status = resp.status
        except Exception as exc:  # counted, never fatal: the step goes on
            result.errors[type(exc).__name__] += 1
        else:
            done = clock()
            if status == 200:
                result.accepted += 1
                result.lat_sched.append((done - scheduled) * 1000.0)
                result.lat_send.append((done - sent) * 1000.0)
            else:
                result.errors[f"HTTP {status}"] += 1
        finally:
            result.end = max(result.end, clock())
            slots.release()

    k, n = 0, len(requests)
    while k < n:
        due = start_at + offset + k * spacing
        now = clock()
        if now >= deadline:
            break
        if due > now:
            await asyncio.sleep(due - now)
            continue
        await slots.acquire()  # waits only when `concurrency` requests are in flight
        result.max_lag_ms = max(result.max_lag_ms, (clock() - due) * 1000.0)
        task = asyncio.create_task(send(k, due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        result.sent += 1
        k += 1
    result.unsent = n - k
    if tasks:  # every request has a client timeout, so this ends
        await asyncio.wait(set(tasks), timeout=cfg.timeout + 5)
    for task in list(tasks):
        task.cancel()
        result.errors["Unfinished"] += 1
    return result


async def worker_loop(cfg: WorkerConfig, conn: Connection) -> None:
    senders = sender_pool(cfg.senders, cfg.seed)
    connector = aiohttp.TCPConnector(limit=cfg.concurrency, keepalive_timeout=60)
    timeout = aiohttp.ClientTimeout(total=cfg.timeout)
    requests: list[tuple[bytes, dict[str, str]]] = []
    rate = seconds = 0.0
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        while True:
            if not await asyncio.to_thread(conn.poll, IPC_TIMEOUT * 5):
                return  # the parent is gone
            command = conn.recv()
            if command[0] == "prepare":
                _, step, rate, seconds = command
                total = int(rate * seconds)  # request j goes to worker j % workers
                count = total // cfg.workers + (1 if cfg.index < total % cfg.workers else 0)
                requests = build_requests(
                    count=count,
                    secret=cfg.secret,
                    senders=senders,
                    run_id=cfg.run_id,
                    step=step,
                    worker=cfg.index,
                    seed=cfg.seed,
                )
                conn.send(("ready", len(requests)))
            elif command[0] == "go":
                result = await run_schedule(session, cfg, requests, rate, seconds, command[1])
                requests = []
                conn.send(("done", result))
            else:
                return


def worker_main(cfg: WorkerConfig, conn: Connection) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and tells us
    try:
        asyncio.run(worker_loop(cfg, conn))
    except (EOFError, BrokenPipeError, OSError):
        pass
    finally:
        conn.close()


# --- the parent: steps, aggregation, report --------------------------------------------------


def percentile(sorted_values: array | list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    rank = max(0, min(len(sorted_values) - 1, math.ceil(p / 100.0 * len(sorted_values)) - 1))
    return sorted_values[rank]


def fetch_webhook_histogram(base: str) -> tuple[float, float] | None:
    """(sum seconds, count) of the ingress's own `vaksin_webhook_seconds` histogram, if exposed."""
    try:
        with urllib.request.urlopen(f"{base}/metrics", timeout=2) as resp:  # noqa: S310
            text = resp.read().decode()
    except (OSError, urllib.error.URLError):
        return None
    found = dict(re.findall(r"^vaksin_webhook_seconds_(sum|count) ([0-9.eE+-]+)$", text, re.M))
    if "sum" not in found or "count" not in found:
        return None
    return float(found["sum"]), float(found["count"])


@dataclass
class StepSummary:
    rate: float
    seconds: float
    result: StepResult
    server_mean_ms: float | None

    @property
    def duration(self) -> float:
        return max(self.seconds, self.result.end - self.result.start)

    @property
    def accepted_rate(self) -> float:
        return self.result.accepted / self.duration

    @property
    def sent_rate(self) -> float:
        return self.result.sent / self.duration

    def stats(self, which: str) -> dict[str, float]:
        values = sorted(getattr(self.result, which))
        return {p: percentile(values, q) for p, q in (("p50", 50), ("p90", 90), ("p99", 99))} | {
            "max": values[-1] if values else float("nan")
        }

    def errors(self) -> str:
        errs = Counter(self.result.errors)
        if self.result.unsent:
            errs["unsent"] += self.result.unsent
        return ", ".join(f"{k}:{v}" for k, v in errs.most_common()) or "-"

    def meets_target(self) -> bool:
        return (
            self.rate >= TARGET_RATE
            and self.accepted_rate >= 0.98 * self.rate
            and self.stats("lat_sched")["p99"] < TARGET_P99_MS
            and not self.result.errors
            and not self.result.unsent
        )


HEADER = (
    f"{'target/s':>8} {'sent/s':>7} {'ok/s':>7}  "
    f"{'sched p50':>9} {'p90':>7} {'p99':>7} {'max':>7}  "
    f"{'send p50':>8} {'p90':>7} {'p99':>7} {'max':>7}  {'srv avg':>7} {'lag max':>7}  errors"
)


def step_line(s: StepSummary) -> str:
    a, b = s.stats("lat_sched"), s.stats("lat_send")
    srv = f"{s.server_mean_ms:7.2f}" if s.server_mean_ms is not None else f"{'n/a':>7}"
    return (
        f"{s.rate:8.0f} {s.sent_rate:7.0f} {s.accepted_rate:7.0f}  "
        f"{a['p50']:9.2f} {a['p90']:7.2f} {a['p99']:7.2f} {a['max']:7.1f}  "
        f"{b['p50']:8.2f} {b['p90']:7.2f} {b['p99']:7.2f} {b['max']:7.1f}  "
        f"{srv} {s.result.max_lag_ms:7.1f}  {s.errors()}"
    )


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{cpus} CPUs ({model}), Python {platform.python_version()} on "
        f"{platform.system()} {platform.release()}; load average {load}"
    )


def resolve_target(args: argparse.Namespace) -> tuple[str, str]:
    """(webhook URL, app secret) from the flags, else from the running local system."""
    settings = Settings()
    url = args.url
    if not url:
        runtime_path = settings.data_dir / RUNTIME_FILE
        url = settings.runtime().get("ingress_url")
        if not url:
            raise SystemExit(
                f"No running system found in {runtime_path}: start it with `make up` "
                "(or `vaksin up`), or pass --url and --secret."
            )
    secret = args.secret or settings.whatsapp_app_secret
    if not secret:
        if not (settings.data_dir / "secrets.json").exists():
            raise SystemExit(
                f"No app secret: pass --secret, set WHATSAPP_APP_SECRET, or point DATA_DIR at "
                f"the running system (no secrets.json in {settings.data_dir})."
            )
        secret = settings.resolved().whatsapp_app_secret
    url = url.rstrip("/")
    if not url.endswith("/webhook"):
        url += "/webhook"
    return url, secret


def preflight(url: str, secret: str) -> None:
    """One signed request: a wrong secret or a system that is not up fails here, not in step 1."""
    wa_id = "6281200000000"
    body = text_notification(wa_id, "Bench", wamid(wa_id, secrets.token_hex(10)), "halo", 0)
    req = urllib.request.Request(  # noqa: S310 (the given or local URL)
        url,
        data=body,
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": sign(body, secret)},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
            status = resp.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except OSError as exc:
        raise SystemExit(f"Cannot reach {url}: {exc}") from None
    if status != 200:
        hint = " (wrong app secret?)" if status in (401, 403) else ""
        raise SystemExit(f"Preflight POST {url} answered HTTP {status}{hint}")


class Pool:
    def __init__(self, cfgs: list[WorkerConfig]) -> None:
        ctx = mp.get_context("spawn")
        self.conns: list[Connection] = []
        self.procs = []
        for cfg in cfgs:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=worker_main, args=(cfg, child), daemon=True)
            proc.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(proc)

    def _gather(self, what: str) -> list[Any]:
        replies = []
        for conn in self.conns:
            if not conn.poll(IPC_TIMEOUT):
                raise RuntimeError(f"a load-generator worker did not answer ({what})")
            replies.append(conn.recv()[1])
        return replies

    def run_step(self, step: int, rate: float, seconds: float) -> StepResult:
        for conn in self.conns:
            conn.send(("prepare", step, rate, seconds))
        self._gather("prepare")
        start_at = time.monotonic() + 0.3
        for conn in self.conns:
            conn.send(("go", start_at))
        total = StepResult()
        for part in self._gather("run"):
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


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--url", help="ingress base or /webhook URL (default: DATA_DIR/runtime.json)"
    )
    parser.add_argument("--secret", help="app secret (default: WHATSAPP_APP_SECRET, secrets.json)")
    parser.add_argument(
        "--rates", default="500,1000,2000,3000,4000", help="comma-separated req/s steps"
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each step")
    parser.add_argument("--workers", type=int, default=2, help="load-generator processes")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=256,
        help="max in-flight requests (and connections) per worker",
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="per-request timeout, seconds")
    parser.add_argument("--senders", type=int, default=5000, help="distinct synthetic senders")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds at 200 req/s first")
    parser.add_argument("--pause", type=float, default=2.0, help="seconds between steps")
    parser.add_argument("--seed", type=int, default=2021)
    args = parser.parse_args(argv)
    try:
        args.rates = [float(r) for r in args.rates.split(",") if r.strip()]
    except ValueError:
        parser.error("--rates: comma-separated numbers, e.g. 500,1000,2000")
    if not args.rates or any(r <= 0 or r > 50_000 for r in args.rates):
        parser.error("--rates: each between 0 and 50000")
    if not 0 < args.seconds <= 600:
        parser.error("--seconds: between 0 and 600")
    if not 1 <= args.workers <= 32 or not 1 <= args.concurrency <= 10_000:
        parser.error("--workers 1..32, --concurrency 1..10000")
    if not 1 <= args.senders <= 1_000_000:
        parser.error("--senders 1..1000000")
    return args


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Ctrl-C and SIGTERM stop the run cleanly (also when started with SIGINT ignored, e.g. by `&`).
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    url, secret = resolve_target(args)
    base = url.removesuffix("/webhook")
    preflight(url, secret)
    run_id = secrets.token_hex(4)
    print(f"ingest benchmark against {url}  (run {run_id})")
    print(
        f"{len(args.rates)} steps x {args.seconds:g} s, {args.workers} worker processes, "
        f"<= {args.concurrency} in flight each, {args.senders} senders"
    )
    print(f"machine: {machine()}")
    print("note: the load generator shares this machine (its CPUs) with the system under test\n")

    cfgs = [
        WorkerConfig(
            i,
            args.workers,
            url,
            secret,
            args.concurrency,
            args.timeout,
            args.senders,
            args.seed,
            run_id,
        )
        for i in range(args.workers)
    ]
    pool = Pool(cfgs)
    summaries: list[StepSummary] = []
    interrupted = False
    try:
        if args.warmup > 0:
            pool.run_step(0, 200.0, args.warmup)
        print(
            "latency in ms, of HTTP 200 answers; 'sched' from the scheduled send time, 'send' from"
        )
        print("the actual send; 'srv avg' is the ingress's own mean handling time (its /metrics)\n")
        print(HEADER)
        for i, rate in enumerate(args.rates, start=1):
            before = fetch_webhook_histogram(base)
            result = pool.run_step(i, rate, args.seconds)
            after = fetch_webhook_histogram(base)
            server_ms = None
            if before and after and after[1] > before[1]:
                server_ms = (after[0] - before[0]) / (after[1] - before[1]) * 1000.0
            summaries.append(StepSummary(rate, args.seconds, result, server_ms))
            print(step_line(summaries[-1]), flush=True)
            if i < len(args.rates) and args.pause > 0:
                time.sleep(args.pause)
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted: stopping the load generator", file=sys.stderr)
    finally:
        pool.close()

    print_summary(summaries)
    print(f"\nmachine: {machine()}")
    print(f"date: {datetime.now(UTC).isoformat(timespec='seconds')}")
    print(
        "note: load generator and system share the same CPUs; results are a lower bound for the "
        "system alone."
    )
    return 130 if interrupted else 0


def print_summary(summaries: list[StepSummary]) -> None:
    if not summaries:
        print("\nno step completed")
        return
    print("\nsummary")
    clean = [
        s
        for s in summaries
        if s.accepted_rate >= 0.98 * s.rate and not s.result.errors and not s.result.unsent
    ]
    best = max(summaries, key=lambda s: s.accepted_rate)
    print(f"  highest accepted rate: {best.accepted_rate:.0f} req/s (step {best.rate:.0f} req/s)")
    if clean:
        top = max(clean, key=lambda s: s.rate)
        p99 = top.stats("lat_sched")["p99"]
        print(f"  highest step sustained without errors: {top.rate:.0f} req/s, p99 {p99:.1f} ms")
    else:
        print("  no step was sustained without errors")
    met = [s for s in summaries if s.meets_target()]
    verdict = "MET" if met else "NOT MET"
    print(
        f"  target >= {TARGET_RATE:.0f} req/s with p99 < {TARGET_P99_MS:.0f} ms "
        f"(from scheduled send): {verdict}"
    )


if __name__ == "__main__":
    sys.exit(main())
