"""No raw NIK, suffix, phone number or name in what the identity service logs (structlog events,
and the rendered JSON lines at DEBUG) through a whole intake: checks, submissions of every
outcome, and the operator's decisions."""

from __future__ import annotations

import asyncpg
import pytest
from faststream.nats import NatsBroker
from structlog.testing import capture_logs

from services.common.contracts.identity import (
    CheckNikRequest,
    CheckNikResult,
    IntakeOutcome,
    IntakeSubmitRequest,
    IntakeSubmitResult,
)
from services.common.contracts.subjects import IDENTITY_RPC_CHECK_NIK, IDENTITY_RPC_INTAKE_SUBMIT
from services.common.embedded import free_port
from services.common.logging import configure_logging
from services.common.settings import Settings
from services.identity import intake
from services.identity.app import build_host

from .support import intake_request, random_phone, request_id, start_and_sync

pytestmark = pytest.mark.servers

NAME = "Rahayu Kusumawardani"


def secrets_of(request: IntakeSubmitRequest) -> list[str]:
    nik, phone = request.nik, request.wa_id
    return [nik, nik[-6:], phone, "0" + phone[2:], phone[2:], NAME, "Kusumawardani"]


async def exercise(client: NatsBroker, pool: asyncpg.Pool) -> IntakeSubmitRequest:
    """Every intake path once; returns the request whose secrets must stay out of the logs."""

    async def submit(request: IntakeSubmitRequest) -> IntakeSubmitResult:
        resp = await client.request(request, IDENTITY_RPC_INTAKE_SUBMIT, timeout=5)
        return IntakeSubmitResult.model_validate(await resp.decode())

    request = intake_request(full_name=NAME)
    resp = await client.request(CheckNikRequest(nik=request.nik), IDENTITY_RPC_CHECK_NIK, timeout=5)
    assert CheckNikResult.model_validate(await resp.decode()).valid
    bad = request.model_copy(update={"full_name": request.nik, "request_id": request_id()})
    assert (await submit(bad)).outcome is IntakeOutcome.INVALID
    submitted = await submit(request)
    assert submitted.outcome is IntakeOutcome.SUBMITTED
    dup = request.model_copy(update={"request_id": request_id()})
    assert (await submit(dup)).outcome is IntakeOutcome.DUPLICATE_OPEN
    other = request.model_copy(update={"request_id": request_id(), "wa_id": random_phone()})
    assert (await submit(other)).outcome is IntakeOutcome.CANNOT_MATCH
    assert submitted.intake_id is not None
    await intake.show(pool, submitted.intake_id, by="alice", channel="cli")
    await intake.approve(pool, submitted.intake_id, by="alice", channel="cli")
    second = intake_request(full_name=NAME)
    rejected = await submit(second)
    assert rejected.intake_id is not None
    await intake.reject(pool, rejected.intake_id, reason="bukan nakes", by="alice", channel="cli")
    return request


async def test_intake_log_events_never_carry_raw_identifiers(
    identity_host: object, client: NatsBroker, pool: asyncpg.Pool
) -> None:
    with capture_logs() as events:
        request = await exercise(client, pool)
    submissions = [e for e in events if e.get("event") == "intake submission"]
    assert [e["outcome"] for e in submissions] == [
        "invalid",
        "submitted",
        "duplicate_open",
        "cannot_match",
        "submitted",
    ]
    assert submissions[0]["field"] == "full_name"
    assert all(len(e["phone_ref"]) == 8 for e in submissions[1:])
    assert all(e["pii_context"] == "identity" for e in submissions)
    assert {e["event"] for e in events} >= {"intake approved", "intake rejected"}
    text = repr(events)
    for secret in secrets_of(request):
        assert secret not in text


async def test_rendered_intake_output_has_no_raw_identifiers(
    settings: Settings,
    client: NatsBroker,
    pool: asyncpg.Pool,
    capsys: pytest.CaptureFixture[str],
    restore_logging: None,
) -> None:
    configure_logging("identity", "DEBUG", json_output=True)
    host = build_host(settings.model_copy(update={"health_port": free_port()}))
    await start_and_sync(host)
    try:
        request = await exercise(client, pool)
    finally:
        await host.stop()
    err = capsys.readouterr().err
    assert err.count('"event": "intake submission"') == 5
    assert '"event": "intake approved"' in err
    for secret in secrets_of(request):
        assert secret not in err
