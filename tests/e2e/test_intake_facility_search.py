"""An unlisted health worker who does not know their facility's code types its name instead, picks
their workplace from the list the search found, and sees it in the read-back; the request sent to
the operators names the facility picked. All through the webhook and the fake Graph API."""

from __future__ import annotations

import json
import random
import secrets
import time
from pathlib import Path

import asyncpg
import pytest

from services.scheduler.cli import import_facilities_file
from tests.e2e.conftest import System, body_of, envelope, new_person

pytestmark = pytest.mark.servers


async def add_facilities(system: System, tmp: Path, regency: str, names: list[str]) -> list[str]:
    codes = [f"T{secrets.token_hex(3).upper()}" for _ in names]
    path = tmp / f"facilities-{secrets.token_hex(3)}.csv"
    path.write_text(
        "code,name,address,regency,province\n"
        + "".join(f"{c},{n},Jl. Merdeka No. {i},{regency},DKI Jakarta\n"
                  for i, (c, n) in enumerate(zip(codes, names, strict=True)))
    )  # fmt: skip
    assert await import_facilities_file(system.settings, path) == 0
    return codes


async def pick_row(system: System, wa_id: str, row_id: str, title: str) -> dict:
    """Tap a row of a list message (a `list_reply`, as WhatsApp sends it); the reply it causes."""
    before = len(system.fake.messages_to(wa_id))
    message = {
        "from": wa_id,
        "id": f"wamid.list.{random.getrandbits(40):x}",
        "timestamp": str(int(time.time())),
        "type": "interactive",
        "interactive": {"type": "list_reply", "list_reply": {"id": row_id, "title": title}},
    }
    resp = await system.post(json.dumps(envelope(wa_id, message)).encode())
    assert resp.status == 200
    return (await system.replies(wa_id, before + 1))[before]


async def test_unlisted_worker_finds_the_workplace_by_name_and_picks_it_from_a_list(
    system: System, tmp_path: Path
) -> None:
    token = secrets.token_hex(3)  # the shared database: this test's regency is its own
    regency = f"Kota Uji {token}"
    names = [
        "Puskesmas Kecamatan Tebet",
        "Puskesmas Kelurahan Tebet Barat",
        "Puskesmas Kelurahan Tebet Timur",
    ]
    codes = await add_facilities(system, tmp_path, regency, names)
    await add_facilities(system, tmp_path, f"Kota Lain {token}", ["Puskesmas Tebet"])
    person = new_person("Dewi Anggraini")  # not imported: unlisted
    phone = person.phone
    await system.turn(phone, "VAKSIN")
    await system.turn(phone, reply_id="nakes.yes")
    await system.turn(phone, "", "intake.yes")
    await system.turn(phone, person.nik)
    await system.turn(phone, person.name)
    asked = await system.turn(phone, "", "prof.perawat")
    assert "nama fasilitas" in body_of(asked)

    nothing = await system.turn(phone, f"rumah sakit tebet uji {token}")
    assert "Fasilitas tidak ditemukan" in body_of(nothing)

    listing = await system.turn(phone, f"Puskesmas  Tebet uji {token}")
    interactive = listing["body"]["interactive"]
    assert interactive["type"] == "list"
    rows = interactive["action"]["sections"][0]["rows"]
    assert [r["id"] for r in rows] == [f"fac.{c}" for c in codes]
    assert "Tebet Barat" in rows[1]["description"]

    read_back = await pick_row(system, phone, rows[1]["id"], rows[1]["title"])
    text = body_of(read_back)
    assert f"Puskesmas Kelurahan Tebet Barat ({codes[1]})" in text and "Dewi Anggraini" in text
    assert [b["reply"]["id"] for b in read_back["body"]["interactive"]["action"]["buttons"]] == [
        "intake.ok",
        "intake.fix",
    ]

    submitted = await system.turn(phone, "", "intake.ok")
    assert "*diverifikasi*" in body_of(submitted)
    conn = await asyncpg.connect(system.settings.database_url)
    try:
        facility = await conn.fetchval(
            "SELECT facility_code FROM identity.intake WHERE facility_code = any($1::text[])",
            codes,
        )
    finally:
        await conn.close()
    assert facility == codes[1]


async def test_abbreviations_and_a_typo_still_find_the_workplace(
    system: System, tmp_path: Path
) -> None:
    token = secrets.token_hex(3)
    regency = f"Kab. Uji {token}"
    codes = await add_facilities(
        system, tmp_path, regency, ["Puskesmas Kecamatan Cengkareng", "RSUD Cibinong"]
    )
    person = new_person("Dewi Anggraini")  # not imported: unlisted
    phone = person.phone
    await system.turn(phone, "VAKSIN")
    await system.turn(phone, reply_id="nakes.yes")
    await system.turn(phone, person.nik)  # the NIK at once: "register" and the NIK
    await system.turn(phone, person.name)
    await system.turn(phone, "", "prof.bidan")

    # A typo: the closest facility is listed to pick, never taken unasked.
    closest = await system.turn(phone, f"pkm cengkarang {token}")
    assert "cocok persis" in body_of(closest)
    rows = closest["body"]["interactive"]["action"]["sections"][0]["rows"]
    assert [r["id"] for r in rows] == [f"fac.{codes[0]}"]
    # Abbreviations for the words they stand for: one match goes to the read-back.
    read_back = await system.turn(phone, f"Rumah Sakit Cibinong, Kabupaten Uji {token}")
    assert f"RSUD Cibinong ({codes[1]})" in body_of(read_back)
