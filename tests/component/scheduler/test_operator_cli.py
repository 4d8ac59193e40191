"""`vaksin facilities import`, `vaksin sessions import` and `vaksin sessions cancel` (the functions
the CLI calls) against the real database: line-numbered refusals that import nothing, idempotent
re-imports, no capacity below the bookings, and a cancelled session's people told and moved."""

from __future__ import annotations

import io
import secrets
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, time
from pathlib import Path

import asyncpg
import pytest

from services.common.contracts.scheduler import BookingCancelled, CancelReason
from services.common.settings import Settings
from services.scheduler.cli import cancel_session, import_facilities_file, import_sessions_file

from .conftest import (
    Person,
    Place,
    Scheduler,
    confirm_request,
    hold_request,
    in_days,
    seats,
    wait_for,
)

pytestmark = pytest.mark.servers

FACILITIES = "code,name,address,regency,province"
SESSIONS = "facility_code,date,start,end,capacity,vaccine"


def write(tmp_path: Path, header: str, lines: list[str]) -> Path:
    path = tmp_path / f"{secrets.token_hex(4)}.csv"
    path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return path


async def run(coro: Callable[..., Awaitable[int]]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = await coro(out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def code() -> str:
    return f"F{secrets.token_hex(4).upper()}"


async def test_facilities_with_bad_rows_are_refused_by_line_and_nothing_is_imported(
    settings: Settings, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    good = code()
    path = write(
        tmp_path,
        FACILITIES,
        [
            f"{good},Puskesmas A,Jl. A 1,Kota Bogor,Jawa Barat",
            "BAD CODE!,Puskesmas B,Jl. B 2,Kota Bogor,Jawa Barat",
            f"{code()},,Jl. C 3,Kota Bogor,Jawa Barat",
            "",
            f"{good.lower()},Puskesmas A again,Jl. A 1,Kota Bogor,Jawa Barat",
            f"{code()},Puskesmas E,Jl. E 5,Kota Bogor",
        ],
    )
    status, out, err = await run(lambda **io_: import_facilities_file(settings, path, **io_))
    assert (status, out) == (1, "")
    assert err.splitlines() == [
        "line 3: code: 1-32 characters of A-Z, a-z, 0-9, '.', '_' or '-'",
        "line 4: name: empty",
        "line 6: code: duplicate of line 2",
        "line 7: expected 5 fields, found 4",
        f"{path}: 4 bad row(s); nothing imported",
    ]
    assert await pool.fetchval("SELECT count(*) FROM scheduler.facility WHERE code = $1", good) == 0


async def test_facilities_reimport_updates_by_code_and_never_duplicates(
    settings: Settings, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    codes = [code(), code()]
    lines = [f"{c},Puskesmas {c},Jl. {c},Kab. Bogor,Jawa Barat" for c in codes]
    first = write(tmp_path, FACILITIES, lines)
    assert (await run(lambda **io_: import_facilities_file(settings, first, **io_)))[1] == (
        "imported 2 facilities: 2 new, 0 updated, 0 unchanged\n"
    )
    again = await run(lambda **io_: import_facilities_file(settings, first, **io_))
    assert again[1] == "imported 2 facilities: 0 new, 0 updated, 2 unchanged\n"
    moved = write(tmp_path, FACILITIES, [lines[0], lines[1].replace("Jl.", "Jalan")])
    changed = await run(lambda **io_: import_facilities_file(settings, moved, **io_))
    assert changed[1] == "imported 2 facilities: 0 new, 1 updated, 1 unchanged\n"
    rows = await pool.fetch(
        "SELECT code, address FROM scheduler.facility WHERE code = any($1::text[]) ORDER BY code",
        codes,
    )
    assert {r["code"]: r["address"] for r in rows} == {
        codes[0]: f"Jl. {codes[0]}",
        codes[1]: f"Jalan {codes[1]}",
    }


async def test_sessions_with_bad_rows_are_refused_by_line_and_nothing_is_imported(
    settings: Settings, pool: asyncpg.Pool, place: Place, tmp_path: Path
) -> None:
    day = in_days(3).isoformat()
    path = write(
        tmp_path,
        SESSIONS,
        [
            f"{place.code},{day},08:00,12:00,50,CoronaVac",
            f"{place.code},03/02/2021,08:00,12:00,50,CoronaVac",
            f"{place.code},{day},13:00,12:00,50,CoronaVac",
            f"{place.code},{day},25:00,26:00,lots,",
            f"{place.code},{day},08:00,11:00,40,CoronaVac",
        ],
    )
    status, out, err = await run(lambda **io_: import_sessions_file(settings, path, **io_))
    assert (status, out) == (1, "")
    assert err.splitlines() == [
        "line 3: date: '03/02/2021' is not a date YYYY-MM-DD",
        "line 4: end: 12:00 is not after start 13:00",
        "line 5: start: '25:00' is not a time HH:MM (00:00-23:59)",
        "line 5: end: '26:00' is not a time HH:MM (00:00-23:59)",
        "line 5: capacity: 'lots' is not a whole number 0-10000",
        "line 5: vaccine: 1-40 characters of letters, digits, space, '.', '_' or '-'",
        "line 6: duplicate of line 2 (same facility, date, start and vaccine)",
        f"{path}: 4 bad row(s); nothing imported",
    ]
    unknown = write(tmp_path, SESSIONS, [f"NOPE-{secrets.token_hex(3)},{day},08:00,12:00,5,X"])
    status, _, err = await run(lambda **io_: import_sessions_file(settings, unknown, **io_))
    assert status == 1 and err.startswith("line 2: facility_code: no facility NOPE-")
    count = await pool.fetchval(
        "SELECT count(*) FROM scheduler.session WHERE facility_code = $1", place.code
    )
    assert count == 0


async def test_sessions_reimport_is_idempotent_and_never_drops_capacity_below_bookings(
    settings: Settings, scheduler: Scheduler, pool: asyncpg.Pool, place: Place, tmp_path: Path
) -> None:
    first_day, second_day = in_days(2).isoformat(), in_days(3).isoformat()
    lines = [
        f"{place.code},{first_day},08:00,12:00,3,CoronaVac",
        f"{place.code},{second_day},08:00,12:00,5,CoronaVac",
    ]
    path = write(tmp_path, SESSIONS, lines)
    imported = await run(lambda **io_: import_sessions_file(settings, path, **io_))
    assert imported[:2] == (0, "imported 2 sessions: 2 new, 0 updated, 0 unchanged\n")
    again = await run(lambda **io_: import_sessions_file(settings, path, **io_))
    assert again[1] == "imported 2 sessions: 0 new, 0 updated, 2 unchanged\n"
    first_id = await pool.fetchval(
        "SELECT id FROM scheduler.session WHERE facility_code = $1 AND day = $2",
        place.code,
        in_days(2),
    )
    people = [Person(), Person()]
    for person in people:
        held = (await scheduler.ask(hold_request(person, first_id))).hold
        assert (await scheduler.ask(confirm_request(person, held.hold_id))).error is None
    await scheduler.ask(hold_request(Person(), first_id))  # a third seat held, not booked

    shrink = write(
        tmp_path,
        SESSIONS,
        [lines[0].replace(",3,", ",1,"), lines[1].replace(",5,", ",9,")],
    )
    status, out, err = await run(lambda **io_: import_sessions_file(settings, shrink, **io_))
    assert (status, out) == (1, "")
    assert err.splitlines() == [
        "line 2: capacity: 1 is below the 2 booking(s) of this session",
        f"{shrink}: 1 bad row(s); nothing imported",
    ]
    below_held = write(tmp_path, SESSIONS, [lines[0].replace(",3,", ",2,")])
    status, _, err = await run(lambda **io_: import_sessions_file(settings, below_held, **io_))
    assert status == 1
    assert err.startswith("line 2: capacity: 2 is below the 3 seat(s) booked (2) or held (1)")
    capacities = await pool.fetch(
        "SELECT capacity FROM scheduler.session WHERE facility_code = $1 ORDER BY day",
        place.code,
    )
    assert [r["capacity"] for r in capacities] == [3, 5]  # nothing changed

    grow = write(tmp_path, SESSIONS, [lines[0].replace(",3,", ",4,").replace("12:00", "13:00")])
    status, out, _ = await run(lambda **io_: import_sessions_file(settings, grow, **io_))
    assert (status, out) == (0, "imported 1 sessions: 0 new, 1 updated, 0 unchanged\n")
    row = await pool.fetchrow(
        "SELECT capacity, ends FROM scheduler.session WHERE id = $1", first_id
    )
    assert (row["capacity"], row["ends"]) == (4, time(13))
    assert await seats(pool, first_id) == {"capacity": 4, "reserved": 3, "held": 1, "booked": 2}


async def test_cancelling_a_session_tells_its_people_and_moves_them(
    settings: Settings, scheduler: Scheduler, pool: asyncpg.Pool, place: Place
) -> None:
    cancelled_id = await place.session(in_days(2), capacity=5)
    spare_id = await place.session(in_days(4), capacity=1)
    people = [Person(), Person(lang="en")]
    bookings = []
    for person in people:
        held = (await scheduler.ask(hold_request(person, cancelled_id))).hold
        bookings.append((await scheduler.ask(confirm_request(person, held.hold_id))).booking)
    holder = Person()
    await scheduler.ask(hold_request(holder, cancelled_id))

    now = datetime.now(UTC)
    status, out, err = await run(
        lambda **io_: cancel_session(settings, cancelled_id, now=now, **io_)
    )
    assert (status, err) == (0, "")
    assert out.splitlines() == [
        f"cancelled session {cancelled_id}: {place.name} ({place.code}) "
        f"{in_days(2).isoformat()} 08:00-12:00 CoronaVac; 2 booking(s) cancelled and their "
        "people told",
        "moved to a new session: 1; still looking (tried daily, people told): 1; "
        "had another booking already: 0",
    ]
    assert await seats(pool, cancelled_id) == {
        "capacity": 5,
        "reserved": 0,
        "held": 0,
        "booked": 0,
    }
    assert await seats(pool, spare_id) == {"capacity": 1, "reserved": 1, "held": 0, "booked": 1}
    for b in bookings:
        facts = await scheduler.events(b.booking_id, count=2)
        cancelled = BookingCancelled.model_validate(facts[1].body)
        assert cancelled.reason is CancelReason.SESSION_CANCELLED
    told = await scheduler.sends("scheduler:session_cancelled:", count=2)
    mine = {m.body["to"] for m in told} & {p.wa_id for p in people}
    assert mine == {p.wa_id for p in people}

    async def moves() -> Counter[str]:
        return Counter(
            m.body["command_id"].split(":")[1]
            for m in await scheduler.sends("scheduler:rebook.", count=0, within=0)
            if m.body["to"] in {p.wa_id for p in people}
        )

    kinds = await wait_for(moves, lambda found: sum(found.values()) >= 2)
    assert kinds == {"rebook.booked": 1, "rebook.waiting": 1}

    again = await run(lambda **io_: cancel_session(settings, cancelled_id, **io_))
    assert again == (1, "", f"session {cancelled_id} is cancelled already\n")
    missing = await run(lambda **io_: cancel_session(settings, 99_999_999, **io_))
    assert missing == (1, "", "session 99999999 does not exist\n")
