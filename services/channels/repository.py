"""The channels' SQL (schema `channels`): routes, menus, turns received, USSD sessions and
screens, the SMS queue, its per-number budget and opt-outs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import asyncpg

Executor = asyncpg.Connection | asyncpg.Pool


# --- which channel reaches a number unasked -----------------------------------------------------


async def set_channel(conn: Executor, number: str, channel: str) -> None:
    await conn.execute(
        """INSERT INTO channels.number_channel (number, channel) VALUES ($1, $2)
           ON CONFLICT (number) DO UPDATE SET channel = excluded.channel, updated_at = now()
           WHERE channels.number_channel.channel <> excluded.channel""",
        number,
        channel,
    )


async def menu(conn: Executor, channel: str, number: str) -> list[dict[str, str]]:
    options = await conn.fetchval(
        "SELECT options FROM channels.menu WHERE channel = $1 AND number = $2", channel, number
    )
    return options or []


async def set_menu(
    conn: Executor, channel: str, number: str, options: list[dict[str, str]]
) -> None:
    await conn.execute(
        """INSERT INTO channels.menu (channel, number, options) VALUES ($1, $2, $3)
           ON CONFLICT (channel, number) DO UPDATE
           SET options = excluded.options, updated_at = now()""",
        channel,
        number,
        options,
    )


@dataclass(frozen=True)
class Part:
    command_id: str
    index: int
    count: int
    lang: str
    step: str | None
    message: dict[str, Any]


async def add_part(conn: asyncpg.Connection, cmd: dict[str, Any]) -> list[Part] | None:
    """Keep one command of a turn; all the turn's parts, in order, once they are all here
    (None before). A command sent unasked is a turn of its own."""
    await conn.execute(
        """INSERT INTO channels.reply_part
               (command_id, channel, number, in_reply_to, idx, count, lang, step, message)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING""",
        cmd["command_id"],
        cmd["channel"],
        cmd["to"],
        cmd.get("in_reply_to"),
        cmd.get("index", 0),
        cmd.get("count", 1),
        cmd.get("lang", "id"),
        cmd.get("step"),
        cmd["message"],
    )
    if cmd.get("in_reply_to") is None:
        rows = await conn.fetch(
            "SELECT * FROM channels.reply_part WHERE command_id = $1", cmd["command_id"]
        )
    else:
        rows = await conn.fetch(
            """SELECT * FROM channels.reply_part WHERE in_reply_to = $1 AND number = $2
               ORDER BY idx""",
            cmd["in_reply_to"],
            cmd["to"],
        )
    parts = [
        Part(r["command_id"], r["idx"], r["count"], r["lang"], r["step"], r["message"])
        for r in rows
    ]
    if len({p.index for p in parts}) < (parts[0].count if parts else 1):
        return None
    return parts


async def purge(pool: asyncpg.Pool, now: datetime, keep_days: int = 8) -> int:
    """Forget turns and sessions long done, and finished SMS past the gateway's retries."""
    cutoff = now - timedelta(days=keep_days)
    deleted = 0
    for sql in (
        "DELETE FROM channels.reply_part WHERE received_at < $1",
        "DELETE FROM channels.ussd_session WHERE started_at < $1",
        """DELETE FROM channels.sms_outbound
           WHERE created_at < $1 AND status IN ('delivered', 'failed', 'skipped', 'submitted')""",
    ):
        status = await pool.execute(sql, cutoff)
        deleted += int(status.split()[-1])
    return deleted


# --- USSD ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UssdScreen:
    inbound_id: str
    pages: list[str]
    options: list[dict[str, str]]
    final: bool
    shown: bool
    updated_at: datetime


def _screen(row: asyncpg.Record | None) -> UssdScreen | None:
    if row is None:
        return None
    return UssdScreen(
        row["inbound_id"], row["pages"], row["options"], row["final"], row["shown"],
        row["updated_at"],
    )  # fmt: skip


async def set_screen(
    conn: Executor,
    number: str,
    inbound_id: str,
    pages: list[str],
    options: list[dict[str, str]],
    final: bool,
) -> None:
    await conn.execute(
        """INSERT INTO channels.ussd_screen (number, inbound_id, pages, options, final)
           VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (number) DO UPDATE
           SET inbound_id = excluded.inbound_id, pages = excluded.pages,
               options = excluded.options, final = excluded.final, shown = false,
               updated_at = now()
           WHERE channels.ussd_screen.inbound_id <> excluded.inbound_id""",
        number,
        inbound_id,
        pages,
        options,
        final,
    )


async def screen(conn: Executor, number: str) -> UssdScreen | None:
    return _screen(
        await conn.fetchrow("SELECT * FROM channels.ussd_screen WHERE number = $1", number)
    )


async def mark_shown(conn: Executor, number: str, inbound_id: str) -> None:
    await conn.execute(
        """UPDATE channels.ussd_screen SET shown = true
           WHERE number = $1 AND inbound_id = $2 AND NOT shown""",
        number,
        inbound_id,
    )


@dataclass(frozen=True)
class UssdSession:
    session_id: str
    number: str
    consumed: int
    inbound_id: str | None
    page: int


async def open_session(conn: Executor, session_id: str, number: str) -> UssdSession:
    """The aggregator's session, created on its first request."""
    row = await conn.fetchrow(
        """WITH new AS (
               INSERT INTO channels.ussd_session (session_id, number) VALUES ($1, $2)
               ON CONFLICT DO NOTHING RETURNING *)
           SELECT * FROM new UNION ALL
           SELECT * FROM channels.ussd_session WHERE session_id = $1 LIMIT 1""",
        session_id,
        number,
    )
    return UssdSession(
        row["session_id"], row["number"], row["consumed"], row["inbound_id"], row["page"]
    )


async def update_session(
    conn: Executor, session_id: str, *, consumed: int, inbound_id: str | None, page: int
) -> None:
    await conn.execute(
        """UPDATE channels.ussd_session
           SET consumed = $2, inbound_id = $3, page = $4, updated_at = now()
           WHERE session_id = $1""",
        session_id,
        consumed,
        inbound_id,
        page,
    )


# --- SMS ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sms:
    content: str
    coding: str
    parts: int


async def queue_sms(
    conn: Executor, command_id: str, number: str, messages: list[Sms], *, always: bool = False
) -> int:
    """Queue a command's SMS messages, once per command id; how many were new."""
    queued = 0
    for seq, sms in enumerate(messages):
        status = await conn.execute(
            """INSERT INTO channels.sms_outbound
                   (command_id, seq, number, content, coding, parts, always)
               VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING""",
            command_id,
            seq,
            number,
            sms.content,
            sms.coding,
            sms.parts,
            always,
        )
        queued += status == "INSERT 0 1"
    return queued


@dataclass(frozen=True)
class Outgoing:
    id: int
    number: str
    content: str
    coding: str
    parts: int
    always: bool
    attempts: int


async def lease_due(pool: asyncpg.Pool, now: datetime, lease: float, limit: int) -> list[Outgoing]:
    """The head of each number's queue that is due, leased to this sender for `lease` seconds
    (a sender that dies leaves them to another after that)."""
    rows = await pool.fetch(
        """WITH head AS (
               SELECT DISTINCT ON (number) id FROM channels.sms_outbound
               WHERE status IN ('queued', 'sending') ORDER BY number, id),
           due AS (
               SELECT o.id FROM channels.sms_outbound o JOIN head USING (id)
               WHERE o.not_before <= $1
                 AND (o.status = 'queued' OR o.lease_until < $1)
               ORDER BY o.id LIMIT $3
               FOR UPDATE OF o SKIP LOCKED)
           UPDATE channels.sms_outbound o
           SET status = 'sending', lease_until = $1::timestamptz + make_interval(secs => $2::float8),
               attempts = o.attempts + 1
           FROM due WHERE o.id = due.id
           RETURNING o.id, o.number, o.content, o.coding, o.parts, o.always, o.attempts""",
        now,
        lease,
        limit,
    )
    return [
        Outgoing(r["id"], r["number"], r["content"], r["coding"], r["parts"], r["always"],
                 r["attempts"])
        for r in rows
    ]  # fmt: skip


async def opted_out(conn: Executor, number: str) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT FROM channels.sms_optout WHERE number = $1)", number
        )
    )


async def opt_out(conn: Executor, number: str) -> None:
    await conn.execute(
        "INSERT INTO channels.sms_optout (number) VALUES ($1) ON CONFLICT DO NOTHING", number
    )


async def opt_in(conn: Executor, number: str) -> None:
    await conn.execute("DELETE FROM channels.sms_optout WHERE number = $1", number)


async def take_budget(
    conn: Executor,
    number: str,
    parts: int,
    now: datetime,
    today: date,
    *,
    interval: float,
    daily: int,
) -> datetime | None:
    """Charge `parts` to the number's budget; None if charged, else when to try again."""
    row = await conn.fetchrow(
        """INSERT INTO channels.sms_budget AS b (number, next_at, day, sent)
           VALUES ($1, $2::timestamptz + make_interval(secs => $3::float8 * $4::int), $5, $4)
           ON CONFLICT (number) DO UPDATE
           SET next_at = $2::timestamptz + make_interval(secs => $3::float8 * $4::int),
               day = $5,
               sent = CASE WHEN b.day = $5 THEN b.sent + $4 ELSE $4 END
           WHERE b.next_at <= $2 AND (b.day <> $5 OR b.sent + $4::int <= $6::int)
           RETURNING true""",
        number,
        now,
        interval,
        parts,
        today,
        daily,
    )
    if row is not None:
        return None
    budget = await conn.fetchrow(
        "SELECT next_at, day, sent FROM channels.sms_budget WHERE number = $1", number
    )
    if budget["next_at"] > now:
        return budget["next_at"]
    return now + timedelta(hours=1)  # today's budget is spent: look again later


async def defer(conn: Executor, sms_id: int, until: datetime, *, attempt_back: bool) -> None:
    await conn.execute(
        """UPDATE channels.sms_outbound
           SET status = 'queued', not_before = $2, lease_until = NULL,
               attempts = attempts - CASE WHEN $3 THEN 1 ELSE 0 END
           WHERE id = $1""",
        sms_id,
        until,
        attempt_back,
    )


async def submitted(conn: Executor, sms_id: int, gateway_id: str, now: datetime) -> None:
    await conn.execute(
        """UPDATE channels.sms_outbound
           SET status = 'submitted', gateway_id = $2, submitted_at = $3, lease_until = NULL
           WHERE id = $1""",
        sms_id,
        gateway_id,
        now,
    )


async def finish(
    conn: Executor, sms_id: int, status: str, error: str | None, now: datetime
) -> None:
    await conn.execute(
        """UPDATE channels.sms_outbound
           SET status = $2, last_error = $3, done_at = $4, lease_until = NULL WHERE id = $1""",
        sms_id,
        status,
        error,
        now,
    )


async def delivery_report(conn: Executor, gateway_id: str, status: str, now: datetime) -> bool:
    """A delivery report: delivered or failed, never backwards; False for an id we never sent."""
    result = await conn.execute(
        """UPDATE channels.sms_outbound
           SET status = CASE WHEN status IN ('delivered', 'failed') THEN status ELSE $2 END,
               done_at = coalesce(done_at, $3)
           WHERE gateway_id = $1""",
        gateway_id,
        status,
        now,
    )
    return result != "UPDATE 0"


async def sms_statuses(conn: Executor, number: str) -> list[tuple[str, str]]:
    """(content, status) of a number's SMS, oldest first (tests and the chat tool)."""
    rows = await conn.fetch(
        "SELECT content, status FROM channels.sms_outbound WHERE number = $1 ORDER BY id", number
    )
    return [(r["content"], r["status"]) for r in rows]


async def ussd_stats(pool: asyncpg.Pool) -> dict[str, int]:
    """The counts of `vaksin stats` (the `ussd` process)."""
    row = await pool.fetchrow(
        """SELECT
               (SELECT count(*) FROM channels.ussd_session
                WHERE started_at > now() - interval '24 hours') AS sessions_24h,
               (SELECT count(*) FROM channels.ussd_screen WHERE NOT shown) AS screens_unseen,
               (SELECT count(*) FROM channels.number_channel WHERE channel = 'ussd') AS numbers"""
    )
    return dict(row)


async def sms_stats(pool: asyncpg.Pool) -> dict[str, int]:
    """The counts of `vaksin stats` (the `sms` process): the queue and the last day by status."""
    rows = await pool.fetch(
        """SELECT status, count(*) AS n FROM channels.sms_outbound
           WHERE status IN ('queued', 'sending') OR created_at > now() - interval '24 hours'
           GROUP BY status"""
    )
    counts = {f"sms.{r['status']}": r["n"] for r in rows}
    numbers = await pool.fetchval(
        "SELECT count(*) FROM channels.number_channel WHERE channel = 'sms'"
    )
    opted_out = await pool.fetchval("SELECT count(*) FROM channels.sms_optout")
    return {"numbers": numbers, "opted_out": opted_out, **counts}
