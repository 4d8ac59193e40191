"""The WhatsApp webhook edge: handshake, signature, parse, publish to WA_INBOUND, answer fast.

Nothing here touches Postgres: the edge only needs NATS, so it acknowledges in about a millisecond.
A message is acknowledged to Meta only after JetStream has stored it; if NATS is unreachable we
answer 503 and Meta retries later.
"""

from __future__ import annotations

import asyncio
import json
import time

import structlog
from aiohttp import web
from faststream.nats import NatsBroker

from services.common.contracts.streams import WA_INBOUND
from services.common.contracts.subjects import WA_INBOUND_STATUS, inbound_message_subject
from services.common.settings import Settings
from services.ingress.metrics import INBOUND_PUBLISHED, WEBHOOK_REQUESTS, WEBHOOK_SECONDS
from services.ingress.webhook import Signature, check_handshake, check_signature, parse_notification

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
    started = time.perf_counter()
    settings = request.app[settings_key]
    raw = await request.read()  # over client_max_size (3 MB, Meta's maximum) -> 413
    signature = check_signature(
        raw, request.headers.get("X-Hub-Signature-256"), settings.whatsapp_app_secret
    )
    if signature is Signature.MISSING:
        return _reject(401, "missing X-Hub-Signature-256")
    if signature is Signature.INVALID:
        return _reject(403, "X-Hub-Signature-256 does not match the body")
    try:
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return _reject(400, "body is not valid JSON")

    notification = parse_notification(payload)
    broker = request.app[broker_key]
    publishes = [
        broker.publish(
            m,
            inbound_message_subject(m.wa_id, settings.dialog_partitions),
            stream=WA_INBOUND.name,
            headers={"Nats-Msg-Id": m.wamid},
        )
        for m in notification.messages
    ] + [
        broker.publish(
            s,
            WA_INBOUND_STATUS,
            stream=WA_INBOUND.name,
            headers={"Nats-Msg-Id": f"status:{s.wamid}:{s.status}"},
        )
        for s in notification.statuses
    ]
    try:
        await asyncio.gather(*publishes)
    except Exception:
        log.exception("could not store webhook in JetStream; Meta will retry")
        return _reject(503, "temporarily unable to accept; retry later")

    INBOUND_PUBLISHED.labels(kind="message").inc(len(notification.messages))
    INBOUND_PUBLISHED.labels(kind="status").inc(len(notification.statuses))
    WEBHOOK_REQUESTS.labels(result="200").inc()
    WEBHOOK_SECONDS.observe(time.perf_counter() - started)
    return web.json_response(
        {
            "messages": len(notification.messages),
            "statuses": len(notification.statuses),
            "ignored": notification.ignored,
        }
    )


def add_webhook_routes(app: web.Application, broker: NatsBroker, settings: Settings) -> None:
    app[broker_key] = broker
    app[settings_key] = settings
    app.router.add_get("/webhook", handshake)
    app.router.add_post("/webhook", receive)
