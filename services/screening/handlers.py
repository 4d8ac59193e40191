"""screening.rpc.questionnaire and screening.rpc.evaluate: core request/reply in queue group
`screening`. Neither raises: a refused request is answered with `error` set (`code: detail`),
because a raised exception leaves the requester waiting for its timeout.

An evaluation is idempotent on its request id (the inbound wamid): the stored screening is
returned again and nothing more is written. A new one is stored with its ScreeningCompleted
event in the outbox, in one transaction. Answers are health data: they are stored for the audit
but never logged.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Annotated

import asyncpg
import structlog
from faststream.nats import NatsRouter

from services.common import consumers
from services.common.clock import jakarta_today
from services.common.contracts.screening import (
    EvaluateRequest,
    EvaluateResult,
    Questionnaire,
    QuestionnaireRequest,
    ScreeningCompleted,
)
from services.common.contracts.subjects import (
    SCREENING_RPC_EVALUATE,
    SCREENING_RPC_QUESTIONNAIRE,
    SCREENING_RPC_STATS,
)
from services.common.deps import Context, Pool, Relay
from services.common.stats import add_stats_responder
from services.screening import domain, figures, repository
from services.screening.rules import RuleSet
from services.screening.store import RuleSetStore

log = structlog.get_logger(__name__)

QUEUE = "screening"
UNAVAILABLE = "unavailable: screening is temporarily unavailable, try again"

Store = Annotated[RuleSetStore, Context("rule_sets")]


async def _rule_set(conn: asyncpg.Connection, store: RuleSetStore, rule_set_id: str) -> RuleSet:
    entry = next((e for e in await store.entries(conn) if e.id == rule_set_id), None)
    if entry is None:
        raise domain.ScreeningError("unknown_rule_set", f"no rule set '{rule_set_id}'")
    return await store.get(conn, entry)


async def questionnaire(body: QuestionnaireRequest, pool: Pool, store: Store) -> Questionnaire:
    on = body.on or jakarta_today()
    try:
        domain.check_language(body.lang)
        async with pool.acquire() as conn:
            entry = domain.in_force(await store.entries(conn), on)
            rule_set = await store.get(conn, entry)
        return domain.questionnaire(rule_set, body.lang)
    except domain.ScreeningError as e:
        log.warning("questionnaire refused", code=e.code, detail=e.detail)
        return Questionnaire(lang=body.lang, error=str(e))
    except Exception:
        log.exception("questionnaire failed")
        return Questionnaire(lang=body.lang, error=UNAVAILABLE)


async def evaluate(body: EvaluateRequest, pool: Pool, store: Store, relay: Relay) -> EvaluateResult:
    try:
        result, created = await _evaluate(body, pool, store)
    except domain.ScreeningError as e:
        log.info("evaluation refused", code=e.code, detail=e.detail, rule_set_id=body.rule_set_id)
        return EvaluateResult(rule_set_id=body.rule_set_id, error=str(e))
    except Exception:
        log.exception("evaluation failed", rule_set_id=body.rule_set_id)
        return EvaluateResult(rule_set_id=body.rule_set_id, error=UNAVAILABLE)
    if created:
        relay.wake()
    return result


async def _evaluate(
    body: EvaluateRequest, pool: asyncpg.Pool, store: RuleSetStore
) -> tuple[EvaluateResult, bool]:
    async with pool.acquire() as conn:
        stored = await repository.screening_by_request(conn, body.request_id)
        if stored is None:
            domain.check_request(body.person_id, body.lang)
            entry = domain.check_in_force(await store.entries(conn), body.rule_set_id, body.on)
            rule_set = await store.get(conn, entry)
            domain.check_answers(rule_set, body.answers, body.on)
            decision = domain.evaluate(rule_set, body.answers, body.on, body.birth_date)
            record = repository.ScreeningRecord(
                id=str(uuid.uuid4()),
                request_id=body.request_id,
                person_id=body.person_id,
                rule_set_id=rule_set.id,
                lang=body.lang,
                screened_on=body.on,
                answers={
                    k: v.isoformat() if isinstance(v, date) else v for k, v in body.answers.items()
                },
                birth_date_known=decision.age_checked,
                outcome=decision.outcome,
                reasons=decision.reasons,
                rescreen_on=decision.rescreen_on,
            )
            event = ScreeningCompleted(
                screening_id=record.id,
                person_id=record.person_id,
                rule_set_id=record.rule_set_id,
                outcome=record.outcome,
                rescreen_on=record.rescreen_on,
                occurred_at=datetime.now(UTC),
            )
            if await repository.save_screening(conn, record, event):
                log.info(
                    "screened",
                    screening_id=record.id,
                    rule_set_id=rule_set.id,
                    outcome=decision.outcome.value,
                    birth_date_known=decision.age_checked,
                )
                return domain.result(rule_set, decision, body.lang, record.id), True
            # The same request, handled concurrently by another replica, was stored first.
            stored = await repository.screening_by_request(conn, body.request_id)
            assert stored is not None
        rule_set = await _rule_set(conn, store, stored.rule_set_id)
    decision = domain.Decision(
        stored.outcome, stored.reasons, stored.rescreen_on, stored.birth_date_known
    )
    return domain.result(rule_set, decision, stored.lang, stored.id), False


def build_router() -> NatsRouter:
    """A fresh router per broker: FastStream lets a router belong to one broker only."""
    router = consumers.router()
    router.subscriber(SCREENING_RPC_QUESTIONNAIRE, queue=QUEUE)(questionnaire)
    router.subscriber(SCREENING_RPC_EVALUATE, queue=QUEUE)(evaluate)
    add_stats_responder(
        router,
        SCREENING_RPC_STATS,
        queue=QUEUE,
        service="screening",
        count=repository.stats,
        tables=figures.tables,
    )
    return router
