"""Tickets end to end: a confirmed booking brings a QR ticket image (uploaded to Meta's media
endpoint, then sent by id) and the vaccine video; the QR decodes with a real decoder to a token
that verifies with the published public key alone; a reschedule revokes the old ticket and sends a
new one; 50 simultaneous check-ins of one ticket redeem it once; the dose recorded at check-in
books dose 2, whose ticket arrives in the chat too."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import zxingcpp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from PIL import Image

from services.common.clock import WIB, jakarta_today
from services.ticketing.desk_api import clock_key
from tests.e2e.conftest import Person, System, body_of
from tests.e2e.test_booking_flow import eligible_with_offer, facility_code, rows

pytestmark = pytest.mark.servers

TOMORROW = jakarta_today() + timedelta(days=1)


def qr_token(system: System, image_send: dict) -> str:
    """The text of the QR code in an image sent by media id, read from the uploaded PNG."""
    media = system.fake.media[image_send["body"]["image"]["id"]]
    assert media["type"] == "image/png"
    [result] = zxingcpp.read_barcodes(Image.open(io.BytesIO(media["data"])))
    return result.text


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


async def offline_claims(system: System, token: str) -> dict[str, Any]:
    """Verify a token as a scanner would: only the published JWK, no code of ours."""
    url = f"http://127.0.0.1:{system.hosts['ticketing'].port}/tickets/public-key"
    async with system.http.get(url) as resp:
        assert resp.status == 200
        jwk = (await resp.json())["jwk"]
    header, payload, signature = token.split(".")
    assert json.loads(unb64(header))["alg"] == "EdDSA"
    public = Ed25519PublicKey.from_public_bytes(unb64(jwk["x"]))
    public.verify(unb64(signature), f"{header}.{payload}".encode())  # raises if not ours
    return json.loads(unb64(payload))


async def desk(
    system: System,
    path: str,
    body: dict,
    token: str | None = "operator",  # noqa: S107
) -> tuple[int, dict]:
    headers = {}
    if token == "operator":
        headers["Authorization"] = f"Bearer {system.settings.operator_token}"
    elif token is not None:
        headers["Authorization"] = f"Bearer {token}"
    url = f"http://127.0.0.1:{system.hosts['ticketing'].port}{path}"
    async with system.http.post(url, json=body, headers=headers) as resp:
        return resp.status, await resp.json()


def desk_day(system: System, day: date, hour: int = 9) -> None:
    clock = system.hosts["ticketing"].web_app[clock_key]
    clock.fixed = datetime.combine(day, datetime.min.time(), WIB) + timedelta(hours=hour)


async def booked(system: System, tmp_path: Path, extra: list | None = None) -> tuple[Person, str]:
    code = facility_code()
    sessions = [(TOMORROW, "08:00", "12:00", 5), *(extra or [])]
    await system.add_facility(code, tmp_path, sessions)
    nakes = await eligible_with_offer(system, tmp_path, code)
    confirmed = await system.turn(nakes.phone, "", "slot.ok")
    assert "*terkonfirmasi*" in body_of(confirmed)
    await system.ticket_sent(nakes.phone)  # the ticket and its video, before the next turn
    return nakes, code


async def test_booking_sends_a_scannable_signed_ticket_then_the_video(
    system: System, tmp_path: Path
) -> None:
    nakes, code = await booked(system, tmp_path)
    [image] = await system.sent_of_type(nakes.phone, "image", 1)
    [video] = await system.sent_of_type(nakes.phone, "video", 1)
    sends = system.fake.messages_to(nakes.phone)
    assert sends.index(image) < sends.index(video)  # the ticket first, in order
    assert video["body"]["video"]["link"] == system.settings.vaccine_video_url

    token = qr_token(system, image)
    claims = await offline_claims(system, token)
    caption = image["body"]["image"]["caption"]
    assert claims["code"] in caption and claims["fac"] == code and claims["dose"] == 1
    assert claims["day"] == TOMORROW.isoformat() and claims["t"] == "08:00-12:00"
    assert claims["nm"] == "S*** R********" and "S*** R********" in caption
    assert nakes.nik not in caption and nakes.nik[-6:] not in token
    # the day's end in Jakarta
    assert claims["exp"] == int(
        datetime.combine(TOMORROW + timedelta(days=1), datetime.min.time(), WIB).timestamp()
    )

    status, check = await desk(system, "/tickets/verify", {"token": token})
    assert (status, check["status"]) == (200, "not_yet")
    desk_day(system, TOMORROW)
    status, check = await desk(system, "/tickets/verify", {"token": token})
    assert (status, check["status"], check["code"]) == (200, "valid", claims["code"])
    assert check["masked_nik"] == nakes.nik[:6] + "*" * 10


async def test_desk_refuses_without_the_operator_token_and_flags_forgeries(
    system: System, tmp_path: Path
) -> None:
    nakes, _ = await booked(system, tmp_path)
    token = qr_token(system, (await system.sent_of_type(nakes.phone, "image", 1))[0])
    desk_day(system, TOMORROW)
    for bearer in (None, "wrong-token"):
        status, answer = await desk(system, "/checkin", {"token": token}, token=bearer)
        assert (status, answer["error"]) == (401, "unauthorized")
        status, _ = await desk(system, "/tickets/verify", {"token": token}, token=bearer)
        assert status == 401
    header, payload, signature = token.split(".")
    tampered = json.loads(unb64(payload)) | {"dose": 2}
    forged_payload = base64.urlsafe_b64encode(json.dumps(tampered).encode()).rstrip(b"=").decode()
    for forged in (f"{header}.{forged_payload}.{signature}", "not a ticket"):
        status, answer = await desk(system, "/checkin", {"token": forged})
        assert (status, answer["status"]) == (422, "forged")
    status, answer = await desk(system, "/checkin", {"token": token, "temperature_c": "hot"})
    assert (status, answer["error"]) == (400, "invalid")
    status, answer = await desk(system, "/checkin", {})
    assert status == 400
    # none of that used the ticket
    status, answer = await desk(
        system, "/checkin", {"token": token, "temperature_c": 36.6, "blood_pressure": "118/76"}
    )
    assert (status, answer["status"]) == (200, "redeemed")


async def test_reschedule_revokes_the_old_ticket_and_sends_a_new_one(
    system: System, tmp_path: Path
) -> None:
    later = TOMORROW + timedelta(days=2)
    nakes, _ = await booked(system, tmp_path, [(later, "13:00", "15:00", 5)])
    first = qr_token(system, (await system.sent_of_type(nakes.phone, "image", 1))[0])
    listing = await system.turn(nakes.phone, "UBAH")
    await system.turn(nakes.phone, str(len(rows(listing))))  # the later session
    moved = await system.turn(nakes.phone, "", "slot.ok")
    assert "*diubah*" in body_of(moved)
    second = qr_token(system, (await system.sent_of_type(nakes.phone, "image", 2))[1])
    assert (await offline_claims(system, second))["day"] == later.isoformat()

    desk_day(system, TOMORROW)
    status, old = await desk(system, "/checkin", {"token": first})
    assert (status, old["status"], old["revoked_reason"]) == (410, "revoked", "rescheduled")
    desk_day(system, later)
    status, new = await desk(system, "/tickets/verify", {"token": second})
    assert new["status"] == "valid"


async def test_cancel_revokes_the_ticket(system: System, tmp_path: Path) -> None:
    nakes, _ = await booked(system, tmp_path)
    token = qr_token(system, (await system.sent_of_type(nakes.phone, "image", 1))[0])
    await system.turn(nakes.phone, "BATAL")
    desk_day(system, TOMORROW)
    deadline = time.monotonic() + 10
    while (await desk(system, "/tickets/verify", {"token": token}))[1]["status"] != "revoked":
        assert time.monotonic() < deadline, "the cancelled booking's ticket was not revoked"
        await asyncio.sleep(0.1)


async def test_fifty_simultaneous_checkins_redeem_once_and_dose_given_books_dose_2(
    system: System, tmp_path: Path
) -> None:
    dose_2_day = TOMORROW + timedelta(days=14)
    nakes, code = await booked(system, tmp_path, [(dose_2_day, "09:00", "11:00", 5)])
    token = qr_token(system, (await system.sent_of_type(nakes.phone, "image", 1))[0])
    desk_day(system, TOMORROW)

    body = {"token": token, "dose_given": True, "by": "desk-1"}
    answers = await asyncio.gather(*(desk(system, "/checkin", body) for _ in range(50)))
    statuses = sorted(status for status, _ in answers)
    assert statuses == [200] + [409] * 49
    used = [answer for status, answer in answers if status == 409]
    assert {a["status"] for a in used} == {"already_used"}
    assert {a["redeemed_by"] for a in used} == {"desk-1"}

    # dose 2 is booked by the scheduler from ticketing.evt.dose_given, and its ticket is sent
    [_, dose_2] = await system.sent_of_type(nakes.phone, "image", 2)
    claims = await offline_claims(system, qr_token(system, dose_2))
    assert (claims["dose"], claims["day"], claims["fac"]) == (2, dose_2_day.isoformat(), code)
    texts = [body_of(m) for m in system.fake.messages_to(nakes.phone)]
    assert any("dosis 2" in t.lower() for t in texts)


async def test_checkin_then_dose_recorded_by_a_second_scan(system: System, tmp_path: Path) -> None:
    """Check-in at arrival, dose after the on-site screening: the second scan records it."""
    nakes, _ = await booked(system, tmp_path)
    token = qr_token(system, (await system.sent_of_type(nakes.phone, "image", 1))[0])
    desk_day(system, TOMORROW)
    assert (await desk(system, "/checkin", {"token": token}))[1]["status"] == "redeemed"
    again = await desk(system, "/checkin", {"token": token})
    assert (again[0], again[1]["status"]) == (409, "already_used")
    status, recorded = await desk(system, "/checkin", {"token": token, "dose_given": True})
    assert (status, recorded["status"]) == (200, "dose_recorded")
    status, twice = await desk(system, "/checkin", {"token": token, "dose_given": True})
    assert (status, twice["status"]) == (409, "already_used")
    assert twice["dose_given_at"] is not None


async def test_public_key_needs_no_token(system: System) -> None:
    url = f"http://127.0.0.1:{system.hosts['ticketing'].port}/tickets/public-key"
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        body = await resp.json()
    assert resp.status == 200
    assert body["jwk"]["crv"] == "Ed25519" and body["pem"].startswith("-----BEGIN PUBLIC KEY")
    assert "d" not in body["jwk"]  # never the private part


async def test_tiket_and_status_send_the_ticket_again(system: System, tmp_path: Path) -> None:
    nakes, _ = await booked(system, tmp_path)
    [first] = await system.sent_of_type(nakes.phone, "image", 1)
    await system.sent_of_type(nakes.phone, "video", 1)
    await system.say(nakes.phone, "TIKET")
    [_, again] = await system.sent_of_type(nakes.phone, "image", 2)
    assert qr_token(system, again) == qr_token(system, first)
    assert again["body"]["image"]["id"] == first["body"]["image"]["id"]  # uploaded once
    before = len(system.fake.messages_to(nakes.phone))
    await system.say(nakes.phone, "STATUS")
    status, image = (await system.replies(nakes.phone, before + 2))[before:]
    assert "Jadwal vaksinasi Anda" in body_of(status)
    assert image["body"]["type"] == "image" and qr_token(system, image) == qr_token(system, first)


async def test_a_booking_made_while_identity_is_down_gets_its_ticket_once_it_is_back(
    system: System, tmp_path: Path
) -> None:
    """The ticket needs the person's masked name from identity: the booking fact is retried
    with a delay (not dropped, not ticketed without the name) until identity answers."""
    code = facility_code()
    await system.add_facility(code, tmp_path, [(TOMORROW, "08:00", "12:00", 5)])
    nakes = await eligible_with_offer(system, tmp_path, code)
    async with system.stopped("identity"):
        confirmed = await system.turn(nakes.phone, "", "slot.ok")
        assert "*terkonfirmasi*" in body_of(confirmed)
        await asyncio.sleep(7)  # the first deliveries fail: identity does not answer
        sends = system.fake.messages_to(nakes.phone)
        assert not [m for m in sends if m["body"].get("type") == "image"]
    ticket = await system.ticket_sent(nakes.phone)
    assert "S*** R********" in ticket["body"]["image"]["caption"]
    await asyncio.sleep(1)
    assert len(await system.sent_of_type(nakes.phone, "image", 1)) == 1  # sent once
