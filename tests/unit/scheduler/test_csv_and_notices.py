"""The facility and session CSV parsers (every problem with its line, nothing half-read) and the
messages the scheduler sends by itself (catalog texts in both languages, WhatsApp limits, the
template to use outside the 24-hour window)."""

from __future__ import annotations

from datetime import date, time

import pytest

from services.common.contracts.scheduler import Booking, Facility
from services.scheduler import domain, notices
from services.scheduler.catalog import catalog, day_text

FACILITY = Facility(
    code="F3201001",
    name="Puskesmas Cibinong",
    address="Jl. Mayor Oking No. 1",
    regency="Kab. Bogor",
    province="Jawa Barat",
)
BOOKING = Booking(
    booking_id=42,
    person_id="p1",
    session_id=7,
    facility=FACILITY,
    date=date(2021, 3, 1),
    start=time(8),
    end=time(12),
    vaccine="CoronaVac",
    dose=2,
    status="active",
)


def test_a_good_facilities_file_is_read_with_clean_values() -> None:
    rows, errors = domain.parse_facilities_csv(
        "\ufeffCode,Name,Address,Regency,Province\r\n"
        'F1,"Puskesmas  Satu","  Jl. A,  No. 1 ",Kab. Bogor,Jawa Barat\r\n'
    )
    assert errors == []
    assert rows == [
        domain.FacilityRow(2, "F1", "Puskesmas Satu", "Jl. A, No. 1", "Kab. Bogor", "Jawa Barat")
    ]


def test_a_wrong_header_or_an_empty_file_stops_at_line_1() -> None:
    _, errors = domain.parse_facilities_csv("kode,nama\nF1,A\n")
    assert [str(e) for e in errors] == [
        "line 1: header must be exactly code,name,address,regency,province"
    ]
    _, errors = domain.parse_sessions_csv("\n\n")
    assert [str(e) for e in errors] == [
        "line 1: empty file: expected header facility_code,date,start,end,capacity,vaccine"
    ]


def test_session_rows_are_checked_field_by_field() -> None:
    rows, errors = domain.parse_sessions_csv(
        "facility_code,date,start,end,capacity,vaccine\n"
        "F1,2021-02-15,8:00,12.30,50,CoronaVac\n"
        "F1,2021-02-30,08:00,12:00,50,CoronaVac\n"
        "F1,2021-02-16,08:00,08:00,-1,CoronaVac\n"
        "F1,2021-02-15,08:00,11:00,20,CoronaVac\n"
        "F1,2021-02-15,08:00,11:00,20,AstraZeneca\n"
    )
    assert rows == [
        domain.SessionRow(2, "F1", date(2021, 2, 15), time(8), time(12, 30), 50, "CoronaVac"),
        domain.SessionRow(6, "F1", date(2021, 2, 15), time(8), time(11), 20, "AstraZeneca"),
    ]
    assert [str(e) for e in errors] == [
        "line 3: date: '2021-02-30' is not a date YYYY-MM-DD",
        "line 4: end: 08:00 is not after start 08:00",
        "line 4: capacity: '-1' is not a whole number 0-10000",
        "line 5: duplicate of line 2 (same facility, date, start and vaccine)",
    ]


def test_a_quoted_line_break_keeps_the_line_numbers_of_the_next_rows_right() -> None:
    _, errors = domain.parse_facilities_csv(
        'code,name,address,regency,province\nF1,A,"Jl. A\nRT 01",Kab. X,Prov\nF 2,B,C,D,E\n'
    )
    assert [str(e) for e in errors] == [
        "line 4: code: 1-32 characters of A-Z, a-z, 0-9, '.', '_' or '-'"
    ]


def test_progress_is_reported_while_reading_a_large_file() -> None:
    lines = "".join(f"F{i},N,A,R,P\n" for i in range(25))
    seen: list[int] = []
    rows, _ = domain.parse_facilities_csv(
        "code,name,address,regency,province\n" + lines, progress=seen.append, progress_every=10
    )
    assert (len(rows), seen) == (25, [10, 20])


def test_both_catalogs_have_the_same_texts_and_every_template_a_text() -> None:
    assert catalog("id").keys() == catalog("en").keys()
    assert set(notices.TEMPLATES) <= catalog("id").keys()


def test_dates_read_naturally_in_each_language() -> None:
    assert day_text("id", date(2021, 3, 1)) == "Senin, 1 Maret 2021"
    assert day_text("en", date(2021, 3, 1)) == "Monday, 1 March 2021"
    assert day_text("fr", date(2021, 3, 1)) == "Senin, 1 Maret 2021"  # unknown: Indonesian


@pytest.mark.parametrize("lang", ["id", "en"])
def test_a_dose_2_announcement_carries_its_template(lang: str) -> None:
    sent = notices.booked("dose2", BOOKING, "6281200000001", lang)
    assert sent.command_id == "scheduler:dose2.booked:42"
    assert FACILITY.name in sent.message.body and FACILITY.address in sent.message.body
    assert "08:00-12:00 WIB" in sent.message.body
    assert sent.template is not None
    assert (sent.template.name, sent.template.lang) == ("dose2_scheduled", lang)
    assert sent.template.params == [
        FACILITY.name,
        day_text(lang, BOOKING.date),
        "pukul 08:00-12:00 WIB" if lang == "id" else "08:00-12:00 WIB",
    ]


def test_every_notice_fits_whatsapp_and_is_idempotent_by_what_it_is_about() -> None:
    sent = [
        notices.booked("rebook", BOOKING, "6281200000001", "id"),
        notices.waiting(
            "dose2", 5, FACILITY, date(2021, 3, 1), date(2021, 3, 15), "6281200000001", "en"
        ),
        notices.missed("rebook", 5, FACILITY, date(2021, 3, 15), "6281200000001", "id"),
        notices.session_cancelled(
            42, FACILITY, date(2021, 3, 1), time(8), time(12), "628120", "en"
        ),
        notices.reminder(BOOKING, "6281200000001", "en"),
    ]
    assert [s.command_id for s in sent] == [
        "scheduler:rebook.booked:42",
        "scheduler:dose2.waiting:5",
        "scheduler:rebook.missed:5",
        "scheduler:session_cancelled:42",
        "scheduler:reminder:42",
    ]
    for s in sent:
        assert s.template is not None
        name, order = notices.TEMPLATES[s.command_id.split(":")[1]]
        assert s.template.name == name and len(s.template.params) == len(order)
        assert all(p and len(p) < 1024 for p in s.template.params)
        assert "{" not in s.message.body  # every placeholder filled
