"""identity.rpc.*: is a WhatsApp number in the registry, does a NIK suffix verify it, and the
intake of unlisted health workers (check a NIK's structure, submit a request, its status).

A suffix is only ever compared with the registry entries bound to the sender's own number, so an
answer never says anything about anyone else. Logs carry a short prefix of the phone hash at most.
The intake handlers never raise: a failure is answered (`unavailable` / `error`), because a raised
exception leaves the requester waiting for its timeout.
"""

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import structlog
from faststream.nats import NatsRouter

from services.common import consumers
from services.common.clock import jakarta_today
from services.common.contracts.identity import (
    CheckNikRequest,
    CheckNikResult,
    IntakeOutcome,
    IntakeState,
    IntakeStatus,
    IntakeStatusRequest,
    IntakeSubmitRequest,
    IntakeSubmitResult,
    NumberStatus,
    NumberStatusRequest,
    PersonCard,
    PersonRequest,
    VerifyOutcome,
    VerifyRequest,
    VerifyResult,
)
from services.common.contracts.subjects import (
    IDENTITY_RPC_CHECK_NIK,
    IDENTITY_RPC_INTAKE_STATUS,
    IDENTITY_RPC_INTAKE_SUBMIT,
    IDENTITY_RPC_NUMBER_STATUS,
    IDENTITY_RPC_PERSON,
    IDENTITY_RPC_STATS,
    IDENTITY_RPC_VERIFY,
)
from services.common.deps import AppSettings, Pool, Relay
from services.common.settings import Settings
from services.common.stats import add_stats_responder
from services.identity import domain, intake, operator_rpc, repository

# Initial values, not `.bind()`: a logger bound at import time would keep the structlog
# configuration of that moment and bypass the redacting pipeline set up later.
log = structlog.get_logger(__name__, pii_context="identity")

QUEUE = "identity"
UNAVAILABLE = "unavailable: identity is temporarily unavailable, try again"


def _sender(settings: Settings, wa_id: str) -> tuple[str, str] | None:
    """The sender's normalised number and its hash, or None when it is not an Indonesian mobile
    (and so cannot be in the registry)."""
    try:
        phone = domain.normalize_phone(wa_id)
    except domain.InvalidPhone:
        return None
    return phone, domain.phone_hash(settings.nik_pepper, phone)


def _policy(settings: Settings) -> domain.LockPolicy:
    return domain.LockPolicy(settings.lockout_max_failures, timedelta(hours=settings.lockout_hours))


async def number_status(
    body: NumberStatusRequest, pool: Pool, settings: AppSettings
) -> NumberStatus:
    sender = _sender(settings, body.wa_id)
    if sender is None:
        return NumberStatus(listed=False)
    _, ph = sender
    async with pool.acquire() as conn:
        listed = await repository.is_listed(conn, ph)
        state = await repository.lock_state(conn, ph)
    now = datetime.now(UTC)
    locked_until = state.locked_until if state.is_locked(now) else None
    return NumberStatus(listed=listed, locked_until=locked_until)


async def verify(body: VerifyRequest, pool: Pool, settings: AppSettings) -> VerifyResult:
    async with pool.acquire() as conn, conn.transaction():
        if body.request_id:
            earlier = await repository.earlier_answer(conn, body.request_id)
            if earlier is not None:
                # The same request again (its message was redelivered): same answer, no attempt.
                return VerifyResult.model_validate(earlier)
        result = await _verify(conn, body, settings)
        if body.request_id:
            await repository.save_answer(conn, body.request_id, result.model_dump(mode="json"))
    return result


async def _verify(
    conn: asyncpg.Connection, body: VerifyRequest, settings: Settings
) -> VerifyResult:
    sender = _sender(settings, body.wa_id)
    if sender is None:
        log.info("suffix verification", outcome=VerifyOutcome.NOT_LISTED.value, phone_ref=None)
        return VerifyResult(outcome=VerifyOutcome.NOT_LISTED)
    phone, ph = sender
    suffix = domain.normalize_suffix(body.suffix)
    match: repository.Candidate | None = None
    candidates = await repository.candidates_for_phone(conn, ph)
    if not candidates:
        log.info("suffix verification", outcome=VerifyOutcome.NOT_LISTED.value, phone_ref=ph[:8])
        return VerifyResult(outcome=VerifyOutcome.NOT_LISTED)
    if suffix is not None:
        presented = domain.suffix_hash(settings.nik_pepper, phone, suffix)
        match = next(
            (c for c in candidates if domain.suffix_matches(c.suffix_hash, presented)), None
        )
    state = await repository.lock_state_for_update(conn, ph)
    decision = domain.decide_verification(
        suffix_valid=suffix is not None,
        matched=match is not None,
        state=state,
        policy=_policy(settings),
        now=datetime.now(UTC),
    )
    if decision.state != state:
        await repository.save_lock_state(conn, ph, decision.state)
    if decision.outcome is VerifyOutcome.LOCKED and decision.state != state:
        # Lockouts are reviewed (OWASP): a burst of them means someone is guessing suffixes.
        log.warning("number locked", phone_ref=ph[:8], locked_until=decision.locked_until)
    log.info(
        "suffix verification",
        outcome=decision.outcome.value,
        phone_ref=ph[:8],
        failures=decision.state.failures,
    )
    if decision.outcome is VerifyOutcome.VERIFIED and match is not None:
        await repository.mark_verified(conn, match.person_id)
        return VerifyResult(
            outcome=VerifyOutcome.VERIFIED,
            person_id=match.person_id,
            masked_name=match.masked_name,
            masked_nik=match.masked_nik,
            profession=match.profession,
            facility_code=match.facility_code,
            birth_date=match.birth_date,
            sex=match.sex,
        )
    return VerifyResult(
        outcome=decision.outcome,
        attempts_left=decision.attempts_left,
        locked_until=decision.locked_until,
    )


async def check_nik(body: CheckNikRequest) -> CheckNikResult:
    """The structure of a NIK, for a precise reprompt; never the NIK itself back."""
    try:
        info = domain.validate_nik(body.nik, today=jakarta_today())
    except domain.InvalidNik as e:
        return CheckNikResult(valid=False, code=e.code, detail=e.detail)
    except Exception:
        log.exception("nik check failed")
        return CheckNikResult(valid=False, error=UNAVAILABLE)
    return CheckNikResult(
        valid=True,
        masked_nik=domain.mask_nik(info.nik),
        unknown_region=info.unknown_region,
        birth_date=info.birth_date,
        sex=info.sex,
    )


async def intake_submit(
    body: IntakeSubmitRequest, pool: Pool, settings: AppSettings, relay: Relay
) -> IntakeSubmitResult:
    try:
        result, created = await intake.submit(pool, body, settings.nik_pepper)
    except Exception:
        log.exception("intake submission failed")
        return IntakeSubmitResult(outcome=IntakeOutcome.UNAVAILABLE, error=UNAVAILABLE)
    if created:
        relay.wake()
    return result


async def intake_status(
    body: IntakeStatusRequest, pool: Pool, settings: AppSettings
) -> IntakeStatus:
    sender = _sender(settings, body.wa_id)
    if sender is None:
        return IntakeStatus(status=IntakeState.NONE)
    try:
        return await intake.status(pool, sender[1])
    except Exception:
        log.exception("intake status failed")
        return IntakeStatus(status=IntakeState.NONE, error=UNAVAILABLE)


async def person(body: PersonRequest, pool: Pool) -> PersonCard:
    """What a facility may see of a person (the ticket shows it): masked forms only."""
    try:
        uuid.UUID(body.person_id)
    except ValueError:
        return PersonCard(found=False)
    try:
        async with pool.acquire() as conn:
            row = await repository.person_card(conn, body.person_id)
    except Exception:
        log.exception("person lookup failed")
        return PersonCard(error=UNAVAILABLE)
    return PersonCard(found=True, **dict(row)) if row else PersonCard(found=False)


def build_router() -> NatsRouter:
    """A fresh router per broker: FastStream lets a router belong to one broker only."""
    router = consumers.router()
    router.subscriber(IDENTITY_RPC_NUMBER_STATUS, queue=QUEUE)(number_status)
    router.subscriber(IDENTITY_RPC_VERIFY, queue=QUEUE)(verify)
    router.subscriber(IDENTITY_RPC_CHECK_NIK, queue=QUEUE)(check_nik)
    router.subscriber(IDENTITY_RPC_INTAKE_SUBMIT, queue=QUEUE)(intake_submit)
    router.subscriber(IDENTITY_RPC_INTAKE_STATUS, queue=QUEUE)(intake_status)
    router.subscriber(IDENTITY_RPC_PERSON, queue=QUEUE)(person)
    operator_rpc.register(router, QUEUE)
    add_stats_responder(
        router,
        IDENTITY_RPC_STATS,
        queue=QUEUE,
        service="identity",
        count=repository.stats,
        tables=operator_rpc.tables,
    )
    return router
