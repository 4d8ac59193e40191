"""All SQL of the console schema: accounts, sessions, the login throttle, the audit log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from services.console.security import ThrottleState


@dataclass(frozen=True)
class Account:
    id: int
    name: str
    role: str
    password_hash: str
    must_change_password: bool
    disabled_at: datetime | None
    created_at: datetime


@dataclass(frozen=True)
class Session:
    account_id: int
    name: str
    role: str
    must_change_password: bool
    csrf_token: str
    last_seen_at: datetime
    expires_at: datetime


_ACCOUNT = "id, name, role, password_hash, must_change_password, disabled_at, created_at"


async def add_account(
    conn: asyncpg.Connection, name: str, role: str, password_hash: str, by: str
) -> Account | None:
    """None when the name is taken."""
    row = await conn.fetchrow(
        f"""INSERT INTO console.account (name, role, password_hash, created_by)
            VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING RETURNING {_ACCOUNT}""",
        name,
        role,
        password_hash,
        by,
    )
    return Account(**dict(row)) if row else None


async def account(conn: asyncpg.Connection, name: str) -> Account | None:
    row = await conn.fetchrow(f"SELECT {_ACCOUNT} FROM console.account WHERE name = $1", name)
    return Account(**dict(row)) if row else None


async def accounts(conn: asyncpg.Connection) -> list[Account]:
    rows = await conn.fetch(f"SELECT {_ACCOUNT} FROM console.account ORDER BY name")
    return [Account(**dict(r)) for r in rows]


async def set_password(
    conn: asyncpg.Connection, account_id: int, password_hash: str, *, must_change: bool
) -> None:
    await conn.execute(
        """UPDATE console.account SET password_hash = $2, must_change_password = $3,
                  password_changed_at = now() WHERE id = $1""",
        account_id,
        password_hash,
        must_change,
    )


async def set_disabled(conn: asyncpg.Connection, name: str, disabled: bool) -> bool:
    done = await conn.fetchval(
        """UPDATE console.account SET disabled_at = CASE WHEN $2 THEN now() END
           WHERE name = $1 RETURNING id""",
        name,
        disabled,
    )
    if done is not None and disabled:
        await conn.execute("DELETE FROM console.session WHERE account_id = $1", done)
    return done is not None


# --- sessions ----------------------------------------------------------------------------------


async def create_session(
    conn: asyncpg.Connection,
    token_hash: bytes,
    account_id: int,
    csrf_token: str,
    address: str,
    expires_at: datetime,
) -> None:
    await conn.execute(
        """INSERT INTO console.session (token_hash, account_id, csrf_token, address, expires_at)
           VALUES ($1, $2, $3, $4, $5)""",
        token_hash,
        account_id,
        csrf_token,
        address,
        expires_at,
    )


async def session(
    conn: asyncpg.Connection, token_hash: bytes, now: datetime, idle_seconds: float
) -> Session | None:
    """The live session of a token (not expired, not idle too long, account enabled), its
    last_seen_at moved on (at most once a minute: not a write per page)."""
    row = await conn.fetchrow(
        """WITH s AS (
               SELECT s.token_hash, s.account_id, a.name, a.role, a.must_change_password,
                      s.csrf_token, s.last_seen_at, s.expires_at
               FROM console.session s JOIN console.account a ON a.id = s.account_id
               WHERE s.token_hash = $1 AND s.expires_at > $2 AND a.disabled_at IS NULL
                 AND s.last_seen_at > $2 - make_interval(secs => $3)
           ), touched AS (
               UPDATE console.session t SET last_seen_at = $2 FROM s
               WHERE t.token_hash = s.token_hash AND s.last_seen_at < $2 - interval '1 minute'
           )
           SELECT account_id, name, role, must_change_password, csrf_token, last_seen_at,
                  expires_at FROM s""",
        token_hash,
        now,
        idle_seconds,
    )
    return Session(**dict(row)) if row else None


async def end_session(conn: asyncpg.Connection, token_hash: bytes) -> None:
    await conn.execute("DELETE FROM console.session WHERE token_hash = $1", token_hash)


async def end_other_sessions(conn: asyncpg.Connection, account_id: int, keep: bytes) -> None:
    await conn.execute(
        "DELETE FROM console.session WHERE account_id = $1 AND token_hash <> $2", account_id, keep
    )


async def purge_sessions(pool: asyncpg.Pool) -> int:
    """Sessions past their end, and throttle rows with nothing left to say."""
    async with pool.acquire() as conn:
        done = await conn.execute("DELETE FROM console.session WHERE expires_at < now()")
        await conn.execute(
            """DELETE FROM console.throttle WHERE (locked_until IS NULL OR locked_until < now())
               AND updated_at < now() - interval '1 day'"""
        )
    return int(done.split()[-1])


# --- the login throttle ------------------------------------------------------------------------


async def throttle_states(conn: asyncpg.Connection, keys: list[str]) -> dict[str, ThrottleState]:
    rows = await conn.fetch(
        """SELECT key, failures, window_started_at, locked_until FROM console.throttle
           WHERE key = any($1::text[])""",
        keys,
    )
    return {
        r["key"]: ThrottleState(r["failures"], r["window_started_at"], r["locked_until"])
        for r in rows
    }


async def lock_throttle(conn: asyncpg.Connection, key: str) -> ThrottleState:
    """The key's state, its row locked until the transaction ends (created when missing)."""
    await conn.execute(
        """INSERT INTO console.throttle (key, failures) VALUES ($1, 0)
           ON CONFLICT (key) DO NOTHING""",
        key,
    )
    row = await conn.fetchrow(
        """SELECT failures, window_started_at, locked_until FROM console.throttle
           WHERE key = $1 FOR UPDATE""",
        key,
    )
    assert row is not None
    return ThrottleState(row["failures"], row["window_started_at"], row["locked_until"])


async def save_throttle(conn: asyncpg.Connection, key: str, state: ThrottleState) -> None:
    await conn.execute(
        """UPDATE console.throttle SET failures = $2, window_started_at = $3, locked_until = $4,
                  updated_at = now() WHERE key = $1""",
        key,
        state.failures,
        state.window_started_at,
        state.locked_until,
    )


async def clear_throttle(conn: asyncpg.Connection, key: str) -> None:
    await conn.execute("DELETE FROM console.throttle WHERE key = $1", key)


# --- the audit log -----------------------------------------------------------------------------


async def audit(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    account: str | None,
    role: str | None,
    action: str,
    outcome: str,
    target: str | None = None,
    detail: str | None = None,
    address: str | None = None,
) -> None:
    await conn.execute(
        """INSERT INTO console.audit (account, role, action, target, outcome, detail, address)
           VALUES ($1, $2, $3, $4, $5, $6, $7)""",
        account,
        role,
        action,
        target,
        outcome,
        detail,
        address,
    )


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    account: str | None
    role: str | None
    action: str
    target: str | None
    outcome: str
    detail: str | None
    address: str | None


async def audit_entries(
    conn: asyncpg.Connection, *, account: str | None = None, limit: int = 200
) -> list[AuditEntry]:
    rows = await conn.fetch(
        """SELECT at, account, role, action, target, outcome, detail, address
           FROM console.audit WHERE ($1::text IS NULL OR account = $1)
           ORDER BY at DESC, id DESC LIMIT $2""",
        account,
        limit,
    )
    return [AuditEntry(**dict(r)) for r in rows]


async def stats(pool: asyncpg.Pool) -> dict[str, int]:
    """The counts of `vaksin stats`: accounts by role (and disabled ones), live sessions, and
    the last 24 hours of the audit log (actions, refused ones, failed logins)."""
    row = await pool.fetchrow(
        """SELECT a."accounts.intake", a."accounts.scheduler", a."accounts.viewer",
                  a."accounts.admin", a.accounts_disabled, s.sessions_live, l.actions_24h,
                  l.refused_24h, l.failed_logins_24h
           FROM (SELECT count(*) FILTER (WHERE role = 'intake' AND disabled_at IS NULL)
                            AS "accounts.intake",
                        count(*) FILTER (WHERE role = 'scheduler' AND disabled_at IS NULL)
                            AS "accounts.scheduler",
                        count(*) FILTER (WHERE role = 'viewer' AND disabled_at IS NULL)
                            AS "accounts.viewer",
                        count(*) FILTER (WHERE role = 'admin' AND disabled_at IS NULL)
                            AS "accounts.admin",
                        count(*) FILTER (WHERE disabled_at IS NOT NULL) AS accounts_disabled
                 FROM console.account) a,
                (SELECT count(*) AS sessions_live FROM console.session
                 WHERE expires_at > now()) s,
                (SELECT count(*) AS actions_24h,
                        count(*) FILTER (WHERE outcome = 'refused') AS refused_24h,
                        count(*) FILTER (WHERE action = 'login' AND outcome = 'refused')
                            AS failed_logins_24h
                 FROM console.audit WHERE at > now() - interval '24 hours') l"""
    )
    assert row is not None
    return dict(row)
