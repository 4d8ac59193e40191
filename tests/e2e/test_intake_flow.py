"""An unlisted health worker registers in the chat, an operator decides, the user is told and,
when approved, goes straight on to the screening. All through the webhook and the operator CLI."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import asyncpg
import pytest

from services.identity.intake_cli import approve_intake, reject_intake
from tests.e2e.conftest import System, body_of, new_person

pytestmark = pytest.mark.servers


async def register_in_chat(system: System, tmp_path: Path) -> tuple[str, str, str]:
    """Walks the intake; returns (phone, nik, facility code)."""
    code = f"T{secrets.token_hex(3).upper()}"
    await system.add_facility(code, tmp_path, [])
    person = new_person("Dewi Anggraini", facility_code=code)  # not imported: unlisted
    phone = person.phone
    await system.turn(phone, "VAKSIN")
    offer = await system.turn(phone, reply_id="nakes.yes")
    assert "belum terdaftar" in body_of(offer)
    assert "16 digit NIK" in body_of(await system.turn(phone, "", "intake.yes"))
    wrong_month = person.nik[:8] + "13" + person.nik[10:]
    typo = await system.turn(phone, wrong_month)  # the reason, then the ask: one message
    assert "Bulan lahir" in body_of(typo) and wrong_month not in body_of(typo)
    assert body_of(typo).endswith("Ketik *16 digit NIK* Anda sesuai KTP.")
    assert "nama lengkap" in body_of(await system.turn(phone, person.nik))
    professions = await system.turn(phone, person.name)
    assert professions["body"]["interactive"]["type"] == "list"
    assert "kode fasilitas" in body_of(await system.turn(phone, "3"))  # typed row: perawat
    read_back = await system.turn(phone, code.lower())
    text = body_of(read_back)
    assert person.nik[:6] + "*" * 10 in text and person.nik not in text
    assert "Dewi Anggraini" in text and "Perawat" in text and code in text
    submitted = await system.turn(phone, "", "intake.ok")
    assert "*diverifikasi*" in body_of(submitted)
    return phone, person.nik, code


async def intake_id(system: System, facility: str) -> int:
    conn = await asyncpg.connect(system.settings.database_url)
    try:
        return await conn.fetchval(
            "SELECT id FROM identity.intake WHERE facility_code = $1", facility
        )
    finally:
        await conn.close()


async def test_approved_intake_goes_on_to_screening(system: System, tmp_path: Path) -> None:
    phone, nik, code = await register_in_chat(system, tmp_path)
    waiting = await system.turn(phone, "VAKSIN")
    assert "menunggu verifikasi" in body_of(waiting)

    before = len(system.fake.messages_to(phone))
    assert await approve_intake(system.settings, await intake_id(system, code), by="tester") == 0
    [news] = (await system.replies(phone, before + 1))[before:]
    assert "*disetujui*" in body_of(news)

    # Verified by the approval: the keyword leads straight into the screening.
    conditions = await system.turn(phone, "VAKSIN")  # verified, and the conditions: one message
    assert "sudah terverifikasi" in body_of(conditions)
    assert [b["reply"]["id"] for b in conditions["body"]["interactive"]["action"]["buttons"]] == [
        "scr.none",
        "scr.some",
    ]
    sent = json.dumps(system.fake.messages_to(phone))
    assert nik not in sent, "the raw NIK never leaves in a message"


async def test_rejected_intake_is_told_with_the_reason(system: System, tmp_path: Path) -> None:
    phone, _, code = await register_in_chat(system, tmp_path)
    before = len(system.fake.messages_to(phone))
    reason = "tidak terdaftar sebagai pegawai fasilitas"
    assert await reject_intake(system.settings, await intake_id(system, code), reason=reason,
                               by="tester") == 0  # fmt: skip
    [news] = (await system.replies(phone, before + 1))[before:]
    assert "*tidak dapat disetujui*" in body_of(news) and reason in body_of(news)


async def test_nik_registered_under_another_number_is_not_revealed(
    system: System, tmp_path: Path
) -> None:
    listed = new_person()
    await system.register(listed, tmp=tmp_path)
    code = f"T{secrets.token_hex(3).upper()}"
    await system.add_facility(code, tmp_path, [])
    phone = new_person().phone
    await system.turn(phone, "VAKSIN")
    await system.turn(phone, reply_id="nakes.yes")
    await system.turn(phone, "", "intake.yes")
    await system.turn(phone, listed.nik)
    await system.turn(phone, "Orang Lain")
    await system.turn(phone, "", "prof.bidan")
    await system.turn(phone, code)
    reply = body_of(await system.turn(phone, "", "intake.ok"))
    assert "tidak dapat dicocokkan" in reply and "119 ext 9" in reply
    assert listed.name not in reply and "S***" not in reply
