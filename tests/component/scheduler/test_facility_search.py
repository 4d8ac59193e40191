"""scheduler.rpc.facilities_search over a real NATS server and Postgres: every typed word must occur
in a facility's name, address or regency, whatever the case and however abbreviated (`PKM`,
`RSUD`, `Kab.`); region words only rank; the exact name leads, then by name; `total` counts past
the limit; a typo finds the closest few (`approximate`); refusals are answered; and the trigram
index answers both queries.

The database is shared by the session, so each test's facilities carry a token of their own in
their regency, and each query names that token (or the regency) to see only them."""

from __future__ import annotations

import json
import secrets
from typing import Any

import asyncpg
import pytest

from services.common.contracts.scheduler import ErrorCode, FacilitySearchRequest, error_code
from services.scheduler import repository as repo

from .conftest import Scheduler

pytestmark = pytest.mark.servers


async def add(pool: asyncpg.Pool, name: str, address: str, regency: str) -> str:
    code = f"S{secrets.token_hex(5).upper()}"
    await pool.execute(
        """INSERT INTO scheduler.facility (code, name, address, regency, province)
           VALUES ($1, $2, $3, $4, 'DKI Jakarta')""",
        code,
        name,
        address,
        regency,
    )
    return code


async def names(scheduler: Scheduler, query: str, **extra: Any) -> tuple[list[str], int]:
    """The names found by every word (none when only similar ones were found)."""
    reply = await scheduler.ask(FacilitySearchRequest(query=query, **extra))
    assert reply.error is None, reply.error
    if reply.approximate:
        return [], 0
    return [f.name for f in reply.facilities], reply.total


async def closest(scheduler: Scheduler, query: str, **extra: Any) -> list[str]:
    """The names offered as the closest when no facility has every word."""
    reply = await scheduler.ask(FacilitySearchRequest(query=query, **extra))
    assert reply.error is None, reply.error
    assert reply.approximate or not reply.facilities, reply
    assert reply.total == len(reply.facilities) <= 5
    return [f.name for f in reply.facilities]


async def test_every_word_occurs_in_the_name_address_or_regency_in_any_case(
    scheduler: Scheduler, pool: asyncpg.Pool
) -> None:
    token = secrets.token_hex(4)
    west, south = f"Kota Jakarta Barat {token}", f"Kota Jakarta Selatan {token}"
    await add(pool, "RSUD Cengkareng", "Jl. Bumi Cengkareng Indah No. 1", west)
    await add(pool, "Puskesmas Kecamatan Cengkareng", "Jl. Kamal Raya No. 8", west)
    await add(pool, "Puskesmas Kecamatan Tebet", "Jl. Prof. Soepomo No. 54", south)
    await add(pool, "Puskesmas Kelurahan Tebet Barat", "Jl. Tebet Barat Dalam", south)
    await add(pool, "Klinik Sehat", "Jl. Tebet Raya No. 1", south)  # Tebet only in the address

    assert await names(scheduler, f"rsud cengkareng {token}") == (["RSUD Cengkareng"], 1)
    assert await names(scheduler, f"CENGKARENG {token}") == (
        ["Puskesmas Kecamatan Cengkareng", "RSUD Cengkareng"],
        2,
    )
    # The regency typed after the name narrows; punctuation around a word does not matter.
    assert await names(scheduler, f"tebet, selatan ({token})") == (
        ["Klinik Sehat", "Puskesmas Kecamatan Tebet", "Puskesmas Kelurahan Tebet Barat"],
        3,
    )
    assert await names(scheduler, f"Tebet Barat {token}") == (
        ["Puskesmas Kelurahan Tebet Barat"],
        1,
    )
    assert await names(scheduler, f"tebet cengkareng {token}") == ([], 0)


async def test_the_exact_name_leads_and_total_counts_past_the_limit(
    scheduler: Scheduler, pool: asyncpg.Pool
) -> None:
    token = secrets.token_hex(4)
    regency, elsewhere = f"Kota Uji {token}", f"Kab. Lain {token}"
    await add(pool, "Puskesmas Kecamatan Tebet", "Jl. Prof. Soepomo No. 54", regency)
    await add(pool, "Puskesmas Tebet", "Jl. Tebet Timur No. 3", regency)
    await add(pool, "Puskesmas Kelurahan Tebet Timur", "Jl. Tebet Timur Dalam", regency)
    await add(pool, "Puskesmas Tebet", "Jl. Lain No. 1", elsewhere)

    # The regency filter isolates, in any case; the name typed exactly comes first.
    assert await names(scheduler, " puskesmas   TEBET ", regency=regency.upper()) == (
        ["Puskesmas Tebet", "Puskesmas Kecamatan Tebet", "Puskesmas Kelurahan Tebet Timur"],
        3,
    )
    assert await names(scheduler, f"puskesmas {token}", limit=2) == (
        ["Puskesmas Kecamatan Tebet", "Puskesmas Kelurahan Tebet Timur"],
        4,
    )
    assert await names(scheduler, "cengkareng", regency=regency) == ([], 0)


@pytest.mark.parametrize("query", ["ab", "  a ", "x" * 81, "...", "( ) ,"])
async def test_a_query_too_short_too_long_or_without_words_is_refused(
    scheduler: Scheduler, query: str
) -> None:
    reply = await scheduler.ask(FacilitySearchRequest(query=query))
    assert (reply.facilities, reply.total) == ([], 0)
    assert error_code(reply.error) is ErrorCode.INVALID


async def test_like_wildcards_typed_by_the_user_are_taken_literally(
    scheduler: Scheduler, pool: asyncpg.Pool
) -> None:
    token = secrets.token_hex(4)
    await add(pool, "Klinik 100%_Sehat", "Jl. Uji", f"Kota Uji {token}")
    assert await names(scheduler, "%%%") == ([], 0)  # not every facility
    assert await names(scheduler, f"100%_sehat {token}") == (["Klinik 100%_Sehat"], 1)
    assert await names(scheduler, f"1000sehat {token}") == ([], 0)  # at most similar


async def test_abbreviations_match_the_words_they_stand_for_both_ways(
    scheduler: Scheduler, pool: asyncpg.Pool
) -> None:
    token = secrets.token_hex(4)
    await add(
        pool,
        "RSUD Cengkareng",
        "Jl. Bumi Cengkareng Indah No. 1",
        f"Kota Adm. Jakarta Barat {token}",
    )
    await add(pool, "Puskesmas Cibinong", "Jl. Mayor Oking No. 2", f"Kab. Bogor {token}")
    await add(pool, "PKM Tebet", "Jl. Prof. Soepomo No. 54", f"Kota Jakarta Selatan {token}")
    await add(pool, "Rumah Sakit Umum Daerah Tebet", "Jl. Tebet Raya", f"Jakarta Selatan {token}")

    assert await names(scheduler, f"Rumah Sakit Cengkareng {token}") == (["RSUD Cengkareng"], 1)
    assert await names(scheduler, f"RS cengkareng {token}") == (["RSUD Cengkareng"], 1)
    assert await names(scheduler, f"pkm cibinong kabupaten bogor {token}") == (
        ["Puskesmas Cibinong"],
        1,
    )
    assert await names(scheduler, f"Pusk. Cibinong, Kab. Bogor {token}") == (
        ["Puskesmas Cibinong"],
        1,
    )
    assert await names(scheduler, f"puskesmas tebet {token}") == (["PKM Tebet"], 1)
    # `Kota` is optional: both Tebet facilities match, the one in a "Kota ..." regency first.
    assert await names(scheduler, f"tebet kota jakarta selatan {token}") == (
        ["PKM Tebet", "Rumah Sakit Umum Daerah Tebet"],
        2,
    )
    assert await names(scheduler, f"RSUD Tebet {token}") == (["Rumah Sakit Umum Daerah Tebet"], 1)


async def test_a_typo_offers_the_closest_few(scheduler: Scheduler, pool: asyncpg.Pool) -> None:
    token = secrets.token_hex(4)
    regency = f"Kota Uji {token}"
    await add(pool, "Puskesmas Kecamatan Cengkareng", "Jl. Kamal Raya No. 8", regency)
    await add(pool, "Puskesmas Cibinong", "Jl. Mayor Oking No. 2", regency)
    await add(pool, "Klinik Sehat", "Jl. Merdeka", regency)

    assert await closest(scheduler, "puskesmas cengkarang", regency=regency) == [
        "Puskesmas Kecamatan Cengkareng"
    ]
    assert await closest(scheduler, f"pkm cibinog {token}") == ["Puskesmas Cibinong"]
    assert await closest(scheduler, f"rumah sakit jiwa {token}") == []


class Explaining:
    """A connection that records the plan of each query before running it."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.plans: list[str] = []

    async def fetch(self, sql: str, *args: object) -> list[asyncpg.Record]:
        plan = await self.conn.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", *args)
        self.plans.append(json.dumps(plan))
        return await self.conn.fetch(sql, *args)

    async def execute(self, sql: str, *args: object) -> str:
        return await self.conn.execute(sql, *args)


async def test_the_trigram_index_answers_the_search(pool: asyncpg.Pool) -> None:
    # Planner costs on a small table prefer reading it whole: forbid that, and the plan shows
    # whether the index can answer the repository's query at all (its expression must match).
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL enable_seqscan = off")
        explaining = Explaining(conn)
        patterns = ["%puskesmas%", "%tebet%"]
        await repo.search_facilities(
            explaining, patterns, exact="puskesmas tebet", regency=None, limit=10
        )  # type: ignore[arg-type]
        await repo.similar_facilities(
            explaining, ["puskesmas", "tebte"], threshold=0.5, regency=None, limit=5
        )  # type: ignore[arg-type]
    assert "facility_search_idx" in explaining.plans[0], explaining.plans[0]
    assert "facility_search_idx" in explaining.plans[1], explaining.plans[1]
