"""identity.rpc.intake_list|intake_detail|intake_decide: the intake queue for the operators'
console, over NATS (queue group `identity`). The same functions as `vaksin intake` and the
operator HTTP API (services/identity/intake.py), so the rules exist once: a decision locks the
request's row and checks it is still open, so of two operators deciding at once one wins and the
other is answered `not_open` with who decided and when. Actions are recorded under channel
`console` with the console's account name. And the figures of identity.rpc.stats (`tables`).

None of these raises: a failure is a reply with `error`, because a raised exception leaves the
requester waiting for its timeout.
"""

from __future__ import annotations

from datetime import timedelta

import asyncpg
import structlog
from faststream.nats import NatsRouter

from services.common.clock import jakarta_today
from services.common.contracts.identity import PROFESSIONS
from services.common.contracts.operations import (
    IntakeDecideReply,
    IntakeDecideRequest,
    IntakeDecision,
    IntakeDetailReply,
    IntakeDetailRequest,
    IntakeListReply,
    IntakeListRequest,
    OperatorError,
    RegistryMatch,
)
from services.common.contracts.stats import StatsTable
from services.common.contracts.subjects import (
    IDENTITY_RPC_INTAKE_DECIDE,
    IDENTITY_RPC_INTAKE_DETAIL,
    IDENTITY_RPC_INTAKE_LIST,
)
from services.common.deps import Pool, Relay
from services.common.stats import counter_table
from services.identity import domain, intake, repository

log = structlog.get_logger(__name__, pii_context="identity")

CHANNEL = "console"
UNAVAILABLE = f"{OperatorError.UNAVAILABLE}: identity is temporarily unavailable, try again"
FIGURE_DAYS = 30


def _invalid(detail: str) -> str:
    return f"{OperatorError.INVALID}: {detail}"


def _list_problem(body: IntakeListRequest) -> str | None:
    if body.status is not None and body.status not in intake.STATUSES:
        return "status is open, approved or rejected (or none for all)"
    if body.regency is not None and not (body.regency.isdigit() and len(body.regency) in (2, 4)):
        return "regency is a province (2 digits) or regency code (4 digits)"
    if body.profession is not None and all(p.id != body.profession for p in PROFESSIONS):
        return f"no profession {body.profession[:40]!r}"
    if body.older_than_hours is not None and not 0 <= body.older_than_hours < 24 * 3650:
        return "older_than_hours is a number of hours >= 0"
    return None


async def intake_list(body: IntakeListRequest, pool: Pool) -> IntakeListReply:
    """The queue, oldest first, with the filters of the console (masked NIK, name and number)."""
    problem = _list_problem(body)
    if problem:
        return IntakeListReply(error=_invalid(problem))
    try:
        found = await intake.list_queue(
            pool,
            status=body.status,
            regency=body.regency,
            facility=(body.facility or "").strip() or None,
            older_than_hours=body.older_than_hours,
            limit=body.limit,
            profession=body.profession,
            search=(body.search or "").strip() or None,
        )
    except Exception:
        log.exception("intake list failed")
        return IntakeListReply(error=UNAVAILABLE)
    return IntakeListReply(items=found)


async def _matches(pool: asyncpg.Pool, intake_id: int) -> list[RegistryMatch]:
    async with pool.acquire() as conn:
        stored = await repository.get_intake(conn, intake_id)
        if stored is None:
            return []
        rows = await repository.registry_matches(conn, stored.record)
    return [
        RegistryMatch(
            on=r["on_"],
            masked_name=r["masked_name"],
            masked_nik=r["masked_nik"],
            masked_phone=r["masked_phone"],
            profession=domain.profession_label(r["profession"]),
            facility_code=r["facility_code"],
            source=r["source"],
        )
        for r in rows
    ]


async def intake_detail(body: IntakeDetailRequest, pool: Pool) -> IntakeDetailReply:
    """One request with the full name, its history and the registry entries that resemble it;
    the viewing is recorded."""
    try:
        found = await intake.show(pool, body.intake_id, by=body.by, channel=CHANNEL)
        matches = await _matches(pool, body.intake_id)
    except intake.IntakeError as e:
        return IntakeDetailReply(error=f"{e.code}: {e.detail}")
    except Exception:
        log.exception("intake detail failed", intake_id=body.intake_id)
        return IntakeDetailReply(error=UNAVAILABLE)
    return IntakeDetailReply(item=found, matches=matches)


async def intake_decide(body: IntakeDecideRequest, pool: Pool, relay: Relay) -> IntakeDecideReply:
    """Approve or reject; the user is told through intake_decided (the outbox, woken here)."""
    try:
        if body.decision is IntakeDecision.APPROVE:
            done = await intake.approve(pool, body.intake_id, by=body.by, channel=CHANNEL)
        else:
            done = await intake.reject(
                pool, body.intake_id, reason=body.reason, by=body.by, channel=CHANNEL
            )
    except intake.IntakeError as e:
        return IntakeDecideReply(error=f"{e.code}: {e.detail}")
    except Exception:
        log.exception("intake decision failed", intake_id=body.intake_id)
        return IntakeDecideReply(error=UNAVAILABLE)
    relay.wake()
    return IntakeDecideReply(item=done)


METRICS = ("registered", "verified", "intake_submitted", "intake_approved", "intake_rejected")


async def tables(pool: asyncpg.Pool) -> dict[str, StatsTable]:
    """The console's breakdowns, from the maintained counters (identity.figure)."""
    _, by_day, by_regency = await repository.figures(
        pool, jakarta_today() - timedelta(days=FIGURE_DAYS - 1)
    )
    return {
        "identity_by_day": counter_table("Registry and intake by day", by_day, ("day",), METRICS),
        "identity_by_regency": counter_table(
            "Registry and intake by NIK region (province and regency code)",
            by_regency,
            ("regency",),
            METRICS,
        ),
    }


def register(router: NatsRouter, queue: str) -> None:
    router.subscriber(IDENTITY_RPC_INTAKE_LIST, queue=queue)(intake_list)
    router.subscriber(IDENTITY_RPC_INTAKE_DETAIL, queue=queue)(intake_detail)
    router.subscriber(IDENTITY_RPC_INTAKE_DECIDE, queue=queue)(intake_decide)
