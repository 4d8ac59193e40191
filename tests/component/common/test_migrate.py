"""The forward-only migration runner on a real Postgres, each test in a database of its own."""

from __future__ import annotations

import asyncio
import secrets

import asyncpg
import pytest

from services.common.migrate import Migration, MigrationError, discover, migrate
from tests.conftest import Servers

pytestmark = pytest.mark.servers


@pytest.fixture
async def empty_db(servers: Servers) -> str:
    admin = await asyncpg.connect(servers.database_url)
    name = f"migrate_{secrets.token_hex(4)}"
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return servers.database_url.rsplit("/", 1)[0] + f"/{name}"


async def _tables(dsn: str, schema: str) -> set[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", schema
        )
        return {r["table_name"] for r in rows}
    finally:
        await conn.close()


async def test_applies_every_service_once(empty_db: str) -> None:
    applied = await migrate(empty_db)
    assert applied == [f"{m.service}/{m.filename}" for m in discover()]
    assert {"person", "number_lock"} <= await _tables(empty_db, "identity")
    assert await migrate(empty_db) == []


async def test_concurrent_runners_apply_each_file_once(empty_db: str) -> None:
    results = await asyncio.gather(*(migrate(empty_db) for _ in range(5)))
    assert sorted(len(r) for r in results) == [0, 0, 0, 0, len(discover())]


async def test_edited_applied_migration_is_refused(empty_db: str) -> None:
    first = Migration("ingress", "0001_demo.sql", "CREATE TABLE demo_edit (id int);")
    await migrate(empty_db, [first])
    edited = Migration("ingress", "0001_demo.sql", "CREATE TABLE demo_edit (id bigint);")
    with pytest.raises(MigrationError, match="edited after it was applied"):
        await migrate(empty_db, [edited])


async def test_failing_file_leaves_nothing_half_applied(empty_db: str) -> None:
    good = Migration("ingress", "0001_good.sql", "CREATE TABLE good (id int);")
    bad = Migration("ingress", "0002_bad.sql", "CREATE TABLE half (id int); SELECT no_such_fn();")
    later = Migration("ingress", "0003_later.sql", "CREATE TABLE later (id int);")
    with pytest.raises(asyncpg.UndefinedFunctionError):
        await migrate(empty_db, [good, bad, later])
    assert await _tables(empty_db, "public") == {"good", "schema_migrations"}
    # Fixed with a corrected file, the run continues where it stopped.
    fixed = Migration("ingress", "0002_bad.sql", "CREATE TABLE half (id int);")
    assert await migrate(empty_db, [good, fixed, later]) == [
        "ingress/0002_bad.sql",
        "ingress/0003_later.sql",
    ]
