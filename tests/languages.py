"""Which language a user-facing text is in, word by word: for tests that no reply mixes Bahasa
Indonesia and English (`mixed`). Each list holds common words of one language that the other
never uses and that facility names, addresses and masked names do not contain; the data inside a
reply (a place, a date, a code) belongs to neither."""

from __future__ import annotations

import re


def _listed(text: str) -> frozenset[str]:
    return frozenset(text.split())


INDONESIAN = _listed(
    """
    anda kami dan atau yang untuk dengan dari ini itu di ke pada dalam oleh sudah belum masih
    tidak bukan akan dapat bisa silakan ketik pilih kirim sejak sampai hingga setelah sebelum
    bila jika karena maaf terima kasih selamat datang nomor hari tanggal pukul menit jadwal
    tempat lokasi lain kursi dosis tiket petugas pendaftaran mendaftar profesi fasilitas kesehatan
    tenaga perawat bidan dokter apoteker nutrisionis lainnya skrining vaksinasi verifikasi
    terverifikasi dikunci hubungi bantuan ketentuan hasil alasan lengkap terakhir
    senin selasa rabu kamis jumat sabtu minggu januari februari maret mei juni juli agustus
    oktober desember ya hamil menyusui pernah penyakit sembuh
    """
)
ENGLISH = _listed(
    """
    the and or you your we our for with from this that these in on at of to by is are was be
    has have not yet will can please type choose send since until after before if because
    sorry thank welcome number day date time minutes appointment place site seat dose ticket
    officer registration register profession facility health worker workers nurse midwife
    doctor dentist pharmacist screening vaccination verification verified locked call help
    result reason digits last full monday tuesday wednesday thursday friday saturday sunday
    january february march may june july august october december yes pregnant breastfeeding
    ever disease recovered
    """
)
_TOKEN = re.compile(r"\w+")


def words(text: str) -> set[str]:
    """The words of `text`; a token with digits (a code: `T09BE89`, `F3201001`) is no word of
    either language, so its letters never count as one ("BE")."""
    return {t.lower() for t in _TOKEN.findall(text) if t.isalpha()}


def language_words(text: str) -> tuple[set[str], set[str]]:
    """The Indonesian-only and the English-only words of `text`."""
    found = words(text)
    return found & INDONESIAN, found & ENGLISH


def mixed(text: str) -> bool:
    indonesian, english = language_words(text)
    return bool(indonesian) and bool(english)


def visible_texts(send: dict) -> list[str]:
    """What a user sees of one message as posted to the Graph API: its body or caption, and the
    titles of its buttons and list (not list rows: they hold facility names and addresses)."""
    kind = send.get("type")
    if kind == "text":
        return [send["text"]["body"]]
    if kind in ("image", "video"):
        return [send[kind].get("caption", "")]
    if kind == "interactive":
        interactive = send["interactive"]
        texts = [interactive["body"]["text"]]
        action = interactive.get("action", {})
        texts += [b["reply"]["title"] for b in action.get("buttons", [])]
        if "button" in action:
            texts.append(action["button"])
        texts += [s.get("title", "") for s in action.get("sections", [])]
        return texts
    return []
