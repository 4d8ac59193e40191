"""No raw NIK, suffix or phone number in what the identity service logs while verifying."""

import pytest
from faststream.nats import NatsBroker
from structlog.testing import capture_logs

from services.common.contracts.identity import VerifyOutcome, VerifyRequest, VerifyResult
from services.common.contracts.subjects import IDENTITY_RPC_VERIFY
from services.common.embedded import free_port
from services.common.logging import configure_logging
from services.common.settings import Settings
from services.identity.app import build_host

from .support import RegisterFn, VerifyFn, other_suffix, random_phone, start_and_sync


def secrets_of(nik: str, phone: str) -> list[str]:
    return [nik, nik[-6:], phone, "0" + phone[2:], phone[2:]]


async def exercise(verify: VerifyFn, nik: str, phone: str) -> None:
    outcomes = [
        (await verify(phone, nik[-6:])).outcome,
        (await verify(phone, other_suffix(nik[-6:]))).outcome,
        (await verify(phone, "12 3")).outcome,
        (await verify(random_phone(), nik[-6:])).outcome,
    ]
    assert outcomes == [
        VerifyOutcome.VERIFIED,
        VerifyOutcome.MISMATCH,
        VerifyOutcome.INVALID,
        VerifyOutcome.NOT_LISTED,
    ]


async def test_log_events_never_carry_raw_identifiers(
    register: RegisterFn, verify: VerifyFn
) -> None:
    person = await register()
    with capture_logs() as events:
        await exercise(verify, person.nik, person.phone)
    ours = [e for e in events if e.get("event") == "suffix verification"]
    assert [e["outcome"] for e in ours] == ["verified", "mismatch", "invalid", "not_listed"]
    assert all(e["pii_context"] == "identity" for e in ours)
    assert all(len(e["phone_ref"]) == 8 for e in ours)
    text = repr(events)
    for secret in secrets_of(person.nik, person.phone):
        assert secret not in text


async def test_rendered_service_output_has_no_raw_identifiers(
    register: RegisterFn,
    settings: Settings,
    client: NatsBroker,
    capsys: pytest.CaptureFixture[str],
    restore_logging: None,
) -> None:
    person = await register()
    configure_logging("identity", "DEBUG", json_output=True)
    host = build_host(settings.model_copy(update={"health_port": free_port()}))
    await start_and_sync(host)
    try:

        async def call(wa_id: str, suffix: str) -> VerifyResult:
            resp = await client.request(
                VerifyRequest(wa_id=wa_id, suffix=suffix), IDENTITY_RPC_VERIFY, timeout=5
            )
            return VerifyResult.model_validate(await resp.decode())

        await exercise(call, person.nik, person.phone)
    finally:
        await host.stop()
    err = capsys.readouterr().err
    assert err.count('"event": "suffix verification"') == 4
    assert '"service started"' in err
    for secret in secrets_of(person.nik, person.phone):
        assert secret not in err
