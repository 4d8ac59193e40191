"""`vaksin operator add NAME --role ROLE | list | disable NAME | enable NAME`: the console's
accounts, on the console's own schema. `add` prints a one-time password, changed at the first
login; every change is in the console's audit log with who ran the command."""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from services.common.cli import cli_pool, cli_user
from services.common.settings import Settings
from services.console import accounts
from services.console import repository as repo
from services.console.security import Passwords, Role


def add_parsers(sub: argparse._SubParsersAction) -> None:
    operator = sub.add_parser("operator", help="accounts of the operators' console (/console/)")
    op_sub = operator.add_subparsers(dest="action", required=True)
    add = op_sub.add_parser("add", help="add an account: prints its one-time password")
    add.add_argument("name", help="account name: 2-32 of a-z 0-9 . _ -")
    add.add_argument("--role", required=True, choices=[r.value for r in Role],
                     help="intake: the queue; scheduler: facilities and sessions; viewer: "
                          "figures; admin: all, desks and the audit log")  # fmt: skip
    op_sub.add_parser("list", help="the accounts, their roles and states")
    for action, text in (("disable", "stop an account (its sessions end at once)"),
                         ("enable", "let a disabled account sign in again")):  # fmt: skip
        one = op_sub.add_parser(action, help=text)
        one.add_argument("name")


async def run_operator(
    settings: Settings,
    args: argparse.Namespace,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
    passwords: Passwords | None = None,
) -> int:
    pool = await cli_pool(settings, err)
    if pool is None:
        return 1
    try:
        if args.action == "add":
            try:
                new = await accounts.add(
                    pool, passwords or Passwords(), args.name, args.role, cli_user()
                )
            except accounts.AccountError as e:
                print(e, file=err)
                return 1
            url = settings.runtime().get("console_url", "the console (console_url)")
            print(
                f"account {new.account.name} ({new.account.role}) added\n"
                f"one-time password  {new.password}\n"
                f"sign in at {url}; the password must be changed at the first login",
                file=out,
            )
            return 0
        async with pool.acquire() as conn:
            if args.action == "list":
                found = await repo.accounts(conn)
                if not found:
                    print("no accounts (add one with `vaksin operator add NAME --role ROLE`)",
                          file=out)  # fmt: skip
                for a in found:
                    state = "disabled" if a.disabled_at else (
                        "must change password" if a.must_change_password else "active")  # fmt: skip
                    print(f"{a.name:<32} {a.role:<10} {state}", file=out)
                return 0
            disable = args.action == "disable"
            if not await repo.set_disabled(conn, args.name, disable):
                print(f"no account {args.name}", file=err)
                return 1
            await repo.audit(conn, account=cli_user(), role=None, action=f"account.{args.action}",
                             target=args.name, outcome="ok")  # fmt: skip
            print(f"account {args.name} {args.action}d", file=out)
            return 0
    finally:
        await pool.close()
