"""`vaksin screening load FILE.yaml|json` and `vaksin screening list`: the operator's side of rule
sets. A file is validated completely before anything is stored, and a refused one is reported
with the reason; a loaded rule set never changes (screenings refer to it), so a new version of
the rules is a new id with its own effective date."""

from __future__ import annotations

import sys
from datetime import date, timedelta
from pathlib import Path
from typing import TextIO

from services.common.cli import cli_pool
from services.common.clock import jakarta_today as today_in_indonesia
from services.common.settings import Settings
from services.screening import domain, repository, rules
from services.screening.store import ensure_shipped


def _read(path: Path) -> tuple[str, rules.Format]:
    fmt = rules.format_of(path.name)
    if fmt is None:
        raise ValueError(f"{path}: unknown file type; a rule set is a .yaml, .yml or .json file")
    try:
        return path.read_bytes().decode("utf-8-sig"), fmt
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ValueError(f"{path}: is a directory") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text") from None
    except OSError as e:
        raise ValueError(f"{path}: cannot read: {e.strerror or e}") from None


def _period(entry: domain.Entry, ends: date | None) -> str:
    if ends is None:
        return f"from {entry.effective_from.isoformat()}"
    if ends <= entry.effective_from:
        return f"never (replaced before {entry.effective_from.isoformat()})"
    last = ends - timedelta(days=1)
    return f"from {entry.effective_from.isoformat()} to {last.isoformat()}"


async def load_rule_set_file(
    settings: Settings,
    path: Path,
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
    today: date | None = None,
) -> int:
    """Validate and store a rule set; returns the exit code (0 loaded or unchanged, 1 refused)."""
    out, err = out or sys.stdout, err or sys.stderr
    try:
        text, fmt = _read(path)
        rule_set = rules.parse_text(text, fmt)
    except (ValueError, rules.RuleSetError) as e:
        reason = f"{path}: {e}" if isinstance(e, rules.RuleSetError) else str(e)
        print(f"{reason}\nrule set refused; nothing loaded", file=err)
        return 1
    pool = await cli_pool(settings, err)
    if pool is None:
        return 1
    try:
        async with pool.acquire() as conn:
            await ensure_shipped(conn)
            loaded = await repository.add_rule_set(conn, rule_set)
            entries = await repository.entries(conn)
    finally:
        await pool.close()
    if loaded is repository.Loaded.CONFLICT:
        print(
            f"{path}: a rule set '{rule_set.id}' is already loaded with other content; a loaded "
            "rule set never changes (screenings refer to it): give this version a new id\n"
            "rule set refused; nothing loaded",
            file=err,
        )
        return 1
    what = "loaded" if loaded is repository.Loaded.NEW else "already loaded, unchanged:"
    print(
        f"{what} {rule_set.id} ({rule_set.vaccine}): {len(rule_set.questions)} questions, "
        f"{len(rule_set.rules)} rules",
        file=out,
    )
    periods = dict((e.id, (e, ends)) for e, ends in domain.periods(entries))
    entry, ends = periods[rule_set.id]
    print(f"{rule_set.id} is in force {_period(entry, ends)}", file=out)
    _print_today(entries, today or today_in_indonesia(), out)
    return 0


def _print_today(entries: list[domain.Entry], today: date, out: TextIO) -> None:
    try:
        current = domain.in_force(entries, today)
    except domain.ScreeningError:
        print(f"in force today ({today.isoformat()}): none", file=out)
        return
    print(
        f"in force today ({today.isoformat()}): {current.id}, "
        f"since {current.effective_from.isoformat()}",
        file=out,
    )


async def list_rule_sets(
    settings: Settings,
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
    today: date | None = None,
) -> int:
    """Every rule set with the dates it governs; `*` marks the one in force today."""
    out, err = out or sys.stdout, err or sys.stderr
    today = today or today_in_indonesia()
    pool = await cli_pool(settings, err)
    if pool is None:
        return 1
    try:
        async with pool.acquire() as conn:
            await ensure_shipped(conn)
            entries = await repository.entries(conn)
    finally:
        await pool.close()
    try:
        current: str | None = domain.in_force(entries, today).id
    except domain.ScreeningError:
        current = None
    width = max([len(e.id) for e in entries] + [len("rule set")])
    print(f"  {'rule set':<{width}}  {'vaccine':<12} in force", file=out)
    for entry, ends in domain.periods(entries):
        mark = "*" if entry.id == current else " "
        print(f"{mark} {entry.id:<{width}}  {entry.vaccine:<12} {_period(entry, ends)}", file=out)
    print(
        f"* = in force today ({today.isoformat()})" if current else "none is in force today",
        file=out,
    )
    return 0
