"""Indonesian mobile numbers, masked display forms, and domain-separated keyed hashes."""

import pytest

from services.identity.domain import (
    InvalidPhone,
    mask_name,
    mask_nik,
    mask_phone,
    nik_hash,
    normalize_phone,
    normalize_suffix,
    phone_hash,
    suffix_hash,
    suffix_matches,
)


@pytest.mark.parametrize(
    "raw",
    [
        "081234567890",
        "0812-3456-7890",
        "0812 3456 7890",
        "0812.3456.7890",
        "+6281234567890",
        "+62 812-3456-7890",
        "6281234567890",
        "62 812 3456 7890",
        "+62 (0)812 3456 7890",
        " 081234567890 ",
    ],
)
def test_accepted_forms_normalise_to_wa_id_digits(raw: str) -> None:
    assert normalize_phone(raw) == "6281234567890"


def test_shortest_and_longest_accepted_numbers() -> None:
    assert normalize_phone("081234567") == "6281234567"  # 10 digits
    assert normalize_phone("08" + "1" * 12) == "628" + "1" * 12  # 15 digits


@pytest.mark.parametrize("raw", ["08123456", "08" + "1" * 13, "+628" + "1" * 13])
def test_numbers_outside_10_to_15_digits_are_rejected(raw: str) -> None:
    with pytest.raises(InvalidPhone) as exc:
        normalize_phone(raw)
    assert exc.value.code == "length"


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("", "empty"),
        ("  ", "empty"),
        ("+1 415 555 0100", "country"),
        ("+6581234567", "country"),
        ("4155550100", "country"),
        ("0212345678", "not_mobile"),  # Jakarta landline
        ("62212345678", "not_mobile"),
        ("0812345x7890", "characters"),
        ("0812/3456/7890", "characters"),
        ("0812", "length"),
    ],
)
def test_rejected_forms_say_why(raw: str, code: str) -> None:
    with pytest.raises(InvalidPhone) as exc:
        normalize_phone(raw)
    assert exc.value.code == code
    assert exc.value.detail


def test_mask_name_keeps_the_first_letter_of_each_word() -> None:
    assert mask_name("Siti Rahmawati") == "S*** R********"
    assert mask_name("  dr.  Budi   Santoso ") == "d** B*** S******"
    assert mask_name("A") == "A"


def test_mask_nik_keeps_only_the_region() -> None:
    masked = mask_nik("3201014512900001")
    assert masked == "320101**********"
    assert "900001" not in masked


def test_mask_phone_hides_the_middle() -> None:
    assert mask_phone("6281234567890") == "62812*****890"
    assert len(mask_phone("6281234567")) == 10


@pytest.mark.parametrize(("raw", "suffix"), [("900001", "900001"), (" 90 0001 ", "900001")])
def test_six_digit_suffix_is_accepted_with_spaces(raw: str, suffix: str) -> None:
    assert normalize_suffix(raw) == suffix


@pytest.mark.parametrize("raw", ["", "12345", "1234567", "12345a", "١٢٣٤٥٦", "12-456"])
def test_anything_but_six_digits_is_not_a_suffix(raw: str) -> None:
    assert normalize_suffix(raw) is None


def test_hashes_are_keyed_and_domain_separated() -> None:
    value = "6281234567890"
    hashes = {nik_hash("k", value), phone_hash("k", value), suffix_hash("k", value, "")}
    assert len(hashes) == 3
    assert nik_hash("k", value) != nik_hash("other key", value)
    assert nik_hash("k", value) == nik_hash("k", value)
    assert len(nik_hash("k", value)) == 64
    assert value not in nik_hash("k", value)


def test_suffix_hash_is_bound_to_the_phone() -> None:
    assert suffix_hash("k", "6281111111111", "900001") != suffix_hash(
        "k", "6282222222222", "900001"
    )
    # no ambiguity from concatenation: ("628111", "1900001") vs ("6281111", "900001")
    assert suffix_hash("k", "628111", "1900001") != suffix_hash("k", "6281111", "900001")


def test_empty_pepper_is_refused() -> None:
    with pytest.raises(ValueError, match="NIK_PEPPER"):
        nik_hash("", "3201014512900001")


def test_suffix_matches_only_the_same_hash() -> None:
    stored = suffix_hash("k", "6281234567890", "900001")
    assert suffix_matches(stored, suffix_hash("k", "6281234567890", "900001"))
    assert not suffix_matches(stored, suffix_hash("k", "6281234567890", "900002"))
