"""The intake queue of unlisted health workers: a submission from the chat
(`identity.rpc.intake_submit`) and what operators do with it (`vaksin intake`, the operator HTTP
API), each in one transaction with its audit row and its fact in the outbox.

A submission never tells one number anything about another: a NIK that is in the registry (under
another number, since this one is not listed) or in another number's open request is answered
`cannot_match`, nothing more, and every lookup counts against the number's daily limit, so the
answer cannot be used to probe many NIKs.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import asyncpg
import structlog

from services.common import outbox
from services.common.clock import jakarta_today
from services.common.contracts.identity import (
    INTAKE_SUBMISSIONS_PER_DAY,
    IntakeDecided,
    IntakeOutcome,
    IntakeState,
    IntakeStatus,
    IntakeSubmitRequest,
    IntakeSubmitResult,
    IntakeSubmitted,
)
from services.common.contracts.operations import IntakeAction, IntakeItem
from services.common.contracts.streams import IDENTITY
from services.common.contracts.subjects import (
    IDENTITY_EVT_INTAKE_DECIDED,
    IDENTITY_EVT_INTAKE_SUBMITTED,
)
from services.identity import domain, repository
from services.identity.repository import StoredIntake

log = structlog.get_logger(__name__, pii_context="identity")

SCHEMA = "identity"
MAX_OPERATOR = 64
STATUSES = ("open", "approved", "rejected")


class IntakeError(Exception):
    """An operator action refused: `code` is not_found | not_open | conflict | invalid."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


# --- what operators see ------------------------------------------------------------------------


# The views are the operator contracts (services/common/contracts/operations.py), so the CLI, the
# HTTP API and the console's RPC show the same thing.


def view(
    stored: StoredIntake,
    *,
    now: datetime | None = None,
    full: bool = False,
    actions: list[repository.OperatorAction] | None = None,
) -> IntakeItem:
    now = now or datetime.now(UTC)
    r = stored.record
    return IntakeItem(
        id=stored.id,
        status=stored.status,
        masked_nik=r.masked_nik,
        masked_name=r.masked_name,
        name=r.name if full else None,
        birth_date=r.birth_date,
        sex=r.sex,
        regency_code=r.regency_code,
        province=domain.PROVINCES.get(r.regency_code[:2]),
        unknown_region=r.unknown_region,
        profession=r.profession,
        profession_label=domain.profession_label(r.profession),
        facility_code=r.facility_code,
        masked_phone=r.masked_phone,
        lang=r.lang,
        submitted_at=stored.created_at,
        age_hours=round((now - stored.created_at).total_seconds() / 3600, 1),
        reason=stored.reason,
        decided_by=stored.decided_by,
        decided_at=stored.decided_at,
        person_id=stored.person_id,
        actions=None if actions is None else [IntakeAction(**vars(a)) for a in actions],
    )


def clean_operator(raw: str | None) -> str:
    name = " ".join((raw or "").split())
    if not name:
        raise IntakeError("invalid", "the operator's name is empty")
    if len(name) > MAX_OPERATOR:
        raise IntakeError("invalid", f"the operator's name is longer than {MAX_OPERATOR}")
    return name


# --- submission (the chat) -----------------------------------------------------------------------


async def submit(
    pool: asyncpg.Pool,
    body: IntakeSubmitRequest,
    pepper: str,
    *,
    today: date | None = None,
    limit: int = INTAKE_SUBMISSIONS_PER_DAY,
) -> tuple[IntakeSubmitResult, bool]:
    """The answer to a submission, and whether a request was queued (then the relay has work)."""
    day = today or jakarta_today()
    try:
        draft = domain.check_intake(
            wa_id=body.wa_id,
            nik=body.nik,
            full_name=body.full_name,
            profession=body.profession,
            facility_code=body.facility_code,
            lang=body.lang,
            today=day,
        )
    except domain.InvalidIntake as e:
        # Typos cost nothing and store nothing; counted here to see where users stumble.
        log.info("intake submission", outcome=IntakeOutcome.INVALID.value, field=e.field,
                 code=e.code)  # fmt: skip
        return (
            IntakeSubmitResult(
                outcome=IntakeOutcome.INVALID, field=e.field, code=e.code, detail=e.detail
            ),
            False,
        )
    record = domain.intake_record(pepper, draft)
    for attempt in range(2):
        try:
            async with pool.acquire() as conn, conn.transaction():
                return await _submit(conn, body.request_id, record, day, limit)
        except asyncpg.UniqueViolationError:
            # Another number queued the same NIK at the same moment: the second pass sees it.
            if attempt:
                raise
    raise AssertionError("unreachable")


async def _submit(
    conn: asyncpg.Connection, request_id: str, record: domain.IntakeRecord, day: date, limit: int
) -> tuple[IntakeSubmitResult, bool]:
    await repository.lock_phone_for_intake(conn, record.phone_hash)
    earlier = await repository.earlier_intake_answer(conn, request_id)
    if earlier is not None:
        return IntakeSubmitResult.model_validate(earlier), False
    result, created = await _decide_submission(conn, request_id, record, day, limit)
    await repository.save_intake_answer(conn, request_id, result.model_dump(mode="json"))
    log.info(
        "intake submission",
        outcome=result.outcome.value,
        intake_id=result.intake_id,
        phone_ref=record.phone_hash[:8],
    )
    return result, created


async def _decide_submission(
    conn: asyncpg.Connection, request_id: str, record: domain.IntakeRecord, day: date, limit: int
) -> tuple[IntakeSubmitResult, bool]:
    if await repository.is_listed(conn, record.phone_hash):
        return IntakeSubmitResult(outcome=IntakeOutcome.ALREADY_LISTED), False
    own = await repository.open_intake(conn, phone_hash=record.phone_hash)
    if own is not None:
        return (
            IntakeSubmitResult(
                outcome=IntakeOutcome.DUPLICATE_OPEN,
                intake_id=own.id,
                masked_nik=own.record.masked_nik,
                submitted_at=own.created_at,
            ),
            False,
        )
    if not await repository.count_intake_attempt(conn, record.phone_hash, day, limit):
        return IntakeSubmitResult(outcome=IntakeOutcome.LIMIT_REACHED), False
    if await repository.nik_in_registry(conn, record.nik_hash) or (
        await repository.open_intake(conn, nik_hash=record.nik_hash) is not None
    ):
        return IntakeSubmitResult(outcome=IntakeOutcome.CANNOT_MATCH), False
    stored = await repository.insert_intake(conn, request_id, record)
    await outbox.enqueue(
        conn,
        SCHEMA,
        IDENTITY_EVT_INTAKE_SUBMITTED,
        IntakeSubmitted(
            intake_id=stored.id,
            masked_nik=record.masked_nik,
            regency_code=record.regency_code,
            profession=record.profession,
            facility_code=record.facility_code,
            submitted_at=stored.created_at,
        ),
        IDENTITY.name,
    )
    result = IntakeSubmitResult(
        outcome=IntakeOutcome.SUBMITTED,
        intake_id=stored.id,
        masked_nik=record.masked_nik,
        submitted_at=stored.created_at,
    )
    return result, True


async def status(pool: asyncpg.Pool, phone_hash: str) -> IntakeStatus:
    async with pool.acquire() as conn:
        stored = await repository.latest_intake(conn, phone_hash)
    if stored is None:
        return IntakeStatus(status=IntakeState.NONE)
    return IntakeStatus(
        status=IntakeState(stored.status),
        intake_id=stored.id,
        masked_nik=stored.record.masked_nik,
        profession=stored.record.profession,
        facility_code=stored.record.facility_code,
        submitted_at=stored.created_at,
        decided_at=stored.decided_at,
        reason=stored.reason,
    )


# --- operators -----------------------------------------------------------------------------------


async def list_queue(
    pool: asyncpg.Pool,
    *,
    status: str | None = "open",
    regency: str | None = None,
    facility: str | None = None,
    older_than_hours: float | None = None,
    limit: int = 100,
    profession: str | None = None,
    search: str | None = None,
) -> list[IntakeItem]:
    async with pool.acquire() as conn:
        rows = await repository.list_intakes(
            conn,
            status=status,
            regency=regency,
            facility=facility,
            older_than_hours=older_than_hours,
            limit=limit,
            profession=profession,
            search=search,
        )
    now = datetime.now(UTC)
    return [view(r, now=now) for r in rows]


async def show(pool: asyncpg.Pool, intake_id: int, *, by: str, channel: str) -> IntakeItem:
    """One request with the full name and its history; the viewing itself is recorded."""
    by = clean_operator(by)
    async with pool.acquire() as conn, conn.transaction():
        stored = await repository.get_intake(conn, intake_id)
        if stored is None:
            raise IntakeError("not_found", f"no intake request {intake_id}")
        await repository.record_action(conn, intake_id, action="view", operator=by, channel=channel)
        actions = await repository.operator_actions(conn, intake_id)
    return view(stored, full=True, actions=actions)


async def _open_for_decision(conn: asyncpg.Connection, intake_id: int) -> StoredIntake:
    stored = await repository.get_intake(conn, intake_id, for_update=True)
    if stored is None:
        raise IntakeError("not_found", f"no intake request {intake_id}")
    if stored.status != "open":
        when = stored.decided_at.isoformat(timespec="minutes") if stored.decided_at else "?"
        raise IntakeError(
            "not_open",
            f"intake request {intake_id} is already {stored.status} "
            f"(by {stored.decided_by} at {when})",
        )
    return stored


def _decided(stored: StoredIntake, decided: StoredIntake, *, approved: bool) -> IntakeDecided:
    r = stored.record
    assert decided.decided_at is not None
    return IntakeDecided(
        intake_id=stored.id,
        wa_id=r.wa_id,
        lang=r.lang,
        approved=approved,
        reason=decided.reason,
        person_id=decided.person_id,
        masked_name=r.masked_name,
        masked_nik=r.masked_nik,
        profession=domain.profession_label(r.profession),
        facility_code=r.facility_code,
        birth_date=r.birth_date,
        sex=r.sex,
        decided_at=decided.decided_at,
    )


async def approve(pool: asyncpg.Pool, intake_id: int, *, by: str, channel: str) -> IntakeItem:
    """Add the person to the registry bound to the number that asked, close the request, record
    who did it and queue `intake_decided`: all or nothing."""
    by = clean_operator(by)
    async with pool.acquire() as conn, conn.transaction():
        stored = await _open_for_decision(conn, intake_id)
        existing = await repository.person_by_nik(conn, stored.record.nik_hash)
        if existing is None:
            person = domain.approved_person(stored.record)
            person_id = await repository.insert_person(conn, person, source="intake")
        elif existing[1] == stored.record.phone_hash:
            person_id = existing[0]  # a registry import added this very person meanwhile
        else:
            raise IntakeError(
                "conflict",
                f"the NIK of intake request {intake_id} has been added to the registry under "
                "another number since it was submitted; reject it with a reason",
            )
        decided = await repository.decide_intake(
            conn, intake_id, approved=True, by=by, reason=None, person_id=person_id
        )
        await repository.record_action(
            conn, intake_id, action="approve", operator=by, channel=channel
        )
        await outbox.enqueue(
            conn,
            SCHEMA,
            IDENTITY_EVT_INTAKE_DECIDED,
            _decided(stored, decided, approved=True),
            IDENTITY.name,
        )
    log.info("intake approved", intake_id=intake_id, operator=by, channel=channel)
    return view(decided)


async def reject(
    pool: asyncpg.Pool, intake_id: int, *, reason: str | None, by: str, channel: str
) -> IntakeItem:
    by = clean_operator(by)
    try:
        why = domain.clean_reason(reason)
    except ValueError as e:
        raise IntakeError("invalid", str(e)) from None
    async with pool.acquire() as conn, conn.transaction():
        stored = await _open_for_decision(conn, intake_id)
        decided = await repository.decide_intake(
            conn, intake_id, approved=False, by=by, reason=why, person_id=None
        )
        await repository.record_action(
            conn, intake_id, action="reject", operator=by, channel=channel, reason=why
        )
        await outbox.enqueue(
            conn,
            SCHEMA,
            IDENTITY_EVT_INTAKE_DECIDED,
            _decided(stored, decided, approved=False),
            IDENTITY.name,
        )
    log.info("intake rejected", intake_id=intake_id, operator=by, channel=channel)
    return view(decided)
