"""A fake Jasmin SMS gateway, for tests and `vaksin chat --channel sms` only.

It speaks Jasmin's HTTP API (`ja-http`) as the SMS adapter uses it: `GET/POST /send` with
`username`, `password`, `to`, `from`, `content` (UTF-16BE bytes when `coding=8`), `coding` and the
`dlr*` fields, answered `Success "<id>"` (or Jasmin's `Error "..."` with its status), then a
delivery report posted to `dlr-url` (DELIVRD, or what `report_as` says) which must be answered
`ACK/Jasmin`; and it delivers a phone's message (MO) to the configured URL like Jasmin's HTTP
client connector (`id`, `from`, `to`, `origin-connector`, `coding`, `content`)."""

from __future__ import annotations

import asyncio
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from services.common.embedded import free_port


@dataclass
class SentSms:
    id: str
    to: str
    sender: str
    content: str
    coding: str
    params: dict[str, str] = field(default_factory=dict)
    report_answer: str | None = None


class FakeJasmin:
    def __init__(self, username: str = "vaksin", password: str = "") -> None:
        self.username, self.password = username, password
        self.sent: list[SentSms] = []
        self.mo_url = ""  # where phones' messages go (our /sms/inbound?key=...)
        self.report_as = "DELIVRD"
        self.fail_next: list[int] = []  # HTTP statuses to answer the next sends with
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None
        self._reports: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, port: int | None = None) -> str:
        app = web.Application()
        app.router.add_route("*", "/send", self._send)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self.port = port or free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        self._http = aiohttp.ClientSession()
        return self.url

    async def stop(self) -> None:
        for task in list(self._reports):
            task.cancel()
        if self._http:
            await self._http.close()
        if self._runner:
            await self._runner.cleanup()

    async def _send(self, request: web.Request) -> web.Response:
        raw = await request.read() if request.method == "POST" else request.query_string.encode()
        pairs = urllib.parse.parse_qsl(raw, keep_blank_values=True)
        params = {k.decode(): v for k, v in pairs}
        text = {k: v.decode("utf-8", "replace") for k, v in params.items() if k != "content"}
        if text.get("username") != self.username or text.get("password") != self.password:
            return web.Response(
                status=403,
                text=f'Error "Authentication failure for username:{text.get("username")}"',
            )
        if not text.get("to") or "content" not in params:
            return web.Response(
                status=400,
                text='Error "Mandatory arguments not found, please refer to the HTTPAPI specifications."',
            )
        if self.fail_next:
            status = self.fail_next.pop(0)
            return web.Response(
                status=status,
                text='Error "Cannot send submit_sm, check SMPPClientManagerPB log file for details"',
            )
        coding = text.get("coding", "0")
        content = params["content"].decode("utf-16-be" if coding == "8" else "utf-8")
        sms = SentSms(str(uuid.uuid4()), text["to"], text.get("from", ""), content, coding, text)
        self.sent.append(sms)
        if text.get("dlr") == "yes" and text.get("dlr-url"):
            task = asyncio.create_task(self._report(sms, text["dlr-url"]))
            self._reports.add(task)
            task.add_done_callback(self._reports.discard)
        return web.Response(text=f'Success "{sms.id}"')

    async def _report(self, sms: SentSms, url: str) -> None:
        assert self._http is not None
        await asyncio.sleep(0.05)
        form = {"id": sms.id, "message_status": self.report_as, "level": "2",
                "id_smsc": str(len(self.sent)), "sub": "001", "dlvrd": "001", "err": "000"}  # fmt: skip
        for _ in range(3):  # Jasmin tries again when the answer is not ACK/Jasmin
            try:
                async with self._http.post(url, data=form) as resp:
                    sms.report_answer = await resp.text()
                    if resp.status == 200 and sms.report_answer == "ACK/Jasmin":
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)

    async def deliver(
        self, sender: str, content: str, to: str = "1199", **extra: str
    ) -> tuple[int, str]:
        """A phone sends `content`: posted to `mo_url` as Jasmin does; (status, answer)."""
        assert self._http is not None and self.mo_url
        form = {"id": str(uuid.uuid4()), "from": sender, "to": to, "origin-connector": "smppc01",
                "priority": "1", "coding": "0", "validity": "", "content": content, **extra}  # fmt: skip
        async with self._http.post(self.mo_url, data=form) as resp:
            return resp.status, await resp.text()

    def messages_to(self, number: str) -> list[SentSms]:
        return [s for s in self.sent if s.to == number]

    async def wait_for(self, number: str, count: int, timeout: float = 15.0) -> list[SentSms]:  # noqa: ASYNC109
        deadline = time.monotonic() + timeout
        while len(self.messages_to(number)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{count} SMS to a number expected, {len(self.messages_to(number))} sent: "
                    f"{[s.content for s in self.messages_to(number)]}"
                )
            await asyncio.sleep(0.05)
        return self.messages_to(number)
