"""All SQL of the identity schema: the registry (`identity.person`) and lockouts (`number_lock`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import astuple, dataclass, fields
from datetime import date

import asyncpg

from services.identity.domain import LockState, PersonRecord

_RECORD_COLUMNS = tuple(f.name for f in fields(PersonRecord))


@dataclass(frozen=True)
class Candidate:
    """A registry entry bound to one number, as verification needs it."""

    person_id: str
    suffix_hash: str
    masked_name: str
    masked_nik: str
    profession: str
    facility_code: str
    birth_date: date
    sex: str


@dataclass(frozen=True)
class UpsertCounts:
    new: int
    updated: int


async def upsert_persons(conn: asyncpg.Connection, records: Sequence[PersonRecord]) -> UpsertCounts:
    """Insert or update (by nik_hash) a whole registry batch in one transaction.

    The rows are COPYed into a temporary table and merged with one statement, so 100k rows cost a
    few round trips, and a failure leaves the registry as it was.
    """
    columns = ", ".join(_RECORD_COLUMNS)
    async with conn.transaction():
        await conn.execute(
            f"CREATE TEMP TABLE registry_batch ON COMMIT DROP AS "
            f"SELECT {columns} FROM identity.person WITH NO DATA"
        )
        await conn.copy_records_to_table(
            "registry_batch", records=map(astuple, records), columns=_RECORD_COLUMNS
        )
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in _RECORD_COLUMNS if c != "nik_hash")
        row = await conn.fetchrow(
            f"""WITH merged AS (
                    INSERT INTO identity.person ({columns})
                    SELECT {columns} FROM registry_batch
                    ON CONFLICT (nik_hash) DO UPDATE
                    SET {updates}, source = 'registry', updated_at = now()
                    RETURNING (xmax = 0) AS inserted)
                SELECT count(*) FILTER (WHERE inserted) AS new,
                       count(*) FILTER (WHERE NOT inserted) AS updated
                FROM merged"""
        )
    return UpsertCounts(new=row["new"], updated=row["updated"])


async def candidates_for_phone(conn: asyncpg.Connection, phone_hash: str) -> list[Candidate]:
    rows = await conn.fetch(
        """SELECT id::text AS person_id, suffix_hash, masked_name, masked_nik, profession,
                  facility_code, birth_date, sex
           FROM identity.person WHERE phone_hash = $1 ORDER BY created_at, id""",
        phone_hash,
    )
    return [Candidate(**dict(r)) for r in rows]


async def is_listed(conn: asyncpg.Connection, phone_hash: str) -> bool:
    return await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM identity.person WHERE phone_hash = $1)", phone_hash
    )


async def lock_state(conn: asyncpg.Connection, phone_hash: str) -> LockState:
    row = await conn.fetchrow(
        "SELECT failures, locked_until FROM identity.number_lock WHERE phone_hash = $1",
        phone_hash,
    )
    return LockState(row["failures"], row["locked_until"]) if row else LockState()


async def lock_state_for_update(conn: asyncpg.Connection, phone_hash: str) -> LockState:
    """The number's lock state, row-locked until the caller's transaction ends, so concurrent
    guesses from one number are counted one after the other and none is lost."""
    await conn.execute(
        "INSERT INTO identity.number_lock (phone_hash) VALUES ($1) ON CONFLICT DO NOTHING",
        phone_hash,
    )
    row = await conn.fetchrow(
        "SELECT failures, locked_until FROM identity.number_lock WHERE phone_hash = $1 FOR UPDATE",
        phone_hash,
    )
    return LockState(row["failures"], row["locked_until"])


async def save_lock_state(conn: asyncpg.Connection, phone_hash: str, state: LockState) -> None:
    await conn.execute(
        """UPDATE identity.number_lock SET failures = $2, locked_until = $3, updated_at = now()
           WHERE phone_hash = $1""",
        phone_hash,
        state.failures,
        state.locked_until,
    )


async def earlier_answer(conn: asyncpg.Connection, request_id: str) -> dict | None:
    """The answer already given to this verify request (a redelivered dialog message)."""
    return await conn.fetchval(
        "SELECT answer FROM identity.verify_request WHERE request_id = $1", request_id
    )


async def save_answer(conn: asyncpg.Connection, request_id: str, answer: dict) -> None:
    await conn.execute(
        "INSERT INTO identity.verify_request (request_id, answer) VALUES ($1, $2)",
        request_id,
        answer,
    )


async def purge_answers(pool: asyncpg.Pool, older_than_days: int = 30) -> int:
    status = await pool.execute(
        "DELETE FROM identity.verify_request WHERE created_at < now() - make_interval(days => $1)",
        older_than_days,
    )
    return int(status.split()[-1])


async def count_persons(conn: asyncpg.Connection) -> int:
    return await conn.fetchval("SELECT count(*) FROM identity.person")
