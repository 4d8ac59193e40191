"""Every "once across replicas" claim of the README, with two instances of every service side by
side (`start_whole_system(replicas=2)`: each its own broker, pool, send engine, outbox relay,
periodic jobs and HTTP port; the webhooks alternate between the two edges), on the session's real
NATS and Postgres. One such system is shared by the module's tests.

- Per-user order and exactly once (the dialog's partitions, the notifier's head-of-queue lease):
  users fire their five messages without waiting, through both edges, a Meta retry included.
- A ticket per booking, one check-in per ticket, whichever replica is asked.
- Each outbox row published by one relay, once, and in id order.
- The day-before reminder queued and sent once though both schedulers run the job.
- A purge run by both replicas at once: each row purged, and counted, once.
- `WHATSAPP_MPS` shared by both notifiers: together they stay within it.
- `<owner>.rpc.stats` answered once per owner, with the figures of the database.
- One replica of the dialog and of the notifier stopped mid-run: the other takes all its work.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path

import asyncpg
import nats
import pytest
import pytest_asyncio
from faststream.nats import NatsBroker
from structlog.testing import capture_logs

from services.common import outbox
from services.common.clock import WIB, jakarta_today
from services.common.contracts.notifier import SendMessage, TextMessage
from services.common.contracts.streams import NOTIFIER, SCREENING
from services.common.contracts.subjects import NOTIFIER_CMD_SEND, partition_of
from services.common.db import create_pool
from services.stats_cli import SOURCES, run_stats
from services.ticketing.desk_api import clock_key
from tests.conftest import Servers, settings_for
from tests.e2e.conftest import (
    BUILDERS,
    Person,
    System,
    assert_no_reply_mixes_languages,
    body_of,
    envelope,
    new_person,
    new_phone,
    start_whole_system,
    stop_whole_system,
)
from tests.e2e.test_booking_flow import facility_code
from tests.e2e.test_ticket_flow import qr_token
from tests.faults import stream_bodies

pytestmark = [pytest.mark.servers, pytest.mark.asyncio(loop_scope="module")]

REPLICAS = 2
# Reminders are due at once for tomorrow's sessions (and only those): the journeys book later.
LATER = jakarta_today() + timedelta(days=3)


class CountingClock:
    """The dialog's clock (`System.set_today`), counting the turns its replica decides."""

    def __init__(self) -> None:
        self.turns = 0

    def __call__(self) -> date:
        self.turns += 1
        return jakarta_today()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cluster(
    servers: Servers, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[System]:
    base = settings_for(servers, tmp_path_factory.mktemp("replicas")).model_copy(
        update={"scheduler_job_seconds": 0.5, "scheduler_reminder_time": clock_time(0, 0)}
    )
    system = await start_whole_system(base, replicas=REPLICAS)
    for dialog in system.replicas("dialog"):
        dialog.broker.context.set_global("clock", CountingClock())
    try:
        yield system
        assert_no_reply_mixes_languages(system.fake)
    finally:
        await stop_whole_system(system)


@pytest_asyncio.fixture(loop_scope="module")
async def db(cluster: System) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(cluster.settings.database_url or "")  # the services' codecs
    yield pool
    await pool.close()


# --- a journey: five messages fired at once, seven sends expected in this order ------------------

EXPECTED: list[tuple[str, Callable[[dict], bool]]] = [
    ("are you a health worker?", lambda m: "tenaga kesehatan" in body_of(m).lower()),
    ("the suffix, please", lambda m: "6 digit terakhir NIK" in body_of(m)),
    (
        "verified, the conditions",
        lambda m: "terverifikasi" in body_of(m) and "scr.none" in json.dumps(m["body"]),
    ),
    (
        "eligible, the offer",
        lambda m: "*dapat* melanjutkan" in body_of(m) and "slot.ok" in json.dumps(m["body"]),
    ),
    ("confirmed", lambda m: "*terkonfirmasi*" in body_of(m)),
    ("the ticket", lambda m: m["body"]["type"] == "image"),
    ("the video", lambda m: m["body"]["type"] == "video"),
]


def is_reminder(send: dict) -> bool:
    return "Pengingat: besok" in body_of(send)


async def fire(system: System, person: Person) -> None:
    """VAKSIN, yes, the suffix, none apply, confirm: one after another (each stored by an edge
    before the next, the edges taken in turn), without waiting for a reply; and Meta's retry of
    the second through the other edge."""
    await system.say(person.phone, "VAKSIN")
    retried = json.dumps(
        envelope(
            person.phone,
            {
                "from": person.phone,
                "id": f"wamid.replicas.retry.{person.phone}",
                "timestamp": str(int(time.time())),
                "type": "interactive",
                "interactive": {
                    "type": "button_reply",
                    "button_reply": {"id": "nakes.yes", "title": "Ya"},
                },
            },
        )
    ).encode()
    assert (await system.post(retried)).status == 200
    await system.say(person.phone, person.suffix)
    assert (await system.post(retried)).status == 200  # a repeat: no effect
    await system.say(person.phone, "", "scr.none")
    await system.say(person.phone, "", "slot.ok")


async def journey_sends(system: System, person: Person, quiet: float = 2.0) -> list[dict]:
    """The user's sends (reminders aside) once the nine have come and `quiet` s passed."""
    deadline = time.monotonic() + 45
    while len(sends := [m for m in system.fake.messages_to(person.phone)
                        if not is_reminder(m)]) < len(EXPECTED):  # fmt: skip
        assert time.monotonic() < deadline, [body_of(m)[:40] for m in sends]
        await asyncio.sleep(0.05)
    await asyncio.sleep(quiet)
    return [m for m in system.fake.messages_to(person.phone) if not is_reminder(m)]


def assert_in_order_once(sends: list[dict]) -> None:
    said = [body_of(m)[:60] for m in sends]
    assert len(sends) == len(EXPECTED), said
    for (what, looks_right), send in zip(EXPECTED, sends, strict=True):
        assert looks_right(send), f"{what} expected, got: {said}"


async def booked_people(system: System, tmp_path: Path, day: date, count: int) -> list[Person]:
    """`count` health workers of one new facility (a session on `day`), each through the whole
    journey at once; their sends checked."""
    code = facility_code()
    await system.add_facility(code, tmp_path, [(day, "08:00", "12:00", count)])
    people = [new_person(facility_code=code) for _ in range(count)]
    await system.register(*people, tmp=tmp_path)
    await asyncio.gather(*(fire(system, p) for p in people))
    for sends in await asyncio.gather(*(journey_sends(system, p) for p in people)):
        assert_in_order_once(sends)
    return people


async def test_journeys_through_both_replicas_are_answered_in_order_once_with_one_ticket_each(
    cluster: System,
    db: asyncpg.Pool,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    published: list[tuple[str, int, int]] = []  # schema, row id, relay
    publish = outbox.OutboxRelay._publish_now

    async def recorded(relay: outbox.OutboxRelay, row: asyncpg.Record) -> None:
        await publish(relay, row)
        published.append((relay._schema, row["id"], id(relay)))

    monkeypatch.setattr(outbox.OutboxRelay, "_publish_now", recorded)

    people = await booked_people(cluster, tmp_path, LATER, 12)

    phones = [p.phone for p in people]
    bookings = await db.fetch(
        "SELECT id, wa_id FROM scheduler.booking WHERE wa_id = any($1::text[])", phones
    )
    assert sorted(b["wa_id"] for b in bookings) == sorted(phones)  # one booking each
    tickets = await db.fetchval(
        "SELECT count(*) FROM ticketing.ticket WHERE booking_id = any($1::bigint[])",
        [b["id"] for b in bookings],
    )
    assert tickets == len(people)
    # Both replicas did the work: the dialog's turns and the notifier's sends.
    assert all(d.broker.context.get("clock").turns > 0 for d in cluster.replicas("dialog"))
    senders = await db.fetchval(
        "SELECT count(DISTINCT leased_by) FROM notifier.outbound_message "
        "WHERE recipient = any($1::text[])",
        phones,
    )
    assert senders == REPLICAS
    # Every outbox row published once, by one relay, though two relays per schema poll.
    rows = Counter((schema, row) for schema, row, _ in published)
    assert rows and max(rows.values()) == 1
    assert {schema for schema, _ in rows} >= {"scheduler", "ticketing"}


async def test_a_ticket_scanned_at_both_replicas_at_once_is_redeemed_once(
    cluster: System, tmp_path: Path
) -> None:
    [person] = await booked_people(cluster, tmp_path, LATER, 1)
    [image] = await cluster.sent_of_type(person.phone, "image", 1)
    token = qr_token(cluster, image)
    ticketing = cluster.replicas("ticketing")
    for host in ticketing:  # the session's day, at both desks
        host.web_app[clock_key].fixed = datetime.combine(LATER, clock_time(9), WIB)
    headers = {"Authorization": f"Bearer {cluster.settings.operator_token}"}

    async def check_in(port: int) -> tuple[int, str]:
        url = f"http://127.0.0.1:{port}/checkin"
        async with cluster.http.post(url, json={"token": token}, headers=headers) as resp:
            return resp.status, (await resp.json())["status"]

    answers = await asyncio.gather(*(check_in(h.port) for h in ticketing for _ in range(10)))
    assert Counter(answers) == {(200, "redeemed"): 1, (409, "already_used"): 19}


async def test_a_backlog_of_one_outbox_leaves_in_id_order_with_two_relays(
    cluster: System, db: asyncpg.Pool
) -> None:
    """Rows written in one transaction (a ticket's image then its video; a cancelled session's
    facts and notices) are published in id order, so consumers see them in that order. Probed
    with 250 rows on `screening.evt.completed`, a subject no service consumes."""
    run = new_phone()
    async with db.acquire() as conn, conn.transaction():
        for i in range(250):
            marker = {"replicas_probe": run, "n": i}
            await outbox.enqueue(
                conn, "ticketing", "screening.evt.completed", marker, SCREENING.name
            )
    for host in cluster.replicas("ticketing"):
        assert host.relay is not None
        host.relay.wake()
    deadline = time.monotonic() + 15
    while True:
        bodies = await stream_bodies(cluster.settings, SCREENING.name, "screening.evt.completed")
        order = [
            body["n"]
            for body in map(json.loads, bodies)
            if isinstance(body, dict) and body.get("replicas_probe") == run
        ]
        if len(order) == 250 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert sorted(order) == list(range(250))  # each once
    assert order == sorted(order)


async def test_the_day_before_reminder_is_sent_once_though_both_schedulers_run_the_job(
    cluster: System, db: asyncpg.Pool, tmp_path: Path
) -> None:
    # Tomorrow as of now, not of the module's import: a run may cross midnight in Jakarta.
    people = await booked_people(cluster, tmp_path, jakarta_today() + timedelta(days=1), 4)
    for person in people:  # sent, in the chat
        await cluster.fake.wait_for_messages(person.phone, len(EXPECTED) + 1, timeout=30)
    await asyncio.sleep(3)  # a dozen more rounds of both schedulers' reminder jobs

    bookings = await db.fetch(
        "SELECT id, wa_id, reminded_at FROM scheduler.booking WHERE wa_id = any($1::text[])",
        [p.phone for p in people],
    )
    assert len(bookings) == len(people) and all(b["reminded_at"] for b in bookings)
    for booking in bookings:
        reminders = [m for m in cluster.fake.messages_to(booking["wa_id"]) if is_reminder(m)]
        assert len(reminders) == 1
        # queued once (the notifier would also drop a repeated command id: not relied on)
        partition = partition_of(booking["wa_id"], cluster.settings.notifier_partitions)
        subject = NOTIFIER_CMD_SEND.format(partition=partition)
        queued = [
            body
            for body in map(
                json.loads, await stream_bodies(cluster.settings, NOTIFIER.name, subject)
            )
            if body.get("command_id") == f"scheduler:reminder:{booking['id']}"
        ]
        assert len(queued) == 1


async def test_a_purge_run_by_both_replicas_at_once_purges_and_counts_each_row_once(
    cluster: System, db: asyncpg.Pool
) -> None:
    old = datetime.now(UTC) - timedelta(days=90)
    wa_id = new_phone()
    await db.executemany(
        "INSERT INTO ingress.processed_message (wamid, processed_at) VALUES ($1, $2)",
        [(f"wamid.replicas.old.{wa_id}.{i}", old) for i in range(7)],
    )
    await db.executemany(
        """INSERT INTO notifier.outbound_message
               (command_id, recipient, kind, payload, status, created_at, updated_at)
           VALUES ($1, $2, 'text', '{}', 'delivered', $3, $3)""",
        [(f"replicas:old:{wa_id}:{i}", wa_id, old) for i in range(5)],
    )
    jobs = {"dialog": "purge-processed-messages", "notifier": "purge-finished-messages"}
    tables = {
        "dialog": ["ingress.processed_message"],
        "notifier": ["notifier.outbound_message", "notifier.media"],
    }

    async def rows(service: str) -> int:
        return sum([await db.fetchval(f"SELECT count(*) FROM {t}") for t in tables[service]])

    for service in jobs:
        await cluster.stop_replicas(service)
    before = {service: await rows(service) for service in jobs}
    with capture_logs() as logs:
        await asyncio.gather(*(cluster.start_replicas(service) for service in jobs))
        deadline = time.monotonic() + 10
        while len([e for e in logs if e.get("job") in jobs.values()]) < 2 * REPLICAS:
            assert time.monotonic() < deadline, "the purges did not run in every replica"
            await asyncio.sleep(0.05)
    for service, job in jobs.items():
        runs = [e["affected"] for e in logs if e.get("job") == job]
        assert len(runs) == REPLICAS  # every replica runs it ...
        assert sum(runs) == before[service] - await rows(service) > 0  # ... each row once
    assert not await db.fetchval(
        "SELECT count(*) FROM notifier.outbound_message WHERE recipient = $1", wa_id
    )
    assert not await db.fetchval(
        "SELECT count(*) FROM ingress.processed_message WHERE wamid LIKE $1",
        f"wamid.replicas.old.{wa_id}.%",
    )


async def test_the_throughput_budget_is_shared_by_both_notifiers(
    cluster: System, db: asyncpg.Pool
) -> None:
    mps, count = 5.0, 40
    normal = cluster.settings.whatsapp_mps
    await cluster.stop_replicas("notifier")
    await cluster.start_replicas("notifier", whatsapp_mps=mps)
    try:
        phones = [new_phone() for _ in range(count)]
        client = NatsBroker(cluster.settings.nats_url)
        await client.connect()
        try:
            for phone in phones:  # one message to each of 40 users, all queued at once
                command = SendMessage(
                    command_id=f"replicas:rate:{phone}",
                    to=phone,
                    message=TextMessage(body="Uji kecepatan pengiriman."),
                )
                partition = partition_of(phone, cluster.settings.notifier_partitions)
                await client.publish(
                    command,
                    NOTIFIER_CMD_SEND.format(partition=partition),
                    stream=NOTIFIER.name,
                    headers={"Nats-Msg-Id": command.command_id},
                )
        finally:
            await client.stop()
        for phone in phones:
            await cluster.fake.wait_for_messages(phone, 1, timeout=30)
        times = sorted(m["at"] for m in cluster.fake.sent if m["to"] in set(phones))
        assert len(times) == count
        # Both replicas sent, yet together at the number's rate: 5/s, not 5/s each.
        assert (count - 1) / (times[-1] - times[0]) <= mps * 1.1
        assert max(sum(1 for t in times if s <= t < s + 1.0) for s in times) <= mps + 1
        senders = await db.fetchval(
            "SELECT count(DISTINCT leased_by) FROM notifier.outbound_message "
            "WHERE recipient = any($1::text[])",
            phones,
        )
        assert senders == REPLICAS
    finally:
        await cluster.stop_replicas("notifier")
        await cluster.start_replicas("notifier", whatsapp_mps=normal)


async def test_stats_are_answered_once_per_owner_with_the_figures_of_the_database(
    cluster: System, db: asyncpg.Pool
) -> None:
    nc = await nats.connect(cluster.settings.nats_url)
    try:
        for name, source in SOURCES.items():
            if name not in BUILDERS:
                continue  # the SMS and USSD adapters do not run here
            answers: list[nats.aio.msg.Msg] = []

            async def answered(msg: nats.aio.msg.Msg, answers: list = answers) -> None:
                answers.append(msg)

            inbox = nc.new_inbox()
            sub = await nc.subscribe(inbox, cb=answered)
            await nc.publish(source.subject, b"{}", reply=inbox)
            await asyncio.sleep(0.5)  # time for a second answer, were there one
            await sub.unsubscribe()
            assert len(answers) == 1, f"{source.subject}: {len(answers)} answers"
    finally:
        await nc.close()

    out = io.StringIO()
    await run_stats(cluster.settings, as_json=True, out=out)  # 1: no SMS or USSD adapter here
    answers = {name: a for name, a in json.loads(out.getvalue()).items() if name in BUILDERS}
    assert all(answer["error"] is None for answer in answers.values())
    counts = {name: answer["counts"] for name, answer in answers.items()}
    truth = {
        ("dialog", "conversations"): "SELECT count(*) FROM ingress.conversation",
        ("scheduler", "bookings_active.dose_1"): "SELECT count(*) FROM scheduler.booking "
        "WHERE status = 'active' AND dose = 1",
        ("ticketing", "tickets_issued"): "SELECT count(*) FROM ticketing.ticket",
    }
    for (service, key), sql in truth.items():
        assert counts[service][key] == await db.fetchval(sql), (service, key)


async def test_a_stopped_replica_leaves_its_work_to_the_other(
    cluster: System, db: asyncpg.Pool, tmp_path: Path
) -> None:
    code = facility_code()
    await cluster.add_facility(code, tmp_path, [(LATER, "08:00", "12:00", 8)])
    people = [new_person(facility_code=code) for _ in range(8)]
    await cluster.register(*people, tmp=tmp_path)
    journeys = asyncio.gather(*(fire(cluster, p) for p in people))
    await asyncio.sleep(0.3)  # mid-run: some turns taken, most not
    async with cluster.stopped("dialog"), cluster.stopped("notifier"):
        stopped_at = datetime.now(UTC)
        await journeys
        for sends in await asyncio.gather(*(journey_sends(cluster, p) for p in people)):
            assert_in_order_once(sends)
        senders = await db.fetchval(
            "SELECT count(DISTINCT leased_by) FROM notifier.outbound_message "
            "WHERE recipient = any($1::text[]) AND sent_at > $2",
            [p.phone for p in people],
            stopped_at + timedelta(seconds=1),
        )
    assert senders == 1  # the other notifier sent everything after the stop
    # and every partition of the dialog went on: the users are spread over all of them
    partitions = {partition_of(p.phone, cluster.settings.dialog_partitions) for p in people}
    assert len(partitions) > 1
