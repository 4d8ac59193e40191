"""`vaksin chat`: be a WhatsApp user in your terminal. Each line you type is sent to the running
system as a webhook signed exactly as Meta signs it; the bot's replies are read back from the local
fake Graph API (which `vaksin up` starts when no Meta credentials are configured)."""

from __future__ import annotations

import asyncio
import io
import json
import sys
import time
import uuid
from typing import Any

import aiohttp

from services.common.settings import Settings
from services.ingress.webhook import sign


def _options(body: dict[str, Any]) -> list[tuple[str, str]]:
    """(reply id, title) of the buttons or list rows of a sent interactive message."""
    interactive = body.get("interactive") or {}
    action = interactive.get("action") or {}
    if interactive.get("type") == "button":
        return [(b["reply"]["id"], b["reply"]["title"]) for b in action.get("buttons", [])]
    if interactive.get("type") == "list":
        return [
            (r["id"], r["title"]) for s in action.get("sections", []) for r in s.get("rows", [])
        ]
    return []


def render(body: dict[str, Any]) -> str:
    kind = body.get("type")
    if kind == "text":
        return body["text"]["body"]
    if kind == "interactive":
        lines = [body["interactive"]["body"]["text"]]
        lines += [f"  [{i}] {title}" for i, (_, title) in enumerate(_options(body), start=1)]
        return "\n".join(lines)
    if kind in ("image", "video"):
        media = body[kind]
        return f"<{kind}: {media.get('link') or media.get('id')}> {media.get('caption', '')}"
    return json.dumps(body, ensure_ascii=False)


async def _qr_text(http: aiohttp.ClientSession, fake: str, body: dict[str, Any]) -> str | None:
    """The text of the QR code in an image sent by media id (a ticket), read from the file the
    notifier uploaded to the fake; None when there is none or no decoder (zxing-cpp, a dev
    dependency) is installed."""
    media_id = (body.get("image") or {}).get("id") if body.get("type") == "image" else None
    if not media_id:
        return None
    try:
        import zxingcpp
        from PIL import Image
    except ImportError:
        return None
    async with http.get(f"{fake}/media/{media_id}") as resp:
        if resp.status != 200:
            return None
        data = await resp.read()
    found = zxingcpp.read_barcodes(Image.open(io.BytesIO(data)))
    return found[0].text if found else None


def inbound(phone: str, name: str, text: str, options: list[tuple[str, str]]) -> dict[str, Any]:
    """The notification for a typed line: a number picks one of the last `options`."""
    choice = int(text) - 1 if text.isdigit() and 0 < int(text) <= len(options) else None
    if choice is None:
        return notification(phone, name, text_message(text))
    reply_id, title = options[choice]
    return notification(phone, name, reply_message(reply_id, title))


def text_message(text: str) -> dict[str, Any]:
    return {"type": "text", "text": {"body": text}}


def reply_message(reply_id: str, title: str, *, from_list: bool | None = None) -> dict[str, Any]:
    """A tap on a reply button or a list row (`from_list`; guessed from the id when None)."""
    if from_list is None:
        from_list = reply_id.split(".")[0] in {"loc", "slot"}
    kind = "list_reply" if from_list else "button_reply"
    return {
        "type": "interactive",
        "interactive": {"type": kind, kind: {"id": reply_id, "title": title}},
    }


def notification(phone: str, name: str, message: dict[str, Any]) -> dict[str, Any]:
    """A `messages` notification as Meta posts it, with one message from `phone`."""
    message = {
        "from": phone,
        "id": f"wamid.chat.{uuid.uuid4().hex}",
        "timestamp": str(int(time.time())),
        **message,
    }
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "0",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {"display_phone_number": "0", "phone_number_id": "0"},
                            "contacts": [{"profile": {"name": name}, "wa_id": phone}],
                            "messages": [message],
                        },
                    }
                ],
            }
        ],
    }


async def run_chat(settings: Settings, *, phone: str, name: str) -> int:
    runtime = settings.runtime()
    fake, ingress = runtime.get("fake_graph_url"), runtime.get("ingress_url")
    if not fake or not ingress:
        print(
            "vaksin chat needs a system started by `vaksin up` without Meta credentials "
            "(it reads replies from the local fake Graph API).",
            file=sys.stderr,
        )
        return 1
    state: dict[str, Any] = {"seen": -1, "options": []}
    print(
        f"You are {name} (+{phone}). Type VAKSIN to start, a number to press a button, "
        "Ctrl-D to quit.\n"
    )
    async with aiohttp.ClientSession() as http:
        poller = asyncio.create_task(_print_replies(http, f"{fake}/_fake/messages", phone, state))
        loop = asyncio.get_running_loop()
        try:
            while True:
                line = await loop.run_in_executor(None, sys.stdin.readline)
                if not line:
                    break
                text = line.strip()
                if not text:
                    continue
                body = json.dumps(inbound(phone, name, text, state["options"])).encode()
                headers = {
                    "Content-Type": "application/json",
                    "X-Hub-Signature-256": sign(body, settings.whatsapp_app_secret),
                }
                async with http.post(f"{ingress}/webhook", data=body, headers=headers) as resp:
                    if resp.status != 200:
                        print(f"! webhook answered {resp.status}: {await resp.text()}")
        finally:
            poller.cancel()
    return 0


async def _print_replies(http: aiohttp.ClientSession, url: str, phone: str, state: dict) -> None:
    while True:
        try:
            async with http.get(url, params={"to": phone, "after": state["seen"]}) as resp:
                for sent in await resp.json():
                    state["seen"] = max(state["seen"], sent["index"])
                    state["options"] = _options(sent["body"]) or state["options"]
                    print(f"\nbot> {render(sent['body'])}\n", flush=True)
                    ticket = await _qr_text(http, url.rsplit("/", 1)[0], sent["body"])
                    if ticket:
                        print(f"     QR: {ticket}\n     (at the desk: vaksin checkin "
                              "<QR> --dose-given)\n", flush=True)  # fmt: skip
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.3)
