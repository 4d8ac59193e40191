"""Ticket benchmark: how fast one ticketing replica issues tickets (signed, rendered as a QR PNG,
stored with their two messages in the outbox, relayed to the notifier), what each part costs,
how fast tickets are redeemed at the desk, and that one ticket scanned at many desks at once is
redeemed exactly once.

    .venv/bin/python bench/tickets.py [--tickets 2000] [--rate 500] [--seconds 10]

Self-contained: embedded NATS and PostgreSQL (durable, fsync on: what `vaksin up` runs) in a
temporary directory, migrated (or NATS_URL / DATABASE_URL: a fresh database is made there).

Steps, each through the service's own code:
- render: one token signed and its QR PNG rendered, one core, no IO (`--compare` adds `qrcode`
  as this service used it before, and `segno`, when they are installed);
- issue: `tickets.issue` (sign, render, store with the outbox rows) in this process, the way the
  booked consumer calls it: each consumer fetches `--batch` facts (its PullSub batch size) and
  handles them at once, then fetches again; `--consumers` such loops;
- identity rpc: `handlers._person` alone, against the real identity service (a process of its
  own, over NATS), same waves: what the lookup of the masked name costs a replica;
- consumer path: `handlers._issue` (the identity rpc, `tickets.issue`, the log line), same
  waves: with the two steps above, the share of the rpc;
- replica: the real `python -m services.ticketing` process (with identity beside it), fed
  `scheduler.evt.booked` facts through JetStream. A burst of `--tickets` facts gives its
  throughput (the middle 80 % of the run); then `--rate` facts/s for `--seconds` give the latency
  from a fact's publication to its ticket image leaving through the outbox for the notifier.
  `--skip-replica` leaves this step out;
- check-in: every ticket of the first step redeemed with the dose recorded;
- one ticket scanned by `--scans` desks at once: redeemed once, every other answer `already_used`.

Each step prints the CPU time (user + system) per ticket of every process: this one (the load
generator, and the ticketing code in the in-process steps), identity, the ticketing replica,
NATS, Postgres with its backends. Results and what they mean: bench/README.md.

Target (issue 13): at least 500 tickets/s per replica, p99 under 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import logging
import os
import platform
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from datetime import time as clock_time
from pathlib import Path
from typing import Any

import asyncpg
import nats
import psutil
import uvloop
from faststream.nats import NatsBroker

from services.common.clock import WIB, jakarta_today
from services.common.contracts.identity import PersonCard
from services.common.contracts.scheduler import BookingConfirmed, Facility
from services.common.contracts.streams import SCHEDULER
from services.common.contracts.subjects import SCHEDULER_EVT_BOOKED
from services.common.contracts.ticketing import TicketStatus
from services.common.db import create_pool
from services.common.embedded import EmbeddedNats, EmbeddedPostgres, free_port
from services.common.logging import configure_logging
from services.common.migrate import migrate
from services.common.settings import Settings
from services.ticketing import domain, handlers, qr, tickets
from services.ticketing import token as tokens
from services.ticketing.repository import Ticket

ROOT = Path(__file__).resolve().parents[1]
CARD = PersonCard(found=True, masked_name="S*** R********", masked_nik="320101**********")
FACILITY = Facility(code="BENCH1", name="Puskesmas Bench", address="Jl. Bench 1",
                    regency="Kab. Bogor", province="Jawa Barat")  # fmt: skip
CLAIMS = tokens.Claims("q1w2e3r4t5y6u7i8", "7K3MX9QP", 1, 1, "BENCH1", "2021-01-14",
                       "08:00-12:00", "S*** R********", 1610643600, 1610550000)  # fmt: skip
SIGNING_KEY = secrets.token_urlsafe(32)
PARTITIONS = 8


def fact(booking_id: int, person_id: str) -> BookingConfirmed:
    return BookingConfirmed(
        booking_id=booking_id, person_id=person_id, wa_id="6281200000001", lang="id",
        dose=1, vaccine="CoronaVac", session_id=1, facility=FACILITY, date=jakarta_today(),
        start=clock_time(0, 0), end=clock_time(23, 59), occurred_at=datetime.now(UTC),
    )  # fmt: skip


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Meter:
    """CPU seconds (user + system) of named groups of processes, each a process and its
    children (Postgres's backends; this process alone), between two readings."""

    def __init__(self) -> None:
        self.groups: dict[str, int] = {"bench": os.getpid()}

    def add(self, name: str, pid: int) -> None:
        self.groups[name] = pid

    def read(self) -> dict[str, float]:
        used = {}
        for name, pid in self.groups.items():
            total = 0.0
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(pid)
                children = root.children(recursive=True) if name != "bench" else []
                for proc in [root, *children]:
                    with contextlib.suppress(psutil.Error):
                        times = proc.cpu_times()
                        total += times.user + times.system
            used[name] = total
        return used

    def since(self, before: dict[str, float], count: int) -> str:
        """CPU ms per item of each group since `before`."""
        now = self.read()
        spent = {name: (now[name] - before.get(name, now[name])) / count * 1000 for name in now}
        return "cpu ms each: " + ", ".join(f"{name} {ms:.2f}" for name, ms in spent.items())


def report(name: str, count: int, seconds: float, latencies: list[float], cpu: str) -> None:
    print(
        f"{name:<24} {count / seconds:7.0f}/s   p50 {statistics.median(latencies) * 1000:6.1f} ms"
        f"   p99 {percentile(latencies, 0.99) * 1000:6.1f} ms   ({count} in {seconds:.2f} s)\n"
        f"{'':<26}{cpu}"
    )


# --- render ------------------------------------------------------------------------------------


def time_render(name: str, render: Callable[[str], bytes], key: Any, n: int = 300) -> None:
    sizes = [len(render(tokens.sign(CLAIMS, key))) for _ in range(5)]  # warm (layout, tables)
    started = time.perf_counter()
    for _ in range(n):
        render(tokens.sign(CLAIMS, key))
    seconds = time.perf_counter() - started
    print(f"{'sign + ' + name:<24} {n / seconds:7.0f}/s   {seconds / n * 1000:6.2f} ms each, "
          f"PNG {statistics.median(sizes):.0f} bytes")  # fmt: skip


def other_renderers() -> dict[str, Callable[[str], bytes]]:
    """The renderers this service measured against, when installed (not dependencies)."""
    found: dict[str, Callable[[str], bytes]] = {}
    with contextlib.suppress(ImportError):
        import qrcode
        from PIL import Image, ImageOps

        def with_qrcode(token: str) -> bytes:  # services/ticketing/qr.py before issue 13
            code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=1,
                                 border=0, mask_pattern=qr.MASK_PATTERN)  # fmt: skip
            code.add_data(token)
            code.make(fit=True)
            size = code.modules_count
            pixels = bytes(0 if dark else 255 for row in code.modules for dark in row)
            image = Image.frombytes("L", (size, size), pixels)
            image = image.resize((size * 8, size * 8), Image.Resampling.NEAREST)
            image = ImageOps.expand(image, border=32, fill=255)
            buffer = io.BytesIO()
            image.convert("1").save(buffer, format="PNG")
            return buffer.getvalue()

        found["qrcode + pillow"] = with_qrcode
    with contextlib.suppress(ImportError):
        import segno

        def segno_code(token: str) -> Any:
            return segno.make(token, error="m", boost_error=False, micro=False,
                              mask=qr.MASK_PATTERN, mode="byte")  # fmt: skip

        def with_segno(token: str) -> bytes:
            code = segno_code(token)
            border = b"\x00" * qr.QUIET_ZONE_MODULES
            side = len(code.matrix) + 2 * qr.QUIET_ZONE_MODULES
            rows = [bytes(side)] * qr.QUIET_ZONE_MODULES
            rows = [*rows, *(border + bytes(row) + border for row in code.matrix), *rows]
            return qr.png(qr.Matrix(code.version, side, b"".join(rows)))

        def with_segno_png(token: str) -> bytes:
            buffer = io.BytesIO()
            segno_code(token).save(buffer, kind="png", scale=8, border=4)
            return buffer.getvalue()

        found["segno + our PNG"] = with_segno
        found["segno + its PNG"] = with_segno_png
    return found


# --- waves of concurrent handlers, as the booked consumer runs them ---------------------------


async def in_waves(
    consumers: int, batch: int, jobs: list[Any], work: Callable[[Any], Awaitable[Any]]
) -> tuple[float, list[float], list[Any]]:
    """Each consumer takes `batch` jobs, runs them at once and waits for all (FastStream's pull
    subscriber handles a fetched batch so), then takes more. (seconds, latencies from the wave's
    start, results)."""
    queue = list(reversed(jobs))
    latencies: list[float] = []
    results: list[Any] = []

    async def timed(job: Any, started: float) -> None:
        results.append(await work(job))
        latencies.append(time.perf_counter() - started)

    async def consumer() -> None:
        while queue:
            wave = [queue.pop() for _ in range(min(batch, len(queue)))]
            started = time.perf_counter()
            await asyncio.gather(*(timed(job, started) for job in wave))

    started = time.perf_counter()
    await asyncio.gather(*(consumer() for _ in range(consumers)))
    return time.perf_counter() - started, latencies, results


class NoRelay:
    """The in-process steps leave the outbox rows where they are (the replica step relays)."""

    def wake(self) -> None:
        pass


# --- servers and the service processes ---------------------------------------------------------


@dataclass
class Servers:
    nats_url: str
    database_url: str
    stop: list[Callable[[], None]]
    pids: dict[str, int]  # of the embedded ones


def start_servers(root: Path) -> Servers:
    nats_url, database_url = os.environ.get("NATS_URL"), os.environ.get("DATABASE_URL")
    stoppers, pids = [], {}
    if not nats_url:
        server = EmbeddedNats(root)
        nats_url = server.start()
        stoppers.append(server.stop)
        pids["nats"] = server.proc.pid if server.proc else 0
    if database_url:
        database_url = asyncio.run(_fresh_database(database_url))
    else:
        pg = EmbeddedPostgres(root, durable=True)
        database_url = pg.start()
        stoppers.append(pg.stop)
        pids["postgres"] = pg.proc.pid if pg.proc else 0
    asyncio.run(migrate(database_url))
    return Servers(nats_url, database_url, stoppers, pids)


async def _fresh_database(admin_url: str) -> str:
    name = f"vaksin_bench_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return f"{admin_url.rpartition('/')[0]}/{name}"


def start_service(name: str, servers: Servers, data_dir: Path, log: Path) -> subprocess.Popen:
    port = free_port()
    env = dict(os.environ, NATS_URL=servers.nats_url, DATABASE_URL=servers.database_url,
               DATA_DIR=str(data_dir), HEALTH_PORT=str(port), LOG_JSON="true",
               TICKET_SIGNING_KEY=SIGNING_KEY, NOTIFIER_PARTITIONS=str(PARTITIONS))  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", f"services.{name}"], cwd=ROOT, env=env,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT)  # fmt: skip
    deadline = time.monotonic() + 60
    while not _ready(f"http://127.0.0.1:{port}/readyz"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{name} did not become ready (see {log})")
        time.sleep(0.2)
    return proc


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310 (loopback)
            return resp.status == 200
    except (OSError, urllib.error.URLError):
        return False


def stop_service(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


async def add_people(pool: asyncpg.Pool, count: int) -> list[str]:
    """People in identity's registry, for the identity rpc to find."""
    ids = [uuid.uuid4() for _ in range(count)]
    await pool.copy_records_to_table(
        "person", schema_name="identity",
        columns=["id", "nik_hash", "masked_nik", "name", "masked_name", "phone_hash",
                 "masked_phone", "suffix_hash", "profession", "facility_code"],
        records=[(i, i.hex, "320101**********", "Siti Rahayu", "S*** R********", i.hex,
                  "+62812****0001", i.hex, "bidan", "BENCH1") for i in ids],
    )  # fmt: skip
    return [str(i) for i in ids]


# --- the steps ---------------------------------------------------------------------------------


@dataclass
class Options:
    tickets: int
    consumers: int
    batch: int
    rate: int
    seconds: float
    scans: int
    compare: bool


async def in_process(servers: Servers, opts: Options, meter: Meter) -> None:
    settings = Settings(notifier_partitions=PARTITIONS)
    key = tokens.load_signing_key(SIGNING_KEY)
    delivery = tickets.Delivery("6281200000001", "id", settings.vaccine_video_url, PARTITIONS)
    count, waves = opts.tickets, (opts.consumers, opts.batch)
    pool = await create_pool(servers.database_url)  # as the service makes it
    broker = NatsBroker(servers.nats_url)
    await broker.connect()
    try:
        people = await add_people(pool, 3 * count)
        ids = iter(range(1, 10 * count))

        async def issue(person_id: str) -> Ticket | None:
            booking = fact(next(ids), person_id)
            return await tickets.issue(pool, booking, CARD, key, delivery, datetime.now(UTC))

        async def lookup(person_id: str) -> PersonCard:
            return await handlers._person(broker, person_id)

        async def consume(person_id: str) -> None:
            booking = fact(next(ids), person_id)
            await handlers._issue(booking, broker, pool, settings, key, NoRelay())  # type: ignore[arg-type]

        issued: list[Ticket] = []
        for name, work, jobs in (
            ("issue", issue, people[:count]),
            ("identity rpc", lookup, people[count : 2 * count]),
            ("consumer path", consume, people[2 * count :]),
        ):
            before = meter.read()
            seconds, latencies, results = await in_waves(*waves, jobs, work)
            report(name, count, seconds, latencies, meter.since(before, count))
            if name == "issue":
                issued = results
                assert all(t is not None for t in issued)
            if name == "identity rpc":
                assert all(card.found for card in results)
        made = await pool.fetchval("SELECT count(*) FROM ticketing.ticket")
        assert made == 2 * count, made

        now = datetime.combine(jakarta_today(), clock_time(10), WIB)
        nothing = domain.Measurements()

        async def checkin(ticket: Ticket) -> TicketStatus:
            answer = await tickets.checkin(pool, ticket.token, key, by="bench", via="cli",
                                           measured=nothing, dose_given=True, now=now)  # fmt: skip
            return answer.status

        before = meter.read()
        seconds, latencies, answers = await in_waves(*waves, issued, checkin)
        report("check-in (dose given)", count, seconds, latencies, meter.since(before, count))
        assert Counter(answers) == {TicketStatus.REDEEMED: count}, Counter(answers)

        one = await issue(str(uuid.uuid4()))
        assert one is not None
        started = time.perf_counter()
        answers = await asyncio.gather(*(checkin(one) for _ in range(opts.scans)))
        seconds = time.perf_counter() - started
        tally = Counter(a.value for a in answers)
        print(f"{opts.scans} scans of one ticket at once: {dict(tally)} in {seconds * 1000:.0f} ms")
        assert tally["redeemed"] == 1 and tally["already_used"] == opts.scans - 1
        await pool.execute("TRUNCATE ticketing.outbox")
    finally:
        await broker.stop()
        await pool.close()


async def replica(servers: Servers, opts: Options, meter: Meter) -> None:
    """Facts into SCHEDULER as the scheduler's relay publishes them; the ticket images seen on
    their way to the notifier (a plain subscription to notifier.cmd.send.*)."""
    pool = await create_pool(servers.database_url, min_size=1, max_size=2)
    nc = await nats.connect(servers.nats_url)
    js = nc.jetstream()
    seen: dict[str, float] = {}  # ticket id -> when its image command went by
    published: dict[int, float] = {}  # booking id -> when its fact was published
    ids = iter(range(10_000_000, 20_000_000))

    async def on_send(msg: Any) -> None:
        command_id = json.loads(msg.data)["command_id"]
        if command_id.startswith("ticketing:ticket:"):
            seen[command_id.removeprefix("ticketing:ticket:")] = time.time()

    async def publish(person_id: str) -> None:
        booking = fact(next(ids), person_id)  # occurred_at: now, just before it is published
        published[booking.booking_id] = time.time()
        await js.publish(SCHEDULER_EVT_BOOKED, booking.model_dump_json().encode(),
                         stream=SCHEDULER.name, headers={"Nats-Msg-Id": f"bench-{uuid.uuid4()}"})  # fmt: skip

    async def outcome(deadline: float) -> list[tuple[float, float, float]]:
        """(published, stored, image sent) of each published fact, once all are seen or at the
        deadline. Stored: the ticket's `issued_at`, its transaction's start."""
        query = """SELECT ticket_id, booking_id, extract(epoch FROM issued_at)::float8 AS stored
                   FROM ticketing.ticket WHERE booking_id = any($1)"""
        while True:
            rows = await pool.fetch(query, list(published))
            done = [(published[r["booking_id"]], r["stored"], seen[r["ticket_id"]]) for r in rows
                    if r["ticket_id"] in seen]  # fmt: skip
            if len(done) == len(published) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        if len(done) < len(published):
            print(f"  {len(published) - len(done)} tickets not seen in time")
        published.clear()
        return done

    sub = await nc.subscribe("notifier.cmd.send.*", cb=on_send)
    try:
        people = await add_people(pool, opts.tickets + int(opts.rate * opts.seconds))

        # A burst: the backlog of a booking peak. Throughput over its middle 80 %.
        before = meter.read()
        for person_id in people[: opts.tickets]:
            await publish(person_id)
        sent = sorted(s for _, _, s in await outcome(time.monotonic() + 300))
        middle = len(sent) * 8 // 10
        rate = middle / (sent[len(sent) * 9 // 10] - sent[len(sent) // 10])
        print(f"{'replica, burst':<24} {rate:7.0f}/s   ({len(sent)} tickets)\n"
              f"{'':<26}{meter.since(before, len(sent))}")  # fmt: skip

        # Open loop at --rate: from a fact's publication to its image leaving for the notifier.
        total = int(opts.rate * opts.seconds)
        before, start = meter.read(), time.monotonic()
        for i, person_id in enumerate(people[opts.tickets :]):
            delay = start + i / opts.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await publish(person_id)
        done = await outcome(time.monotonic() + 120)
        seconds = max(s for _, _, s in done) - min(p for p, _, _ in done)
        report(f"replica, {opts.rate}/s offered", total, seconds, [s - p for p, _, s in done],
               meter.since(before, len(done)))  # fmt: skip
        for name, part in (("published -> stored", [t - p for p, t, _ in done]),
                           ("stored -> relayed", [s - t for _, t, s in done])):  # fmt: skip
            print(f"{'':<26}{name}: p50 {statistics.median(part) * 1000:.1f} ms, "
                  f"p99 {percentile(part, 0.99) * 1000:.1f} ms")  # fmt: skip
    finally:
        await sub.unsubscribe()
        await nc.close()
        await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--tickets", type=int, default=2000, help="tickets per in-process step, and the burst")
    add("--consumers", type=int, default=1, help="consumer loops in the in-process steps")
    add("--batch", type=int, default=10, help="facts handled at once (PullSub batch size)")
    add("--rate", type=int, default=500, help="facts/s offered to the replica after the burst")
    add("--seconds", type=float, default=10, help="how long --rate is offered")
    add("--scans", type=int, default=200, help="desks scanning one ticket at once")
    add("--compare", action="store_true", help="also time qrcode and segno, when installed")
    add("--skip-replica", action="store_true", help="leave out the replica process step")
    args = parser.parse_args()
    opts = Options(args.tickets, args.consumers, args.batch, args.rate, args.seconds, args.scans,
                   args.compare)  # fmt: skip
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, load {os.getloadavg()[0]:.1f}; {opts.tickets} "
          f"tickets, {opts.consumers} consumer(s) x {opts.batch} at once")  # fmt: skip

    key = tokens.load_signing_key(SIGNING_KEY)
    time_render("render", qr.render_png, key)
    if opts.compare:
        for name, render in other_renderers().items():
            time_render(name, render, key, n=100)

    with tempfile.TemporaryDirectory(prefix="vaksin-bench-tickets-") as tmp:
        root = Path(tmp)
        # The service's own logging, at its level ("ticket issued" per ticket), to a file.
        configure_logging("ticketing", json_output=True)
        logging.getLogger().handlers[0].setStream((root / "bench.log").open("a"))  # type: ignore[attr-defined]
        servers = start_servers(root)
        meter = Meter()
        for name, pid in servers.pids.items():
            meter.add(name, pid)
        procs: list[subprocess.Popen] = []
        try:
            log = root / "services.log"
            procs.append(start_service("identity", servers, root / "data", log))
            meter.add("identity", procs[-1].pid)
            uvloop.run(in_process(servers, opts, meter))
            if not args.skip_replica:
                procs.append(start_service("ticketing", servers, root / "data", log))
                meter.add("ticketing", procs[-1].pid)
                uvloop.run(replica(servers, opts, meter))
        finally:
            for proc in reversed(procs):
                stop_service(proc)
            for stop in reversed(servers.stop):
                stop()


if __name__ == "__main__":
    main()
