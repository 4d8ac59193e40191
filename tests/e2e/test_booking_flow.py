"""From `VAKSIN` to a confirmed booking in five user turns (place and earliest time come in one
message, a seat held), then STATUS, UBAH and BATAL, and every way out of the offer (another time,
another place), all through the webhook; seats are counted by the scheduler on the real
database."""

from __future__ import annotations

import secrets
from datetime import date, timedelta
from pathlib import Path

import pytest

from tests.e2e.conftest import Person, System, body_of, new_person

pytestmark = pytest.mark.servers

TOMORROW = date.today() + timedelta(days=1)


def buttons(reply: dict) -> list[str]:
    return [b["reply"]["id"] for b in reply["body"]["interactive"]["action"]["buttons"]]


def rows(reply: dict) -> list[str]:
    sections = reply["body"]["interactive"]["action"]["sections"]
    return [r["id"] for s in sections for r in s["rows"]]


async def turn_replies(system: System, phone: str, text: str = "",
                       reply_id: str | None = None, count: int = 1) -> list[dict]:  # fmt: skip
    before = len(system.fake.messages_to(phone))
    await system.say(phone, text, reply_id)
    return (await system.replies(phone, before + count))[before:]


async def eligible_with_offer(system: System, tmp_path: Path, facility: str) -> Person:
    """Four turns: registered, verified, screened eligible, and offered the assigned facility's
    earliest time (a seat held) in the same reply."""
    nakes, _ = await offered(system, tmp_path, facility)
    return nakes


async def offered(system: System, tmp_path: Path, facility: str) -> tuple[Person, dict]:
    """The person after four turns and the offer they see."""
    nakes = new_person(facility_code=facility)
    await system.register(nakes, tmp=tmp_path)
    await system.turn(nakes.phone, "VAKSIN")  # 1
    await system.turn(nakes.phone, reply_id="nakes.yes")  # 2
    await system.turn(nakes.phone, nakes.suffix)  # 3: verified, and the conditions (one message)
    offer = await system.turn(nakes.phone, "", "scr.none")  # 4: eligible, and the offer
    assert "*dapat* melanjutkan" in body_of(offer)
    assert f"Puskesmas {facility}" in body_of(offer)
    return nakes, offer


def facility_code() -> str:
    return f"T{secrets.token_hex(3).upper()}"


async def test_five_turns_from_keyword_to_confirmed_booking(system: System, tmp_path: Path) -> None:
    code = facility_code()
    later = TOMORROW + timedelta(days=3)
    await system.add_facility(
        code, tmp_path, [(later, "13:00", "15:00", 5), (TOMORROW, "08:00", "12:00", 5)]
    )
    # Turns 1-4: VAKSIN, health worker, suffix, "none apply" -> eligible, with place and time.
    nakes, offer = await offered(system, tmp_path, code)
    assert buttons(offer) == ["slot.ok", "slot.other", "loc.other"]
    assert f"Jl. Merdeka {code}" in body_of(offer)
    assert TOMORROW.strftime("%d-%m-%Y") in body_of(offer) and "08:00-12:00" in body_of(offer)
    confirmed = await system.turn(nakes.phone, "", "slot.ok")  # 5
    assert "*terkonfirmasi*" in body_of(confirmed)
    said = [m for m in system.fake.messages_to(nakes.phone) if m["body"]["type"] != "video"]
    assert len([m for m in said if m["body"]["type"] != "image"]) == 5  # 5 turns, 5 replies
    assert nakes.nik not in body_of(confirmed)
    ticket = await system.ticket_sent(nakes.phone)  # then the QR ticket and the video
    assert TOMORROW.strftime("%d-%m-%Y") not in body_of(ticket)  # the caption writes it out

    status, again = await turn_replies(system, nakes.phone, "STATUS", count=2)
    assert TOMORROW.strftime("%d-%m-%Y") in body_of(status)
    assert again["body"]["image"]["id"] == ticket["body"]["image"]["id"]


async def test_reschedule_then_cancel(system: System, tmp_path: Path) -> None:
    code = facility_code()
    later = TOMORROW + timedelta(days=2)
    await system.add_facility(
        code, tmp_path, [(TOMORROW, "08:00", "12:00", 3), (later, "13:00", "15:00", 3)]
    )
    nakes = await eligible_with_offer(system, tmp_path, code)
    await system.turn(nakes.phone, "ya")  # typed confirmation
    await system.ticket_sent(nakes.phone)
    listing = await system.turn(nakes.phone, "UBAH")
    assert len(rows(listing)) >= 1
    held = await system.turn(nakes.phone, str(len(rows(listing))))  # the last (later) session
    assert later.strftime("%d-%m-%Y") in body_of(held)
    moved = await system.turn(nakes.phone, "", "slot.ok")
    assert "*diubah*" in body_of(moved) and later.strftime("%d-%m-%Y") in body_of(moved)
    await system.ticket_sent(nakes.phone, 2)  # the new ticket

    cancelled = await system.turn(nakes.phone, "BATAL")
    assert "*dibatalkan*" in body_of(cancelled)
    again = await system.turn(nakes.phone, "STATUS")
    assert "terkonfirmasi" not in body_of(again)


async def test_a_full_facility_offers_others_in_the_regency(system: System, tmp_path: Path) -> None:
    full, other = facility_code(), facility_code()
    regency = f"Kab. Uji {full}"  # a regency of their own: the list holds only these two
    await system.add_facility(full, tmp_path, [], regency=regency)
    await system.add_facility(other, tmp_path, [(TOMORROW, "09:00", "11:00", 2)], regency=regency)
    nakes = new_person(facility_code=full)
    await system.register(nakes, tmp=tmp_path)
    await system.turn(nakes.phone, "VAKSIN")
    await system.turn(nakes.phone, reply_id="nakes.yes")
    await system.turn(nakes.phone, nakes.suffix)
    listing = await system.turn(nakes.phone, "", "scr.none")  # eligible, full, the others: one
    assert "*dapat* melanjutkan" in body_of(listing) and "penuh" in body_of(listing)
    assert f"loc.{other}" in rows(listing)
    offer = await system.turn(nakes.phone, "", f"loc.{other}")
    assert f"Puskesmas {other}" in body_of(offer)
    assert "*terkonfirmasi*" in body_of(await system.turn(nakes.phone, "1"))


async def test_the_offer_leads_to_another_time_or_another_place(
    system: System, tmp_path: Path
) -> None:
    assigned, other = facility_code(), facility_code()
    regency = f"Kab. Uji {assigned}"
    later = TOMORROW + timedelta(days=2)
    sessions = [(TOMORROW, "08:00", "12:00", 5), (later, "13:00", "15:00", 5)]
    await system.add_facility(assigned, tmp_path, sessions, regency=regency)
    await system.add_facility(other, tmp_path, [(later, "09:00", "11:00", 2)], regency=regency)
    nakes = await eligible_with_offer(system, tmp_path, assigned)

    times = await system.turn(nakes.phone, "", "slot.other")
    assert len(rows(times)) == 2
    places = await system.turn(nakes.phone, "lokasi lain")  # typed: another place after all
    assert rows(places) == [f"loc.{assigned}", f"loc.{other}"]
    offer = await system.turn(nakes.phone, "2")
    assert f"Puskesmas {other}" in body_of(offer) and later.strftime("%d-%m-%Y") in body_of(offer)
    assert "*terkonfirmasi*" in body_of(await system.turn(nakes.phone, "", "slot.ok"))
