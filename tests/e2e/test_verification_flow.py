"""From `VAKSIN` to a verified health worker (or a clear reason why not), only through the webhook."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import secrets
from pathlib import Path

import pytest

from services.common.contracts.streams import WA_INBOUND
from services.common.contracts.subjects import inbound_message_subject
from services.common.contracts.whatsapp import InboundMessage
from services.common.logging import configure_logging, make_formatter
from tests.e2e.conftest import System, body_of, envelope, new_person, new_phone

pytestmark = pytest.mark.servers


async def test_happy_path_from_keyword_to_verified(system: System, tmp_path: Path) -> None:
    code = f"T{secrets.token_hex(3).upper()}"
    await system.add_facility(code, tmp_path, [])
    nakes = new_person("Siti Rahmawati", facility_code=code)
    await system.register(nakes, tmp=tmp_path)

    greeting = await system.turn(nakes.phone, "VAKSIN")
    assert greeting["body"]["type"] == "interactive"
    buttons = greeting["body"]["interactive"]["action"]["buttons"]
    assert [b["reply"]["id"] for b in buttons] == ["nakes.yes", "nakes.no"]

    ask = await system.turn(nakes.phone, "Ya, saya nakes", reply_id="nakes.yes")
    assert "6 digit terakhir NIK" in body_of(ask)

    verified = await system.turn(nakes.phone, nakes.suffix)
    text = body_of(verified)
    assert "terverifikasi" in text
    assert "S*** R********" in text and "Profesi: Perawat" in text
    assert f"Fasilitas kesehatan: Puskesmas {code}" in text  # by its name, not its code
    assert nakes.nik not in text and nakes.name not in text


async def test_typed_answers_work_like_buttons(system: System, tmp_path: Path) -> None:
    nakes = new_person()
    await system.register(nakes, tmp=tmp_path)
    await system.turn(nakes.phone, "daftar")
    assert "6 digit" in body_of(await system.turn(nakes.phone, "ya"))
    spaced = nakes.suffix[:3] + " " + nakes.suffix[3:]
    assert "terverifikasi" in body_of(await system.turn(nakes.phone, spaced))


async def test_five_wrong_suffixes_lock_the_number_and_the_right_one_is_refused(
    system: System, tmp_path: Path
) -> None:
    nakes = new_person()
    await system.register(nakes, tmp=tmp_path)
    await system.turn(nakes.phone, "VAKSIN")
    await system.turn(nakes.phone, reply_id="nakes.yes")
    wrong = f"{(int(nakes.suffix) + 1) % 1_000_000:06d}"
    for attempts_left in (4, 3, 2, 1):
        reply = body_of(await system.turn(nakes.phone, wrong))
        assert f"Sisa percobaan: {attempts_left}" in reply
    locked = body_of(await system.turn(nakes.phone, wrong))
    assert "dikunci" in locked and "119 ext 9" in locked

    until = re.search(r"\d\d-\d\d-\d{4} \d\d:\d\d", locked)
    assert until is not None

    # Locked: every message hears it, until when and where to get help; the right suffix is
    # not verified, and nothing is "not understood".
    for typed in ("VAKSIN", nakes.suffix, "halo", "STATUS"):
        again = body_of(await system.turn(nakes.phone, typed))
        assert "masih dikunci" in again and until.group() in again and "119 ext 9" in again
        assert "terverifikasi" not in again and "tidak mengerti" not in again


async def test_number_not_in_registry_is_offered_intake_or_told_where_to_go(system: System) -> None:
    phone = new_phone()
    await system.turn(phone, "VAKSIN")
    reply = body_of(await system.turn(phone, reply_id="nakes.yes"))
    assert "belum terdaftar" in reply and "mendaftar di sini" in reply
    declined = body_of(await system.turn(phone, "", "intake.no"))
    assert "119 ext 9" in declined and "vaksin@pedulilindungi.id" in declined


async def test_someone_elses_suffix_does_not_verify(system: System, tmp_path: Path) -> None:
    mine, theirs = new_person(), new_person("Budi Santoso")
    await system.register(mine, theirs, tmp=tmp_path)
    await system.turn(mine.phone, "VAKSIN")
    await system.turn(mine.phone, reply_id="nakes.yes")
    if theirs.suffix != mine.suffix:
        assert "tidak cocok" in body_of(await system.turn(mine.phone, theirs.suffix))


async def test_duplicate_webhook_delivery_gives_one_reply(system: System) -> None:
    phone = new_phone()
    message = {
        "from": phone,
        "id": f"wamid.dup.{phone}",
        "timestamp": "1700000000",
        "type": "text",
        "text": {"body": "VAKSIN"},
    }
    body = json.dumps(envelope(phone, message)).encode()
    for _ in range(3):
        assert (await system.post(body)).status == 200
    # The same wamid again after JetStream's duplicate window (simulated with another
    # Nats-Msg-Id): the dialog's own record of processed ids still makes it a no-op.
    inbound = InboundMessage(
        wamid=message["id"],
        wa_id=phone,
        phone_number_id="1",
        timestamp=1700000000,
        type="text",
        text="VAKSIN",
    )
    broker = system.hosts["dialog"].broker
    await broker.publish(
        inbound,
        inbound_message_subject(phone, system.settings.dialog_partitions),
        stream=WA_INBOUND.name,
        headers={"Nats-Msg-Id": "days-later"},
    )
    await system.replies(phone, 1)
    help_ = await system.turn(phone, "BANTUAN")  # a later message is still answered
    assert "119 ext 9" in body_of(help_)
    await asyncio.sleep(0.5)
    greetings = [r for r in system.fake.messages_to(phone) if "Selamat datang" in body_of(r)]
    assert len(greetings) == 1


async def test_three_quick_messages_are_answered_in_order(system: System) -> None:
    phone = new_phone()
    for text in ("VAKSIN", "EN", "STATUS"):
        await system.say(phone, text)
    replies = await system.replies(phone, 3)
    texts = [body_of(r) for r in replies]
    assert "Apakah Anda tenaga kesehatan?" in texts[0]
    # "language changed", then the question again in English: one message
    assert texts[1].index("Language changed to English") < texts[1].index(
        "Are you a health worker?"
    )
    assert "not finished" in texts[2]
    await asyncio.sleep(0.5)
    assert len(system.fake.messages_to(phone)) == 3  # and nothing more


async def test_restart_of_the_dialog_service_resumes_the_conversation(
    system: System, tmp_path: Path
) -> None:
    nakes = new_person()
    await system.register(nakes, tmp=tmp_path)
    await system.turn(nakes.phone, "VAKSIN")
    await system.turn(nakes.phone, reply_id="nakes.yes")
    await system.restart("dialog")
    assert "terverifikasi" in body_of(await system.turn(nakes.phone, nakes.suffix))


async def test_logs_of_a_whole_flow_hold_no_nik_suffix_or_phone(
    system: System, tmp_path: Path
) -> None:
    stream = io.StringIO()
    configure_logging("test", "DEBUG", json_output=True)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(make_formatter(json_output=True))
    logging.getLogger().addHandler(handler)
    try:
        nakes = new_person()
        await system.register(nakes, tmp=tmp_path)
        await system.turn(nakes.phone, "VAKSIN")
        await system.turn(nakes.phone, reply_id="nakes.yes")
        await system.turn(nakes.phone, "000000" if nakes.suffix != "000000" else "111111")
        await system.turn(nakes.phone, nakes.suffix)
    finally:
        logging.getLogger().removeHandler(handler)
    logs = stream.getvalue()
    assert logs.count("\n") > 5, "the flow should have logged something"
    assert nakes.nik not in logs
    assert nakes.phone not in logs and nakes.phone[2:] not in logs
    assert not re.search(rf"(?<!\d){nakes.suffix}(?!\d)", logs)
