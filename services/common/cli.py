"""What every command-line tool does the same way: reach the database on a small pool of its own,
and name the person at the keyboard in what it records."""

from __future__ import annotations

import getpass
from typing import TextIO

import asyncpg

from services.common.db import create_pool
from services.common.settings import Settings


async def cli_pool(settings: Settings, err: TextIO, max_size: int = 1) -> asyncpg.Pool | None:
    """A pool for one command (the caller closes it), or None with the reason on `err`."""
    try:
        return await create_pool(settings.database_url or "", min_size=1, max_size=max_size)
    except (OSError, asyncpg.PostgresError) as e:
        print(f"cannot connect to the database: {e}", file=err)
        return None


def cli_user(unknown: str = "cli") -> str:
    """`cli:<login>` of whoever runs the command, for the records it writes (`unknown` when the
    system cannot tell)."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return unknown
