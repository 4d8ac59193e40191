"""The SMS adapter, on a Jasmin SMS gateway's HTTP API (jookies/jasmin, `ja-http`):

- Inbound (MO): Jasmin's HTTP client connector calls `POST` (or `GET`) `/sms/inbound` with `id`,
  `from`, `to`, `origin-connector`, `coding`, `content` (a long message arrives concatenated) and
  expects exactly `ACK/Jasmin` in a 200 answer, else it tries again later. We acknowledge only
  what JetStream has stored (the message goes to the number's WA_INBOUND partition, channel
  `sms`, id `sms:<jasmin id>`: a repeat has no second effect); a typed number picks an option of
  the last menu sent to that number. `STOP` / `BERHENTI` opt the number out (one confirmation,
  then nothing until it writes again).
- Delivery reports: `dlr-url` = `/sms/dlr` (form `id`, `message_status`, `level`), answered
  `ACK/Jasmin`; DELIVRD marks the SMS delivered, UNDELIV / REJECTD / EXPIRED / DELETED / UNKNOWN
  (or an ESME error at level 1) failed.
- Outbound (MT): `SmsSender` sends the queue (channels.sms_outbound) in order per number through
  `GET/POST <JASMIN_URL>/send` (`username`, `password`, `to`, `from`, `content`, `coding` 0 for
  GSM-7 or 8 with UTF-16BE content, `dlr=yes`, `dlr-url`, `dlr-level=3`, `dlr-method=POST`);
  Jasmin answers `Success "<id>"` and concatenates a long content itself (UDH). Each number has a
  budget (`SMS_INTERVAL` seconds per part, `SMS_DAILY_PARTS` parts a day); a 5xx or no answer is
  tried again later, a 4xx is a failure for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import urllib.parse
from datetime import UTC, datetime, timedelta

import aiohttp
import asyncpg
import structlog
from aiohttp import web
from faststream.nats import NatsBroker

from services.channels import callbacks, render
from services.channels import repository as repo
from services.channels.catalog import t
from services.channels.settings import ChannelSettings
from services.common.clock import WIB
from services.common.contracts.channels import adapter_message
from services.common.jetstream import publish_inbound
from services.common.settings import Settings

log = structlog.get_logger(__name__)

ACK = "ACK/Jasmin"
ID_MAX = 128
CONTENT_MAX = 4096
STOP_WORDS = frozenset({"stop", "berhenti", "unreg", "unsubscribe"})
DELIVERED = frozenset({"DELIVRD"})
FAILED = frozenset({"UNDELIV", "REJECTD", "EXPIRED", "DELETED", "UNKNOWN"})


def _text(value: str, status: int = 200) -> web.Response:
    return web.Response(status=status, text=value, content_type="text/plain")


class SmsEdge:
    def __init__(
        self,
        pool: asyncpg.Pool,
        broker: NatsBroker,
        settings: Settings,
        channel: ChannelSettings,
        wake_sender: object,
    ) -> None:
        self.pool = pool
        self.broker = broker
        self.settings = settings
        self.channel = channel
        self.wake_sender = wake_sender

    async def _fields(self, request: web.Request) -> dict[str, str] | web.Response:
        if not callbacks.allowed(request, self.channel.sms_secret, self.channel.sms_allowed_ips):
            return _text("Forbidden", 403)
        try:
            form = await request.post() if request.method == "POST" else request.query
        except (ValueError, UnicodeDecodeError):
            return _text("body is not a form", 400)
        return {k: v for k, v in form.items() if isinstance(v, str)}

    async def inbound(self, request: web.Request) -> web.Response:
        fields = await self._fields(request)
        if isinstance(fields, web.Response):
            return fields
        gateway_id = callbacks.clean(fields.get("id"), ID_MAX + 1)
        number = callbacks.number(callbacks.clean(fields.get("from"), 64))
        content = _content(fields)
        if not gateway_id or len(gateway_id) > ID_MAX or not gateway_id.isprintable():
            return _text("id missing or invalid", 400)
        if number is None:
            return _text("from is not an Indonesian mobile number", 400)
        words = " ".join(content.split()).strip(".!").lower()
        if words in STOP_WORDS:
            await self._stop(number, gateway_id)
            return _text(ACK)
        async with self.pool.acquire() as conn:
            await repo.opt_in(conn, number)
            await repo.set_channel(conn, number, "sms")
            menu = await repo.menu(conn, "sms", number)
        reply_id = render.choose(menu, content)
        message = adapter_message("sms", f"sms:{gateway_id}", number, content, reply_id)
        try:
            await publish_inbound(
                self.broker, message, self.settings.dialog_partitions, ack_timeout=2.0
            )
        except Exception as exc:  # not stored: no ACK, so Jasmin delivers it again later
            log.warning("could not publish an inbound SMS", error=type(exc).__name__)
            return _text("temporarily unable to accept; retry later", 503)
        return _text(ACK)

    async def _stop(self, number: str, gateway_id: str) -> None:
        confirmation = render.Screen(render.plain(t("id", "sms_stopped")))
        content = render.sms_texts(confirmation, "id")
        size = [render.sms_size(c) for c in content]
        async with self.pool.acquire() as conn, conn.transaction():
            await repo.opt_out(conn, number)
            await repo.queue_sms(
                conn,
                f"sms-stop:{gateway_id}",
                number,
                [repo.Sms(c, s.coding, s.parts) for c, s in zip(content, size, strict=True)],
                always=True,
            )
        log.info("number opted out of SMS")
        self.wake_sender()  # type: ignore[operator]

    async def delivery_report(self, request: web.Request) -> web.Response:
        fields = await self._fields(request)
        if isinstance(fields, web.Response):
            return fields
        gateway_id = callbacks.clean(fields.get("id"), ID_MAX + 1)
        status = callbacks.clean(fields.get("message_status"), 64).upper()
        if not gateway_id or len(gateway_id) > ID_MAX:
            return _text("id missing or invalid", 400)
        if status in DELIVERED:
            outcome = "delivered"
        elif status in FAILED or (status.startswith("ESME_R") and status != "ESME_ROK"):
            outcome = "failed"
        else:
            return _text(ACK)  # accepted by the SMSC, en route: nothing final yet
        await repo.delivery_report(self.pool, gateway_id, outcome, datetime.now(UTC))
        return _text(ACK)


def _content(fields: dict[str, str]) -> str:
    """The message text; a UCS-2 one from its `binary` hex when Jasmin gives it."""
    binary = fields.get("binary")
    if fields.get("coding") == "8" and binary:
        with contextlib.suppress(ValueError, UnicodeDecodeError):
            return callbacks.clean(
                bytes.fromhex(binary[: CONTENT_MAX * 4]).decode("utf-16-be"), CONTENT_MAX
            )
    return callbacks.clean(fields.get("content", ""), CONTENT_MAX)


def add_sms_routes(app: web.Application, edge: SmsEdge) -> None:
    app.router.add_route("POST", "/sms/inbound", edge.inbound)
    app.router.add_route("GET", "/sms/inbound", edge.inbound)
    app.router.add_route("POST", "/sms/dlr", edge.delivery_report)
    app.router.add_route("GET", "/sms/dlr", edge.delivery_report)


# --- outbound -----------------------------------------------------------------------------------

LEASE_SECONDS = 30.0
BATCH = 50
IN_FLIGHT = 16
RETRY_DELAYS = (2.0, 5.0, 15.0, 60.0, 300.0)


class SmsSender:
    """Sends the queue through Jasmin: the head of each number's queue, within its budget."""

    def __init__(self, pool: asyncpg.Pool, channel: ChannelSettings) -> None:
        self.pool = pool
        self.channel = channel
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._http: aiohttp.ClientSession | None = None
        self._stopping = False

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        self._task = asyncio.create_task(self._run(), name="sms-sender")

    async def stop(self) -> None:
        # The flag as well as the cancel: on Python 3.11 a cancel that lands as the 0.5 s wait
        # below times out is swallowed by asyncio.wait_for, and the loop went on for ever.
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._http is not None:
            await self._http.close()

    async def _run(self) -> None:
        while not self._stopping:
            try:
                sent = await self.send_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("SMS sender round failed")
                sent = 0
            if sent:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 0.5)

    async def send_due(self) -> int:
        due = await repo.lease_due(self.pool, datetime.now(UTC), LEASE_SECONDS, BATCH)
        limit = asyncio.Semaphore(IN_FLIGHT)

        async def one(sms: repo.Outgoing) -> None:
            async with limit:
                await self._send(sms)

        await asyncio.gather(*(one(sms) for sms in due))
        return len(due)

    async def _send(self, sms: repo.Outgoing) -> None:
        now = datetime.now(UTC)
        if not sms.always and await repo.opted_out(self.pool, sms.number):
            await repo.finish(self.pool, sms.id, "skipped", "opted out", now)
            return
        wait = await repo.take_budget(
            self.pool, sms.number, sms.parts, now, now.astimezone(WIB).date(),
            interval=self.channel.sms_interval, daily=self.channel.sms_daily_parts,
        )  # fmt: skip
        if wait is not None:
            await repo.defer(self.pool, sms.id, wait, attempt_back=True)
            return
        try:
            status, body = await self._post(sms)
        except (aiohttp.ClientError, TimeoutError) as exc:
            status, body = 0, type(exc).__name__
        if status == 200 and body.startswith("Success"):
            await repo.submitted(self.pool, sms.id, body.partition('"')[2].rstrip('"\n '), now)
        elif 400 <= status < 500:
            await repo.finish(self.pool, sms.id, "failed", f"{status} {body[:200]}", now)
            log.warning("SMS refused by the gateway", status=status)
        elif sms.attempts >= self.channel.sms_max_attempts:
            await repo.finish(self.pool, sms.id, "failed", f"{status} {body[:200]}", now)
            log.error("SMS not sent after every attempt", status=status)
        else:
            delay = RETRY_DELAYS[min(sms.attempts, len(RETRY_DELAYS)) - 1]
            await repo.defer(self.pool, sms.id, now + timedelta(seconds=delay), attempt_back=False)

    async def _post(self, sms: repo.Outgoing) -> tuple[int, str]:
        assert self._http is not None
        content: str | bytes = sms.content
        coding = "0"
        if sms.coding == "ucs2":
            content, coding = sms.content.encode("utf-16-be"), "8"
        params: dict[str, str | bytes] = {
            "username": self.channel.jasmin_username,
            "password": self.channel.jasmin_password,
            "to": sms.number,
            "from": self.channel.sms_sender,
            "coding": coding,
            "content": content,
        }
        if self.channel.sms_callback_base:
            key = urllib.parse.quote(self.channel.sms_secret)
            params |= {
                "dlr": "yes",
                "dlr-url": f"{self.channel.sms_callback_base.rstrip('/')}/sms/dlr?key={key}",
                "dlr-level": "3",
                "dlr-method": "POST",
            }
        body = urllib.parse.urlencode(params)
        async with self._http.post(
            f"{self.channel.jasmin_url.rstrip('/')}/send",
            data=body,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ) as resp:
            return resp.status, (await resp.text(errors="replace"))[:500]
