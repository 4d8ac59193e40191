"""A fake USSD aggregator, for tests and `vaksin chat --channel ussd` only: it plays a phone's
session the way Africa's Talking calls its callback (`POST` form `sessionId`, `serviceCode`,
`phoneNumber`, `networkCode`, `text` = every input of the session joined by `*`) and reads the
`CON ...` / `END ...` answers."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

import aiohttp

SERVICE_CODE = "*119#"


@dataclass
class UssdAnswer:
    status: int
    kind: str  # CON, END, or "" for an answer that is neither
    text: str


@dataclass
class UssdSession:
    http: aiohttp.ClientSession
    url: str
    phone: str
    session_id: str = field(default_factory=lambda: "ATUid_" + secrets.token_hex(8))
    inputs: list[str] = field(default_factory=list)
    network_code: str = "51010"  # Telkomsel
    ended: bool = False

    async def request(self, text: str) -> UssdAnswer:
        form = {"sessionId": self.session_id, "serviceCode": SERVICE_CODE,
                "phoneNumber": self.phone, "networkCode": self.network_code, "text": text}  # fmt: skip
        async with self.http.post(self.url, data=form) as resp:
            body = await resp.text()
            kind, _, rest = body.partition(" ")
            if kind not in ("CON", "END"):
                kind, rest = "", body
            if kind == "END":
                self.ended = True
            return UssdAnswer(resp.status, kind, rest)

    async def dial(self) -> UssdAnswer:
        return await self.request("")

    async def press(self, value: str) -> UssdAnswer:
        assert not self.ended, "the session has ended: dial again"
        self.inputs.append(value)
        return await self.request("*".join(self.inputs))

    async def repeat(self) -> UssdAnswer:
        """The aggregator sends the last request again (it does, on a timeout)."""
        return await self.request("*".join(self.inputs))


def session(http: aiohttp.ClientSession, url: str, phone: str) -> UssdSession:
    """A new session of `phone` at the callback `url` (with its `?key=`)."""
    return UssdSession(http, url, phone)
