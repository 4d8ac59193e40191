"""NIK structure: PP KK CC DD MM YY SSSS, women's day + 40, real calendar dates, serial from 0001."""

from datetime import date

import pytest

from services.identity.domain import PROVINCES, InvalidNik, validate_nik

TODAY = date(2026, 3, 1)


def nik(*, region: str = "320101", day: str = "05", month: str = "12", yy: str = "90",
        serial: str = "0001") -> str:  # fmt: skip
    return f"{region}{day}{month}{yy}{serial}"


def reason(value: str) -> str:
    with pytest.raises(InvalidNik) as exc:
        validate_nik(value, today=TODAY)
    assert exc.value.detail
    return exc.value.code


def test_valid_male_nik_gives_region_birth_date_sex_and_serial() -> None:
    info = validate_nik(nik(day="17", month="08", yy="85", serial="0123"), today=TODAY)
    assert info.province_code == "32"
    assert info.regency_code == "01"
    assert info.district_code == "01"
    assert info.birth_date == date(1985, 8, 17)
    assert info.sex == "M"
    assert info.serial == "0123"
    assert info.suffix == "850123"
    assert info.unknown_region is False


@pytest.mark.parametrize(("dd", "day"), [("41", 1), ("45", 5), ("71", 31)])
def test_female_day_is_day_plus_40(dd: str, day: int) -> None:
    info = validate_nik(nik(day=dd, month="01", yy="92"), today=TODAY)
    assert info.sex == "F"
    assert info.birth_date == date(1992, 1, day)


@pytest.mark.parametrize("dd", ["00", "32", "40", "72", "99"])
def test_day_outside_both_ranges_is_rejected(dd: str) -> None:
    assert reason(nik(day=dd)) == "day"


@pytest.mark.parametrize("mm", ["00", "13", "99"])
def test_month_outside_1_to_12_is_rejected(mm: str) -> None:
    assert reason(nik(month=mm)) == "month"


@pytest.mark.parametrize(("yy", "year"), [("96", 1996), ("00", 2000), ("04", 2004)])
def test_february_29_of_a_leap_year_is_accepted(yy: str, year: int) -> None:
    assert validate_nik(nik(day="29", month="02", yy=yy), today=TODAY).birth_date == date(
        year, 2, 29
    )
    assert validate_nik(nik(day="69", month="02", yy=yy), today=TODAY).sex == "F"


@pytest.mark.parametrize("yy", ["99", "01", "23"])
@pytest.mark.parametrize("dd", ["29", "69"])
def test_february_29_of_a_common_year_is_rejected(yy: str, dd: str) -> None:
    assert reason(nik(day=dd, month="02", yy=yy)) == "date"


@pytest.mark.parametrize(("dd", "mm"), [("31", "04"), ("71", "06"), ("30", "02"), ("31", "11")])
def test_day_that_the_month_does_not_have_is_rejected(dd: str, mm: str) -> None:
    assert reason(nik(day=dd, month=mm)) == "date"


def test_two_digit_year_up_to_this_year_is_2000s_later_is_1900s() -> None:
    assert validate_nik(nik(day="01", month="01", yy="26"), today=TODAY).birth_date.year == 2026
    assert validate_nik(nik(day="01", month="01", yy="27"), today=TODAY).birth_date.year == 1927


def test_birth_date_in_the_future_is_rejected() -> None:
    assert reason(nik(day="01", month="12", yy="26")) == "date"


def test_serial_0000_is_rejected_and_0001_and_9999_accepted() -> None:
    assert reason(nik(serial="0000")) == "serial"
    assert validate_nik(nik(serial="0001"), today=TODAY).serial == "0001"
    assert validate_nik(nik(serial="9999"), today=TODAY).serial == "9999"


@pytest.mark.parametrize("value", ["", "320101051290000", "32010105129000012", "3201"])
def test_wrong_length_is_rejected(value: str) -> None:
    assert reason(value) == "length"


@pytest.mark.parametrize(
    "value", ["32010105129O0001", "3201010512900-0a", "\uff13\uff12" + "0" * 14]
)
def test_non_digits_are_rejected(value: str) -> None:
    assert reason(value) == "not_digits"


def test_spaces_dots_and_dashes_between_groups_are_ignored() -> None:
    info = validate_nik("32.01.01 051290-0001", today=TODAY)
    assert info.nik == "3201010512900001"


@pytest.mark.parametrize("province", ["00", "10", "20", "37", "97", "99"])
def test_unknown_province_is_flagged_not_rejected(province: str) -> None:
    info = validate_nik(nik(region=f"{province}0101"), today=TODAY)
    assert info.unknown_region is True
    assert info.province_code == province


def test_province_table_has_the_38_current_provinces() -> None:
    assert len(PROVINCES) == 38
    assert {"11", "21", "31", "36", "51", "65", "76", "82", "91", "96"} <= PROVINCES.keys()
    assert all(not validate_nik(nik(region=f"{p}0101"), today=TODAY).unknown_region
               for p in PROVINCES)  # fmt: skip


def test_repr_of_nik_info_does_not_contain_the_nik() -> None:
    value = nik(day="17", month="08", yy="85", serial="4321")
    assert value not in repr(validate_nik(value, today=TODAY))
    assert "854321" not in repr(validate_nik(value, today=TODAY))
