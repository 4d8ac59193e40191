"""The identity service running in-process against the session's real NATS and Postgres, a
separate NATS client to call it, and factories for unique registry entries (the database is
shared by the whole session, so every test makes its own numbers and NIKs)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from faststream.nats import NatsBroker

from services.common.contracts.identity import (
    NumberStatus,
    NumberStatusRequest,
    VerifyRequest,
    VerifyResult,
)
from services.common.contracts.subjects import IDENTITY_RPC_NUMBER_STATUS, IDENTITY_RPC_VERIFY
from services.common.embedded import free_port
from services.common.service import ServiceHost
from services.common.settings import Settings
from services.identity import domain, repository
from services.identity.app import build_host

from .support import (
    Registered,
    RegisterFn,
    StatusFn,
    VerifyFn,
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
