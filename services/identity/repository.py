"""All SQL of the identity schema: the registry (`identity.person`), lockouts (`number_lock`), and
the intake queue (`intake`, `intake_attempt`, `intake_answer`, `operator_action`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import astuple, dataclass, fields
from datetime import date, datetime

import asyncpg

from services.identity.domain import IntakeRecord, LockState, PersonRecord

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


async def person_card(conn: asyncpg.Connection, person_id: str) -> asyncpg.Record | None:
    """The masked name, masked NIK and profession of a person, or None for an unknown id."""
    return await conn.fetchrow(
        """SELECT masked_name, masked_nik, profession FROM identity.person
           WHERE id = $1::text::uuid""",
        person_id,
    )


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
    """Forget idempotent answers (verify and intake_submit) and old daily intake counters."""
    purged = 0
    for table in ("verify_request", "intake_answer"):
        status = await pool.execute(
            f"DELETE FROM identity.{table} WHERE created_at < now() - make_interval(days => $1)",
            older_than_days,
        )
        purged += int(status.split()[-1])
    await pool.execute(
        "DELETE FROM identity.intake_attempt WHERE day < current_date - make_interval(days => $1)",
        older_than_days,
    )
    return purged


async def count_persons(conn: asyncpg.Connection) -> int:
    return await conn.fetchval("SELECT count(*) FROM identity.person")


# --- intake ------------------------------------------------------------------------------------

_INTAKE_COLUMNS = tuple(f.name for f in fields(IntakeRecord))


@dataclass(frozen=True)
class StoredIntake:
    """One row of identity.intake."""

    id: int
    request_id: str
    status: str
    record: IntakeRecord
    reason: str | None
    decided_by: str | None
    decided_at: datetime | None
    person_id: str | None
    created_at: datetime


@dataclass(frozen=True)
class OperatorAction:
    action: str
    operator: str
    channel: str
    reason: str | None
    at: datetime


def _stored(row: asyncpg.Record) -> StoredIntake:
    values = dict(row)
    fields_ = {c: values[c] for c in _INTAKE_COLUMNS}
    fields_["wa_id"] = fields_["wa_id"] or ""  # erased once decided
    record = IntakeRecord(**fields_)
    return StoredIntake(
        id=values["id"],
        request_id=values["request_id"],
        status=values["status"],
        record=record,
        reason=values["reason"],
        decided_by=values["decided_by"],
        decided_at=values["decided_at"],
        person_id=str(values["person_id"]) if values["person_id"] else None,
        created_at=values["created_at"],
    )


async def lock_phone_for_intake(conn: asyncpg.Connection, phone_hash: str) -> None:
    """Serialise intake submissions of one number until the caller's transaction ends."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('intake:' || $1, 0))", phone_hash
    )


async def earlier_intake_answer(conn: asyncpg.Connection, request_id: str) -> dict | None:
    return await conn.fetchval(
        "SELECT answer FROM identity.intake_answer WHERE request_id = $1", request_id
    )


async def save_intake_answer(conn: asyncpg.Connection, request_id: str, answer: dict) -> None:
    await conn.execute(
        "INSERT INTO identity.intake_answer (request_id, answer) VALUES ($1, $2)",
        request_id,
        answer,
    )


async def count_intake_attempt(
    conn: asyncpg.Connection, phone_hash: str, day: date, limit: int
) -> bool:
    """Count one submission of the number on `day`; False (and nothing counted) at the limit."""
    counted = await conn.fetchval(
        """INSERT INTO identity.intake_attempt AS a (phone_hash, day, attempts)
           VALUES ($1, $2, 1)
           ON CONFLICT (phone_hash, day) DO UPDATE SET attempts = a.attempts + 1
           WHERE a.attempts < $3
           RETURNING attempts""",
        phone_hash,
        day,
        limit,
    )
    return counted is not None


async def nik_in_registry(conn: asyncpg.Connection, nik_hash: str) -> bool:
    return await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM identity.person WHERE nik_hash = $1)", nik_hash
    )


async def open_intake(
    conn: asyncpg.Connection, *, phone_hash: str | None = None, nik_hash: str | None = None
) -> StoredIntake | None:
    """The open request of a number, or of a NIK (one of the two is given)."""
    column, value = ("phone_hash", phone_hash) if phone_hash else ("nik_hash", nik_hash)
    row = await conn.fetchrow(
        f"SELECT * FROM identity.intake WHERE {column} = $1 AND status = 'open'", value
    )
    return _stored(row) if row else None


async def latest_intake(conn: asyncpg.Connection, phone_hash: str) -> StoredIntake | None:
    """The number's open request, else its most recently submitted one."""
    row = await conn.fetchrow(
        """SELECT * FROM identity.intake WHERE phone_hash = $1
           ORDER BY status = 'open' DESC, created_at DESC, id DESC LIMIT 1""",
        phone_hash,
    )
    return _stored(row) if row else None


async def insert_intake(
    conn: asyncpg.Connection, request_id: str, record: IntakeRecord
) -> StoredIntake:
    columns = ", ".join(_INTAKE_COLUMNS)
    params = ", ".join(f"${i}" for i in range(2, len(_INTAKE_COLUMNS) + 2))
    row = await conn.fetchrow(
        f"INSERT INTO identity.intake (request_id, {columns}) VALUES ($1, {params}) RETURNING *",
        request_id,
        *astuple(record),
    )
    return _stored(row)


async def get_intake(
    conn: asyncpg.Connection, intake_id: int, *, for_update: bool = False
) -> StoredIntake | None:
    lock = " FOR UPDATE" if for_update else ""
    row = await conn.fetchrow(f"SELECT * FROM identity.intake WHERE id = $1{lock}", intake_id)
    return _stored(row) if row else None


async def list_intakes(
    conn: asyncpg.Connection,
    *,
    status: str | None = "open",
    regency: str | None = None,
    facility: str | None = None,
    older_than_hours: float | None = None,
    limit: int = 100,
    profession: str | None = None,
    search: str | None = None,
) -> list[StoredIntake]:
    """Oldest first (the queue's order). `regency` is a prefix of the NIK's region digits: `32`
    is the province, `3201` one regency in it. `search` is a request id, or words that must all
    be in the name (the open queue is small; decided requests are found by their filters)."""
    words = (search or "").split()
    by_id = int(words[0]) if len(words) == 1 and words[0].isdigit() and len(words[0]) < 19 else None
    patterns = [
        "%" + w.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%" for w in words
    ]
    rows = await conn.fetch(
        """SELECT * FROM identity.intake
           WHERE ($1::text IS NULL OR status = $1)
             AND ($2::text IS NULL OR regency_code LIKE $2 || '%')
             AND ($3::text IS NULL OR facility_code = $3)
             AND ($4::float8 IS NULL OR created_at <= now() - make_interval(secs => $4 * 3600))
             AND ($6::text IS NULL OR profession = $6)
             AND (cardinality($7::text[]) = 0 OR id = $8
                  OR name ILIKE ALL ($7::text[]))
           ORDER BY created_at, id LIMIT $5""",
        status,
        regency,
        facility,
        older_than_hours,
        limit,
        profession,
        patterns,
        by_id,
    )
    return [_stored(r) for r in rows]


async def decide_intake(
    conn: asyncpg.Connection,
    intake_id: int,
    *,
    approved: bool,
    by: str,
    reason: str | None,
    person_id: str | None,
) -> StoredIntake:
    """Close an open request (the caller holds its row lock); its raw number is erased."""
    row = await conn.fetchrow(
        """UPDATE identity.intake
           SET status = $2, decided_by = $3, reason = $4, person_id = $5::uuid,
               decided_at = now(), wa_id = NULL
           WHERE id = $1 AND status = 'open' RETURNING *""",
        intake_id,
        "approved" if approved else "rejected",
        by,
        reason,
        person_id,
    )
    if row is None:
        raise RuntimeError(f"intake {intake_id} is not open: lock its row before deciding")
    return _stored(row)


async def person_by_nik(conn: asyncpg.Connection, nik_hash: str) -> tuple[str, str] | None:
    """The registry entry of a NIK as (person id, phone hash)."""
    row = await conn.fetchrow(
        "SELECT id::text, phone_hash FROM identity.person WHERE nik_hash = $1", nik_hash
    )
    return (row["id"], row["phone_hash"]) if row else None


async def insert_person(conn: asyncpg.Connection, record: PersonRecord, source: str) -> str:
    columns = ", ".join(_RECORD_COLUMNS)
    params = ", ".join(f"${i}" for i in range(1, len(_RECORD_COLUMNS) + 1))
    return await conn.fetchval(
        f"""INSERT INTO identity.person ({columns}, source)
            VALUES ({params}, ${len(_RECORD_COLUMNS) + 1}) RETURNING id::text""",
        *astuple(record),
        source,
    )


async def record_action(
    conn: asyncpg.Connection,
    intake_id: int,
    *,
    action: str,
    operator: str,
    channel: str,
    reason: str | None = None,
) -> None:
    await conn.execute(
        """INSERT INTO identity.operator_action (intake_id, action, operator, channel, reason)
           VALUES ($1, $2, $3, $4, $5)""",
        intake_id,
        action,
        operator,
        channel,
        reason,
    )


async def operator_actions(conn: asyncpg.Connection, intake_id: int) -> list[OperatorAction]:
    rows = await conn.fetch(
        """SELECT action, operator, channel, reason, at FROM identity.operator_action
           WHERE intake_id = $1 ORDER BY at, id""",
        intake_id,
    )
    return [OperatorAction(**dict(r)) for r in rows]


async def stats(pool: asyncpg.Pool) -> dict[str, int]:
    """The counts of `vaksin stats`, in one statement: people in the registry (and how many came
    through intake; a registry re-import makes a person `registry` again), intake requests by
    status, numbers locked now."""
    row = await pool.fetchrow(
        """SELECT p.people, p.people_from_intake, v.people_verified, i."intake.open",
                  i."intake.approved", i."intake.rejected", l.numbers_locked
           FROM (SELECT count(*) AS people,
                        count(*) FILTER (WHERE source = 'intake') AS people_from_intake
                 FROM identity.person) p,
                (SELECT coalesce(sum(n), 0)::bigint AS people_verified FROM identity.figure
                 WHERE metric = 'verified') v,
                (SELECT count(*) FILTER (WHERE status = 'open') AS "intake.open",
                        count(*) FILTER (WHERE status = 'approved') AS "intake.approved",
                        count(*) FILTER (WHERE status = 'rejected') AS "intake.rejected"
                 FROM identity.intake) i,
                (SELECT count(*) AS numbers_locked FROM identity.number_lock
                 WHERE locked_until > now()) l"""
    )
    assert row is not None
    return dict(row)


# --- the operators' console ---------------------------------------------------------------------


async def registry_matches(
    conn: asyncpg.Connection, record: IntakeRecord, limit: int = 10
) -> list[asyncpg.Record]:
    """Registry entries resembling an intake request: its NIK (under another number), its number,
    or its name at its facility (index person_facility_idx). Masked forms only."""
    return await conn.fetch(
        """SELECT DISTINCT ON (id) on_, masked_name, masked_nik, masked_phone, profession,
                  facility_code, source
           FROM (SELECT 'nik' AS on_, 1 AS rank, * FROM identity.person WHERE nik_hash = $1
                 UNION ALL
                 SELECT 'phone', 2, * FROM identity.person WHERE phone_hash = $2
                 UNION ALL
                 SELECT 'name_at_facility', 3, * FROM identity.person
                 WHERE facility_code = $3 AND lower(name) = lower($4)) m
           ORDER BY id, rank LIMIT $5""",
        record.nik_hash,
        record.phone_hash,
        record.facility_code,
        record.name,
        limit,
    )


async def mark_verified(conn: asyncpg.Connection, person_id: str) -> None:
    """The person's first successful verification, counted for the figures in the same
    statement (only the first one sets verified_at)."""
    await conn.execute(
        """WITH v AS (UPDATE identity.person SET verified_at = now()
                      WHERE id = $1::text::uuid AND verified_at IS NULL
                      RETURNING masked_nik)
           INSERT INTO identity.figure AS f (metric, day, regency, slot, n)
           SELECT 'verified', (now() AT TIME ZONE 'Asia/Jakarta')::date, left(masked_nik, 4),
                  pg_backend_pid() % 8, 1
           FROM v
           ON CONFLICT (metric, day, regency, slot) DO UPDATE SET n = f.n + 1""",
        person_id,
    )


async def figures(pool: asyncpg.Pool, since: date) -> tuple[list[asyncpg.Record], ...]:
    """The counters of identity.figure: totals per metric (all time), per day from `since`, per
    region (all time). Small: one row per metric, day, region and slot."""
    async with pool.acquire() as conn:
        totals = await conn.fetch(
            "SELECT metric, sum(n)::bigint AS n FROM identity.figure GROUP BY metric"
        )
        by_day = await conn.fetch(
            """SELECT day, metric, sum(n)::bigint AS n FROM identity.figure WHERE day >= $1
               GROUP BY day, metric ORDER BY day""",
            since,
        )
        by_regency = await conn.fetch(
            """SELECT regency, metric, sum(n)::bigint AS n FROM identity.figure
               GROUP BY regency, metric ORDER BY regency"""
        )
    return totals, by_day, by_regency
