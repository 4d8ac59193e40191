"""The desk's HTTP API on the ticketing service's port (`HEALTH_PORT`):

    GET  /tickets/public-key                   the verification key (JWK and PEM), no token needed
    POST /tickets/verify  {"token": "..."}     what a scan means; changes nothing
    POST /checkin         {"token": "...", "dose_given": false, "by": "...",
                           "temperature_c": 36.5, "blood_pressure": "120/80"}

The last two need `Authorization: Bearer <OPERATOR_TOKEN>` (else 401). Both answer a
`TicketCheck` (contracts/ticketing.py). Verify answers 200 whatever the ticket's status; check-in
answers 200 when it redeemed the ticket (`redeemed`) or recorded the dose of a ticket checked in
earlier (`dose_recorded`), 409 for `already_used` or `not_yet`, 410 for `expired` or `revoked`,
422 for `forged`, and 400 `{"error", "detail"}` for a malformed request.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.common.contracts.ticketing import TicketCheck, TicketStatus
from services.common.operator_http import (
    BadRequest,
    error_response,
    json_body,
    operator_name,
    operator_only,
    operator_token_key,
)
from services.ticketing import domain, tickets
from services.ticketing import token as tokens
from services.ticketing.metrics import CHECKS

pool_key = web.AppKey("ticketing_pool", asyncpg.Pool)
key_key = web.AppKey("ticket_key", Ed25519PrivateKey)
wake_key = web.AppKey("outbox_wake", Callable)

CHANNEL = "http"


class DeskClock:
    """The time a check is judged at: the real one, or a fixed one (tests replaying a session
    day; the dialog's date is replaceable the same way)."""

    def __init__(self) -> None:
        self.fixed: datetime | None = None

    def now(self) -> datetime:
        return self.fixed or datetime.now(UTC)


clock_key = web.AppKey("desk_clock", DeskClock)
CHECKIN_HTTP_STATUS = {
    TicketStatus.REDEEMED: 200,
    TicketStatus.DOSE_RECORDED: 200,
    TicketStatus.ALREADY_USED: 409,
    TicketStatus.NOT_YET: 409,
    TicketStatus.EXPIRED: 410,
    TicketStatus.REVOKED: 410,
    TicketStatus.FORGED: 422,
}


async def public_key(request: web.Request) -> web.Response:
    public = request.app[key_key].public_key()
    return web.json_response(
        {
            "alg": tokens.ALGORITHM,
            "jwk": tokens.public_jwk(public),
            "pem": tokens.public_pem(public),
        },
        headers={"Cache-Control": "public, max-age=300"},
    )


def _token(body: dict[str, Any]) -> str:
    value = body.get("token")
    if not isinstance(value, str) or not value.strip():
        raise BadRequest("'token' is the text of the ticket's QR code")
    return value


def _flag(body: dict[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise BadRequest(f"'{name}' is true or false")
    return value


def _measured(body: dict[str, Any]) -> domain.Measurements:
    temperature, pressure = body.get("temperature_c"), body.get("blood_pressure")
    if isinstance(temperature, bool) or not isinstance(temperature, int | float | str | None):
        raise BadRequest("'temperature_c' is a number, e.g. 36.5")
    if not isinstance(pressure, str | None):
        raise BadRequest("'blood_pressure' is text, e.g. \"120/80\"")
    return domain.measurements(temperature, pressure)


def _json(check: TicketCheck, status: int = 200) -> web.Response:
    return web.json_response(check.model_dump(mode="json"), status=status)


async def verify(request: web.Request) -> web.Response:
    try:
        token = _token(await json_body(request))
    except BadRequest as e:
        return error_response(400, "invalid", str(e))
    app = request.app
    check = await tickets.check(app[pool_key], token, app[key_key], app[clock_key].now())
    CHECKS.labels("verify", check.status.value).inc()
    return _json(check)


async def checkin(request: web.Request) -> web.Response:
    try:
        body = await json_body(request)
        token, dose_given = _token(body), _flag(body, "dose_given")
        by, measured = operator_name(request, body), _measured(body)
    except (BadRequest, domain.InvalidMeasurement) as e:
        return error_response(400, "invalid", str(e))
    check = await tickets.checkin(
        request.app[pool_key],
        token,
        request.app[key_key],
        by=by,
        via=CHANNEL,
        measured=measured,
        dose_given=dose_given,
        now=request.app[clock_key].now(),
    )
    CHECKS.labels("checkin", check.status.value).inc()
    if check.dose_given_at is not None and check.status in (
        TicketStatus.REDEEMED,
        TicketStatus.DOSE_RECORDED,
    ):
        request.app[wake_key]()
    return _json(check, CHECKIN_HTTP_STATUS.get(check.status, 200))


def add_desk_routes(
    app: web.Application,
    pool: asyncpg.Pool,
    key: Ed25519PrivateKey,
    token: str,
    wake: Callable[[], None],
) -> None:
    app[pool_key] = pool
    app[key_key] = key
    app[operator_token_key] = token
    app[wake_key] = wake
    app[clock_key] = DeskClock()
    app.router.add_get("/tickets/public-key", public_key)
    app.router.add_post("/tickets/verify", operator_only(verify))
    app.router.add_post("/checkin", operator_only(checkin))
