"""Registry CSV: exact header, every problem reported with its 1-based file line number."""

from datetime import date

from services.identity.domain import REGISTRY_HEADER, parse_registry_csv, person_record

TODAY = date(2026, 3, 1)
HEADER = "nik,name,phone,profession,facility_code"
GOOD = "3201014512900001,Siti Rahmawati,0812-3456-7890,Bidan,PKM-CIBINONG"
GOOD2 = "3273011708850123,Budi Santoso,+62 813 1111 2222,Perawat,RS.HASAN_1"


def parse(text: str):
    return parse_registry_csv(text, today=TODAY)


def messages(text: str) -> list[str]:
    return [str(e) for e in parse(text)[1]]


def test_good_file_gives_normalised_rows() -> None:
    rows, errors = parse(f"{HEADER}\n{GOOD}\n{GOOD2}\n")
    assert errors == []
    assert [r.line for r in rows] == [2, 3]
    assert rows[0].nik.nik == "3201014512900001"
    assert rows[0].phone == "6281234567890"
    assert rows[1].phone == "6281311112222"
    assert rows[1].facility_code == "RS.HASAN_1"


def test_bom_whitespace_and_crlf_are_tolerated() -> None:
    text = f"\ufeff nik , name,phone ,profession, facility_code\r\n{GOOD}\r\n\r\n{GOOD2}\r\n"
    rows, errors = parse(text)
    assert errors == []
    assert [r.line for r in rows] == [2, 4]


def test_wrong_header_is_an_error_on_line_1() -> None:
    assert messages(f"nik,nama,phone,profession,facility_code\n{GOOD}\n") == [
        f"line 1: header must be exactly {','.join(REGISTRY_HEADER)}"
    ]
    assert messages(f"name,nik,phone,profession,facility_code\n{GOOD}\n")[0].startswith("line 1:")
    assert messages(f"{HEADER},extra\n{GOOD}\n")[0].startswith("line 1:")


def test_empty_file_is_an_error() -> None:
    assert messages("") == [f"line 1: empty file: expected header {HEADER}"]
    assert messages("\n\n")[0].startswith("line 1: empty file")


def test_header_only_file_has_no_rows_and_no_errors() -> None:
    assert parse(f"{HEADER}\n") == ([], [])


def test_each_bad_field_is_reported_with_its_line() -> None:
    text = "\n".join(
        [
            HEADER,
            GOOD,
            "3201010513900001,Ani,081234567891,Dokter,PKM-1",  # month 13
            "3201014512900002,,081234567892,Dokter,PKM-1",  # empty name
            "3201014512900003,Ani,021234567,Dokter,PKM-1",  # landline
            "3201014512900004,Ani,081234567893,,PKM 1",  # empty profession, bad facility
            "3201014512900005,Ani,081234567894,Dokter",  # 4 fields
            "3201012902010001,Ani,081234567895,Dokter,PKM-1",  # 29 Feb 2001
        ]
    )
    assert messages(text) == [
        "line 3: nik: digits 9-10 are the birth month; 13 is not 01-12",
        "line 4: name: empty",
        "line 5: phone: an Indonesian mobile number starts with 08 (or +628)",
        "line 6: profession: empty",
        "line 6: facility_code: 1-32 characters of A-Z, a-z, 0-9, '.', '_' or '-'",
        "line 7: expected 5 fields, found 4",
        "line 8: nik: birth date 29-02-2001 does not exist",
    ]


def test_duplicate_nik_in_one_file_is_an_error_on_the_later_line() -> None:
    dup = GOOD.replace("0812-3456-7890", "081299998888")
    _, errors = parse(f"{HEADER}\n{GOOD}\n{GOOD2}\n{dup}\n")
    assert [str(e) for e in errors] == ["line 4: nik: duplicate of line 2"]
    assert "3201014512900001" not in str(errors[0])


def test_duplicate_is_caught_even_with_separators_in_the_nik() -> None:
    dup = GOOD.replace("3201014512900001", "3201 0145 1290 0001")
    assert messages(f"{HEADER}\n{GOOD}\n{dup}\n") == ["line 3: nik: duplicate of line 2"]


def test_name_longer_than_100_characters_is_an_error() -> None:
    long_name = "A" * 101
    row = f"3201014512900009,{long_name},081234567899,Bidan,PKM-1"
    assert messages(f"{HEADER}\n{row}\n") == ["line 2: name: longer than 100 characters"]
    ok = row.replace(long_name, "A" * 100)
    assert parse(f"{HEADER}\n{ok}\n")[1] == []


def test_facility_code_longer_than_32_is_an_error() -> None:
    row = GOOD.replace("PKM-CIBINONG", "F" * 33)
    assert messages(f"{HEADER}\n{row}\n")[0].startswith("line 2: facility_code")


def test_line_numbers_count_physical_lines_of_quoted_multiline_fields() -> None:
    multiline = '3273011708850124,"Budi\nSantoso",081311112223,Perawat,RS-1'
    bad = "3201010513900001,Ani,081234567891,Dokter,PKM-1"
    rows, errors = parse(f"{HEADER}\n{multiline}\n{bad}\n")
    assert rows[0].name == "Budi Santoso"
    assert [e.line for e in errors] == [4]


def test_unknown_region_is_flagged_but_accepted() -> None:
    row = GOOD.replace("3201014512900001", "9901014512900001")
    rows, errors = parse(f"{HEADER}\n{row}\n")
    assert errors == []
    assert rows[0].nik.unknown_region


def test_progress_is_reported_every_n_rows() -> None:
    lines = [HEADER] + [
        f"32010145129{i:05d},Name {i},0812{i:08d},Bidan,PKM-1" for i in range(1, 26)
    ]
    seen: list[int] = []
    rows, errors = parse_registry_csv(
        "\n".join(lines), today=TODAY, progress=seen.append, progress_every=10
    )
    assert errors == []
    assert len(rows) == 25
    assert seen == [10, 20]


def test_person_record_holds_no_raw_nik_or_phone() -> None:
    rows, _ = parse(f"{HEADER}\n{GOOD}\n")
    record = person_record("pepper", rows[0])
    text = repr(record)
    assert "3201014512900001" not in text
    assert "900001" not in text
    assert "6281234567890" not in text
    assert "081234567890" not in text
    assert record.masked_nik == "320101**********"
    assert record.masked_name == "S*** R********"
    assert record.masked_phone == "62812*****890"
