"""identity.rpc.check_nik, intake_submit and intake_status over a real NATS server and Postgres:
what is queued (hashes and masked forms, never the raw NIK), the limits (one open request per
number and per NIK, 3 submissions per number and day), and answers that reveal nothing about
another number's registration."""

import asyncio

import asyncpg
import pytest
from faststream.nats import NatsBroker

from services.common.contracts.identity import IntakeOutcome, IntakeState
from services.common.contracts.subjects import IDENTITY_EVT_INTAKE_SUBMITTED
from services.common.settings import Settings
from services.identity import domain

from .support import (
    CheckNikFn,
    IntakeStatusFn,
    RegisterFn,
    SubmitFn,
    identity_events,
    intake_request,
    random_nik,
    random_phone,
)

pytestmark = pytest.mark.servers


async def test_check_nik_gives_masked_nik_and_birth_date_never_the_nik(
    check_nik: CheckNikFn,
) -> None:
    nik = "3201014508850123"  # a woman (45 = day 5 + 40), born 5 Aug 1985
    result = await check_nik("3201 0145 0885 0123")
    assert result.valid is True
    assert result.masked_nik == "320101**********"
    assert (result.birth_date.isoformat(), result.sex) == ("1985-08-05", "F")
    assert result.unknown_region is False
    assert nik not in result.model_dump_json()
    assert "850123" not in result.model_dump_json()


@pytest.mark.parametrize(
    ("nik", "code"),
    [
        ("320101451385012", "length"),
        ("3201014513850123", "month"),
        ("3201017208850123", "day"),
        ("3201013102850123", "date"),
        ("3201010508850000", "serial"),
        ("32010105O8850123", "not_digits"),
    ],
)
async def test_check_nik_names_the_typo_precisely(
    check_nik: CheckNikFn, nik: str, code: str
) -> None:
    result = await check_nik(nik)
    assert (result.valid, result.code) == (False, code)
    assert result.detail
    assert result.masked_nik is None


async def test_check_nik_flags_an_unknown_province_without_rejecting_it(
    check_nik: CheckNikFn,
) -> None:
    result = await check_nik("9901010508850123")
    assert result.valid is True
    assert result.unknown_region is True


async def test_submission_is_queued_with_hashes_only_and_its_fact_published(
    submit: SubmitFn,
    intake_status: IntakeStatusFn,
    pool: asyncpg.Pool,
    client: NatsBroker,
    settings: Settings,
) -> None:
    request = intake_request(nik=random_nik(female=True), full_name="  Dewi   Lestari ")
    result = await submit(request)
    assert result.outcome is IntakeOutcome.SUBMITTED
    assert result.intake_id is not None
    assert result.masked_nik == request.nik[:6] + "*" * 10

    row = await pool.fetchrow("SELECT * FROM identity.intake WHERE id = $1", result.intake_id)
    assert row["status"] == "open"
    assert row["nik_hash"] == domain.nik_hash(settings.nik_pepper, request.nik)
    assert row["suffix_hash"] == domain.suffix_hash(
        settings.nik_pepper, request.wa_id, request.nik[-6:]
    )
    assert row["name"] == "Dewi Lestari"
    assert row["regency_code"] == request.nik[:4]
    assert row["sex"] == "F"
    assert row["wa_id"] == request.wa_id
    assert row["masked_phone"] == domain.mask_phone(request.wa_id)
    assert request.nik not in repr(dict(row))

    events = await identity_events(client, IDENTITY_EVT_INTAKE_SUBMITTED, result.intake_id)
    assert len(events) == 1
    assert events[0].headers["Nats-Msg-Id"].startswith("identity-outbox-")
    assert events[0].body["regency_code"] == request.nik[:4]
    assert events[0].body["facility_code"] == request.facility_code
    assert request.nik not in str(events[0].body)
    assert request.wa_id not in str(events[0].body)

    status = await intake_status(request.wa_id)
    assert status.status is IntakeState.OPEN
    assert status.intake_id == result.intake_id
    assert status.masked_nik == result.masked_nik


async def test_redelivered_submission_gets_the_same_answer_and_counts_once(
    submit: SubmitFn, pool: asyncpg.Pool, settings: Settings
) -> None:
    request = intake_request()
    first = await submit(request)
    again = await submit(request)
    assert first.outcome is IntakeOutcome.SUBMITTED
    assert again == first
    attempts = await pool.fetchval(
        "SELECT sum(attempts) FROM identity.intake_attempt WHERE phone_hash = $1",
        domain.phone_hash(settings.nik_pepper, request.wa_id),
    )
    assert attempts == 1


async def test_a_number_with_an_open_request_gets_it_back_not_a_second_one(
    submit: SubmitFn, pool: asyncpg.Pool, settings: Settings
) -> None:
    phone = random_phone()
    first = await submit(wa_id=phone)
    second = await submit(wa_id=phone)  # another NIK, another message
    assert second.outcome is IntakeOutcome.DUPLICATE_OPEN
    assert (second.intake_id, second.masked_nik) == (first.intake_id, first.masked_nik)
    # Since when it waits (the dialog tells the user): the first submission's time, both times.
    assert first.submitted_at is not None and second.submitted_at == first.submitted_at
    count = await pool.fetchval(
        "SELECT count(*) FROM identity.intake WHERE phone_hash = $1",
        domain.phone_hash(settings.nik_pepper, phone),
    )
    assert count == 1


async def test_a_nik_with_another_numbers_open_request_cannot_be_matched(
    submit: SubmitFn,
) -> None:
    nik = random_nik()
    first = await submit(nik=nik)
    other = await submit(nik=nik)  # a different number
    assert first.outcome is IntakeOutcome.SUBMITTED
    assert other.outcome is IntakeOutcome.CANNOT_MATCH
    assert other.model_dump(exclude_none=True) == {"outcome": "cannot_match"}


async def test_a_nik_registered_under_another_number_cannot_be_matched_and_reveals_nothing(
    submit: SubmitFn, register: RegisterFn, pool: asyncpg.Pool, settings: Settings
) -> None:
    person = await register(name="Budi Santoso")
    request = intake_request(nik=person.nik)
    result = await submit(request)
    assert result.model_dump(exclude_none=True) == {"outcome": "cannot_match"}
    text = result.model_dump_json()
    assert "B*** S******" not in text and person.nik[:6] not in text
    queued = await pool.fetchval(
        "SELECT count(*) FROM identity.intake WHERE nik_hash = $1",
        domain.nik_hash(settings.nik_pepper, person.nik),
    )
    assert queued == 0


async def test_a_number_in_the_registry_is_sent_to_verification(
    submit: SubmitFn, register: RegisterFn
) -> None:
    person = await register()
    result = await submit(wa_id=person.phone)
    assert result.outcome is IntakeOutcome.ALREADY_LISTED
    assert result.intake_id is None


async def test_fourth_submission_of_a_day_is_refused_for_that_number_only(
    submit: SubmitFn, register: RegisterFn
) -> None:
    phone = random_phone()
    for _ in range(3):  # three NIKs registered elsewhere: each lookup counts
        taken = await register()
        assert (await submit(wa_id=phone, nik=taken.nik)).outcome is IntakeOutcome.CANNOT_MATCH
    fourth = await submit(wa_id=phone)
    assert fourth.outcome is IntakeOutcome.LIMIT_REACHED
    assert fourth.intake_id is None
    assert (await submit()).outcome is IntakeOutcome.SUBMITTED  # another number


async def test_limit_is_checked_before_the_registry_is_looked_up(
    submit: SubmitFn, register: RegisterFn
) -> None:
    phone = random_phone()
    for _ in range(3):
        await submit(wa_id=phone, nik=(await register()).nik)
    taken = await register()
    # Past the limit even a registered NIK gets limit_reached: no more probing today.
    result = await submit(wa_id=phone, nik=taken.nik)
    assert result.outcome is IntakeOutcome.LIMIT_REACHED


@pytest.mark.parametrize(
    ("fields", "field", "code"),
    [
        ({"nik": "3201010513850123"}, "nik", "month"),
        ({"nik": "12345"}, "nik", "length"),
        ({"full_name": "3201010508850123"}, "full_name", "characters"),
        ({"full_name": "   "}, "full_name", "empty"),
        ({"profession": "astronaut"}, "profession", "unknown"),
        ({"facility_code": "PKM 1; DROP"}, "facility_code", "format"),
        ({"wa_id": "4915112345678"}, "wa_id", "country"),
    ],
)
async def test_invalid_field_is_named_and_costs_nothing(
    submit: SubmitFn,
    pool: asyncpg.Pool,
    settings: Settings,
    fields: dict[str, str],
    field: str,
    code: str,
) -> None:
    request = intake_request(**fields)
    result = await submit(request)
    assert (result.outcome, result.field, result.code) == (IntakeOutcome.INVALID, field, code)
    assert result.detail
    assert "3201010508850123" not in result.model_dump_json()
    counted = await pool.fetchval(
        "SELECT count(*) FROM identity.intake_attempt WHERE phone_hash = $1",
        domain.phone_hash(settings.nik_pepper, request.wa_id) if field != "wa_id" else "",
    )
    assert counted == 0


async def test_status_of_a_number_that_never_asked_is_none(intake_status: IntakeStatusFn) -> None:
    status = await intake_status(random_phone())
    assert status.status is IntakeState.NONE
    assert status.intake_id is None


async def test_the_same_nik_from_two_numbers_at_once_is_queued_once(submit: SubmitFn) -> None:
    nik = random_nik()
    results = await asyncio.gather(*(submit(nik=nik) for _ in range(4)))
    outcomes = sorted(r.outcome.value for r in results)
    assert outcomes == ["cannot_match"] * 3 + ["submitted"]


async def test_one_number_submitting_at_once_gets_one_request(
    submit: SubmitFn, pool: asyncpg.Pool, settings: Settings
) -> None:
    phone = random_phone()
    results = await asyncio.gather(*(submit(wa_id=phone) for _ in range(3)))
    submitted = [r for r in results if r.outcome is IntakeOutcome.SUBMITTED]
    assert len(submitted) == 1
    assert all(
        (r.outcome, r.intake_id) == (IntakeOutcome.DUPLICATE_OPEN, submitted[0].intake_id)
        for r in results
        if r is not submitted[0]
    )
    attempts = await pool.fetchval(
        "SELECT attempts FROM identity.intake_attempt WHERE phone_hash = $1",
        domain.phone_hash(settings.nik_pepper, phone),
    )
    assert attempts == 1
