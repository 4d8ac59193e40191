"""The chat simulator: a page that looks and behaves like a WhatsApp chat, for trying the bot, for
demos and for writing flows. It is served by the local fake Graph API only (`vaksin up` without
Meta credentials starts it; `simulator_url` in runtime.json), never in production.

What the page sends goes through the real webhook, signed as Meta signs it; what it shows is what
the services sent to the fake Graph API (`/_fake/messages`), so every reply has taken the real
path: webhook edge, dialog, notifier, Graph API.

    GET  /simulator/                 the page (static files under simulator/)
    GET  /simulator/people           the sample registry's people (`vaksin demo-data`) to chat as
    POST /simulator/say              {"from", "name", "text"} or {"from", "name", "reply_id",
                                     "title", "list": bool}: one user message, posted to the webhook
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from services.devtools.chat import notification, reply_message, text_message

if TYPE_CHECKING:
    from services.devtools.fake_graph import FakeGraph

STATIC = Path(__file__).with_name("simulator")
DEMO_REGISTRY = Path(__file__).with_name("demo_registry.csv")
_WA_ID = re.compile(r"^\d{8,15}$")
MAX_TEXT = 4096  # what WhatsApp lets a user type


class BadMessage(ValueError):
    """A request the page should never send: answered 400 with the reason."""


def wa_id_of(phone: str) -> str:
    """A phone as typed (+62 812-..., 0812...) as WhatsApp's wa_id (62812...)."""
    digits = re.sub(r"\D", "", phone)
    if digits.startswith("0"):
        digits = "62" + digits[1:]
    if not _WA_ID.match(digits):
        raise BadMessage("a phone number has 8 to 15 digits, e.g. 6281234567890")
    return digits


def user_message(spec: Any) -> tuple[str, str, dict[str, Any]]:
    """(wa_id, profile name, message) of a /simulator/say body."""
    if not isinstance(spec, dict):
        raise BadMessage("the body is a JSON object")
    wa_id = wa_id_of(str(spec.get("from", "")))
    name = str(spec.get("name") or "Simulator")[:100]
    if spec.get("reply_id"):
        reply_id, title = str(spec["reply_id"])[:256], str(spec.get("title") or spec["reply_id"])
        return wa_id, name, reply_message(reply_id, title[:72], from_list=bool(spec.get("list")))
    text = str(spec.get("text", "")).strip()
    if not text:
        raise BadMessage("write something, or tap a button")
    if len(text) > MAX_TEXT:
        raise BadMessage(f"WhatsApp messages are at most {MAX_TEXT} characters")
    return wa_id, name, text_message(text)


def demo_people() -> list[dict[str, str]]:
    """The sample registry's people, with what a tester needs to type (the NIK's last 6 digits:
    sample data, not anyone's)."""
    with DEMO_REGISTRY.open(encoding="utf-8") as f:
        return [
            {
                "name": row["name"],
                "wa_id": wa_id_of(row["phone"]),
                "nik_suffix": row["nik"][-6:],
                "profession": row["profession"],
                "facility_code": row["facility_code"],
            }
            for row in csv.DictReader(f)
        ]


def add_simulator_routes(app: web.Application, fake: FakeGraph) -> None:
    async def page(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html")

    async def people(request: web.Request) -> web.Response:
        return web.json_response(demo_people())

    async def say(request: web.Request) -> web.Response:
        try:
            wa_id, name, message = user_message(await request.json())
        except json.JSONDecodeError:
            return web.json_response({"error": "the body is not JSON"}, status=400)
        except BadMessage as exc:
            return web.json_response({"error": str(exc)}, status=400)
        if not (fake.webhook_url and fake.app_secret):
            return web.json_response(
                {"error": "this fake Graph API was started without a webhook to post to"},
                status=409,
            )
        body = notification(wa_id, name, message)
        fake.customer_wrote(wa_id)
        status = await fake.post_webhook(body)
        if status != 200:
            reason = "unreachable" if status is None else f"answered HTTP {status}"
            return web.json_response({"error": f"the webhook {reason}"}, status=502)
        return web.json_response(
            {"wamid": body["entry"][0]["changes"][0]["value"]["messages"][0]["id"]}
        )

    async def to_page(request: web.Request) -> web.Response:
        raise web.HTTPFound("/simulator/")

    app.router.add_get("/simulator", to_page)
    app.router.add_get("/simulator/", page)
    app.router.add_get("/simulator/people", people)
    app.router.add_post("/simulator/say", say)
    app.router.add_static("/simulator/static", STATIC)
