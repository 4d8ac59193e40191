"""`vaksin facilities import FILE.csv`, `vaksin sessions import FILE.csv` and `vaksin sessions
cancel ID`: the operator's side of places and times.

Imports follow the registry's rules: every row is checked first and any problem stops the import
with a line-numbered list; a good file is merged in one transaction (services/scheduler/imports.py,
shared with the operators' console), so a re-import changes what changed and duplicates nothing.
A session's capacity is never set below its bookings (nor below the seats held right now).
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import asyncpg

from services.common.cli import cli_pool
from services.common.csvfile import read_csv_text
from services.common.settings import Settings
from services.scheduler import domain, imports, jobs
from services.scheduler import repository as repo

PROGRESS_EVERY = 10_000


def _refuse(path: Path, errors: list[domain.RowError], err: TextIO) -> int:
    for problem in sorted(errors, key=lambda p: p.line):
        print(problem, file=err)
    bad_lines = len({p.line for p in errors})
    print(f"{path}: {bad_lines} bad row(s); nothing imported", file=err)
    return 1


def _progress(err: TextIO) -> Callable[[int], None]:
    def report(done: int) -> None:
        print(f"checked {done} rows", file=err, flush=True)

    return report


async def import_facilities_file(
    settings: Settings, path: Path, *, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Validate and import a facilities CSV; returns the exit code (0 ok, 1 refused)."""
    out, err = out or sys.stdout, err or sys.stderr
    try:
        text = read_csv_text(path)
    except ValueError as e:
        print(e, file=err)
        return 1
    rows, errors = domain.parse_facilities_csv(
        text, progress=_progress(err), progress_every=PROGRESS_EVERY
    )
    if errors:
        return _refuse(path, errors, err)
    pool = await cli_pool(settings, err, max_size=2)
    if pool is None:
        return 1
    try:
        counts = (await imports.store_facilities(pool, rows)).counts
    except asyncpg.PostgresError as e:
        print(f"import failed, nothing imported: {e}", file=err)
        return 1
    finally:
        await pool.close()
    print(
        f"imported {len(rows)} facilities: {counts.new} new, {counts.updated} updated, "
        f"{counts.unchanged} unchanged",
        file=out,
    )
    return 0


async def import_sessions_file(
    settings: Settings, path: Path, *, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Validate and import a sessions CSV; returns the exit code (0 ok, 1 refused)."""
    out, err = out or sys.stdout, err or sys.stderr
    started = time.monotonic()
    try:
        text = read_csv_text(path)
    except ValueError as e:
        print(e, file=err)
        return 1
    rows, errors = domain.parse_sessions_csv(
        text, progress=_progress(err), progress_every=PROGRESS_EVERY
    )
    if errors:
        return _refuse(path, errors, err)
    pool = await cli_pool(settings, err, max_size=2)
    if pool is None:
        return 1
    try:
        stored = await imports.store_sessions(pool, rows)
        counts, woken = stored.counts, stored.woken
    except imports.Refused as refused:
        return _refuse(path, refused.errors, err)
    except asyncpg.PostgresError as e:
        print(f"import failed, nothing imported: {e}", file=err)
        return 1
    finally:
        await pool.close()
    print(
        f"imported {len(rows)} sessions: {counts.new} new, {counts.updated} updated, "
        f"{counts.unchanged} unchanged",
        file=out,
    )
    if woken:
        print(f"{woken} automatic booking(s) waiting for a seat will try again now", file=out)
    if len(rows) >= PROGRESS_EVERY:
        print(f"done in {time.monotonic() - started:.1f}s", file=err)
    return 0


async def cancel_session(
    settings: Settings,
    session_id: int,
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
    now: datetime | None = None,
) -> int:
    """Cancel a session: its bookings are cancelled, the people told and moved to a new session
    of the same facility (see jobs.cancel_session)."""
    out, err = out or sys.stdout, err or sys.stderr
    pool = await cli_pool(settings, err, max_size=2)
    if pool is None:
        return 1
    try:
        done = await jobs.cancel_session(pool, session_id, settings, now or datetime.now(UTC))
        if done is None:
            async with pool.acquire() as conn:
                info = await repo.session_info(conn, session_id)
    finally:
        await pool.close()
    if done is None:
        reason = "is cancelled already" if info is not None else "does not exist"
        print(f"session {session_id} {reason}", file=err)
        return 1
    s = done.session
    print(
        f"cancelled session {s.id}: {done.facility.name} ({done.facility.code}) "
        f"{s.day.isoformat()} {s.starts:%H:%M}-{s.ends:%H:%M} {s.vaccine}; "
        f"{done.bookings} booking(s) cancelled and their people told",
        file=out,
    )
    if done.bookings:
        outcomes = Counter(done.outcomes)
        print(
            f"moved to a new session: {outcomes[jobs.Attempt.BOOKED]}; "
            f"still looking (tried daily, people told): {outcomes[jobs.Attempt.WAITING]}; "
            f"had another booking already: {outcomes[jobs.Attempt.SUPERSEDED]}",
            file=out,
        )
    return 0
