"""From `*119#` to a confirmed appointment with a ticket code, through the aggregator's callback
only (a fake Africa's Talking), on the real system: menus within 182 characters answered by
number, a ticket code by SMS, a session that ends and a next dial that carries on, a repeated
request without a second effect, the identity rules of WhatsApp (NIK suffix bound to the number,
5 failures lock), the callback's key, and a conversation started on USSD finished on WhatsApp."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import date, timedelta
from pathlib import Path

import pytest

from services.common.contracts.channels import route
from services.devtools.fake_ussd import UssdAnswer, UssdSession
from tests.e2e.channels import Channels, channels_fixture  # noqa: F401 (the fixture)
from tests.e2e.conftest import new_person

pytestmark = pytest.mark.servers

TOMORROW = date.today() + timedelta(days=1)
CODE = re.compile(r"\b[A-Z0-9]{8}\b")


def fits(answer: UssdAnswer) -> UssdAnswer:
    assert answer.status == 200 and answer.kind in ("CON", "END"), answer
    assert len(answer.text) <= 182, answer.text
    return answer


async def read_all(ussd: UssdSession, answer: UssdAnswer) -> tuple[UssdAnswer, str]:
    """Every page of a screen (`0` for the next): the last answer and the text of all."""
    texts = [answer.text]
    while answer.kind == "CON" and "\n0 Lanjut" in answer.text:
        answer = fits(await ussd.press("0"))
        texts.append(answer.text)
    return answer, "\n".join(texts)


async def test_from_the_dial_to_a_booking_and_a_ticket_code_by_sms(
    channels: Channels, tmp_path: Path
) -> None:
    system = channels.system
    await system.add_facility("U3201001", tmp_path, [(TOMORROW, "08:00", "12:00", 5)])
    nakes = new_person(facility_code="U3201001")
    await system.register(nakes, tmp=tmp_path)
    ussd = channels.dial(nakes.phone)

    greeting = fits(await ussd.dial())
    assert greeting.kind == "CON" and "1. Ya" in greeting.text
    ask_suffix = fits(await ussd.press("1"))
    assert ask_suffix.kind == "CON" and "6 digit" in ask_suffix.text
    verified, text = await read_all(ussd, fits(await ussd.press(nakes.suffix)))
    assert verified.kind == "CON" and "1. Tidak ada" in text
    assert nakes.nik not in text and nakes.name not in text
    offer, text = await read_all(ussd, fits(await ussd.press("1")))  # none of them apply
    assert offer.kind == "CON" and "Puskesmas U3201001" in text and "1. Konfirmasi" in text
    booked, text = await read_all(ussd, fits(await ussd.press("1")))  # confirm
    assert booked.kind == "END" and "terkonfirmasi" in text

    # The ticket: its 8-character code by SMS, no image, no video.
    sms = await channels.jasmin.wait_for(nakes.phone, 1)
    ticket = sms[-1].content
    code = CODE.search(ticket.split("Kode tiket:")[1])
    assert code is not None, ticket
    assert sms[-1].coding == "0"  # GSM-7: no emoji left
    assert not system.fake.messages_to(nakes.phone)  # nothing went to WhatsApp

    # The desk takes the code as it takes the QR.
    pool = system.hosts["ticketing"].pool
    assert pool is not None
    found = await pool.fetchval("SELECT count(*) FROM ticketing.ticket WHERE code = $1", code[0])
    assert found == 1

    # Dialling again carries on: the booking is shown, and the session ends.
    redial = channels.dial(nakes.phone)
    again, text = await read_all(redial, fits(await redial.dial()))
    assert "Puskesmas U3201001" in text and again.kind == "END"


async def test_a_repeated_request_is_answered_the_same_without_a_second_turn(
    channels: Channels, tmp_path: Path
) -> None:
    nakes = new_person()
    await channels.system.register(nakes, tmp=tmp_path)
    ussd = channels.dial(nakes.phone)
    await ussd.dial()
    first = fits(await ussd.press("1"))
    again = fits(await ussd.repeat())
    assert again.text == first.text
    pool = channels.system.hosts["dialog"].pool
    assert pool is not None
    turns = await pool.fetchval(
        "SELECT count(*) FROM ingress.processed_message WHERE wamid LIKE $1",
        f"ussd:{ussd.session_id}:%",
    )
    assert turns == 2  # the dial and the one input


async def test_five_wrong_suffixes_lock_the_number_on_ussd_too(
    channels: Channels, tmp_path: Path
) -> None:
    nakes = new_person()
    await channels.system.register(nakes, tmp=tmp_path)
    ussd = channels.dial(nakes.phone)
    await ussd.dial()
    await ussd.press("1")
    for wrong in ("000001", "000002", "000003", "000004", "000005"):
        if ussd.ended:
            ussd = channels.dial(nakes.phone)
            await ussd.dial()
        last, text = await read_all(ussd, fits(await ussd.press(wrong)))
    assert last.kind == "END" and "119" in text  # locked, and pointed to the hotline
    # Every dial now hears that it is locked; the right suffix changes nothing.
    again = channels.dial(nakes.phone)
    locked, text = await read_all(again, fits(await again.dial()))
    assert locked.kind == "END" and "119" in text


async def test_the_suffix_is_bound_to_the_number_that_dials(
    channels: Channels, tmp_path: Path
) -> None:
    nakes = new_person()
    await channels.system.register(nakes, tmp=tmp_path)
    stranger = new_person()  # not in the registry: another number with the right suffix
    ussd = channels.dial(stranger.phone)
    await ussd.dial()
    await ussd.press("1")
    answer = fits(await ussd.press(nakes.suffix))
    assert nakes.name.split()[0] not in answer.text


async def test_started_on_ussd_and_finished_on_whatsapp(channels: Channels, tmp_path: Path) -> None:
    nakes = new_person()
    await channels.system.register(nakes, tmp=tmp_path)
    ussd = channels.dial(nakes.phone)
    await ussd.dial()
    await ussd.press("1")  # a health worker: asked for the suffix
    await channels.system.say(nakes.phone, nakes.suffix)  # and the suffix on WhatsApp
    [conditions] = await channels.system.replies(nakes.phone, 1)  # verified, and the conditions
    assert conditions["body"]["type"] == "interactive"  # the screening: the state carried over
    assert "scr.none" in json.dumps(conditions["body"])
    # Back on WhatsApp: what is sent unasked goes to WhatsApp again.
    broker = channels.system.hosts["ticketing"].broker
    for _ in range(100):
        if await route(broker, nakes.phone) == "whatsapp":
            break
        await asyncio.sleep(0.05)
    assert await route(broker, nakes.phone) == "whatsapp"
    assert not channels.jasmin.messages_to(nakes.phone)


async def test_the_callback_needs_the_aggregators_key(channels: Channels) -> None:
    http = channels.system.http
    url = f"http://127.0.0.1:{channels.settings.ussd_port}/ussd"
    form = {"sessionId": "s1", "serviceCode": "*119#", "phoneNumber": "+6281200000001", "text": ""}
    for query in ("", "?key=wrong"):
        async with http.post(url + query, data=form) as resp:
            assert resp.status == 403
    async with http.post(url + "?key=test-ussd-secret", data={"text": ""}) as resp:
        assert resp.status == 400
