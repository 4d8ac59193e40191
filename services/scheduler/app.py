"""Wiring of the scheduler service: its broker with the rpc router and the dose-given consumer,
the declared scheduler.evt.* and notifier.cmd.send channels (which also make the broker declare
the SCHEDULER and NOTIFIER streams), the outbox relay, and the periodic jobs (lapsed holds,
automatic bookings, day-before reminders), run by every replica."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import asyncpg

from services.common.contracts.notifier import SendMessage
from services.common.contracts.scheduler import (
    BookingCancelled,
    BookingConfirmed,
    BookingRescheduled,
)
from services.common.contracts.streams import NOTIFIER, SCHEDULER
from services.common.contracts.subjects import (
    NOTIFIER_CMD_SEND,
    SCHEDULER_EVT_BOOKED,
    SCHEDULER_EVT_CANCELLED,
    SCHEDULER_EVT_RESCHEDULED,
)
from services.common.periodic import periodic
from services.common.service import ServiceHost, make_broker
from services.common.settings import Settings
from services.scheduler import jobs
from services.scheduler.handlers import build_router

DEFAULT_HEALTH_PORT = 8083


def build_host(settings: Settings) -> ServiceHost:
    broker = make_broker(settings, "scheduler", build_router())
    for subject, title, schema, description in (
        (SCHEDULER_EVT_BOOKED, "booked", BookingConfirmed, "A new booking"),
        (SCHEDULER_EVT_CANCELLED, "cancelled", BookingCancelled, "A booking was cancelled"),
        (
            SCHEDULER_EVT_RESCHEDULED,
            "rescheduled",
            BookingRescheduled,
            "A booking replaced another in one transaction",
        ),
    ):
        broker.publisher(
            subject,
            stream=SCHEDULER,
            title=title,
            schema=schema,
            description=f"{description}; via the outbox",
        )
    broker.publisher(
        NOTIFIER_CMD_SEND,
        stream=NOTIFIER,
        title="send",
        schema=SendMessage,
        description="Dose-2 news, moved bookings and reminders, through the outbox, with an "
        "approved template for a closed 24-hour window; partitioned by recipient",
    )

    def job(
        work: Callable[[asyncpg.Pool], Awaitable[int]],
    ) -> Callable[[asyncpg.Pool], Awaitable[int]]:
        async def run(pool: asyncpg.Pool) -> int:
            done = await work(pool)
            if done and host.relay:
                host.relay.wake()
            return done

        return run

    every = settings.scheduler_job_seconds
    hooks = [
        periodic("scheduler-sweep-holds", jobs.sweep_holds, every),
        periodic(
            "scheduler-automatic-bookings",
            job(lambda pool: jobs.run_due_plans(pool, settings, now())),
            every,
        ),
        periodic(
            "scheduler-reminders",
            job(lambda pool: jobs.send_reminders(pool, settings, now())),
            every,
        ),
    ]
    host = ServiceHost(
        "scheduler",
        settings,
        broker,
        port=settings.health_port or DEFAULT_HEALTH_PORT,
        outbox_schema="scheduler",
        on_startup=[start for start, _ in hooks],
        on_shutdown=[stop for _, stop in hooks],
    )
    return host


def now() -> datetime:
    return datetime.now(UTC)
