"""The identity service running in-process against the session's real NATS and Postgres, a
separate NATS client to call it, and factories for unique registry entries (the database is
shared by the whole session, so every test makes its own numbers and NIKs)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
import structlog
from faststream.nats import NatsBroker

from services.common.contracts.identity import (
    CheckNikRequest,
    CheckNikResult,
    IntakeStatus,
    IntakeStatusRequest,
    IntakeSubmitRequest,
    IntakeSubmitResult,
    NumberStatus,
    NumberStatusRequest,
    VerifyRequest,
    VerifyResult,
)
from services.common.contracts.subjects import (
    IDENTITY_RPC_CHECK_NIK,
    IDENTITY_RPC_INTAKE_STATUS,
    IDENTITY_RPC_INTAKE_SUBMIT,
    IDENTITY_RPC_NUMBER_STATUS,
    IDENTITY_RPC_VERIFY,
)
from services.common.embedded import free_port
from services.common.service import ServiceHost
from services.common.settings import Settings
from services.identity import domain, repository
from services.identity.app import build_host

from .support import (
    CheckNikFn,
    IntakeStatusFn,
    Registered,
    RegisterFn,
    StatusFn,
    SubmitFn,
    VerifyFn,
    intake_request,
    random_nik,
    random_phone,
    start_and_sync,
)


@pytest.fixture
def register(pool: asyncpg.Pool, settings: Settings) -> RegisterFn:
    async def _register(
        *,
        nik: str | None = None,
        phone: str | None = None,
        name: str = "Siti Rahmawati",
        profession: str = "Bidan",
        facility_code: str = "PKM-CIBINONG",
    ) -> Registered:
        person = Registered(
            nik or random_nik(), phone or random_phone(), name, profession, facility_code
        )
        header = ",".join(domain.REGISTRY_HEADER)
        row = f"{person.nik},{name},0{person.phone[2:]},{profession},{facility_code}"
        rows, errors = domain.parse_registry_csv(f"{header}\n{row}\n")
        assert errors == []
        async with pool.acquire() as conn:
            await repository.upsert_persons(
                conn, [domain.person_record(settings.nik_pepper, rows[0])]
            )
        return person

    return _register


@pytest.fixture
def identity_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"health_port": free_port()})


@pytest.fixture
async def identity_host(identity_settings: Settings) -> AsyncIterator[ServiceHost]:
    host = build_host(identity_settings)
    await start_and_sync(host)
    try:
        yield host
    finally:
        await host.stop()


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[NatsBroker]:
    broker = NatsBroker(settings.nats_url)
    await broker.connect()
    try:
        yield broker
    finally:
        await broker.stop()


@pytest.fixture
def verify(identity_host: ServiceHost, client: NatsBroker) -> VerifyFn:
    async def _verify(wa_id: str, suffix: str, request_id: str | None = None) -> VerifyResult:
        resp = await client.request(
            VerifyRequest(wa_id=wa_id, suffix=suffix, request_id=request_id),
            IDENTITY_RPC_VERIFY,
            timeout=5,
        )
        return VerifyResult.model_validate(await resp.decode())

    return _verify


@pytest.fixture
def number_status(identity_host: ServiceHost, client: NatsBroker) -> StatusFn:
    async def _status(wa_id: str) -> NumberStatus:
        resp = await client.request(
            NumberStatusRequest(wa_id=wa_id), IDENTITY_RPC_NUMBER_STATUS, timeout=5
        )
        return NumberStatus.model_validate(await resp.decode())

    return _status


@pytest.fixture
def check_nik(identity_host: ServiceHost, client: NatsBroker) -> CheckNikFn:
    async def _check(nik: str) -> CheckNikResult:
        resp = await client.request(CheckNikRequest(nik=nik), IDENTITY_RPC_CHECK_NIK, timeout=5)
        return CheckNikResult.model_validate(await resp.decode())

    return _check


@pytest.fixture
def submit(identity_host: ServiceHost, client: NatsBroker) -> SubmitFn:
    """Submit an intake request; fields not given are fresh random ones."""

    async def _submit(
        request: IntakeSubmitRequest | None = None, **fields: str
    ) -> IntakeSubmitResult:
        resp = await client.request(
            request or intake_request(**fields), IDENTITY_RPC_INTAKE_SUBMIT, timeout=5
        )
        return IntakeSubmitResult.model_validate(await resp.decode())

    return _submit


@pytest.fixture
def intake_status(identity_host: ServiceHost, client: NatsBroker) -> IntakeStatusFn:
    async def _status(wa_id: str) -> IntakeStatus:
        resp = await client.request(
            IntakeStatusRequest(wa_id=wa_id), IDENTITY_RPC_INTAKE_STATUS, timeout=5
        )
        return IntakeStatus.model_validate(await resp.decode())

    return _status


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """For tests that install the service's logging setup: put the test's back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    config = structlog.get_config()
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.configure(**config)
    structlog.contextvars.clear_contextvars()
