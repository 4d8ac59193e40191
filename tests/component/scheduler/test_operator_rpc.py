"""scheduler.rpc.facilities_import|sessions_import|sessions|session_cancel (the operators'
console's way to places and times) and scheduler.rpc.stats with `tables`, over a real NATS
server and Postgres: a file with problems is refused with line numbers and nothing of it is
imported; a good one is merged; sessions are listed with seats booked, held and free; a
cancelled session's people are told, and a second cancel is refused."""

from __future__ import annotations

import secrets
from typing import TypeVar

import pytest
from pydantic import BaseModel

from services.common.contracts.operations import (
    CsvImportReply,
    CsvImportRequest,
    OperatorError,
    SessionCancelReply,
    SessionCancelRequest,
    SessionsReply,
    SessionsRequest,
    error_code,
)
from services.common.contracts.stats import ServiceStats, StatsRequest
from services.common.contracts.subjects import (
    SCHEDULER_RPC_FACILITIES_IMPORT,
    SCHEDULER_RPC_SESSION_CANCEL,
    SCHEDULER_RPC_SESSIONS,
    SCHEDULER_RPC_SESSIONS_IMPORT,
    SCHEDULER_RPC_STATS,
)

from .conftest import Person, Place, Scheduler, confirm_request, hold_request, in_days, today

pytestmark = pytest.mark.servers

R = TypeVar("R", bound=BaseModel)


async def ask(scheduler: Scheduler, subject: str, body: BaseModel, reply: type[R]) -> R:
    answer = await scheduler.client.request(body, subject, timeout=20)
    return reply.model_validate(await answer.decode())


def code() -> str:
    return f"T{secrets.token_hex(5).upper()}"


async def test_a_facilities_file_with_problems_is_refused_by_line_and_nothing_is_imported(
    scheduler: Scheduler,
) -> None:
    good, bad = code(), code()
    text = (
        "code,name,address,regency,province\n"
        f"{good},Puskesmas Baik,Jl. Satu 1,Kab. Bogor,Jawa Barat\n"
        f"{bad},,Jl. Dua 2,Kab. Bogor,Jawa Barat\n"
        f"{good},Puskesmas Lagi,Jl. Tiga 3,Kab. Bogor,Jawa Barat\n"
    )
    reply = await ask(scheduler, SCHEDULER_RPC_FACILITIES_IMPORT,
                      CsvImportRequest(csv=text, by="ani"), CsvImportReply)  # fmt: skip
    assert error_code(reply.error) is OperatorError.REFUSED
    assert [(p.line, p.reason) for p in reply.errors] == [
        (3, "name: empty"),
        (4, "code: duplicate of line 2"),
    ]
    assert reply.bad_rows == 2
    found = await scheduler.pool.fetchval(
        "SELECT count(*) FROM scheduler.facility WHERE code = any($1::text[])", [good, bad]
    )
    assert found == 0


async def test_good_files_are_merged_and_sessions_of_unknown_facilities_refused(
    scheduler: Scheduler,
) -> None:
    fac = code()
    facilities = (
        f"code,name,address,regency,province\n{fac},Puskesmas Baru,Jl. Satu 1,Kab. Uji,Jawa Barat\n"
    )
    reply = await ask(scheduler, SCHEDULER_RPC_FACILITIES_IMPORT,
                      CsvImportRequest(csv=facilities, by="ani"), CsvImportReply)  # fmt: skip
    assert (reply.error, reply.rows, reply.new) == (None, 1, 1)
    day = in_days(3).isoformat()
    sessions = (
        "facility_code,date,start,end,capacity,vaccine\n"
        f"{fac},{day},08:00,12:00,30,CoronaVac\n"
        f"NOPE{fac},{day},08:00,12:00,30,CoronaVac\n"
    )
    refused = await ask(scheduler, SCHEDULER_RPC_SESSIONS_IMPORT,
                        CsvImportRequest(csv=sessions, by="ani"), CsvImportReply)  # fmt: skip
    assert [p.line for p in refused.errors] == [3]
    assert "no facility" in refused.errors[0].reason
    listed = await ask(scheduler, SCHEDULER_RPC_SESSIONS,
                       SessionsRequest(date_from=today(), date_to=in_days(7), facility=fac),
                       SessionsReply)  # fmt: skip
    assert listed.sessions == []  # nothing of the refused file
    accepted = await ask(scheduler, SCHEDULER_RPC_SESSIONS_IMPORT,
                         CsvImportRequest(csv=sessions.rsplit("NOPE", 1)[0], by="ani"),
                         CsvImportReply)  # fmt: skip
    assert (accepted.error, accepted.new) == (None, 1)


async def test_sessions_are_listed_with_seats_booked_held_and_free_and_bookings_counted(
    scheduler: Scheduler, place: Place
) -> None:
    session_id = await place.session(in_days(2), capacity=5)
    before = await ask(scheduler, SCHEDULER_RPC_STATS, StatsRequest(tables=True), ServiceStats)
    booked, holding = Person(), Person()
    hold = await scheduler.ask(hold_request(booked, session_id))
    assert (await scheduler.ask(confirm_request(booked, hold.hold.hold_id))).error is None
    assert (await scheduler.ask(hold_request(holding, session_id))).error is None
    listed = await ask(scheduler, SCHEDULER_RPC_SESSIONS,
                       SessionsRequest(date_from=today(), date_to=in_days(7), regency=place.regency),
                       SessionsReply)  # fmt: skip
    (row,) = listed.sessions
    assert (row.session_id, row.capacity, row.booked, row.held, row.free) == (
        session_id,
        5,
        1,
        1,
        3,
    )
    after = await ask(scheduler, SCHEDULER_RPC_STATS, StatsRequest(tables=True), ServiceStats)

    def booked_here(stats: ServiceStats) -> int:
        table = stats.tables["bookings_by_facility"]
        return sum(int(r[2]) for r in table.rows if r[1] == place.code)

    assert booked_here(after) == booked_here(before) + 1
    bad = await ask(scheduler, SCHEDULER_RPC_SESSIONS,
                    SessionsRequest(date_from=in_days(2), date_to=today()), SessionsReply)  # fmt: skip
    assert error_code(bad.error) is OperatorError.INVALID


async def test_a_cancelled_sessions_people_are_told_and_a_second_cancel_is_refused(
    scheduler: Scheduler, place: Place
) -> None:
    session_id = await place.session(in_days(2), capacity=5)
    person = Person()
    hold = await scheduler.ask(hold_request(person, session_id))
    confirmed = await scheduler.ask(confirm_request(person, hold.hold.hold_id))
    reply = await ask(scheduler, SCHEDULER_RPC_SESSION_CANCEL,
                      SessionCancelRequest(session_id=session_id, by="ani"), SessionCancelReply)  # fmt: skip
    assert reply.error is None and reply.bookings == 1
    assert reply.session is not None and reply.session.status == "cancelled"
    events = await scheduler.events(confirmed.booking.booking_id, count=2)
    assert [e.body["reason"] for e in events if e.subject == "scheduler.evt.cancelled"] == [
        "session_cancelled"
    ]
    again = await ask(scheduler, SCHEDULER_RPC_SESSION_CANCEL,
                      SessionCancelRequest(session_id=session_id, by="budi"), SessionCancelReply)  # fmt: skip
    assert error_code(again.error) is OperatorError.NOT_OPEN
    missing = await ask(scheduler, SCHEDULER_RPC_SESSION_CANCEL,
                        SessionCancelRequest(session_id=10**12, by="ani"), SessionCancelReply)  # fmt: skip
    assert error_code(missing.error) is OperatorError.NOT_FOUND
