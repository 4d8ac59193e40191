"""scheduler.rpc.*: core request/reply in queue group `scheduler`. None raises: a refused request
is answered with `error` set (`code: detail`, codes in contracts ErrorCode), because a raised
exception leaves the requester waiting for its timeout. And `ticketing.evt.dose_given`: a durable
pull consumer that records the dose and books dose 2 (idempotent on the booking)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

import asyncpg
import structlog
from faststream.nats import NatsRouter
from pydantic import BaseModel

from services.common import consumers
from services.common.clock import jakarta_today
from services.common.contracts.scheduler import (
    AlternativesReply,
    AlternativesRequest,
    BookingReply,
    BookingsReply,
    BookingsRequest,
    CancelRequest,
    ConfirmRequest,
    ErrorCode,
    FacilityReply,
    FacilityRequest,
    FacilitySearchReply,
    FacilitySearchRequest,
    HoldReply,
    HoldRequest,
    NearbyReply,
    NearbyRequest,
    OfferRequest,
)
from services.common.contracts.streams import TICKETING
from services.common.contracts.subjects import (
    SCHEDULER_RPC_ALTERNATIVES,
    SCHEDULER_RPC_BOOKINGS,
    SCHEDULER_RPC_CANCEL,
    SCHEDULER_RPC_CONFIRM,
    SCHEDULER_RPC_FACILITIES_NEARBY,
    SCHEDULER_RPC_FACILITIES_SEARCH,
    SCHEDULER_RPC_FACILITY,
    SCHEDULER_RPC_HOLD,
    SCHEDULER_RPC_OFFER,
    SCHEDULER_RPC_STATS,
    TICKETING_EVT_DOSE_GIVEN,
)
from services.common.contracts.ticketing import DoseGiven
from services.common.deps import AppSettings, Pool, Relay
from services.common.stats import add_stats_responder
from services.scheduler import booking, jobs, operator_rpc, repository
from services.scheduler.domain import SchedulerError
from services.scheduler.metrics import REQUEST_SECONDS, REQUESTS

log = structlog.get_logger(__name__)

QUEUE = "scheduler"
UNAVAILABLE = f"{ErrorCode.UNAVAILABLE}: the scheduler is temporarily unavailable, try again"
DOSE_GIVEN_DURABLE = "scheduler-dose-given"
MAX_DELIVER = 10  # about 15 minutes of retries (consumers.py): dose 2 is not urgent


R = TypeVar("R", bound=BaseModel)


def utcnow() -> datetime:
    return datetime.now(UTC)


async def _answer(verb: str, reply: type[R], work: Callable[[], Awaitable[R]]) -> R:
    with REQUEST_SECONDS.labels(verb).time():
        try:
            answer = await work()
        except SchedulerError as e:
            log.info("request refused", verb=verb, code=e.code.value, detail=e.detail)
            REQUESTS.labels(verb, e.code.value).inc()
            if e.booking is not None and "booking" in reply.model_fields:
                return reply(error=str(e), booking=e.booking)
            return reply(error=str(e))
        except Exception:
            log.exception("request failed", verb=verb)
            REQUESTS.labels(verb, ErrorCode.UNAVAILABLE.value).inc()
            return reply(error=UNAVAILABLE)
    REQUESTS.labels(verb, "ok").inc()
    return answer


async def facility(body: FacilityRequest, pool: Pool) -> FacilityReply:
    async def work() -> FacilityReply:
        return FacilityReply(facility=await booking.facility(pool, body.code))

    return await _answer("facility", FacilityReply, work)


async def facilities_nearby(body: NearbyRequest, pool: Pool) -> NearbyReply:
    async def work() -> NearbyReply:
        found = await booking.nearby(pool, body, body.now or utcnow())
        return NearbyReply(facilities=found)

    return await _answer("facilities_nearby", NearbyReply, work)


async def facilities_search(body: FacilitySearchRequest, pool: Pool) -> FacilitySearchReply:
    async def work() -> FacilitySearchReply:
        found, total, approximate = await booking.search_facilities(pool, body)
        return FacilitySearchReply(facilities=found, total=total, approximate=approximate)

    return await _answer("facilities_search", FacilitySearchReply, work)


async def offer(body: OfferRequest, pool: Pool, settings: AppSettings) -> HoldReply:
    async def work() -> HoldReply:
        seconds = settings.scheduler_hold_minutes * 60
        return HoldReply(hold=await booking.offer(pool, body, body.now or utcnow(), seconds))

    return await _answer("offer", HoldReply, work)


async def alternatives(body: AlternativesRequest, pool: Pool) -> AlternativesReply:
    async def work() -> AlternativesReply:
        found, slots = await booking.alternatives(pool, body, body.now or utcnow())
        return AlternativesReply(facility=found, sessions=slots)

    return await _answer("alternatives", AlternativesReply, work)


async def hold(body: HoldRequest, pool: Pool, settings: AppSettings) -> HoldReply:
    async def work() -> HoldReply:
        seconds = settings.scheduler_hold_minutes * 60
        return HoldReply(hold=await booking.hold(pool, body, body.now or utcnow(), seconds))

    return await _answer("hold", HoldReply, work)


async def confirm(body: ConfirmRequest, pool: Pool, relay: Relay) -> BookingReply:
    async def work() -> BookingReply:
        booked, previous = await booking.confirm(pool, body, utcnow())
        relay.wake()
        return BookingReply(booking=booked, previous=previous)

    return await _answer("confirm", BookingReply, work)


async def cancel(body: CancelRequest, pool: Pool, relay: Relay) -> BookingReply:
    async def work() -> BookingReply:
        cancelled = await booking.cancel(pool, body)
        relay.wake()
        return BookingReply(booking=cancelled)

    return await _answer("cancel", BookingReply, work)


async def bookings(body: BookingsRequest, pool: Pool) -> BookingsReply:
    async def work() -> BookingsReply:
        return BookingsReply(bookings=await booking.bookings(pool, body.person_id))

    return await _answer("bookings", BookingsReply, work)


async def on_dose_given(body: DoseGiven, pool: Pool, settings: AppSettings, relay: Relay) -> None:
    """A failure is redelivered (NACK, bounded by max_deliver); a plan that was stored is tried
    again by the periodic job, so a redelivery never books twice."""
    plan_id = await jobs.record_dose_given(pool, body, settings)
    if plan_id is not None:
        await jobs.attempt_plan(pool, plan_id, settings, utcnow())
        relay.wake()


async def stats(pool: asyncpg.Pool) -> dict[str, int]:
    return await repository.stats(pool, jakarta_today())


def build_router() -> NatsRouter:
    """A fresh router per broker: FastStream lets a router belong to one broker only."""
    router = consumers.router()
    for subject, handler in (
        (SCHEDULER_RPC_FACILITY, facility),
        (SCHEDULER_RPC_FACILITIES_NEARBY, facilities_nearby),
        (SCHEDULER_RPC_FACILITIES_SEARCH, facilities_search),
        (SCHEDULER_RPC_OFFER, offer),
        (SCHEDULER_RPC_ALTERNATIVES, alternatives),
        (SCHEDULER_RPC_HOLD, hold),
        (SCHEDULER_RPC_CONFIRM, confirm),
        (SCHEDULER_RPC_CANCEL, cancel),
        (SCHEDULER_RPC_BOOKINGS, bookings),
    ):
        router.subscriber(subject, queue=QUEUE)(handler)
    operator_rpc.register(router, QUEUE)
    add_stats_responder(
        router,
        SCHEDULER_RPC_STATS,
        queue=QUEUE,
        service="scheduler",
        count=stats,
        tables=operator_rpc.tables,
    )
    consumers.durable_subscriber(
        router,
        TICKETING_EVT_DOSE_GIVEN,
        stream=TICKETING,
        durable=DOSE_GIVEN_DURABLE,
        max_deliver=MAX_DELIVER,
        ack_wait=30,
        batch_size=10,
        title="dose-given",
    )(on_dose_given)
    return router
