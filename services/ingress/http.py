"""The WhatsApp webhook edge: handshake, signature, parse, publish to WA_INBOUND, answer fast.

Nothing here touches Postgres: the edge only needs NATS, so it acknowledges in about a millisecond.
A message is acknowledged to Meta only after JetStream has stored it; if NATS is unreachable we
answer 503 and Meta retries later.

A signed body that can never be stored (the parser cleans what it can, so this is what it missed:
an item that cannot be serialized or is too large for NATS, a parser bug) is not an outage:
retrying it would fail for Meta's 7 days of retries. Each item is published on its own; the good
ones are stored, and if any item is poison the whole raw body is kept once as a dead letter
(`deadletter.webhook`, stream DEAD_LETTERS) with the failing items named in its error, counted,
and acknowledged with 200. The body is kept whole (not the failed item alone) because the failed
item is exactly what could not be serialized; replaying the body is safe, since the good items
carry their Nats-Msg-Id and the dialog skips wamids it has seen.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime

import nats.errors
import nats.js.errors
import structlog
from aiohttp import web
from faststream.nats import NatsBroker
from pydantic_core import PydanticSerializationError

from services.common import tracing
from services.common.contracts.deadletters import DeadMessage
from services.common.contracts.streams import DEAD_LETTERS, WA_INBOUND
from services.common.contracts.subjects import (
    DEADLETTER_WEBHOOK,
    WA_INBOUND_STATUS,
)
from services.common.jetstream import publish_durably, publish_inbound
from services.common.settings import Settings
from services.ingress.metrics import (
    INBOUND_PUBLISHED,
    WEBHOOK_POISON,
    WEBHOOK_REQUESTS,
    WEBHOOK_SECONDS,
)
from services.ingress.webhook import (
    Notification,
    Signature,
    check_handshake,
    check_signature,
    parse_notification,
)

log = structlog.get_logger(__name__)

broker_key = web.AppKey("broker", NatsBroker)
settings_key = web.AppKey("settings", Settings)


def _reject(status: int, reason: str) -> web.Response:
    WEBHOOK_REQUESTS.labels(result=str(status)).inc()
    return web.json_response({"error": reason}, status=status)


async def handshake(request: web.Request) -> web.Response:
    settings = request.app[settings_key]
    challenge = check_handshake(dict(request.query), settings.whatsapp_verify_token)
    if challenge is None:
        return web.Response(status=403, text="Forbidden")
    return web.Response(text=challenge, content_type="text/plain")


async def receive(request: web.Request) -> web.Response:
    # The root of a message's trace (Meta sends no trace context); nothing when tracing is off.
    with tracing.span("POST /webhook", kind=tracing.SpanKind.SERVER) as span:
        response = await _receive(request)
        if span is not None:
            span.set_attribute("http.response.status_code", response.status)
        return response


async def _receive(request: web.Request) -> web.Response:
    started = time.perf_counter()
    settings = request.app[settings_key]
    try:
        raw = await request.read()  # over client_max_size (3 MB, Meta's maximum) -> 413
    except web.HTTPRequestEntityTooLarge:
        WEBHOOK_REQUESTS.labels(result="413").inc()
        raise
    signature = check_signature(
        raw, request.headers.get("X-Hub-Signature-256"), settings.whatsapp_app_secret
    )
    if signature is Signature.MISSING:
        return _reject(401, "missing X-Hub-Signature-256")
    if signature is Signature.INVALID:
        return _reject(403, "X-Hub-Signature-256 does not match the body")
    try:
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested too deep
        return _reject(400, "body is not valid JSON")

    broker = request.app[broker_key]
    try:
        notification = parse_notification(payload)
    except Exception as exc:  # a parser bug must not make Meta retry the body for 7 days
        # No traceback: its text may quote the body (a pydantic error quotes the input); the
        # body itself is in the dead letter, to reproduce it.
        log.error("webhook body could not be parsed", error=type(exc).__name__)
        failures: list[tuple[str, Exception]] = [("body", exc)]
        notification = Notification()
    else:
        failures = await _store(broker, settings, notification)

    if any(is_outage(exc) for _, exc in failures):
        log.warning(
            "could not store webhook in JetStream; Meta will retry", error=_describe(failures)
        )
        return _reject(503, "temporarily unable to accept; retry later")
    if failures:
        try:
            await _keep_dead_letter(broker, raw, failures)
        except Exception as exc:
            # Never acknowledge what is neither stored nor kept: Meta retries it.
            if is_outage(exc):
                log.warning("could not keep poison webhook body; Meta will retry")
                return _reject(503, "temporarily unable to accept; retry later")
            log.error("could not keep poison webhook body", error=_describe([("dead", exc)]))
            return _reject(500, "unable to accept this body")

    failed = {label for label, _ in failures}
    stored_messages = sum(f"message#{i}" not in failed for i in range(len(notification.messages)))
    stored_statuses = sum(f"status#{i}" not in failed for i in range(len(notification.statuses)))
    INBOUND_PUBLISHED.labels(kind="message").inc(stored_messages)
    INBOUND_PUBLISHED.labels(kind="status").inc(stored_statuses)
    WEBHOOK_REQUESTS.labels(result="200").inc()
    WEBHOOK_SECONDS.observe(time.perf_counter() - started)
    return web.json_response(
        {
            "messages": stored_messages,
            "statuses": stored_statuses,
            "ignored": notification.ignored,
            "dead_lettered": len(failures),
        }
    )


async def _store(
    broker: NatsBroker, settings: Settings, notification: Notification
) -> list[tuple[str, Exception]]:
    """Publish every item to WA_INBOUND, each on its own; the items that failed, with why."""
    publishes: dict[str, Awaitable[object]] = {}
    for i, m in enumerate(notification.messages):
        publishes[f"message#{i}"] = _traced(
            publish_inbound(broker, m, settings.dialog_partitions),
            "webhook message",
            {"vaksin.wamid": m.wamid, "vaksin.message.type": m.type},
        )
    for i, s in enumerate(notification.statuses):
        publishes[f"status#{i}"] = _traced(
            publish_durably(
                broker.publish,
                s,
                WA_INBOUND_STATUS,
                stream=WA_INBOUND.name,
                headers={"Nats-Msg-Id": f"status:{s.wamid}:{s.status}"},
            ),
            "webhook status",
            {"vaksin.wamid": s.wamid, "vaksin.status": s.status},
        )
    results = await asyncio.gather(*publishes.values(), return_exceptions=True)
    failures: list[tuple[str, Exception]] = []
    for label, result in zip(publishes, results, strict=True):
        if isinstance(result, Exception):
            failures.append((label, result))
        elif isinstance(result, BaseException):  # cancelled: not ours to swallow
            raise result
    return failures


def _traced(publish: Awaitable[object], name: str, attributes: dict[str, str]) -> Awaitable[object]:
    """The item's own span around its publish (the wamid is digested on export, as in the
    logs); the publish itself, untouched when tracing is off."""
    if not tracing.enabled():
        return publish

    async def traced() -> object:
        with tracing.span(name, attributes, kind=tracing.SpanKind.PRODUCER):
            return await publish

    return traced()


async def _keep_dead_letter(
    broker: NatsBroker, raw: bytes, failures: list[tuple[str, Exception]]
) -> None:
    dead = DeadMessage.of("webhook", raw, _describe(failures), datetime.now(UTC))
    await publish_durably(
        broker.publish,
        dead,
        DEADLETTER_WEBHOOK,
        stream=DEAD_LETTERS.name,
        # The same body delivered again (Meta does, rarely) is kept once.
        headers={"Nats-Msg-Id": f"webhook:{dead.body_sha256}"},
    )
    for _, exc in failures:
        WEBHOOK_POISON.labels(reason=poison_reason(exc)).inc()
    log.warning(
        "webhook items could never be stored: acknowledged and kept as a dead letter",
        error=dead.error,
        body_sha256=dead.body_sha256,
        body_bytes=dead.body_bytes,
    )


# NATS unreachable, slow or not answering: Meta's retry will find it back. Everything else a
# publish raises is about the item itself (serialization, size, a rejected header) and would fail
# on every retry.
_OUTAGES = (
    TimeoutError,  # nats.errors.TimeoutError too: no publish ack in time
    nats.errors.NoRespondersError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.ConnectionDrainingError,
    nats.errors.OutboundBufferLimitError,  # reconnecting, and its pending buffer is full
    nats.errors.StaleConnectionError,
    nats.errors.NoServersError,
    nats.js.errors.NoStreamResponseError,  # stream missing or without a leader
    nats.js.errors.TooManyStalledMsgsError,
    ConnectionError,
)


def is_outage(exc: BaseException) -> bool:
    if isinstance(exc, _OUTAGES):
        return True
    # JetStream's own 5xx (no quorum, insufficient resources) pass; its 4xx are about the item.
    return isinstance(exc, nats.js.errors.APIError) and (exc.code or 0) >= 500


MAX_PAYLOAD_ERR_CODE = 10054  # JetStream: "message size exceeds maximum allowed"


def poison_reason(exc: BaseException) -> str:
    """A short, fixed reason (a metric label): never the exception's text, which may quote the
    message (a pydantic serialization error quotes the offending character)."""
    if isinstance(exc, PydanticSerializationError | UnicodeError):
        return "unencodable"
    if isinstance(exc, nats.errors.MaxPayloadError) or (
        isinstance(exc, nats.js.errors.APIError) and exc.err_code == MAX_PAYLOAD_ERR_CODE
    ):
        return "too_large"
    if isinstance(exc, nats.js.errors.APIError | nats.errors.BadHeaderError):
        return "rejected"
    return "other"


def _describe(failures: Sequence[tuple[str, BaseException]]) -> str:
    """`message#1 PydanticSerializationError: unencodable; ...`: which items, and why, without
    their content (no NIK or phone number may reach the dead letter's error or a log line)."""
    parts = []
    for label, exc in failures:
        reason = "outage" if is_outage(exc) else poison_reason(exc)
        part = f"{label} {type(exc).__name__}: {reason}"
        if isinstance(exc, nats.js.errors.APIError):
            part += f" (code {exc.code}, err_code {exc.err_code})"
        parts.append(part)
    return "; ".join(parts)


def add_webhook_routes(app: web.Application, broker: NatsBroker, settings: Settings) -> None:
    app[broker_key] = broker
    app[settings_key] = settings
    app.router.add_get("/webhook", handshake)
    app.router.add_post("/webhook", receive)
