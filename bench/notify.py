"""Notifier benchmark: sends per second against a local fake Graph API, without and with a limit.

    .venv/bin/python bench/notify.py

Self-contained: it starts embedded NATS and PostgreSQL (durable, fsync on: what `vaksin up`
runs) in a temporary directory, migrates, runs the fake Graph API in its own process (uvloop) and
the notifier as real processes (`python -m services.notifier`, what a container runs), then for
each step publishes a burst of send commands to NOTIFIER (as the dialog's outbox relay does:
`notifier.cmd.send.<p>`, `Nats-Msg-Id` = command id) and reads back from the fake when each
message was accepted.

Steps (`--rates`): `0` lifts the limit (WHATSAPP_MPS=0): the rate the notifier sustains. Any other
value is WHATSAPP_MPS: the measured rate should be that, within 5 % (and never above it). The rate
is measured over the middle of the burst (from the 10th to the 90th percentile of send times), so
start-up and the tail do not count; `peak 1 s` is the most sends seen within any one second.

Give NATS_URL and DATABASE_URL to use servers of your own instead (a fresh database is made).
Target (issue 6): >= 1,000 sends/s unlimited on the 2-core development machine; limited rates
within 5 % of the configured one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import nats

from services.common.contracts.notifier import (
    Button,
    ButtonsMessage,
    SendMessage,
    TextMessage,
)
from services.common.contracts.streams import NOTIFIER
from services.common.contracts.subjects import send_subject
from services.common.embedded import EmbeddedNats, EmbeddedPostgres, free_port
from services.common.migrate import migrate

ROOT = Path(__file__).resolve().parents[1]
PARTITIONS = 8
TOKEN = "bench-token"
NUMBER_ID = "100000000000001"
FAKE = """
import asyncio, sys, uvloop
from services.devtools.fake_graph import FakeGraph

async def main(port: int, latency: float) -> None:
    fake = FakeGraph(access_token=sys.argv[3], latency=latency)
    print(await fake.start(port), flush=True)
    await asyncio.Event().wait()

uvloop.run(main(int(sys.argv[1]), float(sys.argv[2])))
"""
TEXTS = (
    "Terima kasih. Data Anda sudah kami terima.",
    "Silakan ketik 6 digit terakhir NIK Anda.",
    "Anda memenuhi syarat vaksinasi COVID-19. Jadwal dan lokasi akan kami kirimkan.",
    "Pengingat: besok pukul 09.00 di Puskesmas Cempaka Putih, bawa KTP dan tiket ini.",
)


# --- the system under test ---------------------------------------------------------------------


@dataclass
class Servers:
    nats_url: str
    database_url: str
    stop: list


def start_servers(root: Path) -> Servers:
    nats_url, database_url = os.environ.get("NATS_URL"), os.environ.get("DATABASE_URL")
    stoppers = []
    if not nats_url:
        server = EmbeddedNats(root)
        nats_url = server.start()
        stoppers.append(server.stop)
    if database_url:
        database_url = asyncio.run(_fresh_database(database_url))
    else:
        pg = EmbeddedPostgres(root, durable=True)
        database_url = pg.start()
        stoppers.append(pg.stop)
    asyncio.run(migrate(database_url))
    return Servers(nats_url, database_url, stoppers)


async def _fresh_database(admin_url: str) -> str:
    name = f"vaksin_bench_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return f"{admin_url.rpartition('/')[0]}/{name}"


def start_fake(latency: float, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", FAKE, str(port), str(latency), TOKEN],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=log.open("ab"),
    )
    assert proc.stdout is not None
    base = proc.stdout.readline().decode().strip()
    if not base.startswith("http"):
        raise SystemExit(f"the fake Graph API did not start (see {log})")
    return proc, base


@dataclass
class Notifier:
    proc: subprocess.Popen[bytes]
    health: str


def start_notifiers(
    count: int, servers: Servers, base: str, mps: float, data_dir: Path, log: Path
) -> list[Notifier]:
    started = []
    for _ in range(count):
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("WHATSAPP_", "NOTIFIER_"))}
        env.update(
            NATS_URL=servers.nats_url,
            DATABASE_URL=servers.database_url,
            DATA_DIR=str(data_dir),
            WHATSAPP_API_BASE=base,
            WHATSAPP_ACCESS_TOKEN=TOKEN,
            WHATSAPP_PHONE_NUMBER_ID=NUMBER_ID,
            WHATSAPP_MPS=str(mps),
            NOTIFIER_PARTITIONS=str(PARTITIONS),
            HEALTH_PORT=str(port),
            LOG_LEVEL="WARNING",
            LOG_JSON="true",
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.notifier"],
            cwd=ROOT,
            env=env,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        started.append(Notifier(proc, f"http://127.0.0.1:{port}/readyz"))
    deadline = time.monotonic() + 60
    for notifier in started:
        while not _ready(notifier.health):
            if notifier.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"a notifier did not become ready (see {log})")
            time.sleep(0.2)
    return started


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310 (loopback)
            return resp.status == 200
    except (OSError, urllib.error.URLError):
        return False


def stop_notifiers(notifiers: list[Notifier]) -> None:
    for notifier in notifiers:
        notifier.proc.send_signal(signal.SIGTERM)
    for notifier in notifiers:
        try:
            notifier.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            notifier.proc.kill()


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes so far (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
        except (OSError, IndexError, ValueError):
            pass
    return total


# --- one step ---------------------------------------------------------------------------------


def commands(count: int, users: int, step: str) -> list[SendMessage]:
    numbers = [f"6281{secrets.randbelow(10**9):09d}" for _ in range(users)]
    made = []
    for i in range(count):
        to = numbers[i % users]
        command_id = f"bench-{step}-{i}"
        if i % 5 == 4:
            message: TextMessage | ButtonsMessage = ButtonsMessage(
                body="Apakah Anda tenaga kesehatan?",
                buttons=[Button(id="nakes.yes", title="Ya"), Button(id="nakes.no", title="Tidak")],
            )
        else:
            message = TextMessage(body=TEXTS[i % len(TEXTS)])
        made.append(SendMessage(command_id=command_id, to=to, message=message))
    return made


async def publish(nats_url: str, batch: list[SendMessage]) -> float:
    """Publish every command (acknowledged by JetStream); returns the seconds it took."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        started = time.monotonic()
        pending = []
        for cmd in batch:
            pending.append(
                js.publish(
                    send_subject(cmd.to, PARTITIONS),
                    cmd.model_dump_json().encode(),
                    stream=NOTIFIER.name,
                    headers={"Nats-Msg-Id": cmd.command_id},
                )
            )
            if len(pending) >= 500:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
        return time.monotonic() - started
    finally:
        await nc.close()


def timeline(base: str, after: int) -> dict:
    root = base.rsplit("/", 1)[0]
    with urllib.request.urlopen(f"{root}/_fake/timeline?after={after}", timeout=30) as resp:  # noqa: S310
        return json.loads(resp.read())


@dataclass
class StepResult:
    mps: float
    sent: int
    rate: float
    peak: int
    seconds: float
    cpu_per_1000: float
    fake_cpu_per_1000: float
    publish_rate: float
    refused: int


def run_step(
    servers: Servers,
    base: str,
    fake_pid: int,
    mps: float,
    count: int,
    replicas: int,
    data_dir: Path,
    log: Path,
) -> StepResult:
    notifiers = start_notifiers(replicas, servers, base, mps, data_dir, log)
    try:
        before = timeline(base, 10**12)
        after, refused_before = before["last_index"], before["rejected"]
        batch = commands(count, max(1, count // 4), f"{int(mps)}-{secrets.token_hex(3)}")
        pids = [n.proc.pid for n in notifiers]
        cpu_start, fake_start = cpu_seconds(pids), cpu_seconds([fake_pid])
        published = asyncio.run(publish(servers.nats_url, batch))
        timeout = 30 + (count / mps if mps else count / 200)
        deadline = time.monotonic() + timeout
        while True:
            seen = timeline(base, 10**12)
            if seen["last_index"] - after >= count or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        cpu = cpu_seconds(pids) - cpu_start
        fake_cpu = cpu_seconds([fake_pid]) - fake_start
        found = timeline(base, after)
    finally:
        stop_notifiers(notifiers)
    times = sorted(found["times"])
    if len(times) < 10:
        raise SystemExit(f"only {len(times)} of {count} messages were sent (see {log})")
    lo, hi = times[len(times) // 10], times[(len(times) * 9) // 10]
    middle = [t for t in times if lo <= t <= hi]
    rate = (len(middle) - 1) / (hi - lo) if hi > lo else float("nan")
    return StepResult(
        mps=mps,
        sent=len(times),
        rate=rate,
        peak=_peak(times),
        seconds=times[-1] - times[0],
        cpu_per_1000=1e6 * cpu / max(len(times), 1),
        fake_cpu_per_1000=1e6 * fake_cpu / max(len(times), 1),
        publish_rate=count / published,
        refused=found["rejected"] - refused_before,
    )


def _peak(times: list[float]) -> int:
    best, j = 0, 0
    for i, start in enumerate(times):
        while j < len(times) and times[j] < start + 1.0:
            j += 1
        best = max(best, j - i)
    return best


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="0,80,1000", help="WHATSAPP_MPS per step; 0 = no limit")
    parser.add_argument("--messages", type=int, default=20_000, help="burst size without a limit")
    parser.add_argument("--seconds", type=float, default=20, help="burst length with a limit")
    parser.add_argument("--replicas", type=int, default=1, help="notifier processes")
    parser.add_argument("--latency", type=float, default=0.0, help="fake Graph answer delay, s")
    args = parser.parse_args()

    rates = [float(r) for r in args.rates.split(",") if r.strip()]
    root = Path(tempfile.mkdtemp(prefix="vaksin-bench-notify-"))
    log = root / "bench.log"
    print(f"servers and logs under {root}", flush=True)
    servers = start_servers(root)
    fake, base = start_fake(args.latency, log)
    results = []
    try:
        for mps in rates:
            count = args.messages if mps == 0 else int(mps * args.seconds)
            label = "no limit" if mps == 0 else f"{mps:g}/s"
            print(f"step {label}: {count} messages, {args.replicas} notifier(s) ...", flush=True)
            results.append(
                run_step(servers, base, fake.pid, mps, count, args.replicas, root / "data", log)
            )
    finally:
        fake.terminate()
        fake.wait(timeout=10)
        for stop in reversed(servers.stop):
            stop()

    print()
    print(
        "| WHATSAPP_MPS | sent | measured/s | vs limit | peak 1 s | notifier CPU ms/1000 "
        "| fake CPU ms/1000 | refused |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        versus = "-" if r.mps == 0 else f"{100 * (r.rate - r.mps) / r.mps:+.1f} %"
        print(
            f"| {'none' if r.mps == 0 else f'{r.mps:g}'} | {r.sent} | {r.rate:.0f} | {versus} "
            f"| {r.peak} | {r.cpu_per_1000:.0f} | {r.fake_cpu_per_1000:.0f} | {r.refused} |"
        )
    print()
    unlimited = [r.rate for r in results if r.mps == 0]
    limited = [r for r in results if r.mps > 0]
    if unlimited:
        best = statistics.median(unlimited)
        verdict = "met" if best >= 1000 else "NOT met"
        print(f"no limit: {best:.0f} sends/s sustained (target >= 1,000/s: {verdict})")
    for r in limited:
        off = abs(r.rate - r.mps) / r.mps
        verdict = "within 5 %" if off <= 0.05 else "NOT within 5 %"
        print(f"limit {r.mps:g}/s: measured {r.rate:.1f}/s ({verdict}), peak 1 s {r.peak}")
    print(f"machine: {machine()}")
    print(f"publishing ran at {min(r.publish_rate for r in results):.0f}+ commands/s")
    shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
