"""Issue 17, end to end through the webhook: answers typed one step early are taken, a request
waiting for an operator is told where it stands, and an English user reads English only: the
profession in English and the facility by its name, from `VAKSIN` to the ticket in five turns."""

from __future__ import annotations

import secrets
from datetime import date, timedelta
from pathlib import Path

import pytest

from tests.e2e.conftest import System, body_of, new_person
from tests.e2e.test_booking_flow import buttons
from tests.e2e.test_intake_flow import register_in_chat

pytestmark = pytest.mark.servers

TOMORROW = date.today() + timedelta(days=1)


async def test_the_suffix_typed_at_the_health_worker_question_verifies_at_once(
    system: System, tmp_path: Path
) -> None:
    nakes = new_person()
    await system.register(nakes, tmp=tmp_path)
    await system.turn(nakes.phone, "VAKSIN")
    conditions = await system.turn(nakes.phone, nakes.suffix)  # verified, and the conditions
    assert "terverifikasi" in body_of(conditions)
    assert buttons(conditions) == ["scr.none", "scr.some"]


async def test_the_nik_typed_at_the_registration_offer_goes_on_to_the_name(
    system: System,
) -> None:
    person = new_person("Dewi Anggraini")  # not imported: unlisted
    await system.turn(person.phone, "VAKSIN")
    offer = await system.turn(person.phone, reply_id="nakes.yes")
    assert "Daftar sekarang?" in body_of(offer)
    asked = await system.turn(person.phone, person.nik)
    assert "nama lengkap" in body_of(asked) and person.nik not in body_of(asked)


async def test_a_request_waiting_for_an_operator_hears_since_when_and_what_next(
    system: System, tmp_path: Path
) -> None:
    phone, nik, _ = await register_in_chat(system, tmp_path)
    for typed in ("halo", "sudah disetujui?"):
        waiting = body_of(await system.turn(phone, typed))
        assert "menunggu verifikasi petugas sejak" in waiting
        assert "VAKSIN" in waiting and "tidak mengerti" not in waiting and nik not in waiting


async def test_english_from_keyword_to_ticket_in_five_turns(system: System, tmp_path: Path) -> None:
    code = f"T{secrets.token_hex(3).upper()}"
    await system.add_facility(code, tmp_path, [(TOMORROW, "08:00", "12:00", 5)])
    nakes = new_person(facility_code=code)
    await system.register(nakes, tmp=tmp_path)
    phone = nakes.phone
    await system.turn(phone, "EN")  # the language, before the five turns

    greeting = await system.turn(phone, "VAKSIN")  # 1
    assert "Are you a health worker?" in body_of(greeting)
    assert "last 6 digits" in body_of(await system.turn(phone, "", "nakes.yes"))  # 2
    verified = await system.turn(phone, nakes.suffix)  # 3: verified, and the conditions
    assert "Profession: Nurse" in body_of(verified)
    assert f"Health facility: Puskesmas {code}" in body_of(verified)
    offer = await system.turn(phone, "", "scr.none")  # 4: eligible, and the offer
    assert "you *can* go ahead" in body_of(offer)
    assert f"*Puskesmas {code}*" in body_of(offer) and "Confirm, choose another time" in body_of(
        offer
    )
    assert buttons(offer) == ["slot.ok", "slot.other", "loc.other"]
    confirmed = await system.turn(phone, "", "slot.ok")  # 5
    assert "*confirmed*" in body_of(confirmed)
    ticket = await system.ticket_sent(phone)
    assert "vaccination ticket" in ticket["body"]["image"]["caption"]
    # The conftest scans this transcript too: no reply mixes the languages.
