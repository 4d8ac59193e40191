"""`vaksin intake list|show|approve|reject` (the functions the CLI calls) against the real
database with the identity service running: an approval puts the person into the registry bound
to the number (verify then succeeds with the NIK's suffix), every action is in the audit table,
and each decision leaves as identity.evt.intake_decided through the outbox."""

from __future__ import annotations

import io
from collections.abc import Awaitable, Callable
from datetime import date

import asyncpg
import pytest
from faststream.nats import NatsBroker

from services.cli import main as vaksin
from services.common.contracts.identity import IntakeOutcome, IntakeState, VerifyOutcome
from services.common.contracts.subjects import IDENTITY_EVT_INTAKE_DECIDED
from services.common.settings import Settings
from services.identity import domain
from services.identity.intake_cli import approve_intake, list_intake, reject_intake, show_intake

from .support import (
    IntakeStatusFn,
    RegisterFn,
    StatusFn,
    SubmitFn,
    VerifyFn,
    facility_code,
    identity_events,
    intake_request,
    random_nik,
    random_phone,
)

pytestmark = pytest.mark.servers


class Cli:
    """Runs a CLI function (they take `out` / `err`): exit code, stdout, stderr."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def __call__(
        self, fn: Callable[..., Awaitable[int]], *args: object, **kwargs: object
    ) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        code = await fn(self.settings, *args, out=out, err=err, **kwargs)
        return code, out.getvalue(), err.getvalue()


@pytest.fixture
def cli(settings: Settings) -> Cli:
    return Cli(settings)


async def audit(pool: asyncpg.Pool, intake_id: int) -> list[tuple[str, str, str, str | None]]:
    rows = await pool.fetch(
        "SELECT action, operator, channel, reason FROM identity.operator_action "
        "WHERE intake_id = $1 ORDER BY id",
        intake_id,
    )
    return [tuple(r) for r in rows]


async def test_list_shows_the_open_queue_masked_and_filtered(
    submit: SubmitFn, cli: Cli, pool: asyncpg.Pool
) -> None:
    facility = facility_code()
    a = intake_request(nik=random_nik(regency=1), facility_code=facility)
    b = intake_request(nik=random_nik(regency=2), facility_code=facility)
    ids = [(await submit(r)).intake_id for r in (a, b)]

    code, out, _ = await cli(list_intake, facility=facility)
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()[1:]] == [str(i) for i in ids]
    assert a.nik[:6] + "*" * 10 in out and "D*** L******" in out
    assert a.nik not in out and b.nik not in out and a.wa_id not in out

    code, out, _ = await cli(list_intake, facility=facility, regency=b.nik[:4])
    assert [line.split()[0] for line in out.splitlines()[1:]] == [str(ids[1])]

    code, out, _ = await cli(list_intake, facility=facility, older_than_hours=1.0)
    assert (code, out.strip()) == (0, "no open intake requests")
    await pool.execute(
        "UPDATE identity.intake SET created_at = now() - interval '3 hours' WHERE id = $1", ids[0]
    )
    code, out, _ = await cli(list_intake, facility=facility, older_than_hours=2.0)
    assert [line.split()[0] for line in out.splitlines()[1:]] == [str(ids[0])]


async def test_list_refuses_a_malformed_regency(cli: Cli) -> None:
    code, _, err = await cli(list_intake, regency="Bogor")
    assert code == 2
    assert "--regency" in err


async def test_approval_adds_the_person_for_that_number_and_verify_then_succeeds(
    submit: SubmitFn,
    cli: Cli,
    pool: asyncpg.Pool,
    client: NatsBroker,
    verify: VerifyFn,
    number_status: StatusFn,
    intake_status: IntakeStatusFn,
    settings: Settings,
) -> None:
    request = intake_request(nik=random_nik(female=True), profession="bidan", lang="en")
    submitted = await submit(request)
    assert (await number_status(request.wa_id)).listed is False

    code, out, err = await cli(approve_intake, submitted.intake_id, by="alice")
    assert (code, err) == (0, "")
    assert f"approved intake request {submitted.intake_id}" in out
    assert request.wa_id not in out and request.nik not in out

    person = await pool.fetchrow(
        "SELECT * FROM identity.person WHERE nik_hash = $1",
        domain.nik_hash(settings.nik_pepper, request.nik),
    )
    assert person["source"] == "intake"
    assert person["phone_hash"] == domain.phone_hash(settings.nik_pepper, request.wa_id)
    assert person["profession"] == "Bidan"
    assert person["facility_code"] == request.facility_code
    row = await pool.fetchrow("SELECT * FROM identity.intake WHERE id = $1", submitted.intake_id)
    assert (row["status"], row["decided_by"], row["wa_id"]) == ("approved", "alice", None)
    assert str(row["person_id"]) == str(person["id"])
    assert await audit(pool, submitted.intake_id) == [("approve", "alice", "cli", None)]

    events = await identity_events(client, IDENTITY_EVT_INTAKE_DECIDED, submitted.intake_id)
    assert len(events) == 1
    decided = events[0].body
    nik = domain.validate_nik(request.nik)
    assert decided["approved"] is True
    assert decided["wa_id"] == request.wa_id
    assert decided["lang"] == "en"
    assert decided["person_id"] == str(person["id"])
    assert decided["masked_name"] == "D*** L******"
    assert decided["masked_nik"] == request.nik[:6] + "*" * 10
    assert decided["profession"] == "Bidan"
    assert (decided["birth_date"], decided["sex"]) == (nik.birth_date.isoformat(), "F")
    assert decided["reason"] is None
    assert request.nik not in str(decided)

    verified = await verify(request.wa_id, request.nik[-6:])
    assert verified.outcome is VerifyOutcome.VERIFIED
    assert verified.person_id == str(person["id"])
    assert verified.birth_date == date.fromisoformat(decided["birth_date"])
    assert (await verify(random_phone(), request.nik[-6:])).outcome is VerifyOutcome.NOT_LISTED
    assert (await number_status(request.wa_id)).listed is True
    assert (await intake_status(request.wa_id)).status is IntakeState.APPROVED
    assert (await submit(wa_id=request.wa_id)).outcome is IntakeOutcome.ALREADY_LISTED


async def test_rejection_tells_the_reason_and_lets_the_number_ask_again(
    submit: SubmitFn,
    cli: Cli,
    pool: asyncpg.Pool,
    client: NatsBroker,
    verify: VerifyFn,
    intake_status: IntakeStatusFn,
) -> None:
    request = intake_request()
    submitted = await submit(request)
    reason = "Tidak terdaftar di fasyankes tersebut"
    code, out, _ = await cli(reject_intake, submitted.intake_id, reason=f"  {reason} ", by="budi")
    assert code == 0
    assert reason in out

    events = await identity_events(client, IDENTITY_EVT_INTAKE_DECIDED, submitted.intake_id)
    assert len(events) == 1
    assert events[0].body["approved"] is False
    assert events[0].body["reason"] == reason
    assert events[0].body["person_id"] is None
    assert events[0].body["wa_id"] == request.wa_id
    assert await audit(pool, submitted.intake_id) == [("reject", "budi", "cli", reason)]

    status = await intake_status(request.wa_id)
    assert (status.status, status.reason) == (IntakeState.REJECTED, reason)
    assert (await verify(request.wa_id, request.nik[-6:])).outcome is VerifyOutcome.NOT_LISTED
    again = await submit(wa_id=request.wa_id, nik=request.nik)
    assert again.outcome is IntakeOutcome.SUBMITTED
    assert again.intake_id != submitted.intake_id


async def test_a_decided_request_cannot_be_decided_again(
    submit: SubmitFn, cli: Cli, pool: asyncpg.Pool, client: NatsBroker
) -> None:
    submitted = await submit()
    assert (await cli(approve_intake, submitted.intake_id, by="alice"))[0] == 0

    code, _, err = await cli(reject_intake, submitted.intake_id, reason="late", by="budi")
    assert code == 1
    assert f"intake request {submitted.intake_id} is already approved (by alice" in err
    code, _, err = await cli(approve_intake, submitted.intake_id, by="budi")
    assert code == 1
    assert "already approved" in err
    assert [a[0] for a in await audit(pool, submitted.intake_id)] == ["approve"]
    # The refused ones queued nothing: one decision in the stream, even after a while.
    events = await identity_events(
        client, IDENTITY_EVT_INTAKE_DECIDED, submitted.intake_id, within=2.0, at_least=2
    )
    assert len(events) == 1


async def test_unknown_id_and_empty_reason_are_refused(cli: Cli, submit: SubmitFn) -> None:
    code, _, err = await cli(approve_intake, 987654321012, by="alice")
    assert (code, err.strip()) == (1, "no intake request 987654321012")
    code, _, err = await cli(show_intake, 987654321012)
    assert code == 1
    submitted = await submit()
    code, _, err = await cli(reject_intake, submitted.intake_id, reason="   ", by="alice")
    assert (code, err.strip()) == (1, "a reason is required")


async def test_show_gives_the_full_name_and_history_and_is_recorded(
    submit: SubmitFn, cli: Cli, pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USER", "citra")
    request = intake_request(full_name="Ni Luh Putu Ayu")
    submitted = await submit(request)
    await cli(reject_intake, submitted.intake_id, reason="bukan nakes")
    code, out, _ = await cli(show_intake, submitted.intake_id)
    assert code == 0
    assert "Ni Luh Putu Ayu" in out
    assert request.nik[:6] + "*" * 10 in out
    assert "rejected by citra" in out and "bukan nakes" in out
    assert request.nik not in out and request.wa_id not in out
    assert [(a[0], a[1]) for a in await audit(pool, submitted.intake_id)] == [
        ("reject", "citra"),
        ("view", "citra"),
    ]


async def test_approval_is_refused_when_the_nik_was_imported_under_another_number(
    submit: SubmitFn, cli: Cli, register: RegisterFn, pool: asyncpg.Pool
) -> None:
    request = intake_request()
    submitted = await submit(request)
    await register(nik=request.nik)  # a registry import, with another number, meanwhile
    code, _, err = await cli(approve_intake, submitted.intake_id, by="alice")
    assert code == 1
    assert "another number" in err
    status = await pool.fetchval(
        "SELECT status FROM identity.intake WHERE id = $1", submitted.intake_id
    )
    assert status == "open"
    assert await audit(pool, submitted.intake_id) == []


async def test_approval_reuses_the_entry_when_the_same_person_was_imported_meanwhile(
    submit: SubmitFn, cli: Cli, register: RegisterFn, pool: asyncpg.Pool, verify: VerifyFn
) -> None:
    request = intake_request()
    submitted = await submit(request)
    await register(nik=request.nik, phone=request.wa_id)
    assert (await cli(approve_intake, submitted.intake_id, by="alice"))[0] == 0
    persons = await pool.fetchval(
        "SELECT count(*) FROM identity.person p JOIN identity.intake i ON i.person_id = p.id "
        "WHERE i.id = $1 AND p.source = 'registry'",
        submitted.intake_id,
    )
    assert persons == 1
    assert (await verify(request.wa_id, request.nik[-6:])).outcome is VerifyOutcome.VERIFIED


def test_command_line_refuses_an_id_that_is_not_a_number(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exc:
        vaksin(["intake", "approve", "abc"])
    assert exc.value.code == 2
    assert "'abc' is not an intake id" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        vaksin(["intake", "reject", "42"])  # --reason is required
    assert exc.value.code == 2
    assert "--reason" in capsys.readouterr().err
