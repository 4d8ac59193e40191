"""A job run every so often inside a service (housekeeping such as purging old idempotency keys),
started and stopped with the service host. Every replica runs it; jobs must be idempotent."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import asyncpg
import structlog

from services.common import tracing

if TYPE_CHECKING:
    from services.common.service import Hook, ServiceHost

log = structlog.get_logger(__name__)

Job = Callable[[asyncpg.Pool], Awaitable[int]]


def periodic(name: str, job: Job, every_seconds: float) -> tuple[Hook, Hook]:
    """(on_startup, on_shutdown) hooks that run `job(pool)` now and then every `every_seconds`."""
    task: asyncio.Task[None] | None = None
    stopping = False

    async def loop(pool: asyncpg.Pool) -> None:
        while not stopping:
            try:
                # A trace of its own per run (tracing on): the reminders and automatic bookings
                # it queues through the outbox are followed from here to Meta.
                with tracing.span(f"job {name}", {"vaksin.job": name}) as span:
                    affected = await job(pool)
                    if span is not None:
                        span.set_attribute("vaksin.job.affected", affected)
                log.info("periodic job done", job=name, affected=affected)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("periodic job failed", job=name)
            if not stopping:
                await asyncio.sleep(every_seconds)

    async def start(host: ServiceHost) -> None:
        nonlocal task
        assert host.pool is not None
        task = asyncio.create_task(loop(host.pool), name=f"periodic-{name}")

    async def stop(_host: ServiceHost) -> None:
        # The flag as well as the cancel: on Python 3.11 a cancel that lands as a job's NATS
        # request gets its answer is swallowed (asyncio.wait_for inside nats-py).
        nonlocal stopping
        stopping = True
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return start, stop
