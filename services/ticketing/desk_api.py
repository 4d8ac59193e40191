"""The desk's HTTP API on the ticketing service's port (`HEALTH_PORT`):

    GET  /tickets/public-key                   the verification key (JWK and PEM), no token needed
    POST /tickets/verify  {"token": "..."}     what a scan means; changes nothing
    POST /checkin         {"token": "...", "dose_given": false, "by": "...",
                           "temperature_c": 36.5, "blood_pressure": "120/80"}

and the desk app's (services/ticketing/desk_web.py serves its pages under /desk/):

    POST /desk/api/enrol    {"code": "ABCD-EFGH-JKMN"}   a one-time code for a desk credential
    GET  /desk/api/me                                    the desk the credential belongs to
    GET  /desk/api/public-key                            as /tickets/public-key
    POST /desk/api/verify   {"token"} or {"code"}        as /tickets/verify, for this desk
    POST /desk/api/checkin  {"token"} or {"code"}, "dose_given", "temperature_c",
                            "blood_pressure", "client_id", "scanned_at"

`/tickets/verify` and `/checkin` take `Authorization: Bearer <OPERATOR_TOKEN>` (operators) or
a desk credential; `/desk/api/*` take a desk credential only (else 401, `desk_revoked` for a
revoked desk). A desk sees its own facility's tickets only: another facility's is
`another_facility` (403 on check-in). Everything answers a `TicketCheck` (contracts/ticketing.py).
Verify answers 200 whatever the ticket's status; check-in answers 200 when it redeemed the
ticket (`redeemed`) or recorded the dose of a ticket checked in earlier (`dose_recorded`), 409
for `already_used` or `not_yet`, 410 for `expired` or `revoked`, 422 for `forged`, 403 for
`another_facility`, 400 `{"error", "detail"}` for a malformed request, 429 when a desk sends
more than a desk can scan (`Retry-After`).
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.common.contracts.ticketing import TicketCheck, TicketStatus
from services.common.operator_http import (
    BadRequest,
    authorized,
    error_response,
    json_body,
    operator_name,
    operator_token_key,
    unauthorized,
)
from services.ticketing import desk_web, desks, domain, tickets
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
    TicketStatus.ANOTHER_FACILITY: 403,
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


# --- who is calling: an operator (the shared token) or a facility desk (its credential) ---------


class RateLimit:
    """A token bucket per key (a desk, an address): `burst` at once, then `rate` a second. In
    memory, per replica: it protects the database from a stuck scanner or a guessing loop, it
    is not an accounting."""

    def __init__(self, rate: float, burst: int, max_keys: int = 10_000) -> None:
        self.rate, self.burst, self.max_keys = rate, float(burst), max_keys
        self._buckets: OrderedDict[object, tuple[float, float]] = OrderedDict()

    def retry_after(self, key: object) -> float:
        """0 when the call may go ahead (and is counted), else the seconds to wait."""
        now = time.monotonic()
        tokens, last = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        wait = 0.0 if tokens >= 1 else (1 - tokens) / self.rate
        self._buckets[key] = (tokens - 1 if wait == 0 else tokens, now)
        if len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return wait


# A desk scans a person every few seconds; a scanner stuck on a code, or a script, far more.
desk_limit_key = web.AppKey("desk_rate_limit", RateLimit)
# Enrolments and refused credentials per address (a facility's desks may share one): plenty for
# a few tablets, nothing for a guessing loop.
address_limit_key = web.AppKey("address_rate_limit", RateLimit)
DESK_KEY = web.RequestKey("desk", desks.Desk | None)


def too_many(wait: float) -> web.Response:
    return error_response(
        429,
        "too_many_requests",
        "too many requests: wait a moment",
        **{"Retry-After": str(max(1, round(wait)))},
    )


def _client_address(request: web.Request) -> str:
    return request.remote or "-"


def desk_refused(refusal: desks.Refusal) -> web.Response:
    if refusal is desks.Refusal.DESK_REVOKED:
        return error_response(
            401, refusal.value, "this desk was revoked: ask for a new enrolment code"
        )
    return unauthorized()


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _guarded(handler: Handler, *, operators: bool) -> Handler:
    """Admit a desk credential (and, with `operators`, the operator token): `request[DESK_KEY]`
    is the desk, or None for an operator."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        presented = presented.strip()
        if scheme.lower() == "bearer" and presented.startswith(domain.CREDENTIAL_PREFIX):
            found = await desks.authenticate(request.app[pool_key], presented, _now(request))
            if isinstance(found, desks.Refusal):
                wait = request.app[address_limit_key].retry_after(_client_address(request))
                return too_many(wait) if wait else desk_refused(found)
            wait = request.app[desk_limit_key].retry_after(found.desk_id)
            if wait:
                return too_many(wait)
            request[DESK_KEY] = found
        elif operators and authorized(request):
            request[DESK_KEY] = None
        else:
            return unauthorized()
        return await handler(request)

    return guarded


def operator_or_desk(handler: Handler) -> Handler:
    return _guarded(handler, operators=True)


def desk_only(handler: Handler) -> Handler:
    return _guarded(handler, operators=False)


def _now(request: web.Request) -> datetime:
    return request.app[clock_key].now()


def _ref(body: dict[str, Any]) -> tickets.TicketRef:
    """The ticket a desk names: the QR code's text, or the 8-character code typed in."""
    code = body.get("code")
    if code is not None and "token" not in body:
        if not isinstance(code, str) or domain.ticket_code(code) is None:
            raise BadRequest("'code' is the ticket's 8-character code, e.g. 7K3MX9QP")
        return tickets.TicketRef(code=code)
    return tickets.TicketRef(token=_token(body))


def _scanned_at(body: dict[str, Any]) -> datetime | None:
    value = body.get("scanned_at")
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise BadRequest("'scanned_at' is the device's time with its offset (ISO 8601)")
    return when


def _client_id(body: dict[str, Any]) -> str:
    value = body.get("client_id")
    if value is None:
        return f"server-{uuid.uuid4()}"
    if not isinstance(value, str) or not 8 <= len(value) <= 64 or not value.isprintable():
        raise BadRequest("'client_id' is the device's id for this check-in (8-64 characters)")
    return value


# --- handlers ---------------------------------------------------------------------------------


async def verify(request: web.Request) -> web.Response:
    try:
        body = await json_body(request)
        desk = request.get(DESK_KEY)
        ref = _ref(body) if desk is not None else tickets.TicketRef(token=_token(body))
    except BadRequest as e:
        return error_response(400, "invalid", str(e))
    app = request.app
    if desk is not None:
        check = await tickets.desk_check(app[pool_key], desk, ref, app[key_key], _now(request))
    else:
        check = await tickets.check(app[pool_key], ref.token or "", app[key_key], _now(request))
    CHECKS.labels("verify", check.status.value).inc()
    return _json(check)


async def checkin(request: web.Request) -> web.Response:
    desk = request.get(DESK_KEY)
    try:
        body = await json_body(request)
        ref = _ref(body) if desk is not None else tickets.TicketRef(token=_token(body))
        dose_given, measured = _flag(body, "dose_given"), _measured(body)
        by = operator_name(request, body) if desk is None else desk.name
        client_id, scanned_at = _client_id(body), _scanned_at(body)
    except (BadRequest, domain.InvalidMeasurement) as e:
        return error_response(400, "invalid", str(e))
    app = request.app
    if desk is not None:
        check = await tickets.desk_checkin(
            app[pool_key],
            desk,
            ref,
            app[key_key],
            client_id=client_id,
            measured=measured,
            dose_given=dose_given,
            scanned_at=scanned_at,
            now=_now(request),
        )
    else:
        check = await tickets.checkin(
            app[pool_key],
            ref.token or "",
            app[key_key],
            by=by,
            via=CHANNEL,
            measured=measured,
            dose_given=dose_given,
            now=_now(request),
        )
    CHECKS.labels("checkin", check.status.value).inc()
    if check.dose_given_at is not None and check.status in (
        TicketStatus.REDEEMED,
        TicketStatus.DOSE_RECORDED,
    ):
        app[wake_key]()
    return _json(check, CHECKIN_HTTP_STATUS.get(check.status, 200))


def _desk_json(desk: desks.Desk) -> dict[str, Any]:
    return {
        "desk_id": desk.desk_id,
        "name": desk.name,
        "facility_code": desk.facility_code,
        "facility_name": desk.facility_name,
        "enrolled_at": desk.enrolled_at.isoformat() if desk.enrolled_at else None,
    }


ENROL_ANSWERS = {
    desks.Refusal.UNKNOWN_CODE: (403, "unknown enrolment code: check it, or ask for a new one"),
    desks.Refusal.CODE_USED: (409, "this enrolment code was already used: ask for a new one"),
    desks.Refusal.CODE_EXPIRED: (410, "this enrolment code has expired: ask for a new one"),
    desks.Refusal.DESK_REVOKED: (403, "this desk was revoked: ask for a new enrolment code"),
}


async def enrol(request: web.Request) -> web.Response:
    wait = request.app[address_limit_key].retry_after(_client_address(request))
    if wait:
        return too_many(wait)
    try:
        code = (await json_body(request)).get("code")
        if not isinstance(code, str) or not code.strip() or len(code) > 40:
            raise BadRequest("'code' is the enrolment code, e.g. ABCD-EFGH-JKMN")
    except BadRequest as e:
        return error_response(400, "invalid", str(e))
    result = await desks.enrol(request.app[pool_key], code, _now(request))
    if isinstance(result, desks.Refusal):
        status, detail = ENROL_ANSWERS[result]
        return error_response(status, result.value, detail)
    public = request.app[key_key].public_key()
    return web.json_response(
        {
            "credential": result.credential,
            "desk": _desk_json(result.desk),
            "jwk": tokens.public_jwk(public),
        },
        status=201,
        headers={"Cache-Control": "no-store"},
    )


async def me(request: web.Request) -> web.Response:
    return web.json_response(_desk_json(request[DESK_KEY]), headers={"Cache-Control": "no-store"})


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
    app[desk_limit_key] = RateLimit(rate=5.0, burst=30)
    app[address_limit_key] = RateLimit(rate=0.2, burst=20)
    app.router.add_get("/tickets/public-key", public_key)
    app.router.add_post("/tickets/verify", operator_or_desk(verify))
    app.router.add_post("/checkin", operator_or_desk(checkin))
    app.router.add_post("/desk/api/enrol", enrol)
    app.router.add_get("/desk/api/me", desk_only(me))
    app.router.add_get("/desk/api/public-key", public_key)
    app.router.add_post("/desk/api/verify", desk_only(verify))
    app.router.add_post("/desk/api/checkin", desk_only(checkin))
    desk_web.add_routes(app)
