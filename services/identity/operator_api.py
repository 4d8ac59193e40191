"""The operator HTTP API of the intake queue, on the identity service's HTTP port (`HEALTH_PORT`):

    GET  /operator/intake?status=open&regency=&facility=&older_than_hours=&limit=
    GET  /operator/intake/{id}
    POST /operator/intake/{id}/approve   {"by": "..."}                 (body optional)
    POST /operator/intake/{id}/reject    {"reason": "...", "by": "..."}

Every request needs `Authorization: Bearer <OPERATOR_TOKEN>` (compared in constant time): without
it, or with another token, 401. Errors are JSON `{"error": code, "detail": text}`: 400 for a bad
query, body or missing reason, 404 for an unknown id, 409 for a request that is not open (or whose
NIK was registered under another number meanwhile). The token is shared, so `by` (or the header
`X-Operator`) names the person acting; it goes into the audit table with the time. Responses carry
the NIK and the number masked only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg
from aiohttp import web

from services.common.operator_http import (
    BadRequest,
    Handler,
    error_response,
    json_body,
    operator_auth,
    operator_name,
    operator_token_key,
)
from services.identity import intake

pool_key = web.AppKey("identity_pool", asyncpg.Pool)
wake_key = web.AppKey("outbox_wake", Callable)

CHANNEL = "http"
MAX_LIMIT = 500
_STATUS_FOR = {"not_found": 404, "not_open": 409, "conflict": 409, "invalid": 400}


def _dump(model: Any) -> dict[str, Any]:
    return model.model_dump(mode="json")


def _intake_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isdigit() or len(raw) > 18:
        raise intake.IntakeError("not_found", f"no intake request {raw[:40]!r}")
    return int(raw)


async def _body(request: web.Request) -> dict[str, Any]:
    body = await json_body(request)
    if "reason" in body and not isinstance(body["reason"], str | None):
        raise BadRequest("'reason' is a string")
    return body


def _filters(query: Any) -> dict[str, Any]:
    status = query.get("status", "open") or "open"
    if status not in (*intake.STATUSES, "all"):
        raise intake.IntakeError("invalid", "status is open, approved, rejected or all")
    regency = query.get("regency") or None
    if regency is not None and not (regency.isdigit() and len(regency) in (2, 4)):
        raise intake.IntakeError("invalid", "regency is a province (2 digits) or regency code (4)")
    facility = (query.get("facility") or "").strip() or None
    older: float | None = None
    if query.get("older_than_hours"):
        try:
            older = float(query["older_than_hours"])
        except ValueError:
            older = -1.0
        if not 0 <= older < 24 * 3650:
            raise intake.IntakeError("invalid", "older_than_hours is a number of hours >= 0")
    limit = query.get("limit", "100")
    if not limit.isdigit() or not 1 <= int(limit) <= MAX_LIMIT:
        raise intake.IntakeError("invalid", f"limit is 1-{MAX_LIMIT}")
    return {
        "status": None if status == "all" else status,
        "regency": regency,
        "facility": facility,
        "older_than_hours": older,
        "limit": int(limit),
    }


async def list_intake(request: web.Request) -> web.Response:
    found = await intake.list_queue(request.app[pool_key], **_filters(request.query))
    return web.json_response({"items": [_dump(i) for i in found], "count": len(found)})


async def show_intake(request: web.Request) -> web.Response:
    found = await intake.show(
        request.app[pool_key], _intake_id(request), by=operator_name(request), channel=CHANNEL
    )
    return web.json_response(_dump(found))


async def approve_intake(request: web.Request) -> web.Response:
    intake_id = _intake_id(request)
    body = await _body(request)
    done = await intake.approve(
        request.app[pool_key], intake_id, by=operator_name(request, body), channel=CHANNEL
    )
    request.app[wake_key]()
    return web.json_response(_dump(done))


async def reject_intake(request: web.Request) -> web.Response:
    intake_id = _intake_id(request)
    body = await _body(request)
    done = await intake.reject(
        request.app[pool_key],
        intake_id,
        reason=body.get("reason"),
        by=operator_name(request, body),
        channel=CHANNEL,
    )
    request.app[wake_key]()
    return web.json_response(_dump(done))


@web.middleware
async def _refusals(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except intake.IntakeError as e:
        return error_response(_STATUS_FOR.get(e.code, 400), e.code, e.detail)
    except BadRequest as e:
        return error_response(400, "invalid", str(e))


def operator_app(pool: asyncpg.Pool, token: str, wake: Callable[[], None]) -> web.Application:
    """The `/operator/` sub-application: its middlewares guard only its own routes."""
    app = web.Application(middlewares=[operator_auth, _refusals], client_max_size=64 * 1024)
    app[pool_key] = pool
    app[operator_token_key] = token
    app[wake_key] = wake
    app.router.add_get("/intake", list_intake)
    app.router.add_get("/intake/{id}", show_intake)
    app.router.add_post("/intake/{id}/approve", approve_intake)
    app.router.add_post("/intake/{id}/reject", reject_intake)
    return app


def add_operator_routes(
    app: web.Application, pool: asyncpg.Pool, token: str, wake: Callable[[], None]
) -> None:
    app.add_subapp("/operator/", operator_app(pool, token, wake))
