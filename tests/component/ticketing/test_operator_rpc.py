"""ticketing.rpc.desk_add|desks (the operators' console enrols facility desks) over a real NATS
server and Postgres, with the real scheduler checking the facility: a desk of a known facility
gets a one-time enrolment code that enrols exactly once; an unknown facility is refused."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest
from faststream.nats import NatsBroker

from services.common.contracts.operations import (
    DeskAddReply,
    DeskAddRequest,
    DesksReply,
    DesksRequest,
    OperatorError,
    error_code,
)
from services.common.contracts.subjects import TICKETING_RPC_DESK_ADD, TICKETING_RPC_DESKS
from services.common.embedded import free_port
from services.common.settings import Settings
from services.scheduler.app import build_host as build_scheduler
from services.ticketing import desks
from services.ticketing.app import build_host as build_ticketing

pytestmark = pytest.mark.servers


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[NatsBroker]:
    hosts = [
        build(
            settings.model_copy(update={"health_port": free_port(), "scheduler_job_seconds": 3600})
        )
        for build in (build_scheduler, build_ticketing)
    ]
    for host in hosts:
        await host.start()
    broker = NatsBroker(settings.nats_url)
    await broker.connect()
    try:
        yield broker
    finally:
        await broker.stop()
        for host in reversed(hosts):
            await host.stop()


async def test_a_desk_added_by_the_console_enrols_once_with_its_code(
    client: NatsBroker, pool: asyncpg.Pool
) -> None:
    code = f"T{secrets.token_hex(5).upper()}"
    await pool.execute(
        """INSERT INTO scheduler.facility (code, name, address, regency, province)
           VALUES ($1, 'Puskesmas Meja', 'Jl. Uji 1', 'Kab. Uji', 'Jawa Barat')""",
        code,
    )
    answer = await client.request(
        DeskAddRequest(facility_code=code.lower(), name="  Meja   1 ", by="ani"),
        TICKETING_RPC_DESK_ADD,
        timeout=10,
    )
    added = DeskAddReply.model_validate(await answer.decode())
    assert added.error is None and added.desk is not None and added.enrolment_code
    assert (added.desk.facility_code, added.desk.facility_name, added.desk.name) == (
        code,
        "Puskesmas Meja",
        "Meja 1",
    )
    assert added.desk.state == "waiting"
    first = await desks.enrol(pool, added.enrolment_code, datetime.now(UTC))
    second = await desks.enrol(pool, added.enrolment_code, datetime.now(UTC))
    assert isinstance(first, desks.Enrolled) and second is desks.Refusal.CODE_USED
    listed = DesksReply.model_validate(
        await (
            await client.request(DesksRequest(facility_code=code), TICKETING_RPC_DESKS, timeout=10)
        ).decode()
    )
    assert [(d.desk_id, d.state) for d in listed.desks] == [(added.desk.desk_id, "enrolled")]


async def test_a_desk_of_an_unknown_facility_is_refused(client: NatsBroker) -> None:
    answer = await client.request(
        DeskAddRequest(facility_code="NOSUCH1", name="Meja 1", by="ani"),
        TICKETING_RPC_DESK_ADD,
        timeout=10,
    )
    refused = DeskAddReply.model_validate(await answer.decode())
    assert error_code(refused.error) is OperatorError.NOT_FOUND and refused.enrolment_code is None
