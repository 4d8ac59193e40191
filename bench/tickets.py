"""Ticket benchmark: how fast tickets are issued (signed, rendered as a QR PNG, stored with their
two messages in the outbox) and redeemed at the desk, and that one ticket scanned at many desks
at once is redeemed exactly once, against a running Postgres.

    make up                                   # terminal 1 (or any Postgres: --dsn / DATABASE_URL)
    .venv/bin/python bench/tickets.py         # terminal 2

Steps, each through the ticketing service's own code (`services.ticketing.tickets`, what the
booking consumers, the desk API and the CLI call):
- sign + render: one token signed and its PNG rendered, on one core, no IO;
- issue: `--tickets` tickets by `--concurrency` clients (what the booked consumers do, minus
  the identity lookup);
- check-in: every one of them redeemed with the dose recorded, by `--concurrency` clients;
- one ticket scanned by `--scans` desks at once: redeemed once, every other answer `already_used`.

It runs in a database of its own (`vaksin_bench_<random>`), migrated, and dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import secrets
import statistics
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from datetime import time as clock_time

import asyncpg
import uvloop

from services.common.clock import WIB, jakarta_today
from services.common.contracts.identity import PersonCard
from services.common.contracts.scheduler import BookingConfirmed, Facility
from services.common.contracts.ticketing import TicketStatus
from services.common.db import create_pool
from services.common.migrate import migrate
from services.common.settings import Settings
from services.ticketing import domain, qr, tickets
from services.ticketing import token as tokens
from services.ticketing.repository import Ticket

CARD = PersonCard(found=True, masked_name="S*** R********", masked_nik="320101**********")
FACILITY = Facility(code="BENCH1", name="Puskesmas Bench", address="Jl. Bench 1",
                    regency="Kab. Bogor", province="Jawa Barat")  # fmt: skip


def fact(booking_id: int) -> BookingConfirmed:
    return BookingConfirmed(
        booking_id=booking_id, person_id=str(uuid.uuid4()), wa_id="6281200000001", lang="id",
        dose=1, vaccine="CoronaVac", session_id=1, facility=FACILITY, date=jakarta_today(),
        start=clock_time(0, 0), end=clock_time(23, 59), occurred_at=datetime.now(UTC),
    )  # fmt: skip


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def timed_all(concurrency: int, jobs: list, work) -> tuple[float, list[float], list]:
    """Run `work(job)` for every job with `concurrency` clients: (seconds, latencies, results)."""
    queue = list(jobs)
    latencies: list[float] = []
    results: list = []

    async def client() -> None:
        while queue:
            job = queue.pop()
            started = time.perf_counter()
            results.append(await work(job))
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return time.perf_counter() - started, latencies, results


def report(name: str, count: int, seconds: float, latencies: list[float]) -> None:
    print(
        f"{name:<22} {count / seconds:8.0f}/s   p50 {statistics.median(latencies) * 1000:6.1f} ms"
        f"   p99 {percentile(latencies, 0.99) * 1000:6.1f} ms   ({count} in {seconds:.2f} s)"
    )


async def run(dsn: str, count: int, concurrency: int, scans: int) -> None:
    name = f"vaksin_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    bench_dsn = dsn.rsplit("/", 1)[0] + f"/{name}"
    try:
        await migrate(bench_dsn)
        pool = await create_pool(bench_dsn, min_size=concurrency, max_size=concurrency)
        try:
            await steps(pool, count, concurrency, scans)
        finally:
            await pool.close()
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


async def steps(pool: asyncpg.Pool, count: int, concurrency: int, scans: int) -> None:
    key = tokens.load_signing_key(secrets.token_urlsafe(32))
    delivery = tickets.Delivery("6281200000001", "id", Settings().vaccine_video_url, 8)
    claims = tokens.Claims("q1w2e3r4t5y6u7i8", "7K3MX9QP", 1, 1, "BENCH1", "2021-01-14",
                           "08:00-12:00", "S*** R********", 1610643600, 1610550000)  # fmt: skip
    n, started = 300, time.perf_counter()
    sizes = [len(qr.render_png(tokens.sign(claims, key))) for _ in range(n)]
    seconds = time.perf_counter() - started
    print(f"{'sign + render':<22} {n / seconds:8.0f}/s   {seconds / n * 1000:6.2f} ms each, "
          f"PNG {statistics.median(sizes)} bytes")  # fmt: skip

    async def issue(booking_id: int) -> Ticket | None:
        return await tickets.issue(pool, fact(booking_id), CARD, key, delivery, datetime.now(UTC))

    seconds, latencies, issued = await timed_all(concurrency, list(range(1, count + 1)), issue)
    report("issue", count, seconds, latencies)
    assert all(t is not None for t in issued)

    now = datetime.combine(jakarta_today(), clock_time(10), WIB)
    nothing = domain.Measurements()

    async def checkin(ticket: Ticket) -> TicketStatus:
        answer = await tickets.checkin(pool, ticket.token, key, by="bench", via="cli",
                                       measured=nothing, dose_given=True, now=now)  # fmt: skip
        return answer.status

    seconds, latencies, answers = await timed_all(concurrency, issued, checkin)
    report("check-in (dose given)", count, seconds, latencies)
    assert Counter(answers) == {TicketStatus.REDEEMED: count}, Counter(answers)

    one = await issue(count + 1)
    assert one is not None
    started = time.perf_counter()
    answers = await asyncio.gather(*(checkin(one) for _ in range(scans)))
    seconds = time.perf_counter() - started
    tally = Counter(answers)
    print(f"{scans} scans of one ticket at once: {dict(tally)} in {seconds * 1000:.0f} ms")
    assert tally[TicketStatus.REDEEMED] == 1 and tally[TicketStatus.ALREADY_USED] == scans - 1
    given = await pool.fetchval(
        "SELECT count(*) FROM ticketing.outbox WHERE subject LIKE 'ticketing.%'"
    )
    print(f"dose_given facts in the outbox: {given} (expected {count + 1})")
    assert given == count + 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", default=os.environ.get("DATABASE_URL") or "")
    parser.add_argument("--tickets", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--scans", type=int, default=200)
    args = parser.parse_args()
    dsn = args.dsn or Settings().resolved().database_url
    if not dsn:
        raise SystemExit("no Postgres: start `make up`, or give --dsn / DATABASE_URL")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}; {args.tickets} tickets, "
          f"{args.concurrency} clients")  # fmt: skip
    uvloop.run(run(dsn, args.tickets, args.concurrency, args.scans))


if __name__ == "__main__":
    main()
