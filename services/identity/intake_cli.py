"""`vaksin intake list|show|approve|reject`: operators work the queue of unlisted health workers
from a terminal, directly on the identity database (the same functions as the operator HTTP API).
Every action is recorded with the operator (`--by`, else `$USER`) and the time; the decision
reaches the user through identity's outbox, which the running identity service relays.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Awaitable, Callable
from typing import TextIO

import asyncpg

from services.common.cli import cli_pool
from services.common.contracts.operations import IntakeItem
from services.common.settings import Settings
from services.identity import intake

CHANNEL = "cli"


def default_operator() -> str:
    try:
        return os.environ.get("USER") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


async def _with_pool(
    settings: Settings, err: TextIO, work: Callable[[asyncpg.Pool], Awaitable[int]]
) -> int:
    """`work(pool)`, or exit code 1 with the reason on stderr."""
    pool = await cli_pool(settings, err)
    if pool is None:
        return 1
    try:
        return await work(pool)
    except intake.IntakeError as e:
        print(e.detail, file=err)
        return 1
    finally:
        await pool.close()


def _row(i: IntakeItem) -> tuple[str, ...]:
    return (
        str(i.id),
        f"{i.age_hours:.1f}h",
        i.status,
        i.masked_nik,
        i.masked_name,
        i.profession_label,
        i.facility_code,
        i.regency_code + ("?" if i.unknown_region else ""),
    )


def _table(rows: list[tuple[str, ...]]) -> str:
    header = ("ID", "AGE", "STATUS", "NIK", "NAME", "PROFESSION", "FACILITY", "REGENCY")
    widths = [max(len(r[c]) for r in [header, *rows]) for c in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
        for r in [header, *rows]
    )


async def list_intake(
    settings: Settings,
    *,
    status: str = "open",
    regency: str | None = None,
    facility: str | None = None,
    older_than_hours: float | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    if regency is not None and not (regency.isdigit() and len(regency) in (2, 4)):
        print("--regency is a province (2 digits) or regency code (4 digits), e.g. 3201", file=err)
        return 2
    if older_than_hours is not None and older_than_hours < 0:
        print("--older-than-hours is a number of hours >= 0", file=err)
        return 2

    async def work(pool: asyncpg.Pool) -> int:
        found = await intake.list_queue(
            pool,
            status=None if status == "all" else status,
            regency=regency,
            facility=facility,
            older_than_hours=older_than_hours,
            limit=1000,
        )
        if not found:
            print(f"no {'' if status == 'all' else status + ' '}intake requests", file=out)
            return 0
        print(_table([_row(i) for i in found]), file=out)
        return 0

    return await _with_pool(settings, err, work)


def _details(i: IntakeItem) -> str:
    sex = {"F": "female", "M": "male"}.get(i.sex, i.sex)
    region = f"{i.regency_code} ({i.province or 'province code not in the table'})"
    lines = [
        f"intake request {i.id}: {i.status}",
        f"  name          {i.name}",
        f"  NIK           {i.masked_nik}",
        f"  born          {i.birth_date.isoformat()} ({sex}, from the NIK)",
        f"  NIK region    {region}",
        f"  profession    {i.profession_label}",
        f"  facility      {i.facility_code}",
        f"  WhatsApp      {i.masked_phone} (language {i.lang})",
        f"  submitted     {i.submitted_at.isoformat(timespec='minutes')} ({i.age_hours:.1f} h ago)",
    ]
    if i.decided_at:
        lines.append(
            f"  decided       {i.status} by {i.decided_by} at "
            f"{i.decided_at.isoformat(timespec='minutes')}"
        )
    if i.reason:
        lines.append(f"  reason        {i.reason}")
    if i.person_id:
        lines.append(f"  person        {i.person_id}")
    lines.append("  history")
    for a in i.actions or []:
        why = f": {a.reason}" if a.reason else ""
        lines.append(
            f"    {a.at.isoformat(timespec='seconds')}  {a.action} by {a.operator} ({a.channel}){why}"
        )
    return "\n".join(lines)


async def show_intake(
    settings: Settings,
    intake_id: int,
    *,
    by: str | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    out, err = out or sys.stdout, err or sys.stderr

    async def work(pool: asyncpg.Pool) -> int:
        found = await intake.show(pool, intake_id, by=by or default_operator(), channel=CHANNEL)
        print(_details(found), file=out)
        return 0

    return await _with_pool(settings, err, work)


async def approve_intake(
    settings: Settings,
    intake_id: int,
    *,
    by: str | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    out, err = out or sys.stdout, err or sys.stderr

    async def work(pool: asyncpg.Pool) -> int:
        done = await intake.approve(pool, intake_id, by=by or default_operator(), channel=CHANNEL)
        print(
            f"approved intake request {done.id}: {done.masked_name} is in the registry for "
            f"{done.masked_phone} (person {done.person_id}); the user will be told",
            file=out,
        )
        return 0

    return await _with_pool(settings, err, work)


async def reject_intake(
    settings: Settings,
    intake_id: int,
    *,
    reason: str,
    by: str | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    out, err = out or sys.stdout, err or sys.stderr

    async def work(pool: asyncpg.Pool) -> int:
        done = await intake.reject(
            pool, intake_id, reason=reason, by=by or default_operator(), channel=CHANNEL
        )
        print(
            f"rejected intake request {done.id} ({done.masked_name}): {done.reason}; "
            "the user will be told",
            file=out,
        )
        return 0

    return await _with_pool(settings, err, work)


async def run_intake(settings: Settings, args: argparse.Namespace) -> int:
    """`vaksin intake <action>` as parsed by services/cli.py."""
    if args.action == "list":
        return await list_intake(
            settings,
            status=args.status,
            regency=args.regency,
            facility=args.facility,
            older_than_hours=args.older_than_hours,
        )
    if args.action == "show":
        return await show_intake(settings, args.id, by=args.by)
    if args.action == "approve":
        return await approve_intake(settings, args.id, by=args.by)
    return await reject_intake(settings, args.id, reason=args.reason, by=args.by)
