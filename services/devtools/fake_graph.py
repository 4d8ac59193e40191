"""A local stand-in for Meta's Graph API (WhatsApp Cloud API), speaking it the way Meta does.

It is the only fake the test suite uses, and `vaksin fake-graph` runs it for local demos. It
checks sends the way Meta does (bearer token, field limits of text, reply buttons and lists,
approved templates and their parameters, uploaded media ids) and answers with Meta's response and
error envelopes; it records every accepted send (with its time), mark-as-read (and typing
indicator) and media upload; errors can be injected for the next N sends (in process, or over HTTP
for the terminal chat client); and, given a webhook URL and the app secret, it posts signed `sent`
and `delivered` status webhooks for each accepted message, like Meta does afterwards.

Optionally it also plays Meta's limits: `mps_limit` (130429 beyond that many sends in any second),
`pair_limit` (131056 beyond a burst to one user), `enforce_window` (a free-form send to a user who
has not written in 24 hours is accepted, then fails with a 131047 `failed` status webhook) and
`latency` (seconds before each answer, like the real round trip).

Routes (`{version}` like `v25.0`):
  POST /{version}/{phone_number_id}/messages   send, or mark as read (+ typing indicator)
  POST /{version}/{phone_number_id}/media      multipart upload -> {"id": "<digits>"}
  GET  /_fake/messages?to=WA_ID&after=N        recorded sends with index > N
  GET  /_fake/timeline?after=N                 times of accepted sends with index > N (benchmarks)
  GET  /_fake/media/{media_id}                 an uploaded file as it was received (404 unknown)
  POST /_fake/fail                             {"code", "http_status", "times", "retry_after"}
  /simulator/                                  the chat simulator (simulator.py)
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import re
import secrets
import signal
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from services.devtools.simulator import add_simulator_routes
from services.ingress.webhook import sign

API_VERSION = "v25.0"
FAKE_WABA_ID = "100000000000002"
FAKE_DISPLAY_NUMBER = "15550783881"

MESSAGE_TYPES = frozenset(
    {
        "text",
        "interactive",
        "image",
        "video",
        "audio",
        "document",
        "sticker",
        "template",
        "location",
        "contacts",
        "reaction",
    }
)
MEDIA_TYPES = frozenset({"image", "video", "audio", "document", "sticker"})
CAPTIONED_MEDIA = frozenset({"image", "video", "document"})
INTERACTIVE_TYPES = frozenset({"button", "list", "cta_url", "flow", "location_request_message"})

# Meta's titles for the codes a test is likely to inject (key your logic on the code, not these).
ERROR_TITLES = {
    1: "API Unknown",
    2: "API Service",
    4: "Application request limit reached",
    100: "Invalid parameter",
    190: "Invalid OAuth access token - Cannot parse access token",
    80007: "Rate limit issues",
    130429: "Rate limit hit",
    131000: "Something went wrong",
    131016: "Service unavailable",
    131026: "Message undeliverable",
    131047: "Re-engagement message",
    131056: "(Business Account, Consumer Account) pair rate limit hit",
    131053: "Media upload error",
    131057: "Account in maintenance mode",
    132000: "Number of parameters does not match the expected number of params",
    132001: "Template name does not exist in the translation",
}
WINDOW = 24 * 3600.0


def error_envelope(code: int, message: str | None = None, details: str | None = None) -> dict:
    """Meta's Graph error body (`{"error": {...}}`) for an error code."""
    title = message or ERROR_TITLES.get(code, "Error")
    return {
        "error": {
            "message": f"(#{code}) {title}",
            "type": "OAuthException",
            "code": code,
            "error_data": {"messaging_product": "whatsapp", "details": details or title},
            "fbtrace_id": base64.urlsafe_b64encode(secrets.token_bytes(15)).decode(),
        }
    }


def status_webhook(
    wamid: str,
    status: str,
    recipient_id: str,
    phone_number_id: str,
    *,
    timestamp: int | None = None,
    errors: list[dict[str, Any]] | None = None,
    callback_data: str | None = None,
) -> dict[str, Any]:
    """A status notification exactly as Meta posts it to the webhook (one status)."""
    entry: dict[str, Any] = {
        "id": wamid,
        "status": status,
        "timestamp": str(timestamp if timestamp is not None else int(time.time())),
        "recipient_id": recipient_id,
    }
    if callback_data is not None:
        entry["biz_opaque_callback_data"] = callback_data
    if status in ("sent", "delivered", "read"):
        entry["pricing"] = {
            "billable": False,
            "pricing_model": "PMP",
            "type": "free_customer_service",
            "category": "service",
        }
    if errors:
        entry["errors"] = errors
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": FAKE_WABA_ID,
                "changes": [
                    {
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": FAKE_DISPLAY_NUMBER,
                                "phone_number_id": phone_number_id,
                            },
                            "statuses": [entry],
                        },
                        "field": "messages",
                    }
                ],
            }
        ],
    }


# --- validation, as Meta does it (400, code 100) ---------------------------------------------


class Invalid(Exception):
    """A request Meta would refuse with `(#100) Invalid parameter`; the text is the details."""


def _check(condition: bool, details: str) -> None:
    if not condition:
        raise Invalid(details)


def _text(value: Any, field: str, *, max_len: int, required: bool = True) -> None:
    if value is None and not required:
        return
    _check(isinstance(value, str) and value != "", f"Parameter {field} is required")
    _check(len(value) <= max_len, f"Parameter {field} is too long: max {max_len} characters")


def validate_send(body: dict[str, Any]) -> None:
    """Raise `Invalid` for a send body Meta would refuse."""
    _check(body.get("messaging_product") == "whatsapp", "messaging_product must be 'whatsapp'")
    to = body.get("to")
    _check(isinstance(to, str) and re.fullmatch(r"\+?\d{6,15}", to) is not None, "Invalid 'to'")
    _check(body.get("recipient_type", "individual") == "individual", "Invalid recipient_type")
    kind = body.get("type", "text")
    _check(kind in MESSAGE_TYPES, f"Unsupported message type: {kind}")
    content = body.get(kind)
    _check(
        isinstance(content, list if kind == "contacts" else dict), f"Parameter {kind} is required"
    )
    context = body.get("context")
    if context is not None:
        _check(isinstance(context, dict), "context must be an object")
        _text(context.get("message_id"), "context.message_id", max_len=512)
    _text(body.get("biz_opaque_callback_data"), "biz_opaque_callback_data", max_len=512,
          required=False)  # fmt: skip
    if kind == "text":
        _text(content.get("body"), "text.body", max_len=4096)
    elif kind == "interactive":
        _validate_interactive(content)
    elif kind in MEDIA_TYPES:
        _check(("id" in content) != ("link" in content), f"{kind} needs exactly one of id or link")
        if kind in CAPTIONED_MEDIA:
            _text(content.get("caption"), f"{kind}.caption", max_len=1024, required=False)
        else:
            _check("caption" not in content, f"{kind} does not take a caption")
    elif kind == "template":
        _text(content.get("name"), "template.name", max_len=512)
        language = content.get("language")
        _check(isinstance(language, dict), "Parameter template.language is required")
        _text(language.get("code"), "template.language.code", max_len=16)
        components = content.get("components", [])
        _check(isinstance(components, list), "template.components must be a list")
        for component in components:
            _check(isinstance(component, dict), "A template component must be an object")
            for parameter in component.get("parameters", []):
                _check(isinstance(parameter, dict), "A template parameter must be an object")
                if parameter.get("type") == "text":
                    text = parameter.get("text")
                    _text(text, "template parameter text", max_len=1024)
                    _check(
                        re.search(r"[\t\n]| {5,}", text) is None,
                        "Parameter text cannot have new-line/tab characters or more than 4 "
                        "consecutive spaces",
                    )


def _validate_interactive(content: dict[str, Any]) -> None:
    kind = content.get("type")
    _check(kind in INTERACTIVE_TYPES, f"Unsupported interactive type: {kind}")
    body = content.get("body")
    _check(isinstance(body, dict), "Parameter interactive.body is required")
    _text(body.get("text"), "interactive.body.text", max_len=1024 if kind == "button" else 4096)
    header = content.get("header")
    if isinstance(header, dict) and header.get("type") == "text":
        _text(header.get("text"), "interactive.header.text", max_len=60)
    footer = content.get("footer")
    if footer is not None:
        _check(isinstance(footer, dict), "interactive.footer must be an object")
        _text(footer.get("text"), "interactive.footer.text", max_len=60)
    action = content.get("action")
    _check(isinstance(action, dict), "Parameter interactive.action is required")
    if kind == "button":
        _validate_buttons(action)
    elif kind == "list":
        _validate_list(action)


def _validate_buttons(action: dict[str, Any]) -> None:
    buttons = action.get("buttons")
    _check(isinstance(buttons, list) and 1 <= len(buttons) <= 3, "1 to 3 buttons are required")
    ids, titles = set(), set()
    for button in buttons:
        _check(isinstance(button, dict) and button.get("type") == "reply", "button type: reply")
        reply = button.get("reply")
        _check(isinstance(reply, dict), "Parameter button.reply is required")
        _text(reply.get("id"), "button.reply.id", max_len=256)
        _text(reply.get("title"), "button.reply.title", max_len=20)
        ids.add(reply["id"])
        titles.add(reply["title"])
    _check(len(ids) == len(buttons), "Button ids must be unique")
    _check(len(titles) == len(buttons), "Button titles must be unique")


def _validate_list(action: dict[str, Any]) -> None:
    _text(action.get("button"), "action.button", max_len=20)
    sections = action.get("sections")
    _check(isinstance(sections, list) and 1 <= len(sections) <= 10, "1 to 10 sections required")
    row_ids: list[str] = []
    for section in sections:
        _check(isinstance(section, dict), "A section must be an object")
        _text(section.get("title"), "section.title", max_len=24, required=len(sections) > 1)
        rows = section.get("rows")
        _check(isinstance(rows, list) and len(rows) >= 1, "Each section needs at least one row")
        for row in rows:
            _check(isinstance(row, dict), "A row must be an object")
            _text(row.get("id"), "row.id", max_len=200)
            _text(row.get("title"), "row.title", max_len=24)
            _text(row.get("description"), "row.description", max_len=72, required=False)
            row_ids.append(row["id"])
    _check(len(row_ids) <= 10, "A list holds at most 10 rows in total")
    _check(len(set(row_ids)) == len(row_ids), "Row ids must be unique")


# --- the server -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Failure:
    code: int
    http_status: int
    retry_after: int | None
    message: str | None


def approved_templates() -> dict[str, dict[str, Any]]:
    """The templates the fake approves by default: the local ones of `Settings` (name ->
    languages and number of body parameters)."""
    from services.common.settings import Settings

    return {
        t.name: {"languages": set(t.languages.values()), "params": t.params}
        for t in Settings().whatsapp_templates.values()
    }


def _template_params(content: dict[str, Any]) -> int:
    return sum(
        len(c.get("parameters", []))
        for c in content.get("components", [])
        if isinstance(c, dict) and c.get("type") == "body"
    )


_session_key = web.AppKey("session", aiohttp.ClientSession)


class FakeGraph:
    """The fake Graph API. `start()` it on a port and point WHATSAPP_API_BASE at the URL."""

    def __init__(
        self,
        *,
        webhook_url: str | None = None,
        app_secret: str | None = None,
        access_token: str | None = None,
        phone_number_id: str | None = None,
        status_delay: float = 0.05,
        templates: dict[str, dict[str, Any]] | None = None,
        enforce_window: bool = False,
        mps_limit: float | None = None,
        pair_limit: tuple[int, float] | None = None,
        latency: float = 0.0,
    ) -> None:
        # access_token / phone_number_id: when given, only that token / number id is accepted.
        self.webhook_url = webhook_url
        self.app_secret = app_secret
        self.access_token = access_token
        self.phone_number_id = phone_number_id
        self.status_delay = status_delay
        # Approved templates: name -> {"languages": {codes}, "params": N}.
        self.templates = approved_templates() if templates is None else templates
        self.enforce_window = enforce_window
        self.mps_limit = mps_limit
        self.pair_limit = pair_limit  # (burst, seconds): more to one user in that time -> 131056
        self.latency = latency
        self.sent: list[dict[str, Any]] = []
        self.rejected: list[dict[str, Any]] = []
        # Accepted (a wamid was given) but never delivered: failed later by status (131047).
        self.undelivered: list[dict[str, Any]] = []
        self.reads: list[str] = []
        self.typing: list[str] = []
        self.failing_reads = 0  # mark-as-read calls still to answer with a 500 (131000)
        self.media: dict[str, dict[str, Any]] = {}
        self.last_inbound: dict[str, float] = {}
        self.base_url = ""
        self._recent: deque[float] = deque()
        self._recent_to: dict[str, deque[float]] = {}
        self._failures: deque[_Failure] = deque()
        self.down_until = 0.0  # see outage()
        self.down_hangs = False
        self.refused_while_down = 0
        self._index = itertools.count(1)
        self._media_ids = itertools.count(1_000_000_000_000_001)
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: web.AppRunner | None = None
        self.app = self._make_app()

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self, port: int = 0, host: str = "127.0.0.1") -> str:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound_port = self._runner.addresses[0][1]
        self.base_url = f"http://{host}:{bound_port}/{API_VERSION}"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- test helpers ----------------------------------------------------------------------

    def messages_to(self, wa_id: str) -> list[dict[str, Any]]:
        return [m for m in self.sent if m["to"] == wa_id.lstrip("+")]

    def customer_wrote(self, wa_id: str, at: float | None = None) -> None:
        """The user wrote to us at `at` (now): their 24-hour window is open (`enforce_window`)."""
        self.last_inbound[wa_id.lstrip("+")] = time.time() if at is None else at

    def expire_media(self, media_id: str) -> None:
        """Forget an upload, as Meta does after 30 days: sends by its id fail with 131053."""
        self.media.pop(media_id, None)

    def max_rate(self, window: float = 1.0) -> int:
        """The most sends accepted within any `window` seconds (each window starting at a send)."""
        times = sorted(m["at"] for m in self.sent)
        best, j = 0, 0
        for i, start in enumerate(times):
            while j < len(times) and times[j] < start + window:
                j += 1
            best = max(best, j - i)
        return best

    async def wait_for_messages(
        self,
        wa_id: str,
        count: int,
        timeout: float = 10.0,  # noqa: ASYNC109 (a test helper's deadline, as in the brief)
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            found = self.messages_to(wa_id)
            if len(found) >= count:
                return found
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"expected {count} message(s) to {wa_id} within {timeout}s, got {len(found)}: "
                    f"{[m['body'] for m in found]}"
                )
            await asyncio.sleep(0.02)

    def fail_next(
        self,
        code: int,
        *,
        http_status: int = 400,
        times: int = 1,
        retry_after: int | None = None,
        message: str | None = None,
    ) -> None:
        """Answer the next `times` send requests with this Meta error instead of sending."""
        self._failures.extend([_Failure(code, http_status, retry_after, message)] * times)

    def outage(self, seconds: float, *, hang: bool = False) -> None:
        """Meta down for `seconds` from now: every send and upload answers 503 with code 2
        ("service temporarily unavailable"), or, with `hang`, gets no answer before the
        client's timeout (the request is then dropped: nothing is sent)."""
        self.down_until = time.monotonic() + seconds
        self.down_hangs = hang

    async def _down(self) -> web.Response | None:
        if time.monotonic() >= self.down_until:
            return None
        self.refused_while_down += 1
        if self.down_hangs:
            await asyncio.sleep(max(0.0, self.down_until - time.monotonic()) + 30)
        return web.json_response(error_envelope(2, "Service temporarily unavailable"), status=503)

    async def post_status(
        self, wamid: str, status: str, *, errors: list[dict[str, Any]] | None = None
    ) -> int | None:
        """Post one signed status webhook for a message sent through this fake (HTTP status of
        the webhook's answer, None if it could not be reached)."""
        record = {m["wamid"]: m for m in (*self.sent, *self.undelivered)}[wamid]
        payload = status_webhook(
            wamid, status, record["to"], record["phone_number_id"], errors=errors
        )
        return await self.post_webhook(payload)

    # --- HTTP ------------------------------------------------------------------------------

    def _make_app(self) -> web.Application:
        app = web.Application()
        app.cleanup_ctx.append(self._client_session)
        version = r"{version:v\d+\.\d+}"
        app.router.add_post(f"/{version}/{{phone_number_id}}/messages", self._messages)
        app.router.add_post(f"/{version}/{{phone_number_id}}/media", self._upload_media)
        app.router.add_get("/_fake/messages", self._list_messages)
        app.router.add_get("/_fake/timeline", self._timeline)
        app.router.add_get("/_fake/media/{media_id}", self._media_file)
        app.router.add_post("/_fake/fail", self._inject_failure)
        add_simulator_routes(app, self)
        return app

    async def _client_session(self, app: web.Application) -> AsyncIterator[None]:
        app[_session_key] = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        yield
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await app[_session_key].close()

    def _refusal(self, request: web.Request) -> web.Response | None:
        """Meta's answer to a request with a bad token or an unknown number id, else None."""
        auth = request.headers.get("Authorization", "")
        token = auth[len("Bearer ") :].strip() if auth.startswith("Bearer ") else ""
        if not token or (self.access_token is not None and token != self.access_token):
            return web.json_response(error_envelope(190), status=401)
        number_id = request.match_info["phone_number_id"]
        if self.phone_number_id is not None and number_id != self.phone_number_id:
            details = f"Object with ID '{number_id}' does not exist"
            return web.json_response(
                error_envelope(100, "Unsupported post request", details), status=400
            )
        return None

    async def _messages(self, request: web.Request) -> web.Response:
        refusal = self._refusal(request) or await self._down()
        if refusal is not None:
            return refusal
        try:
            body = await request.json()
        except ValueError:
            return web.json_response(error_envelope(100, details="Body is not JSON"), status=400)
        if not isinstance(body, dict):
            return web.json_response(
                error_envelope(100, details="Body is not an object"), status=400
            )
        if self.latency:
            await asyncio.sleep(self.latency)
        if body.get("status") == "read" and "message_id" in body:
            if body.get("messaging_product") != "whatsapp":
                return web.json_response(error_envelope(100), status=400)
            if self.failing_reads > 0:
                self.failing_reads -= 1
                return web.json_response(error_envelope(131000), status=500)
            self.reads.append(str(body["message_id"]))
            if isinstance(body.get("typing_indicator"), dict):
                self.typing.append(str(body["message_id"]))
            return web.json_response({"success": True})
        try:
            validate_send(body)
        except Invalid as exc:
            self.rejected.append({"to": body.get("to"), "code": 100, "body": body})
            return web.json_response(error_envelope(100, details=str(exc)), status=400)
        to = str(body["to"]).lstrip("+")
        if self._failures:
            return self._injected(self._failures.popleft(), to, body)
        refused = self._refused_send(to, body)
        if refused is not None:
            code, details = refused
            self.rejected.append({"to": to, "code": code, "body": body, "at": time.time()})
            return web.json_response(error_envelope(code, details=details), status=400)
        now = time.time()
        self._recent.append(now)
        self._recent_to.setdefault(to, deque()).append(now)
        wamid = "wamid." + base64.b64encode(secrets.token_bytes(30)).decode()
        number_id = request.match_info["phone_number_id"]
        record = {
            "index": next(self._index),
            "to": to,
            "type": body.get("type", "text"),
            "body": body,
            "wamid": wamid,
            "phone_number_id": number_id,
            "at": now,
        }
        window_closed = (
            self.enforce_window
            and record["type"] != "template"
            and now - self.last_inbound.get(to, float("-inf")) >= WINDOW
        )
        (self.undelivered if window_closed else self.sent).append(record)
        if self.webhook_url and self.app_secret:
            callback = body.get("biz_opaque_callback_data")
            if window_closed:
                self._spawn(self._emit_window_failure(wamid, to, number_id, callback))
            else:
                self._spawn(self._emit_statuses(wamid, to, number_id, callback))
        return web.json_response(
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": body["to"], "wa_id": to}],
                "messages": [{"id": wamid, "message_status": "accepted"}],
            }
        )

    def _injected(self, failure: _Failure, to: str | None, body: dict[str, Any]) -> web.Response:
        self.rejected.append({"to": to, "code": failure.code, "body": body, "at": time.time()})
        headers = {}
        if failure.retry_after is not None:
            headers["Retry-After"] = str(failure.retry_after)
        return web.json_response(
            error_envelope(failure.code, failure.message),
            status=failure.http_status,
            headers=headers,
        )

    def _refused_send(self, to: str, body: dict[str, Any]) -> tuple[int, str] | None:
        """(code, details) of Meta's refusal of a valid send: unknown template or media id,
        throughput or pair rate limit; None if it goes through."""
        kind = body.get("type", "text")
        content = body.get(kind) or {}
        if kind == "template":
            approved = self.templates.get(content["name"])
            language = content["language"]["code"]
            if approved is None or language not in approved["languages"]:
                return 132001, f"template name ({content['name']}) does not exist in {language}"
            if _template_params(content) != approved["params"]:
                return 132000, f"expected number of params ({approved['params']}) does not match"
        if kind in MEDIA_TYPES and "id" in content and content["id"] not in self.media:
            return 131053, f"Unknown media id {content['id']}"
        now = time.time()
        if self.mps_limit is not None:
            while self._recent and self._recent[0] <= now - 1.0:
                self._recent.popleft()
            if len(self._recent) >= self.mps_limit:
                return 130429, "too many messages sent from this phone number"
        if self.pair_limit is not None:
            burst, seconds = self.pair_limit
            recent = self._recent_to.setdefault(to, deque())
            while recent and recent[0] <= now - seconds:
                recent.popleft()
            if len(recent) >= burst:
                return 131056, "too many messages sent to this phone number"
        return None

    async def _upload_media(self, request: web.Request) -> web.Response:
        refusal = self._refusal(request) or await self._down()
        if refusal is not None:
            return refusal
        try:
            form = await request.post()
        except ValueError:
            return web.json_response(error_envelope(100, details="multipart expected"), status=400)
        upload = form.get("file")
        mime = form.get("type")
        if (
            form.get("messaging_product") != "whatsapp"
            or not isinstance(mime, str)
            or not isinstance(upload, web.FileField)
        ):
            details = "messaging_product=whatsapp, type and file are required"
            return web.json_response(error_envelope(100, details=details), status=400)
        media_id = str(next(self._media_ids))
        self.media[media_id] = {
            "type": mime,
            "filename": upload.filename,
            "data": upload.file.read(),
        }
        return web.json_response({"id": media_id})

    async def _media_file(self, request: web.Request) -> web.Response:
        media = self.media.get(request.match_info["media_id"])
        if media is None:
            return web.json_response({"error": "unknown media id"}, status=404)
        return web.Response(body=media["data"], content_type=media["type"])

    async def _list_messages(self, request: web.Request) -> web.Response:
        to = request.query.get("to", "").lstrip("+")
        try:
            after = int(request.query.get("after", "0"))
        except ValueError:
            return web.json_response({"error": "after must be an integer"}, status=400)
        found = [
            {"index": m["index"], "to": m["to"], "wamid": m["wamid"], "body": m["body"]}
            for m in self.sent
            if m["index"] > after and (not to or m["to"] == to)
        ]
        return web.json_response(found)

    async def _timeline(self, request: web.Request) -> web.Response:
        try:
            after = int(request.query.get("after", "0"))
        except ValueError:
            return web.json_response({"error": "after must be an integer"}, status=400)
        found = [m for m in self.sent if m["index"] > after]
        return web.json_response(
            {
                "sent": len(self.sent),
                "rejected": len(self.rejected),
                "last_index": self.sent[-1]["index"] if self.sent else 0,
                "times": [m["at"] for m in found],
                "to": [m["to"] for m in found],
            }
        )

    async def _inject_failure(self, request: web.Request) -> web.Response:
        try:
            spec = await request.json()
            self.fail_next(
                int(spec["code"]),
                http_status=int(spec.get("http_status", 400)),
                times=int(spec.get("times", 1)),
                retry_after=None if spec.get("retry_after") is None else int(spec["retry_after"]),
                message=spec.get("message"),
            )
        except (ValueError, KeyError, TypeError) as exc:
            return web.json_response({"error": f"bad failure spec: {exc}"}, status=400)
        return web.json_response({"queued": len(self._failures)})

    # --- status webhooks -------------------------------------------------------------------

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _emit_statuses(
        self, wamid: str, to: str, number_id: str, callback: str | None = None
    ) -> None:
        for status in ("sent", "delivered"):
            await asyncio.sleep(self.status_delay)
            await self.post_webhook(
                status_webhook(wamid, status, to, number_id, callback_data=callback)
            )

    async def _emit_window_failure(
        self, wamid: str, to: str, number_id: str, callback: str | None
    ) -> None:
        await asyncio.sleep(self.status_delay)
        error = error_envelope(131047)["error"]
        details = "more than 24 hours have passed since the customer last replied"
        errors = [{"code": 131047, "title": error["message"], "error_data": {"details": details}}]
        await self.post_webhook(
            status_webhook(wamid, "failed", to, number_id, errors=errors, callback_data=callback)
        )

    async def post_webhook(self, payload: dict[str, Any]) -> int | None:
        if not (self.webhook_url and self.app_secret):
            raise RuntimeError("FakeGraph was started without webhook_url and app_secret")
        raw = json.dumps(payload).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "facebookexternalua",
            "X-Hub-Signature-256": sign(raw, self.app_secret),
        }
        try:
            async with self.app[_session_key].post(
                self.webhook_url, data=raw, headers=headers
            ) as resp:
                return resp.status
        except (aiohttp.ClientError, OSError, TimeoutError):
            return None


def serve_forever(port: int, host: str = "127.0.0.1") -> int:
    """`vaksin fake-graph`: serve on host:port (0 = any free port) until SIGINT/SIGTERM."""
    return asyncio.run(_serve(port, host))


async def _serve(port: int, host: str) -> int:
    webhook_url = os.environ.get("FAKE_GRAPH_WEBHOOK_URL") or None
    app_secret = os.environ.get("WHATSAPP_APP_SECRET") or None
    if webhook_url and not app_secret:
        # Under `vaksin up` the secret is the local generated one the ingress also reads.
        from services.common.settings import load_settings

        app_secret = load_settings().whatsapp_app_secret
    fake = FakeGraph(webhook_url=webhook_url, app_secret=app_secret)
    base_url = await fake.start(port, host=host)
    print(base_url, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        with contextlib.suppress(Exception):
            await fake.stop()
    return 0
