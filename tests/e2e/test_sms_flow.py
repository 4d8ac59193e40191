"""From an SMS `VAKSIN` to a confirmed appointment with its ticket code, through a fake Jasmin
gateway only (MO callbacks in, `/send` out, delivery reports back): numbered menus within GSM-7
parts answered by number or by word, the ticket code by SMS, delivery reports recorded, STOP /
BERHENTI, and the gateway's callbacks refused without the key."""

from __future__ import annotations

import asyncio
import re
from datetime import date, datetime, time, timedelta
from pathlib import Path

import pytest

from services.channels import render
from services.channels import repository as repo
from services.common.clock import WIB
from services.scheduler import jobs
from tests.e2e.channels import SMS_SECRET, Channels, channels_fixture  # noqa: F401 (the fixture)
from tests.e2e.conftest import new_person

pytestmark = pytest.mark.servers

TOMORROW = date.today() + timedelta(days=1)
CODE = re.compile(r"Kode tiket: ([A-Z0-9]{8})\b")


async def text_and_wait(channels: Channels, phone: str, content: str) -> str:
    """The phone sends `content`; the one SMS it causes (several for a long answer, joined)."""
    before = len(channels.jasmin.messages_to(phone))
    status, answer = await channels.jasmin.deliver(phone, content)
    assert (status, answer) == (200, "ACK/Jasmin")
    await channels.jasmin.wait_for(phone, before + 1)
    await asyncio.sleep(0.2)  # a long answer's later messages
    return "\n".join(s.content for s in channels.jasmin.messages_to(phone)[before:])


async def test_from_an_sms_vaksin_to_a_booking_and_its_ticket_code(
    channels: Channels, tmp_path: Path
) -> None:
    system = channels.system
    await system.add_facility("S3201001", tmp_path, [(TOMORROW, "08:00", "12:00", 5)])
    nakes = new_person(facility_code="S3201001")
    await system.register(nakes, tmp=tmp_path)

    greeting = await text_and_wait(channels, nakes.phone, "VAKSIN")
    assert "1. Ya, saya nakes" in greeting and "2. Bukan" in greeting
    ask = await text_and_wait(channels, nakes.phone, "1")
    assert "6 digit" in ask
    verified = await text_and_wait(channels, nakes.phone, nakes.suffix)
    assert "1. Tidak ada" in verified and nakes.nik not in verified
    offer = await text_and_wait(channels, nakes.phone, "tidak ada")  # a word works as well
    assert "Puskesmas S3201001" in offer and "1. Konfirmasi" in offer
    confirmed = await text_and_wait(channels, nakes.phone, "1")
    assert "terkonfirmasi" in confirmed
    for sms in channels.jasmin.messages_to(nakes.phone):
        assert sms.coding == "0" and render.sms_size(sms.content).parts <= render.SMS_MAX_PARTS
        assert sms.params["from"] == "PEDULICOVID" and sms.params["dlr"] == "yes"

    for _ in range(200):  # the ticket follows the booking
        found = [CODE.search(s.content) for s in channels.jasmin.messages_to(nakes.phone)]
        codes = [m[1] for m in found if m]
        if codes:
            break
        await asyncio.sleep(0.05)
    assert codes, [s.content for s in channels.jasmin.messages_to(nakes.phone)]
    pool = system.hosts["sms"].pool
    assert pool is not None
    ticket = await pool.fetchval("SELECT code FROM ticketing.ticket WHERE code = $1", codes[0])
    assert ticket == codes[0]
    assert not system.fake.messages_to(nakes.phone)  # nothing on WhatsApp

    # Every SMS sent is reported delivered by the gateway, and recorded so.
    for _ in range(200):
        statuses = {status for _, status in await repo.sms_statuses(pool, nakes.phone)}
        if statuses == {"delivered"}:
            break
        await asyncio.sleep(0.05)
    assert statuses == {"delivered"}

    # The day before, the reminder goes by SMS too (the channel the seat was held by).
    before = len(channels.jasmin.messages_to(nakes.phone))
    scheduler = system.hosts["scheduler"]
    assert scheduler.pool is not None and scheduler.relay is not None
    day_before = datetime.combine(TOMORROW - timedelta(days=1), time(9, 30), tzinfo=WIB)
    assert await jobs.send_reminders(scheduler.pool, system.settings, day_before) >= 1
    scheduler.relay.wake()
    await channels.jasmin.wait_for(nakes.phone, before + 1)
    reminder = channels.jasmin.messages_to(nakes.phone)[before].content
    assert "Puskesmas S3201001" in reminder and "besok" in reminder.lower()
    assert not system.fake.messages_to(nakes.phone)  # still nothing on WhatsApp


async def test_stop_opts_out_until_the_number_writes_again(
    channels: Channels, tmp_path: Path
) -> None:
    nakes = new_person()
    await channels.system.register(nakes, tmp=tmp_path)
    await text_and_wait(channels, nakes.phone, "VAKSIN")
    stopped = await text_and_wait(channels, nakes.phone, "BERHENTI")
    assert "berhenti berlangganan" in stopped
    pool = channels.system.hosts["sms"].pool
    assert pool is not None
    assert await repo.opted_out(pool, nakes.phone)
    # A message queued meanwhile (a notice sent unasked) is not sent.
    await repo.queue_sms(pool, "test:notice", nakes.phone, [repo.Sms("Pengingat", "gsm7", 1)])
    before = len(channels.jasmin.messages_to(nakes.phone))
    for _ in range(100):
        if ("Pengingat", "skipped") in await repo.sms_statuses(pool, nakes.phone):
            break
        await asyncio.sleep(0.05)
    assert ("Pengingat", "skipped") in await repo.sms_statuses(pool, nakes.phone)
    assert len(channels.jasmin.messages_to(nakes.phone)) == before
    # Writing again is consent again.
    again = await text_and_wait(channels, nakes.phone, "VAKSIN")
    assert again and not await repo.opted_out(pool, nakes.phone)


async def test_a_gateway_failure_is_sent_again(channels: Channels, tmp_path: Path) -> None:
    nakes = new_person()
    await channels.system.register(nakes, tmp=tmp_path)
    channels.jasmin.fail_next = [500]
    greeting = await text_and_wait(channels, nakes.phone, "VAKSIN")
    assert "1. Ya" in greeting


async def test_the_same_sms_delivered_twice_has_one_effect(
    channels: Channels, tmp_path: Path
) -> None:
    nakes = new_person()
    await channels.system.register(nakes, tmp=tmp_path)
    for _ in range(2):  # Jasmin delivers again when our ACK is lost
        status, _ = await channels.jasmin.deliver(
            nakes.phone, "VAKSIN", id="mo-twice-" + nakes.phone
        )
        assert status == 200
    await channels.jasmin.wait_for(nakes.phone, 1)
    await asyncio.sleep(1.0)
    assert len(channels.jasmin.messages_to(nakes.phone)) == 1


async def test_the_gateways_callbacks_need_the_key(channels: Channels) -> None:
    http = channels.system.http
    form = {"id": "x", "from": "6281200000001", "to": "1199", "content": "VAKSIN"}
    for path in ("/sms/inbound", "/sms/inbound?key=wrong", "/sms/dlr", "/sms/dlr?key=nope"):
        async with http.post(channels.sms_base + path, data=form) as resp:
            assert resp.status == 403
    async with http.post(
        f"{channels.sms_base}/sms/inbound?key={SMS_SECRET}", data={"content": "x"}
    ) as resp:
        assert resp.status == 400 and "ACK/Jasmin" not in await resp.text()
