"""identity.rpc.intake_list|intake_detail|intake_decide (the operators' console's way to the
queue) and identity.rpc.stats with `tables`, over a real NATS server and Postgres: filters and
search show masked names only; the detail has the full name, the registry's look-alikes and the
viewing in the history (channel console); of two decisions one wins and the other is told who
decided; the figures count registrations and verifications as they happen."""

from __future__ import annotations

import asyncio
from typing import TypeVar

import pytest
from faststream.nats import NatsBroker
from pydantic import BaseModel

from services.common.contracts.operations import (
    IntakeDecideReply,
    IntakeDecideRequest,
    IntakeDetailReply,
    IntakeDetailRequest,
    IntakeListReply,
    IntakeListRequest,
    OperatorError,
    error_code,
)
from services.common.contracts.stats import ServiceStats, StatsRequest
from services.common.contracts.subjects import (
    IDENTITY_RPC_INTAKE_DECIDE,
    IDENTITY_RPC_INTAKE_DETAIL,
    IDENTITY_RPC_INTAKE_LIST,
    IDENTITY_RPC_STATS,
)
from services.common.service import ServiceHost

from .support import RegisterFn, SubmitFn, VerifyFn, facility_code, random_nik, random_phone

pytestmark = pytest.mark.servers

R = TypeVar("R", bound=BaseModel)


async def ask(client: NatsBroker, subject: str, body: BaseModel, reply: type[R]) -> R:
    answer = await client.request(body, subject, timeout=10)
    return reply.model_validate(await answer.decode())


async def test_the_queue_is_filtered_by_profession_and_searched_by_name_masked_only(
    identity_host: ServiceHost, client: NatsBroker, submit: SubmitFn
) -> None:
    fac = facility_code()
    nurse = await submit(full_name="Dewi Lestari", profession="perawat", facility_code=fac)
    midwife = await submit(full_name="Rina Wulandari", profession="bidan", facility_code=fac)
    found = await ask(
        client, IDENTITY_RPC_INTAKE_LIST, IntakeListRequest(facility=fac), IntakeListReply
    )
    assert [i.id for i in found.items] == [nurse.intake_id, midwife.intake_id]
    assert all(i.name is None for i in found.items)
    assert "Dewi" not in found.model_dump_json()
    by_profession = await ask(
        client,
        IDENTITY_RPC_INTAKE_LIST,
        IntakeListRequest(facility=fac, profession="bidan"),
        IntakeListReply,
    )
    assert [i.id for i in by_profession.items] == [midwife.intake_id]
    by_name = await ask(client, IDENTITY_RPC_INTAKE_LIST,
                        IntakeListRequest(facility=fac, search="lestari dewi"), IntakeListReply)  # fmt: skip
    assert [i.id for i in by_name.items] == [nurse.intake_id]
    by_id = await ask(client, IDENTITY_RPC_INTAKE_LIST,
                      IntakeListRequest(search=str(midwife.intake_id)), IntakeListReply)  # fmt: skip
    assert [i.id for i in by_id.items] == [midwife.intake_id]
    bad = await ask(
        client, IDENTITY_RPC_INTAKE_LIST, IntakeListRequest(regency="3"), IntakeListReply
    )
    assert error_code(bad.error) is OperatorError.INVALID


async def test_the_detail_shows_the_full_name_registry_look_alikes_and_records_the_viewing(
    identity_host: ServiceHost, client: NatsBroker, submit: SubmitFn, register: RegisterFn
) -> None:
    fac = facility_code()
    twin = await register(name="Dewi Lestari", facility_code=fac)
    submitted = await submit(full_name="Dewi Lestari", facility_code=fac)
    assert submitted.intake_id is not None
    reply = await ask(client, IDENTITY_RPC_INTAKE_DETAIL,
                      IntakeDetailRequest(intake_id=submitted.intake_id, by="ani"),
                      IntakeDetailReply)  # fmt: skip
    assert reply.item is not None and reply.item.name == "Dewi Lestari"
    assert [(m.on, m.masked_name, m.facility_code) for m in reply.matches] == [
        ("name_at_facility", "D*** L******", fac)
    ]
    assert twin.nik not in reply.model_dump_json() and twin.phone not in reply.model_dump_json()
    assert [(a.action, a.operator, a.channel) for a in reply.item.actions or []] == [
        ("view", "ani", "console")
    ]
    missing = await ask(client, IDENTITY_RPC_INTAKE_DETAIL,
                        IntakeDetailRequest(intake_id=10**15, by="ani"), IntakeDetailReply)  # fmt: skip
    assert error_code(missing.error) is OperatorError.NOT_FOUND


async def test_of_two_operators_deciding_at_once_one_wins_and_the_other_is_told_who(
    identity_host: ServiceHost, client: NatsBroker, submit: SubmitFn
) -> None:
    submitted = await submit()
    assert submitted.intake_id is not None
    approve = IntakeDecideRequest(intake_id=submitted.intake_id, decision="approve", by="ani")
    reject = IntakeDecideRequest(
        intake_id=submitted.intake_id, decision="reject", reason="not a health worker", by="budi"
    )
    first, second = await asyncio.gather(
        ask(client, IDENTITY_RPC_INTAKE_DECIDE, approve, IntakeDecideReply),
        ask(client, IDENTITY_RPC_INTAKE_DECIDE, reject, IntakeDecideReply),
    )
    winners = [r for r in (first, second) if r.error is None]
    losers = [r for r in (first, second) if r.error is not None]
    assert len(winners) == 1 and len(losers) == 1
    assert error_code(losers[0].error) is OperatorError.NOT_OPEN
    winner = winners[0].item
    assert winner is not None and winner.decided_by in ("ani", "budi")
    assert f"by {winner.decided_by}" in (losers[0].error or "")


async def test_a_rejection_without_a_reason_is_refused_and_changes_nothing(
    identity_host: ServiceHost, client: NatsBroker, submit: SubmitFn
) -> None:
    submitted = await submit()
    assert submitted.intake_id is not None
    reply = await ask(client, IDENTITY_RPC_INTAKE_DECIDE,
                      IntakeDecideRequest(intake_id=submitted.intake_id, decision="reject",
                                          reason="  ", by="ani"), IntakeDecideReply)  # fmt: skip
    assert error_code(reply.error) is OperatorError.INVALID
    detail = await ask(client, IDENTITY_RPC_INTAKE_DETAIL,
                       IntakeDetailRequest(intake_id=submitted.intake_id, by="ani"),
                       IntakeDetailReply)  # fmt: skip
    assert detail.item is not None and detail.item.status == "open"


async def test_the_figures_count_registrations_and_first_verifications_by_region(
    identity_host: ServiceHost, client: NatsBroker, register: RegisterFn, verify: VerifyFn
) -> None:
    async def figures() -> ServiceStats:
        return await ask(client, IDENTITY_RPC_STATS, StatsRequest(tables=True), ServiceStats)

    def by_regency(stats: ServiceStats, regency: str) -> dict[str, int]:
        table = stats.tables["identity_by_regency"]
        for row in table.rows:
            if row[0] == regency:
                return dict(zip(table.columns[1:], row[1:], strict=True))  # type: ignore[arg-type]
        return dict.fromkeys(table.columns[1:], 0)

    nik = random_nik(regency=77)
    before = await figures()
    person = await register(nik=nik, phone=random_phone())
    assert (await verify(person.phone, person.suffix)).outcome == "verified"
    assert (await verify(person.phone, person.suffix)).outcome == "verified"  # counted once
    after = await figures()
    region = nik[:4]
    assert by_regency(after, region)["registered"] == by_regency(before, region)["registered"] + 1
    assert by_regency(after, region)["verified"] == by_regency(before, region)["verified"] + 1
    assert after.counts["people_verified"] == before.counts["people_verified"] + 1
    plain = await ask(client, IDENTITY_RPC_STATS, StatsRequest(), ServiceStats)
    assert plain.tables == {} and "people" in plain.counts
