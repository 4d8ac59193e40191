"""Real servers for the tests: embedded NATS and Postgres started once per session under a temp
dir, or the ones named by NATS_URL / DATABASE_URL (a fresh database is created on that server)."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from services.common.db import create_pool
from services.common.embedded import EmbeddedNats, EmbeddedPostgres
from services.common.migrate import migrate
from services.common.settings import Settings


@dataclass(frozen=True)
class Servers:
    nats_url: str
    database_url: str


async def _create_database(admin_url: str, name: str) -> str:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    nats_url, database_url = os.environ.get("NATS_URL"), os.environ.get("DATABASE_URL")
    started: list[EmbeddedNats | EmbeddedPostgres] = []
    root = tmp_path_factory.mktemp("servers")
    if not nats_url:
        nats = EmbeddedNats(root)
        nats_url = nats.start()
        started.append(nats)
    if database_url:
        name = f"vaksin_test_{secrets.token_hex(4)}"
        database_url = asyncio.run(_create_database(database_url, name))
    else:
        pg = EmbeddedPostgres(root, durable=False)
        database_url = pg.start()
        started.append(pg)
    asyncio.run(migrate(database_url))
    try:
        yield Servers(nats_url, database_url)
    finally:
        for server in reversed(started):
            server.stop()


@pytest.fixture
def settings(servers: Servers, tmp_path: Path) -> Settings:
    return settings_for(servers, tmp_path)


def settings_for(servers: Servers, data_dir: Path) -> Settings:
    """The settings of a test's services: the session's servers, fixed test secrets."""
    return Settings(
        nats_url=servers.nats_url,
        database_url=servers.database_url,
        data_dir=data_dir,
        whatsapp_app_secret="test-app-secret",
        whatsapp_verify_token="test-verify-token",
        whatsapp_access_token="test-access-token",
        nik_pepper="test-pepper",
        operator_token="test-operator-token",
        # b"test-ticket-signing-key-32-bytes": an Ed25519 seed
        ticket_signing_key="dGVzdC10aWNrZXQtc2lnbmluZy1rZXktMzItYnl0ZXM",
        dialog_partitions=4,
        notifier_partitions=4,
        log_json=True,
    )


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(settings.database_url or "")
    yield pool
    await pool.close()
