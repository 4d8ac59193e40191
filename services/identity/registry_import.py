"""`vaksin registry import FILE.csv`: load the health-worker registry (SI-SDMK target list).

All or nothing: every row is checked first and any bad row stops the import with a line-numbered
list of problems; a good file is merged (by NIK hash) in one transaction. Only hashes and masked
forms of NIK and phone reach the database, and no NIK or phone is ever echoed back.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TextIO

import asyncpg

from services.common.csvfile import read_csv_text
from services.common.settings import Settings
from services.identity import domain, repository

PROGRESS_EVERY = 10_000


async def import_registry_file(
    settings: Settings, path: Path, *, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Validate and import a registry CSV; returns the process exit code (0 ok, 1 refused)."""
    out = out or sys.stdout
    err = err or sys.stderr
    started = time.monotonic()
    try:
        text = read_csv_text(path)
    except ValueError as e:
        print(e, file=err)
        return 1
    if not settings.nik_pepper:
        print("NIK_PEPPER is not set: cannot hash the registry", file=err)
        return 1

    def progress(done: int) -> None:
        print(f"checked {done} rows", file=err, flush=True)

    rows, errors = domain.parse_registry_csv(text, progress=progress, progress_every=PROGRESS_EVERY)
    if errors:
        for problem in errors:
            print(problem, file=err)
        bad_lines = len({p.line for p in errors})
        print(f"{path}: {bad_lines} bad row(s); nothing imported", file=err)
        return 1
    unknown = [r.line for r in rows if r.nik.unknown_region]
    if unknown:
        shown = ", ".join(map(str, unknown[:10])) + (", ..." if len(unknown) > 10 else "")
        print(
            f"warning: {len(unknown)} NIK(s) with a province code not in the table "
            f"(imported anyway): line {shown}",
            file=err,
        )
    records = [domain.person_record(settings.nik_pepper, row) for row in rows]
    if len(records) >= PROGRESS_EVERY:
        print(f"writing {len(records)} rows", file=err, flush=True)
    try:
        conn = await asyncpg.connect(settings.database_url)
    except (OSError, asyncpg.PostgresError) as e:
        print(f"cannot connect to the database: {e}", file=err)
        return 1
    try:
        counts = await repository.upsert_persons(conn, records)
    except asyncpg.PostgresError as e:
        print(f"import failed, nothing imported: {e}", file=err)
        return 1
    finally:
        await conn.close()
    print(f"imported {len(records)} rows: {counts.new} new, {counts.updated} updated", file=out)
    if len(records) >= PROGRESS_EVERY:
        print(f"done in {time.monotonic() - started:.1f}s", file=err)
    return 0
