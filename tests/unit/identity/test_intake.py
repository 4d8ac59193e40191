"""Intake rules without servers: every field of a request checked in the chat's order, the stored
form (hashes and masked forms, never the raw NIK), the registry entry an approval becomes, the
profession list, and what check_nik gives the read-back (masked NIK, birth date, sex)."""

from datetime import date

import pytest

from services.common.contracts.identity import PROFESSIONS, CheckNikRequest, find_profession
from services.identity import domain, handlers

TODAY = date(2026, 3, 1)
PEPPER = "unit-pepper"
NIK = "3201014508850123"  # Kab. Bogor; a woman born 5 Aug 1985 (45 = 5 + 40), serial 0123
PHONE = "6281234567890"


def draft(**changes: str) -> domain.IntakeDraft:
    fields = {
        "wa_id": PHONE,
        "nik": NIK,
        "full_name": "Dewi Lestari",
        "profession": "bidan",
        "facility_code": "PKM-CIBINONG",
        "lang": "id",
    }
    fields.update(changes)
    return domain.check_intake(**fields, today=TODAY)


def problem(**changes: str) -> tuple[str, str]:
    with pytest.raises(domain.InvalidIntake) as exc:
        draft(**changes)
    assert exc.value.detail
    return exc.value.field, exc.value.code


def test_a_good_request_is_normalised() -> None:
    d = draft(nik="3201 0145 0885 0123", full_name="  dewi   Lestari ", facility_code=" PKM-1 ",
              wa_id="0812-3456-7890")  # fmt: skip
    assert d.nik.nik == NIK
    assert d.phone == PHONE
    assert d.name == "dewi Lestari"
    assert d.profession.id_label == "Bidan"
    assert d.facility_code == "PKM-1"
    assert d.regency_code == "3201"
    assert (d.nik.birth_date, d.nik.sex) == (date(1985, 8, 5), "F")


def test_an_unknown_language_falls_back_to_indonesian() -> None:
    assert draft(lang="fr").lang == "id"
    assert draft(lang="en").lang == "en"


def test_an_unknown_province_is_accepted_and_flagged() -> None:
    assert draft(nik="9901014508850123").nik.unknown_region is True


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"wa_id": "+4915112345678"}, ("wa_id", "country")),
        ({"nik": "3201014513850123"}, ("nik", "month")),
        ({"nik": "3201017508850123"}, ("nik", "day")),
        ({"nik": "3201016902850123"}, ("nik", "date")),  # 29 Feb 1985 (a woman)
        ({"nik": "3201014508850000"}, ("nik", "serial")),
        ({"nik": "320101450885012"}, ("nik", "length")),
        ({"full_name": ""}, ("full_name", "empty")),
        ({"full_name": "x" * 101}, ("full_name", "too_long")),
        ({"full_name": NIK}, ("full_name", "characters")),
        ({"full_name": "Dewi <script>"}, ("full_name", "characters")),
        ({"full_name": "- . '"}, ("full_name", "characters")),
        ({"profession": "Bidan"}, ("profession", "unknown")),  # the id, not the label
        ({"facility_code": ""}, ("facility_code", "format")),
        ({"facility_code": "PKM CIBINONG"}, ("facility_code", "format")),
    ],
)
def test_each_field_is_checked_with_a_precise_reason(
    changes: dict[str, str], expected: tuple[str, str]
) -> None:
    assert problem(**changes) == expected


def test_the_first_wrong_field_in_the_chats_order_is_reported() -> None:
    assert problem(nik="1", full_name="", profession="x")[0] == "nik"
    assert problem(full_name="", profession="x")[0] == "full_name"


@pytest.mark.parametrize("name", ["Ni Luh Putu Ayu", "Muh. Ridwan, S.Kep", "Ma'ruf Al-Amin",
                                  "Siti Nurhaliza Bte. Ismail", "Ṣāliḥ"])  # fmt: skip
def test_names_as_written_on_a_ktp_are_accepted(name: str) -> None:
    assert draft(full_name=name).name == name


def test_the_stored_request_has_hashes_and_masks_only() -> None:
    record = domain.intake_record(PEPPER, draft())
    assert record.masked_nik == "320101**********"
    assert record.masked_name == "D*** L******"
    assert record.masked_phone == "62812*****890"
    assert record.nik_hash == domain.nik_hash(PEPPER, NIK)
    assert record.regency_code == "3201"
    assert record.profession == "bidan"
    values = repr(record)
    assert NIK not in values and NIK[-6:] not in values and PHONE not in values
    assert "Dewi Lestari" not in values


def test_the_suffix_is_bound_to_the_number_that_asked() -> None:
    record = domain.intake_record(PEPPER, draft())
    assert record.suffix_hash == domain.suffix_hash(PEPPER, PHONE, "850123")
    other = domain.intake_record(PEPPER, draft(wa_id="6281299999999"))
    assert other.suffix_hash != record.suffix_hash


def test_an_approved_request_becomes_a_registry_entry_for_that_number() -> None:
    record = domain.intake_record(PEPPER, draft())
    person = domain.approved_person(record)
    assert person.phone_hash == domain.phone_hash(PEPPER, PHONE)
    assert person.suffix_hash == domain.suffix_hash(PEPPER, PHONE, "850123")
    assert person.profession == "Bidan"  # the registry's label, as verify answers it
    assert (person.birth_date, person.sex) == (date(1985, 8, 5), "F")
    assert (person.name, person.masked_nik) == ("Dewi Lestari", "320101**********")


def test_a_rejection_reason_is_required_and_bounded() -> None:
    assert domain.clean_reason("  tidak  terdaftar ") == "tidak terdaftar"
    for bad in (None, "", "   ", "x" * 501):
        with pytest.raises(ValueError):
            domain.clean_reason(bad)


def test_the_profession_list_fits_one_whatsapp_list() -> None:
    assert len(PROFESSIONS) <= 10
    assert len({p.id for p in PROFESSIONS}) == len(PROFESSIONS)
    assert all(len(p.id_label) <= 24 and len(p.en_label) <= 24 for p in PROFESSIONS)
    assert {"dokter", "dokter_gigi", "perawat", "bidan", "apoteker", "lainnya"} <= {
        p.id for p in PROFESSIONS
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [("4", "bidan"), ("prof.bidan", "bidan"), ("BIDAN", "bidan"), ("midwife", "bidan"),
     (" Dokter  gigi ", "dokter_gigi"), ("1", "dokter"), ("10", "lainnya")],
)  # fmt: skip
def test_a_profession_is_found_from_what_the_user_sent(text: str, expected: str) -> None:
    found = find_profession(text)
    assert found is not None and found.id == expected


@pytest.mark.parametrize("text", ["", "0", "11", "astronaut", "prof."])
def test_anything_else_is_no_profession(text: str) -> None:
    assert find_profession(text) is None


async def test_check_nik_gives_the_read_back_its_masked_nik_birth_date_and_sex() -> None:
    result = await handlers.check_nik(CheckNikRequest(nik="3201.01.45 0885-0123"))
    assert result.valid is True
    assert result.masked_nik == "320101**********"
    assert (result.birth_date, result.sex) == (date(1985, 8, 5), "F")
    assert NIK not in result.model_dump_json() and "850123" not in result.model_dump_json()


async def test_check_nik_names_the_typo_and_shows_nothing_of_it() -> None:
    result = await handlers.check_nik(CheckNikRequest(nik="3201014513850123"))
    assert (result.valid, result.code, result.masked_nik) == (False, "month", None)
    assert "13" in (result.detail or "")
    assert "3201014513850123" not in result.model_dump_json()
