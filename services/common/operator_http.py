"""What every operator HTTP API shares: the shared bearer token (`OPERATOR_TOKEN`, compared in
constant time), JSON errors `{"error": code, "detail": text}`, and who is acting (`by` in the body
or the `X-Operator` header: the token is shared, so the person is named for the audit)."""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

operator_token_key = web.AppKey("operator_token", str)
DEFAULT_OPERATOR = "api"


class BadRequest(Exception):
    """A request the API refuses with 400 and this detail."""


def error_response(status: int, code: str, detail: str, **headers: str) -> web.Response:
    return web.json_response({"error": code, "detail": detail}, status=status, headers=headers)


def authorized(request: web.Request) -> bool:
    expected = request.config_dict[operator_token_key]
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if not expected or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(presented.strip().encode(), expected.encode())


def unauthorized() -> web.Response:
    return error_response(
        401,
        "unauthorized",
        "send Authorization: Bearer <OPERATOR_TOKEN>",
        **{"WWW-Authenticate": 'Bearer realm="vaksin-operator"'},
    )


@web.middleware
async def operator_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    """For an application whose every route is for operators."""
    if not authorized(request):
        return unauthorized()
    return await handler(request)


def operator_only(handler: Handler) -> Handler:
    """For one route of an application that also has public ones."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        if not authorized(request):
            return unauthorized()
        return await handler(request)

    return guarded


async def json_body(request: web.Request) -> dict[str, Any]:
    """The JSON object of a POST; an empty body is `{}`."""
    text = await request.text()
    if not text.strip():
        return {}
    try:
        body = json.loads(text)
    except ValueError:
        raise BadRequest("the body is not JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("the body is a JSON object")
    return body


def operator_name(request: web.Request, body: dict[str, Any] | None = None) -> str:
    by = (body or {}).get("by")
    if by is not None and not isinstance(by, str):
        raise BadRequest("'by' is a string")
    return (by or request.headers.get("X-Operator") or DEFAULT_OPERATOR)[:100]
