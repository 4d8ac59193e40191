"""identity.rpc.verify and identity.rpc.number_status over a real NATS server and Postgres."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
from faststream.nats import NatsBroker

from services.common.contracts.identity import PersonCard, PersonRequest, VerifyOutcome
from services.common.contracts.subjects import IDENTITY_RPC_PERSON
from services.common.settings import Settings
from services.identity import domain

from .support import RegisterFn, StatusFn, VerifyFn, other_suffix, random_phone


async def test_own_suffix_verifies_with_masked_details(register: RegisterFn, verify: VerifyFn,
                                                      pool: asyncpg.Pool) -> None:  # fmt: skip
    person = await register(name="Siti Rahmawati", profession="Bidan", facility_code="PKM-7")
    result = await verify(person.phone, person.suffix)
    assert result.outcome is VerifyOutcome.VERIFIED
    assert result.masked_name == "S*** R********"
    assert result.masked_nik == person.nik[:6] + "*" * 10
    assert result.profession == "Bidan"
    assert result.facility_code == "PKM-7"
    nik = domain.validate_nik(person.nik)
    assert (result.birth_date, result.sex) == (nik.birth_date, nik.sex)
    stored = await pool.fetchval(
        "SELECT masked_name FROM identity.person WHERE id = $1::uuid", result.person_id
    )
    assert stored == "S*** R********"


async def test_five_wrong_suffixes_lock_and_the_right_one_is_then_refused(
    register: RegisterFn, verify: VerifyFn, number_status: StatusFn
) -> None:
    person = await register()
    wrong = other_suffix(person.suffix)
    results = [await verify(person.phone, wrong) for _ in range(5)]
    assert [r.outcome for r in results] == [VerifyOutcome.MISMATCH] * 4 + [VerifyOutcome.LOCKED]
    assert [r.attempts_left for r in results] == [4, 3, 2, 1, 0]
    locked_until = results[-1].locked_until
    assert locked_until is not None
    expected = datetime.now(UTC) + timedelta(hours=24)
    assert abs((locked_until - expected).total_seconds()) < 60

    refused = await verify(person.phone, person.suffix)
    assert refused.outcome is VerifyOutcome.LOCKED
    assert refused.person_id is None and refused.masked_name is None
    assert refused.locked_until == locked_until

    status = await number_status(person.phone)
    assert status.listed is True
    assert status.locked_until == locked_until


async def test_expired_lock_lets_the_right_suffix_verify_again(
    register: RegisterFn, verify: VerifyFn, pool: asyncpg.Pool, settings: Settings
) -> None:
    person = await register()
    for _ in range(5):
        await verify(person.phone, other_suffix(person.suffix))
    assert (await verify(person.phone, person.suffix)).outcome is VerifyOutcome.LOCKED
    await pool.execute(
        "UPDATE identity.number_lock SET locked_until = now() - interval '1 second' "
        "WHERE phone_hash = $1",
        domain.phone_hash(settings.nik_pepper, person.phone),
    )
    assert (await verify(person.phone, person.suffix)).outcome is VerifyOutcome.VERIFIED


async def test_success_resets_the_failure_count(register: RegisterFn, verify: VerifyFn) -> None:
    person = await register()
    for _ in range(4):
        await verify(person.phone, other_suffix(person.suffix))
    assert (await verify(person.phone, person.suffix)).outcome is VerifyOutcome.VERIFIED
    again = await verify(person.phone, other_suffix(person.suffix))
    assert again.outcome is VerifyOutcome.MISMATCH
    assert again.attempts_left == 4


async def test_suffix_of_another_numbers_entry_does_not_verify(
    register: RegisterFn, verify: VerifyFn
) -> None:
    alice = await register(name="Alice Wulandari")
    bob = await register(name="Bob Prasetyo")
    stolen = await verify(bob.phone, alice.suffix)
    assert stolen.outcome is VerifyOutcome.MISMATCH
    assert stolen.masked_name is None and stolen.person_id is None
    unlisted = await verify(random_phone(), alice.suffix)
    assert unlisted.outcome is VerifyOutcome.NOT_LISTED
    assert unlisted.masked_name is None
    assert (await verify(alice.phone, alice.suffix)).masked_name == "A**** W********"


async def test_two_entries_on_one_number_each_verify_their_own_person(
    register: RegisterFn, verify: VerifyFn
) -> None:
    first = await register(name="Dewi Lestari", facility_code="PKM-1")
    second = await register(phone=first.phone, name="Eko Saputra", facility_code="RS-2")
    a, b = await verify(first.phone, first.suffix), await verify(first.phone, second.suffix)
    assert (a.outcome, a.masked_name, a.facility_code) == (
        VerifyOutcome.VERIFIED,
        "D*** L******",
        "PKM-1",
    )
    assert (b.outcome, b.masked_name, b.facility_code) == (
        VerifyOutcome.VERIFIED,
        "E** S******",
        "RS-2",
    )
    assert a.person_id != b.person_id


async def test_unlisted_and_foreign_numbers_are_not_listed(
    verify: VerifyFn, number_status: StatusFn
) -> None:
    phone = random_phone()
    assert (await verify(phone, "900001")).outcome is VerifyOutcome.NOT_LISTED
    assert (await verify("14155550100", "900001")).outcome is VerifyOutcome.NOT_LISTED
    status = await number_status(phone)
    assert status.listed is False and status.locked_until is None
    assert (await number_status("14155550100")).listed is False


async def test_listed_number_status(register: RegisterFn, number_status: StatusFn) -> None:
    person = await register()
    status = await number_status(person.phone)
    assert status.listed is True
    assert status.locked_until is None


async def test_invalid_suffix_costs_no_attempt(register: RegisterFn, verify: VerifyFn) -> None:
    person = await register()
    for typo in ["12345", "1234567", "12a456", "", "nik saya"]:
        result = await verify(person.phone, typo)
        assert result.outcome is VerifyOutcome.INVALID
        assert result.attempts_left == 5
    wrong = await verify(person.phone, other_suffix(person.suffix))
    assert wrong.outcome is VerifyOutcome.MISMATCH
    assert wrong.attempts_left == 4
    spaced = person.suffix[:3] + " " + person.suffix[3:]
    assert (await verify(person.phone, spaced)).outcome is VerifyOutcome.VERIFIED


async def test_concurrent_guesses_are_all_counted(
    register: RegisterFn, verify: VerifyFn, pool: asyncpg.Pool, settings: Settings
) -> None:
    person = await register()
    wrong = other_suffix(person.suffix)
    results = await asyncio.gather(*(verify(person.phone, wrong) for _ in range(8)))
    outcomes = [r.outcome for r in results]
    assert outcomes.count(VerifyOutcome.MISMATCH) == 4
    assert outcomes.count(VerifyOutcome.LOCKED) == 4
    failures = await pool.fetchval(
        "SELECT failures FROM identity.number_lock WHERE phone_hash = $1",
        domain.phone_hash(settings.nik_pepper, person.phone),
    )
    assert failures == 5


async def test_a_repeated_request_gets_the_same_answer_and_costs_one_attempt(
    register: RegisterFn, verify: VerifyFn
) -> None:
    person = await register()
    wrong = other_suffix(person.suffix)
    first = await verify(person.phone, wrong, "wamid.redelivered")
    again = await verify(person.phone, wrong, "wamid.redelivered")
    assert first.outcome is again.outcome is VerifyOutcome.MISMATCH
    assert first.attempts_left == again.attempts_left == 4
    assert (await verify(person.phone, wrong, "wamid.next")).attempts_left == 3


async def test_person_card_shows_masked_forms_only(
    register: RegisterFn, verify: VerifyFn, client: NatsBroker
) -> None:
    person = await register(name="Siti Rahmawati", profession="Bidan")
    verified = await verify(person.phone, person.suffix)

    async def card(person_id: str) -> PersonCard:
        reply = await client.request(
            PersonRequest(person_id=person_id), IDENTITY_RPC_PERSON, timeout=5
        )
        return PersonCard.model_validate(await reply.decode())

    found = await card(str(verified.person_id))
    assert (found.found, found.masked_name, found.profession) == (True, "S*** R********", "Bidan")
    assert found.masked_nik == person.nik[:6] + "*" * 10
    assert person.nik not in found.model_dump_json()
    assert (await card(str(uuid.uuid4()))).found is False
    assert (await card("not-a-uuid")).found is False
