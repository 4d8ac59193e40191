"""The whole system in-process on real NATS and Postgres, driven only through the webhook, with
Meta's side played by the fake Graph API. Each test gets fresh users (random numbers and NIKs)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from services.common.embedded import free_port
from services.common.service import ServiceHost
from services.common.settings import Settings
from services.console.app import build_host as build_console
from services.devtools.fake_graph import FakeGraph
from services.identity.app import build_host as build_identity
from services.identity.registry_import import import_registry_file
from services.ingress.app import build_dialog_host as build_dialog
from services.ingress.app import build_host as build_ingress
from services.ingress.webhook import sign
from services.notifier.app import build_host as build_notifier
from services.runner import process_name
from services.scheduler.app import build_host as build_scheduler
from services.scheduler.cli import import_facilities_file, import_sessions_file
from services.screening.app import build_host as build_screening
from services.ticketing.app import build_host as build_ticketing
from tests.languages import mixed, visible_texts

BUILDERS = {
    "identity": build_identity,
    "screening": build_screening,
    "scheduler": build_scheduler,
    "ticketing": build_ticketing,
    "notifier": build_notifier,
    "dialog": build_dialog,
    "console": build_console,
    "ingress": build_ingress,
}

_counter = itertools.count(1)


@dataclass(frozen=True)
class Person:
    nik: str
    name: str
    phone: str
    profession: str = "perawat"
    facility_code: str = "F3201001"

    @property
    def suffix(self) -> str:
        return self.nik[-6:]


def new_phone() -> str:
    return "62812" + "".join(random.choices("0123456789", k=8))


def new_person(name: str = "Siti Rahmawati", facility_code: str = "F3201001") -> Person:
    day = random.randint(1, 28) + 40  # a woman: day of birth + 40
    month, year, serial = random.randint(1, 12), random.randint(70, 99), random.randint(1, 9999)
    nik = f"320101{day:02d}{month:02d}{year:02d}{serial:04d}"
    return Person(nik=nik, name=name, phone=new_phone(), facility_code=facility_code)


def envelope(wa_id: str, message: dict) -> dict:
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "6281100000000",
                                "phone_number_id": "100000000000001",
                            },
                            "contacts": [{"profile": {"name": "Nakes"}, "wa_id": wa_id}],
                            "messages": [message],
                        },
                    }
                ],
            }
        ],
    }


@dataclass
class System:
    settings: Settings
    fake: FakeGraph
    http: aiohttp.ClientSession
    hosts: dict[str, ServiceHost] = field(default_factory=dict)
    today: date | None = None

    _posts: itertools.count = field(default_factory=itertools.count)

    @property
    def webhook(self) -> str:
        return f"http://127.0.0.1:{self.settings.ingress_port}/webhook"

    def replicas(self, name: str) -> list[ServiceHost]:
        """The running instances of one service (`start_whole_system(replicas=...)`), first
        one first."""
        return [host for key, host in self.hosts.items() if service_of(key) == name]

    async def post(self, body: bytes, signature: str | None = "sign") -> aiohttp.ClientResponse:
        headers = {"Content-Type": "application/json"}
        if signature == "sign":
            signature = sign(body, self.settings.whatsapp_app_secret)
        if signature is not None:
            headers["X-Hub-Signature-256"] = signature
        # Each webhook to the next edge in turn, as a load balancer does (with one edge, to it).
        edges = [host.port for host in self.replicas("ingress")] or [self.settings.ingress_port]
        webhook = f"http://127.0.0.1:{edges[next(self._posts) % len(edges)]}/webhook"
        async with self.http.post(webhook, data=body, headers=headers) as resp:
            await resp.read()
            return resp

    async def say(self, wa_id: str, text: str = "", reply_id: str | None = None) -> str:
        """Send one user message through the webhook; returns its wamid."""
        wamid = f"wamid.test{next(_counter)}.{random.getrandbits(40):x}"
        message: dict = {"from": wa_id, "id": wamid, "timestamp": str(int(time.time()))}
        if reply_id:
            message |= {
                "type": "interactive",
                "interactive": {
                    "type": "button_reply",
                    "button_reply": {"id": reply_id, "title": text or reply_id},
                },
            }
        else:
            message |= {"type": "text", "text": {"body": text}}
        resp = await self.post(json.dumps(envelope(wa_id, message)).encode())
        assert resp.status == 200
        return wamid

    async def replies(self, wa_id: str, count: int) -> list[dict]:
        return await self.fake.wait_for_messages(wa_id, count, timeout=15.0)

    async def sent_of_type(self, wa_id: str, kind: str, count: int) -> list[dict]:
        """The first `count` sends of one type (image, video, ...) to a user, waiting for them."""
        deadline = time.monotonic() + 20
        while True:
            found = [m for m in self.fake.messages_to(wa_id) if m["body"].get("type") == kind]
            if len(found) >= count:
                return found
            assert time.monotonic() < deadline, f"{count} {kind} send(s) expected: {len(found)}"
            await asyncio.sleep(0.05)

    async def ticket_sent(self, wa_id: str, count: int = 1) -> dict:
        """The `count`-th ticket image to a user, once it and its video have been sent."""
        await self.sent_of_type(wa_id, "video", count)
        return (await self.sent_of_type(wa_id, "image", count))[count - 1]

    async def turn(self, wa_id: str, text: str = "", reply_id: str | None = None) -> dict:
        """Say something and wait for the one new reply it causes."""
        before = len(self.fake.messages_to(wa_id))
        await self.say(wa_id, text, reply_id)
        return (await self.replies(wa_id, before + 1))[before]

    async def restart(self, name: str) -> None:
        await self.hosts[name].stop()
        await self._start_anew(name)

    @contextlib.asynccontextmanager
    async def stopped(self, name: str) -> AsyncIterator[None]:
        """One service down for the block, then a new one in its place (a host is started once,
        and the teardown stops whatever runs then)."""
        await self.hosts[name].stop()
        try:
            yield
        finally:
            await self._start_anew(name)

    async def stop_replicas(self, name: str) -> None:
        """Every instance of a service down at once (a Deployment scaled to zero)."""
        await asyncio.gather(*(host.stop() for host in self.replicas(name)))

    async def start_replicas(self, name: str, **updates: Any) -> None:
        """New instances in place of a service's stopped ones, started side by side (a
        Deployment scaled up again), with their settings changed by `updates`."""
        keys = [key for key in self.hosts if service_of(key) == name]
        for key in keys:
            settings = self.hosts[key].settings.model_copy(update=updates)
            self.hosts[key] = BUILDERS[name](settings)
        await asyncio.gather(*(self.hosts[key].start() for key in keys))

    async def _start_anew(self, name: str) -> None:
        self.hosts[name] = BUILDERS[service_of(name)](self.hosts[name].settings)
        if service_of(name) == "dialog" and self.today is not None:
            self.set_today(self.today)
        await self.hosts[name].start()

    def set_today(self, today: date) -> None:
        """Replay the conversation on another date (e.g. January 2021, for that rule set)."""
        self.today = today
        for dialog in self.replicas("dialog"):
            dialog.broker.context.set_global("clock", lambda: today)

    async def register(self, *people: Person, tmp: Path) -> None:
        path = tmp / f"registry-{next(_counter)}.csv"
        rows = ["nik,name,phone,profession,facility_code"] + [
            f"{p.nik},{p.name},{p.phone},{p.profession},{p.facility_code}" for p in people
        ]
        path.write_text("\n".join(rows) + "\n")
        assert await import_registry_file(self.settings, path) == 0

    async def add_facility(
        self,
        code: str,
        tmp: Path,
        sessions: list[tuple[date, str, str, int]],
        regency: str = "Kab. Bogor",
    ) -> None:
        """A facility with sessions (day, start, end, capacity), imported like an operator does."""
        facilities = tmp / f"facilities-{next(_counter)}.csv"
        facilities.write_text(
            "code,name,address,regency,province\n"
            f"{code},Puskesmas {code},Jl. Merdeka {code},{regency},Jawa Barat\n"
        )
        assert await import_facilities_file(self.settings, facilities) == 0
        rows = [
            f"{code},{day.isoformat()},{start},{end},{capacity},CoronaVac"
            for day, start, end, capacity in sessions
        ]
        path = tmp / f"sessions-{next(_counter)}.csv"
        path.write_text("facility_code,date,start,end,capacity,vaccine\n" + "\n".join(rows) + "\n")
        assert await import_sessions_file(self.settings, path) == 0


def service_of(key: str) -> str:
    """The service of a key of `System.hosts` (`dialog-2` -> `dialog`)."""
    return re.sub(r"-\d+$", "", key)


def body_of(reply: dict) -> str:
    """The visible text of a recorded send, whatever its kind."""
    body = reply["body"]
    if body.get("type") == "text":
        return body["text"]["body"]
    if body.get("type") == "interactive":
        return body["interactive"]["body"]["text"]
    return json.dumps(body)


def assert_no_reply_mixes_languages(fake: FakeGraph) -> None:
    """Every transcript of every end-to-end test: no message sent mixes Bahasa Indonesia and
    English (tests/languages.py), whichever language its user chose."""
    mixing = [
        (sent["to"], text)
        for sent in fake.sent
        for text in [" ".join(visible_texts(sent["body"]))]
        if mixed(text)
    ]
    assert not mixing, mixing


async def start_whole_system(
    base: Settings, replicas: int = 1, **builders: Callable[[Settings], ServiceHost]
) -> System:
    """Every service in this process (`BUILDERS`, some replaced by `builders`) in front of a fake
    Graph API that posts signed status webhooks to the ingress, as Meta does: for tests that run
    on a loop of their own (the browser tests) or share one system (a module). With `replicas`,
    each service runs that many times side by side, as the pods of a Deployment do: hosts
    `<name>`, `<name>-2`, ... (as `vaksin up` names its processes), each with its own broker,
    pool, engine and HTTP port (the edges: their own webhook ports, `System.post` takes them in
    turn). Stop it with `stop_whole_system`."""
    ingress_port = free_port()
    fake = FakeGraph(
        webhook_url=f"http://127.0.0.1:{ingress_port}/webhook", app_secret=base.whatsapp_app_secret
    )
    api = await fake.start()
    settings = base.model_copy(update={"whatsapp_api_base": api, "ingress_port": ingress_port})

    def instance(replica: int) -> Settings:
        update: dict[str, Any] = {"health_port": free_port()}
        if replica > 1:
            update["ingress_port"] = free_port()
        return settings.model_copy(update=update)

    hosts = {
        process_name(name, replica): build(instance(replica))
        for name, build in {**BUILDERS, **builders}.items()
        for replica in range(1, replicas + 1)
    }
    system = System(settings, fake, aiohttp.ClientSession(), hosts)
    for host in hosts.values():
        await host.start()
    return system


async def stop_whole_system(system: System) -> None:
    for host in reversed(list(system.hosts.values())):
        await host.stop()
    await system.http.close()
    await system.fake.stop()


@pytest.fixture
async def system(settings: Settings) -> AsyncIterator[System]:
    fake = FakeGraph()
    base = await fake.start()
    configured = settings.model_copy(
        update={"whatsapp_api_base": base, "ingress_port": free_port()}
    )
    hosts = {
        name: build(configured.model_copy(update={"health_port": free_port()}))
        for name, build in BUILDERS.items()
    }
    async with aiohttp.ClientSession() as http:
        system = System(configured, fake, http, hosts)
        try:
            for host in hosts.values():
                await host.start()
            yield system
            assert_no_reply_mixes_languages(fake)
        finally:
            for host in reversed(list(system.hosts.values())):
                await asyncio.shield(host.stop())
            await fake.stop()
