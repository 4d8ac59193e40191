"""Forward-only SQL migrations: `services/<svc>/migrations/NNNN_name.sql`, each applied once.

Runs under a Postgres advisory lock, so concurrent runners (several replicas, a Job and a developer)
serialize; each file is applied in its own transaction together with its bookkeeping row; an applied
file whose checksum changed stops the run loudly (fix mistakes with a new migration).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import asyncpg

# Services in dependency-free order; each owns the schema of the same name.
SERVICES = (
    "identity",
    "screening",
    "scheduler",
    "ticketing",
    "ingress",
    "notifier",
    "channels",
    "console",
)
_LOCK_KEY = 0x76616B73  # "vaks": one migrator at a time per database
_FILE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    service: str
    filename: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(services: tuple[str, ...] = SERVICES) -> list[Migration]:
    found: list[Migration] = []
    for service in services:
        directory = Path(str(resources.files(f"services.{service}"))) / "migrations"
        for path in sorted(directory.glob("*.sql")):
            if not _FILE.match(path.name):
                raise MigrationError(f"{path}: migration files are named NNNN_name.sql")
            found.append(Migration(service, path.name, path.read_text()))
    return found


async def migrate(dsn: str, migrations: list[Migration] | None = None) -> list[str]:
    """Apply what is pending; return the applied files as `service/filename`."""
    migrations = discover() if migrations is None else migrations
    conn: asyncpg.Connection = await asyncpg.connect(dsn)
    applied: list[str] = []
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS public.schema_migrations (
                   service text NOT NULL,
                   filename text NOT NULL,
                   checksum text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now(),
                   PRIMARY KEY (service, filename))"""
        )
        done = {
            (r["service"], r["filename"]): r["checksum"]
            for r in await conn.fetch("SELECT service, filename, checksum FROM schema_migrations")
        }
        for m in migrations:
            previous = done.get((m.service, m.filename))
            if previous is not None:
                if previous != m.checksum:
                    raise MigrationError(
                        f"{m.service}/{m.filename} was edited after it was applied; "
                        "write a new migration instead"
                    )
                continue
            async with conn.transaction():
                await conn.execute(m.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (service, filename, checksum) "
                    "VALUES ($1, $2, $3)",
                    m.service,
                    m.filename,
                    m.checksum,
                )
            applied.append(f"{m.service}/{m.filename}")
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
        await conn.close()
    return applied
