"""ticketing.rpc.desk_add|desks: facility desks for the operators' console, over NATS (queue
group `ticketing`), with the same function as `vaksin desk add` (desks.add): the facility is
checked with the scheduler (scheduler.rpc.facility), the one-time enrolment code is answered once
and only its digest is kept. And the figures of ticketing.rpc.stats (`tables`).

None of these raises: a failure is a reply with `error`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import nats.errors
import structlog
from faststream.nats import NatsRouter

from services.common.clock import jakarta_today
from services.common.contracts.operations import (
    DeskAddReply,
    DeskAddRequest,
    DesksReply,
    DesksRequest,
    DeskView,
    OperatorError,
)
from services.common.contracts.scheduler import FacilityReply, FacilityRequest
from services.common.contracts.stats import StatsTable
from services.common.contracts.subjects import (
    SCHEDULER_RPC_FACILITY,
    TICKETING_RPC_DESK_ADD,
    TICKETING_RPC_DESKS,
)
from services.common.deps import Broker, Pool
from services.common.stats import counter_table
from services.ticketing import desks, domain
from services.ticketing import repository as repo

log = structlog.get_logger(__name__)

UNAVAILABLE = f"{OperatorError.UNAVAILABLE}: ticketing is temporarily unavailable, try again"
FIGURE_DAYS = 30


def _state(desk: desks.Desk, now: datetime) -> str:
    if desk.revoked_at:
        return "revoked"
    if desk.enrolled_at:
        return "enrolled"
    return "expired" if desk.enrolment_expires_at <= now else "waiting"


def _view(desk: desks.Desk, now: datetime, checkins: int = 0) -> DeskView:
    return DeskView(
        desk_id=desk.desk_id,
        name=desk.name,
        facility_code=desk.facility_code,
        facility_name=desk.facility_name,
        state=_state(desk, now),
        enrolled_at=desk.enrolled_at,
        revoked_at=desk.revoked_at,
        last_seen_at=desk.last_seen_at,
        checkins=checkins,
    )


async def desk_add(body: DeskAddRequest, pool: Pool, broker: Broker) -> DeskAddReply:
    name = " ".join(body.name.split())
    if not 1 <= len(name) <= domain.DESK_NAME_MAX:
        return DeskAddReply(
            error=f"{OperatorError.INVALID}: a desk's name is 1-{domain.DESK_NAME_MAX} characters"
        )
    code = body.facility_code.strip().upper()
    try:
        answer = await broker.request(FacilityRequest(code=code), SCHEDULER_RPC_FACILITY, timeout=3)
        found = FacilityReply.model_validate(await answer.decode())
    except (TimeoutError, nats.errors.Error):
        return DeskAddReply(
            error=f"{OperatorError.UNAVAILABLE}: the scheduler did not answer; try again"
        )
    if found.error or found.facility is None:
        if found.error and not found.error.startswith("not_found"):
            return DeskAddReply(error=UNAVAILABLE)
        return DeskAddReply(error=f"{OperatorError.NOT_FOUND}: no facility {code}")
    now = datetime.now(UTC)
    try:
        new = await desks.add(
            pool,
            facility_code=found.facility.code,
            facility_name=found.facility.name,
            name=name,
            by=f"console:{body.by}",
            now=now,
        )
    except Exception:
        log.exception("desk add failed")
        return DeskAddReply(error=UNAVAILABLE)
    log.info("desk added", desk_id=new.desk.desk_id, operator=body.by, channel="console")
    return DeskAddReply(
        desk=_view(new.desk, now),
        enrolment_code=new.enrolment_code,
        expires_at=new.desk.enrolment_expires_at,
    )


async def desk_list(body: DesksRequest, pool: Pool) -> DesksReply:
    now = datetime.now(UTC)
    try:
        listings = await desks.listing(pool, body.facility_code, with_revoked=True)
    except Exception:
        log.exception("desk listing failed")
        return DesksReply(error=UNAVAILABLE)
    return DesksReply(desks=[_view(i.desk, now, i.checkins) for i in listings])


async def tables(pool: asyncpg.Pool) -> dict[str, StatsTable]:
    """The console's breakdowns: check-ins and doses given by day and by facility."""
    by_day, by_facility = await repo.figures(
        pool, jakarta_today() - timedelta(days=FIGURE_DAYS - 1)
    )
    metrics = ("checked_in", "dose_given")

    return {
        "checkins_by_day": counter_table(
            "Check-ins and doses given by day", by_day, ("day",), metrics
        ),
        "checkins_by_facility": counter_table(
            "Check-ins and doses given by facility", by_facility, ("facility",), metrics
        ),
    }


def register(router: NatsRouter, queue: str) -> None:
    router.subscriber(TICKETING_RPC_DESK_ADD, queue=queue)(desk_add)
    router.subscriber(TICKETING_RPC_DESKS, queue=queue)(desk_list)
