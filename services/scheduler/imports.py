"""Storing a checked facilities or sessions file: what `vaksin facilities|sessions import` and
scheduler.rpc.facilities_import|sessions_import (the operators' console) both do, after
`domain.parse_facilities_csv` / `parse_sessions_csv` found no problem in the file.

All or nothing: a file is merged in one transaction (facilities by code, sessions by facility,
date, start and vaccine), so a re-import changes what changed and duplicates nothing; sessions
are checked against the database first (unknown facilities, a capacity below a session's
bookings or the seats held right now), and any problem refuses the whole file with line numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from services.scheduler import domain
from services.scheduler import repository as repo


@dataclass(frozen=True)
class Stored:
    counts: repo.Counts
    woken: int = 0  # automatic bookings waiting for a seat that try again now


class Refused(Exception):
    """Problems only the database can tell; nothing was imported."""

    def __init__(self, errors: list[domain.RowError]) -> None:
        super().__init__(f"{len(errors)} problem(s)")
        self.errors = errors


async def store_facilities(pool: asyncpg.Pool, rows: list[domain.FacilityRow]) -> Stored:
    async with pool.acquire() as conn, conn.transaction():
        return Stored(await repo.upsert_facilities(conn, rows))


async def _check_sessions(
    conn: asyncpg.Connection, rows: list[domain.SessionRow]
) -> list[domain.RowError]:
    known = await repo.known_facilities(conn, (r.facility_code for r in rows))
    errors = [
        domain.RowError(
            r.line,
            f"facility_code: no facility {r.facility_code} "
            "(import it with `vaksin facilities import` first)",
        )
        for r in rows
        if r.facility_code not in known
    ]
    if errors:
        return errors
    await repo.stage_sessions(conn, rows)
    by_line = {r.line: r for r in rows}
    for existing in await repo.lock_existing_sessions(conn):
        problem = domain.capacity_problem(
            by_line[existing.line], existing.booked, existing.reserved
        )
        if problem:
            errors.append(domain.RowError(existing.line, problem))
    return errors


async def store_sessions(pool: asyncpg.Pool, rows: list[domain.SessionRow]) -> Stored:
    """Merge the sessions, or raise Refused with the problems (nothing imported)."""
    async with pool.acquire() as conn:
        async with conn.transaction():
            errors = await _check_sessions(conn, rows)
            if errors:
                raise Refused(errors)
            counts = await repo.merge_sessions(conn)
        # Automatic bookings still looking for a seat at these facilities try again now.
        woken = await repo.wake_plans(conn, {r.facility_code for r in rows})
    return Stored(counts, woken)
