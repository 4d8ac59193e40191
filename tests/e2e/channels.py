"""The whole system with the SMS and USSD adapters in front of it: the `system` of conftest.py
plus the `ussd` and `sms` processes, a fake Jasmin gateway and a fake USSD aggregator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from services.channels.app import build_sms_host, build_ussd_host
from services.channels.settings import ChannelSettings
from services.common.embedded import free_port
from services.devtools.fake_sms import FakeJasmin
from services.devtools.fake_ussd import UssdSession, session
from tests.e2e.conftest import System

USSD_SECRET = "test-ussd-secret"
SMS_SECRET = "test-sms-secret"


@dataclass
class Channels:
    system: System
    settings: ChannelSettings
    jasmin: FakeJasmin

    @property
    def ussd_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.ussd_port}/ussd?key={USSD_SECRET}"

    @property
    def sms_base(self) -> str:
        return f"http://127.0.0.1:{self.settings.sms_port}"

    def dial(self, phone: str) -> UssdSession:
        return session(self.system.http, self.ussd_url, "+" + phone)


@pytest.fixture(name="channels")
async def channels_fixture(system: System) -> AsyncIterator[Channels]:
    jasmin = FakeJasmin(password="test-jasmin-password")
    await jasmin.start()
    ussd_port, sms_port = free_port(), free_port()
    channel = ChannelSettings(
        data_dir=system.settings.data_dir,
        ussd_port=ussd_port,
        sms_port=sms_port,
        ussd_secret=USSD_SECRET,
        sms_secret=SMS_SECRET,
        jasmin_url=jasmin.url,
        jasmin_password="test-jasmin-password",
        sms_callback_base=f"http://127.0.0.1:{sms_port}",
        sms_interval=0.0,
        ussd_reply_seconds=8.0,
    )
    jasmin.mo_url = f"http://127.0.0.1:{sms_port}/sms/inbound?key={SMS_SECRET}"
    for name, build, port in (
        ("ussd", build_ussd_host, ussd_port),
        ("sms", build_sms_host, sms_port),
    ):
        host = build(system.settings.model_copy(update={"health_port": port}), channel)
        system.hosts[name] = host
        await host.start()
    try:
        yield Channels(system, channel, jasmin)
    finally:
        await jasmin.stop()  # the hosts are stopped with the system's
