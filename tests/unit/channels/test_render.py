"""What SMS and USSD show of the dialog's replies: GSM-7 / UCS-2 part counting, numbered menus
that map back to reply ids, WhatsApp formatting and emoji removed, USSD pages within 182
characters, and a number read as the dialog keys people."""

from __future__ import annotations

import pytest

from services.channels import callbacks
from services.channels.render import (
    Option,
    Screen,
    choose,
    compose,
    plain,
    sms_size,
    sms_texts,
    ussd_pages,
)
from services.common.contracts.notifier import (
    Button,
    ButtonsMessage,
    ImageMessage,
    ListMessage,
    ListRow,
    ListSection,
    TextMessage,
    VideoMessage,
)


@pytest.mark.parametrize(
    ("text", "coding", "parts"),
    [
        ("a" * 160, "gsm7", 1),
        ("a" * 161, "gsm7", 2),
        ("a" * 306, "gsm7", 2),
        ("a" * 307, "gsm7", 3),
        ("€" * 80, "gsm7", 1),  # the extension table: two septets each
        ("€" * 81, "gsm7", 2),
        ("a" * 152 + "€" + "a" * 152, "gsm7", 3),  # 306 septets, but an escape is never split
        ("ж" * 70, "ucs2", 1),
        ("ж" * 71, "ucs2", 2),
        ("ж" * 134, "ucs2", 2),
        ("ж" * 135, "ucs2", 3),
        ("é" * 160, "gsm7", 1),  # é is in GSM-7's basic table
    ],
)
def test_parts_are_counted_as_the_network_counts_them(text: str, coding: str, parts: int) -> None:
    size = sms_size(text)
    assert (size.coding, size.parts) == (coding, parts)


def test_whatsapp_formatting_and_emoji_go_and_the_text_stays_gsm7() -> None:
    text = plain("🎫 *Tiket* vaksinasi _dosis 1_ — “Puskesmas” ✅\n🗓️ Senin…")
    assert text == 'Tiket vaksinasi dosis 1 - "Puskesmas"\nSenin...'
    assert sms_size(text).coding == "gsm7"
    assert plain("Hubungi *119# atau 119 ext 9") == "Hubungi *119# atau 119 ext 9"


def test_a_turn_is_one_screen_with_the_last_menu_numbered() -> None:
    screen = compose(
        [
            TextMessage(body="*Terverifikasi*"),
            ButtonsMessage(body="Ada kondisi ini?", buttons=[Button(id="scr.none", title="Tidak ada"),
                                                               Button(id="scr.some", title="Ada")]),
            VideoMessage(link="https://example.org/v.mp4", caption="video"),
        ]
    )  # fmt: skip
    assert screen.text == "Terverifikasi\n\nAda kondisi ini?"
    assert [o.reply_id for o in screen.options] == ["scr.none", "scr.some"]
    (sms,) = sms_texts(screen, "id")
    assert "1. Tidak ada\n2. Ada\nBalas dengan angka pilihan Anda." in sms
    assert choose(screen.options, "2") == "scr.some"
    assert choose(screen.options, " 1. ") == "scr.none"
    for typed in ("0", "3", "850001", "ya", "", "\uff11"):
        assert choose(screen.options, typed) is None


def test_a_list_and_an_image_caption_are_shown_as_text() -> None:
    rows = [
        ListRow(id=f"slot.{i}", title=f"0{i}-02-2021 08:00", description="x") for i in range(1, 8)
    ]
    screen = compose(
        [
            ImageMessage(link="https://example.org/t.png", caption="Kode tiket: AB12CD34"),
            ListMessage(body="Pilih jadwal", button="Pilih", sections=[ListSection(title="J", rows=rows)]),
        ]
    )  # fmt: skip
    assert screen.text.startswith("Kode tiket: AB12CD34")
    assert choose(screen.options, "7") == "slot.7"
    assert choose([{"reply_id": "a", "title": "A"}], "1") == "a"  # as stored


def test_a_long_sms_is_split_at_line_ends_within_the_part_limit() -> None:
    screen = Screen("\n".join(f"Baris {i} " + "x" * 60 for i in range(40)))
    messages = sms_texts(screen, "id", max_parts=2)
    assert len(messages) > 1
    assert all(sms_size(m).parts <= 2 for m in messages)
    assert "\n".join(messages) == screen.text


def test_ussd_pages_fit_182_characters_and_keep_the_option_numbers() -> None:
    options = [Option(f"loc.F{i}", f"Puskesmas Nomor {i}") for i in range(1, 11)]
    screen = Screen("Pilih tempat vaksinasi lain. " * 6, options)
    pages = ussd_pages(screen, "id")
    assert len(pages) > 1
    assert all(len(p) <= 182 for p in pages)
    assert pages[0].endswith("0 Lanjut") and "00 Kembali" not in pages[0]
    assert pages[-1].endswith("00 Kembali") and "0 Lanjut" not in pages[-1]
    joined = "\n".join(pages)
    assert all(f"{i}. Puskesmas Nomor {i}" in joined for i in range(1, 11))
    assert ussd_pages(Screen("Halo", [Option("a", "Ya")]), "en") == ["Halo\n1. Ya"]


@pytest.mark.parametrize(
    ("raw", "number"),
    [
        ("+6281234567890", "6281234567890"),
        ("081234567890", "6281234567890"),
        ("62 812-3456-7890", "6281234567890"),
        ("+62 (0)812 3456 7890", "6281234567890"),
        ("+254711000111", None),
        ("Jasmin", None),
        ("62812", None),
        ("\uff16\uff12\uff18\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18", None),
    ],
)
def test_a_number_is_read_as_the_dialog_keys_people(raw: str, number: str | None) -> None:
    assert callbacks.number(raw) == number
