"""Messages the dialog sends on its own: a postponed health worker is reminded, on the morning of
the re-screen date, that they can write VAKSIN again. Claimed once per (user, date) in the same
transaction as the outbox row, so restarts and several replicas never send it twice."""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg

from services.common.clock import WIB
from services.common.contracts.notifier import SendMessage, TemplateFallback, TextMessage
from services.ingress import repository as repo
from services.ingress.catalog import t

REMINDER_HOUR = 8  # Jakarta time: nobody is woken up by a reminder
TEMPLATE = "rescreen_reminder"  # approved template with one parameter: the re-screen date


async def send_rescreen_reminders(
    pool: asyncpg.Pool, notifier_partitions: int, now: datetime
) -> int:
    local = now.astimezone(WIB)
    due_by = local.date() if local.hour >= REMINDER_HOUR else local.date() - timedelta(days=1)
    async with pool.acquire() as conn, conn.transaction():
        due = await repo.claim_due_rescreen_reminders(conn, due_by)
        for wa_id, lang, rescreen_on in due:
            when = rescreen_on.strftime("%d-%m-%Y")
            command = SendMessage(
                command_id=f"rescreen:{wa_id}:{rescreen_on.isoformat()}",
                to=wa_id,
                message=TextMessage(body=t(lang, "rescreen_reminder", date=when)),
                template=TemplateFallback(name=TEMPLATE, lang=lang, params=[when]),
            )
            await repo.enqueue_notice(conn, command, lang, notifier_partitions)
    return len(due)
