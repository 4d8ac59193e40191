"""Booking benchmark: bookings per second on one hot session and spread over 200 sessions, their
latency, and the overbooking count (which must be 0), against a running Postgres.

    make up                                  # terminal 1 (or any Postgres: --dsn / DATABASE_URL)
    .venv/bin/python bench/booking.py        # terminal 2

One booking is what a health worker's confirmation costs the scheduler: `hold` (a seat taken by
the conditional UPDATE, the hold row inserted, in one statement) then `confirm` (the hold turned
into a booking with its BookingConfirmed outbox row, in one statement), each through the
scheduler's own code (`services.scheduler.booking`, what the RPC handlers call), every booking by
a new person. Clients run closed-loop: `--workers` processes x `--concurrency` connections, each
client books again as soon as its previous booking is answered. Latency is one hold + confirm.

It runs in a database of its own, created on the server (`vaksin_bench_<random>`), migrated, and
dropped at the end (`--keep` keeps it). After each step it counts, per session, the active
bookings above capacity and any seat counter that differs from live holds plus bookings: the
overbooking count. A last step offers `--last-seats` x 4 concurrent bookings for `--last-seats`
seats and checks that exactly that many are booked.
Target (issue "Schedule"): >= 500 bookings/s hot, >= 1,500 spread, overbooking 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import platform
import secrets
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import asyncpg
import uvloop

from services.common.contracts.scheduler import ConfirmRequest, HoldRequest
from services.common.db import create_pool
from services.common.migrate import migrate
from services.common.settings import RUNTIME_FILE, Settings
from services.scheduler import booking
from services.scheduler.domain import SchedulerError

TARGET_HOT = 500.0
TARGET_SPREAD = 1500.0
HOLD_SECONDS = 600.0
FACILITY = "BENCH1"


@dataclass(frozen=True)
class Step:
    name: str
    sessions: list[int]
    seconds: float
    attempts: int = 0  # > 0: a fixed number of attempts, all at once, instead of a duration


def resolve_dsn(args: argparse.Namespace) -> str:
    if args.dsn:
        return args.dsn
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    runtime = Settings().data_dir / RUNTIME_FILE
    if runtime.exists():
        url = json.loads(runtime.read_text()).get("database_url")
        if url:
            return url
    sys.exit(f"no Postgres: start the system (make up), or give --dsn / DATABASE_URL ({runtime})")


def with_database(dsn: str, name: str) -> str:
    base, _, rest = dsn.rpartition("/")
    query = rest.partition("?")[2]
    return f"{base}/{name}" + (f"?{query}" if query else "")


async def create_database(dsn: str, name: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = with_database(dsn, name)
    await migrate(url)
    return url


async def drop_database(dsn: str, name: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def lay_out(url: str, spread: int, last_seats: int) -> dict[str, list[int]]:
    """One facility; one hot session, `spread` sessions over the coming days, one small one."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            """INSERT INTO scheduler.facility (code, name, address, regency, province)
               VALUES ($1, 'Bench Hospital', 'Jl. Bench 1', 'Kab. Bench', 'Jawa Barat')""",
            FACILITY,
        )
        first = datetime.now(UTC).date() + timedelta(days=1)

        async def add(day: date, start: clock_time, capacity: int) -> int:
            end = clock_time(start.hour + 1, start.minute)
            return await conn.fetchval(
                """INSERT INTO scheduler.session (facility_code, day, starts, ends, capacity,
                                                  vaccine)
                   VALUES ($1, $2, $3, $4, $5, 'CoronaVac') RETURNING id""",
                FACILITY,
                day,
                start,
                end,
                capacity,
            )

        big = 10_000_000
        hot = [await add(first, clock_time(7), big)]
        spread_ids = [
            await add(first + timedelta(days=1 + i // 10), clock_time(8 + i % 10), big)
            for i in range(spread)
        ]
        small = [await add(first, clock_time(20), last_seats)]
    finally:
        await conn.close()
    return {"hot": hot, "spread": spread_ids, "last-seats": small}


# --- the load ------------------------------------------------------------------------------------


async def one_booking(pool: asyncpg.Pool, session_id: int, person: str) -> str:
    now = datetime.now(UTC)
    try:
        held = await booking.hold(
            pool,
            HoldRequest(
                request_id=f"h-{person}",
                person_id=person,
                wa_id="6281200000000",
                session_id=session_id,
            ),
            now,
            HOLD_SECONDS,
        )
        await booking.confirm(
            pool,
            ConfirmRequest(request_id=f"c-{person}", hold_id=held.hold_id, person_id=person),
            now,
        )
    except SchedulerError as e:
        return e.code.value
    return "booked"


async def run_worker(
    url: str, step: Step, worker: int, concurrency: int, start_at: float
) -> dict[str, Any]:
    pool = await create_pool(url, min_size=concurrency, max_size=concurrency)
    latencies: list[float] = []
    outcomes: Counter[str] = Counter()
    tag = f"{step.name}-{worker}-{secrets.token_hex(3)}"
    counter = 0
    await asyncio.sleep(max(0.0, start_at - time.time()))
    deadline = time.monotonic() + step.seconds

    def person() -> str:
        nonlocal counter
        counter += 1
        return f"{tag}-{counter}"

    async def client(i: int) -> None:
        n = 0
        while (step.attempts and n < 1) or (not step.attempts and time.monotonic() < deadline):
            n += 1
            session_id = step.sessions[(i * 7919 + n * 104729 + worker) % len(step.sessions)]
            began = time.perf_counter()
            try:
                outcome = await one_booking(pool, session_id, person())
            except Exception as e:
                outcome = type(e).__name__
            latencies.append(time.perf_counter() - began)
            outcomes[outcome] += 1

    began = time.monotonic()
    clients = step.attempts or concurrency
    await asyncio.gather(*(client(i) for i in range(clients)))
    elapsed = time.monotonic() - began
    await pool.close()
    return {"latencies": latencies, "outcomes": dict(outcomes), "elapsed": elapsed}


def worker_main(
    conn: Connection, url: str, step: Step, worker: int, concurrency: int, start_at: float
) -> None:
    result = uvloop.run(run_worker(url, step, worker, concurrency, start_at))
    conn.send(result)
    conn.close()


def run_step(url: str, step: Step, workers: int, concurrency: int) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    start_at = time.time() + 2.0  # every worker connected before the clock starts
    pipes, procs = [], []
    per_worker = Step(step.name, step.sessions, step.seconds, -(-step.attempts // workers))
    for w in range(workers):
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(
            target=worker_main, args=(child, url, per_worker, w, concurrency, start_at)
        )
        proc.start()
        pipes.append(parent)
        procs.append(proc)
    results = [p.recv() for p in pipes]
    for proc in procs:
        proc.join()
    latencies = sorted(x for r in results for x in r["latencies"])
    outcomes: Counter[str] = Counter()
    for r in results:
        outcomes.update(r["outcomes"])
    elapsed = max(r["elapsed"] for r in results)
    return {"latencies": latencies, "outcomes": outcomes, "elapsed": elapsed}


async def overbooking(url: str, sessions: list[int]) -> tuple[int, int]:
    """(bookings above capacity, counters that differ from live holds + active bookings)."""
    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow(
            """WITH counts AS (
                   SELECT s.id, s.capacity, s.reserved,
                          (SELECT count(*) FROM scheduler.booking b
                           WHERE b.session_id = s.id AND b.status = 'active') AS booked,
                          (SELECT count(*) FROM scheduler.hold h
                           WHERE h.session_id = s.id AND h.status = 'held') AS held
                   FROM scheduler.session s WHERE s.id = any($1::bigint[]))
               SELECT coalesce(sum(greatest(booked - capacity, 0)), 0)::int AS over,
                      count(*) FILTER (WHERE reserved <> booked + held)::int AS drift
               FROM counts""",
            sessions,
        )
    finally:
        await conn.close()
    return row["over"], row["drift"]


async def active_in(url: str, sessions: list[int]) -> int:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(
            "SELECT count(*) FROM scheduler.booking WHERE session_id = any($1::bigint[]) "
            "AND status = 'active'",
            sessions,
        )
    finally:
        await conn.close()


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(p / 100 * len(values)))] * 1000


def machine() -> str:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()} CPUs ({model or platform.machine()}), Python "
        f"{platform.python_version()}, load average {load}"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", help="Postgres URL (default: DATABASE_URL, runtime.json)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each step")
    parser.add_argument("--workers", type=int, default=2, help="load-generator processes")
    parser.add_argument(
        "--concurrency", type=int, default=12, help="connections (clients) per worker"
    )
    parser.add_argument("--sessions", type=int, default=200, help="sessions of the spread step")
    parser.add_argument("--last-seats", type=int, default=500, help="seats of the last step")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    dsn = resolve_dsn(args)
    name = f"vaksin_bench_{secrets.token_hex(4)}"
    url = asyncio.run(create_database(dsn, name))
    print(f"database {name}: {args.workers} workers x {args.concurrency} connections")
    try:
        layout = asyncio.run(lay_out(url, args.sessions, args.last_seats))
        steps = [
            Step("hot", layout["hot"], args.seconds),
            Step(f"spread over {args.sessions}", layout["spread"], args.seconds),
            Step("last seats", layout["last-seats"], 0, attempts=args.last_seats * 4),
        ]
        print(
            f"{'step':<20} {'booked/s':>9} {'booked':>8} {'p50 ms':>7} {'p90 ms':>7} "
            f"{'p99 ms':>7} {'max ms':>7}  {'over':>4} {'drift':>5}  outcomes"
        )
        figures: dict[str, float] = {}
        total_over = 0
        for step in steps:
            result = run_step(url, step, args.workers, args.concurrency)
            over, drift = asyncio.run(overbooking(url, step.sessions))
            total_over += over + drift
            booked = result["outcomes"].get("booked", 0)
            rate = booked / result["elapsed"] if result["elapsed"] else 0.0
            figures[step.name] = rate
            lat = result["latencies"]
            outcomes = ", ".join(f"{k} {v}" for k, v in sorted(result["outcomes"].items()))
            shown = "-" if step.attempts else f"{rate:.0f}"  # all at once: a rate means nothing
            print(
                f"{step.name:<20} {shown:>9} {booked:>8} {pct(lat, 50):>7.1f} "
                f"{pct(lat, 90):>7.1f} {pct(lat, 99):>7.1f} {pct(lat, 100):>7.1f}  "
                f"{over:>4} {drift:>5}  {outcomes}"
            )
            if step.attempts:
                active = asyncio.run(active_in(url, step.sessions))
                verdict = "exactly" if active == args.last_seats else "NOT"
                print(f"  last seats: {active} booked for {args.last_seats} seats ({verdict})")
                total_over += max(0, active - args.last_seats)
        hot, spread = figures["hot"], figures[f"spread over {args.sessions}"]
        met = hot >= TARGET_HOT and spread >= TARGET_SPREAD and total_over == 0
        print(
            f"overbooking count: {total_over}; hot {hot:.0f}/s (target {TARGET_HOT:.0f}), "
            f"spread {spread:.0f}/s (target {TARGET_SPREAD:.0f}): "
            f"{'target met' if met else 'target NOT met'}"
        )
        print(f"machine: {machine()}")
    finally:
        if not args.keep:
            asyncio.run(drop_database(dsn, name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
