"""A turn's replies said in as few WhatsApp messages as fit: a text leads the message after it."""

from __future__ import annotations

from services.common.contracts.notifier import (
    Button,
    ButtonsMessage,
    ImageMessage,
    ListMessage,
    ListRow,
    ListSection,
    TextMessage,
)
from services.ingress.dialog import coalesce

OFFER = ButtonsMessage(body="Puskesmas X, besok 08:00", buttons=[Button(id="slot.ok", title="Ya")])
LIST = ListMessage(
    body="Pilih kondisi",
    button="Lihat",
    sections=[ListSection(title="Kondisi", rows=[ListRow(id="scr.none", title="Tidak ada")])],
)


def test_a_text_leads_the_buttons_list_or_text_after_it() -> None:
    eligible = TextMessage(body="Anda *dapat* melanjutkan.")
    [offer] = coalesce([eligible, OFFER])
    assert offer == OFFER.model_copy(update={"body": f"{eligible.body}\n\n{OFFER.body}"})
    [listing] = coalesce([TextMessage(body="Terverifikasi."), LIST])
    assert listing.body == "Terverifikasi.\n\nPilih kondisi" and listing.sections == LIST.sections
    [said] = coalesce([TextMessage(body="a"), TextMessage(body="b"), TextMessage(body="c")])
    assert said == TextMessage(body="a\n\nb\n\nc")


def test_what_does_not_fit_or_cannot_take_text_stays_apart() -> None:
    long = TextMessage(body="x" * 1000)  # + the offer's body is over the buttons' 1024
    assert coalesce([long, OFFER]) == [long, OFFER]
    image = ImageMessage(link="https://example.org/t.png", caption="tiket")
    recap = TextMessage(body="tiket Anda")
    assert coalesce([recap, image]) == [recap, image]
    assert coalesce([OFFER, recap]) == [OFFER, recap]  # only a text leads, never follows
    assert coalesce([]) == []
    huge = TextMessage(body="y" * 4000)
    assert coalesce([huge, TextMessage(body="z" * 200)]) == [huge, TextMessage(body="z" * 200)]
