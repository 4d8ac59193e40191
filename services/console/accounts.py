"""Operators' accounts and their sessions: `vaksin operator add` (a one-time password, changed at
the first login), login with the throttle per account name and per address, server-side
sessions that end when idle or at their absolute end, password changes. Every outcome that
matters is written to the audit log by the caller that knows the request (web.py, cli.py), or
here where the transaction is (a login)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import asyncpg

from services.console import repository as repo
from services.console import security
from services.console.security import Passwords, Role

SESSION_HOURS = 12  # absolute end of a session, whatever the activity
NAME_IN_AUDIT = 64


class AccountError(Exception):
    pass


@dataclass(frozen=True)
class NewAccount:
    account: repo.Account
    password: str  # shown once


async def add(
    pool: asyncpg.Pool, passwords: Passwords, name: str, role: str, by: str
) -> NewAccount:
    problem = security.account_name_problem(name)
    if problem:
        raise AccountError(f"account name: {problem}")
    try:
        role = Role(role).value
    except ValueError:
        raise AccountError(f"role is one of {', '.join(r.value for r in Role)}") from None
    password = security.one_time_password()
    async with pool.acquire() as conn, conn.transaction():
        account = await repo.add_account(conn, name, role, passwords.hash(password), by)
        if account is None:
            raise AccountError(f"there is an account {name} already")
        await repo.audit(
            conn, account=by, role=None, action="account.add", target=name, outcome="ok",
            detail=f"role {role}",
        )  # fmt: skip
    return NewAccount(account, password)


class LoginRefused(StrEnum):
    INVALID = "invalid"  # unknown name, wrong password or disabled account: told alike
    THROTTLED = "throttled"


@dataclass(frozen=True)
class LoggedIn:
    token: str  # the cookie's value; only its digest is stored
    csrf_token: str
    account: repo.Account


@dataclass(frozen=True)
class Refusal:
    reason: LoginRefused
    retry_after: int = 0


def _keys(name: str, address: str) -> tuple[str, str]:
    """Throttle keys: the account name by its digest (a name typed at a failed login may be
    anything, a NIK by mistake), the address as is."""
    return f"account:{security.digest(name[:NAME_IN_AUDIT]).hex()[:32]}", f"address:{address}"


def _typed(name: str) -> str:
    """A name as typed at a failed login, for the audit log: cut, and a NIK or a phone number
    typed by mistake masked."""
    return security.mask_digits(name[:NAME_IN_AUDIT])


async def login(
    pool: asyncpg.Pool,
    passwords: Passwords,
    name: str,
    password: str,
    address: str,
    now: datetime,
) -> LoggedIn | Refusal:
    name = name.strip().lower()
    account_key, address_key = _keys(name, address)
    async with pool.acquire() as conn:
        states = await repo.throttle_states(conn, [account_key, address_key])
        wait = security.retry_after(list(states.values()), now)
        if wait:
            await repo.audit(
                conn, account=_typed(name), role=None, action="login",
                outcome="refused", detail="throttled", address=address,
            )  # fmt: skip
            return Refusal(LoginRefused.THROTTLED, wait)
        account = await repo.account(conn, name)
    # Argon2 takes tens of milliseconds: outside any transaction, for an unknown name too.
    good = passwords.verify(account.password_hash if account else None, password)
    if account is None or account.disabled_at is not None or not good:
        async with pool.acquire() as conn, conn.transaction():
            for key, policy in (
                (account_key, security.ACCOUNT_POLICY),
                (address_key, security.ADDRESS_POLICY),
            ):
                state = await repo.lock_throttle(conn, key)
                await repo.save_throttle(conn, key, security.after_failure(state, now, policy))
            await repo.audit(
                conn, account=_typed(name), role=account.role if account else None,
                action="login", outcome="refused",
                detail="disabled" if account and good else "wrong name or password",
                address=address,
            )  # fmt: skip
        return Refusal(LoginRefused.INVALID)
    token, csrf = security.new_token(), security.new_token()
    async with pool.acquire() as conn, conn.transaction():
        if passwords.needs_rehash(account.password_hash):
            await repo.set_password(
                conn, account.id, passwords.hash(password),
                must_change=account.must_change_password,
            )  # fmt: skip
        await repo.clear_throttle(conn, account_key)
        await repo.create_session(
            conn, security.digest(token), account.id, csrf, address,
            now + timedelta(hours=SESSION_HOURS),
        )  # fmt: skip
        await repo.audit(
            conn, account=account.name, role=account.role, action="login", outcome="ok",
            address=address,
        )  # fmt: skip
    return LoggedIn(token, csrf, account)


async def current(
    pool: asyncpg.Pool, token: str | None, now: datetime, idle: timedelta
) -> repo.Session | None:
    if not token or len(token) > 100:
        return None
    async with pool.acquire() as conn:
        return await repo.session(conn, security.digest(token), now, idle.total_seconds())


async def logout(pool: asyncpg.Pool, token: str) -> None:
    async with pool.acquire() as conn:
        await repo.end_session(conn, security.digest(token))


async def change_password(
    pool: asyncpg.Pool,
    passwords: Passwords,
    session: repo.Session,
    token: str,
    old: str,
    new: str,
) -> str | None:
    """None when changed (other sessions of the account end), else what is wrong."""
    async with pool.acquire() as conn:
        account = await repo.account(conn, session.name)
    if account is None or not passwords.verify(account.password_hash, old):
        return "the current password is wrong"
    problem = security.password_problem(new, account.name)
    if problem:
        return f"the new password must be {problem}"
    if passwords.verify(account.password_hash, new):
        return "the new password must differ from the current one"
    async with pool.acquire() as conn, conn.transaction():
        await repo.set_password(conn, account.id, passwords.hash(new), must_change=False)
        await repo.end_other_sessions(conn, account.id, security.digest(token))
    return None
