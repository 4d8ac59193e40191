"""The USSD adapter (`*119#`): an aggregator's HTTP callback, Africa's Talking style.

Each key press of a session is a `POST /ussd` with the form fields `sessionId`, `serviceCode`,
`phoneNumber`, `networkCode` and `text` (every input of the session so far, joined by `*`; empty
on the dial), answered in `text/plain` with `CON <screen>` (the session goes on) or `END <screen>`
(it closes). USSD is synchronous, the dialog is not: the callback publishes the input to
WA_INBOUND (the number's partition, like a WhatsApp message: in order with anything else the
person sends) and waits up to `USSD_REPLY_SECONDS` for the turn's screen, which the consumer of
`channels.cmd.ussd.<p>` stores. An answer that comes too late is kept and shown on the next dial.

- The dial: a screen the person has not seen yet (a late answer) is shown; otherwise the dialog
  hears `VAKSIN`, which starts or carries on where the person was (on any channel).
- An input: `0` / `00` turn the pages of a long screen; a number picks an option of the screen's
  menu (sent with its reply id); anything else goes to the dialog as typed.
- The same request again (aggregators retry) is the same inbound id (`ussd:<session>:<inputs>`):
  JetStream and the dialog drop the repeat, and the stored screen is shown again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime

import asyncpg
import structlog
from aiohttp import web
from faststream.nats import NatsBroker

from services.channels import callbacks
from services.channels import repository as repo
from services.channels.catalog import t
from services.channels.handlers import Waiters
from services.channels.render import BACK, NEXT, choose
from services.channels.settings import ChannelSettings
from services.common.contracts.channels import adapter_message
from services.common.jetstream import publish_inbound
from services.common.settings import Settings

log = structlog.get_logger(__name__)

SESSION_ID_MAX = 128
# Every input of a session, joined: a few dozen characters; a long one is not a keypad's.
TEXT_MAX = 1000
START = "VAKSIN"
POLL_SECONDS = 0.25


class UssdEdge:
    def __init__(
        self,
        pool: asyncpg.Pool,
        broker: NatsBroker,
        settings: Settings,
        channel: ChannelSettings,
        waiters: Waiters,
    ) -> None:
        self.pool = pool
        self.broker = broker
        self.settings = settings
        self.channel = channel
        self.waiters = waiters

    async def handle(self, request: web.Request) -> web.Response:
        if not callbacks.allowed(request, self.channel.ussd_secret, self.channel.ussd_allowed_ips):
            return web.Response(status=403, text="END Forbidden", content_type="text/plain")
        try:
            form = await request.post()
        except (ValueError, UnicodeDecodeError):
            return _bad("body is not a form")
        session_id = callbacks.clean(form.get("sessionId"), SESSION_ID_MAX + 1)
        number = callbacks.number(callbacks.clean(form.get("phoneNumber"), 64))
        text = callbacks.clean(form.get("text", ""), TEXT_MAX + 1)
        if not session_id or len(session_id) > SESSION_ID_MAX or not session_id.isprintable():
            return _bad("sessionId missing or invalid")
        if number is None:
            return _bad("phoneNumber is not an Indonesian mobile number")
        if len(text) > TEXT_MAX:
            return _bad("text too long")
        pool = self.pool
        session = await repo.open_session(pool, session_id, number)
        if session.number != number:
            return _bad("sessionId belongs to another number")
        await repo.set_channel(pool, number, "ussd")
        inputs = text.split("*") if text else []
        return await self._turn(session, inputs)

    async def _turn(self, session: repo.UssdSession, inputs: list[str]) -> web.Response:
        pool = self.pool
        number = session.number
        current = await repo.screen(pool, number)
        if len(inputs) <= session.consumed:  # the dial, or a request repeated
            if session.inbound_id is not None:
                return await self._wait_and_show(session, session.inbound_id, session.page)
            if current is not None and not current.shown and _recent(current, self.channel):
                await repo.update_session(
                    pool, session.session_id, consumed=len(inputs),
                    inbound_id=current.inbound_id, page=0,
                )  # fmt: skip
                return await self._wait_and_show(session, current.inbound_id, 0)
            return await self._send(session, len(inputs), START, None)
        typed = inputs[-1].strip()
        showing = current if current and current.inbound_id == session.inbound_id else None
        if showing is not None and len(showing.pages) > 1 and typed in (NEXT, BACK):
            step = 1 if typed == NEXT else -1
            page = min(max(session.page + step, 0), len(showing.pages) - 1)
            await repo.update_session(
                pool, session.session_id, consumed=len(inputs),
                inbound_id=showing.inbound_id, page=page,
            )  # fmt: skip
            return _show(showing, page)
        reply_id = choose(showing.options, typed) if showing is not None else None
        return await self._send(session, len(inputs), typed, reply_id)

    async def _send(
        self, session: repo.UssdSession, consumed: int, text: str, reply_id: str | None
    ) -> web.Response:
        inbound_id = f"ussd:{session.session_id}:{consumed}"
        message = adapter_message("ussd", inbound_id, session.number, text, reply_id)
        try:
            await publish_inbound(
                self.broker, message, self.settings.dialog_partitions, ack_timeout=2.0
            )
        except Exception as exc:  # NATS unreachable: nothing was taken, the person dials again
            log.warning("could not publish a USSD input", error=type(exc).__name__)
            return _end(t("id", "ussd_busy"))
        await repo.update_session(
            self.pool, session.session_id, consumed=consumed,
            inbound_id=inbound_id, page=0,
        )  # fmt: skip
        return await self._wait_and_show(session, inbound_id, 0)

    async def _wait_and_show(
        self, session: repo.UssdSession, inbound_id: str, page: int
    ) -> web.Response:
        deadline = time.monotonic() + self.channel.ussd_reply_seconds
        event = self.waiters.event(inbound_id)
        try:
            while True:
                current = await repo.screen(self.pool, session.number)
                if current is not None and current.inbound_id == inbound_id:
                    await repo.mark_shown(self.pool, session.number, inbound_id)
                    return _show(current, page)
                left = deadline - time.monotonic()
                if left <= 0:
                    log.info("USSD answer not ready in time; shown on the next dial")
                    return _end(t("id", "ussd_busy"))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), min(POLL_SECONDS, left))
        finally:
            self.waiters.done(inbound_id)


def _recent(screen: repo.UssdScreen, channel: ChannelSettings) -> bool:
    age = (datetime.now(UTC) - screen.updated_at).total_seconds()
    return age <= channel.ussd_resume_seconds


def _show(screen: repo.UssdScreen, page: int) -> web.Response:
    page = min(max(page, 0), len(screen.pages) - 1)
    text = screen.pages[page]
    if screen.final and page == len(screen.pages) - 1:
        return _end(text)
    return web.Response(text=f"CON {text}", content_type="text/plain")


def _end(text: str) -> web.Response:
    return web.Response(text=f"END {text}", content_type="text/plain")


def _bad(reason: str) -> web.Response:
    return web.Response(status=400, text=f"END {reason}", content_type="text/plain")


def add_ussd_routes(app: web.Application, edge: UssdEdge) -> None:
    app.router.add_post("/ussd", edge.handle)
