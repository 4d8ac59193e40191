"""The desk app's API on a real database: one-time enrolment codes, desk credentials (stored as
digests, refused once revoked), facility binding, check-ins that name their desk, offline syncs
judged at the time of the scan and answered once per device id, the operator token kept for
operators, a flood of scans slowed down, and the app's files served with a strict policy.
Whatever comes in, the answer is a 4xx with a reason, never a 5xx."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from services.common.clock import WIB, jakarta_today
from services.common.settings import Settings
from services.ticketing import desks, repository
from services.ticketing.desk_api import add_desk_routes, clock_key
from services.ticketing.token import load_signing_key

from .test_tickets import fact, issue

pytestmark = pytest.mark.servers


class Desk:
    def __init__(self, client: TestClient, credential: str, desk_id: int) -> None:
        self.client, self.credential, self.desk_id = client, credential, desk_id

    async def post(self, path: str, body: Any) -> tuple[int, dict]:
        return await call(self.client, "POST", path, body, self.credential)


async def call(
    client: TestClient, method: str, path: str, body: Any = None, bearer: str | None = None
) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    async with client.request(method, path, json=body, headers=headers) as resp:
        assert resp.status < 500, await resp.text()
        return resp.status, await resp.json()


@pytest.fixture
async def client(pool: asyncpg.Pool, settings: Settings) -> AsyncIterator[TestClient]:
    app = web.Application()
    key = load_signing_key(settings.ticket_signing_key)
    add_desk_routes(app, pool, key, settings.operator_token, lambda: None)
    async with TestClient(TestServer(app)) as client:
        yield client


async def new_desk(pool: asyncpg.Pool, facility: str, name: str = "Meja 1", **kw) -> str:
    added = await desks.add(
        pool,
        facility_code=facility,
        facility_name=f"Puskesmas {facility}",
        name=name,
        by="test",
        now=kw.get("now", datetime.now(UTC)),
    )
    return added.enrolment_code


async def enrolled(client: TestClient, pool: asyncpg.Pool, facility: str, name: str) -> Desk:
    status, answer = await call(
        client, "POST", "/desk/api/enrol", {"code": await new_desk(pool, facility, name)}
    )
    assert status == 201
    return Desk(client, answer["credential"], answer["desk"]["desk_id"])


async def test_an_enrolment_code_is_traded_once_for_a_credential_stored_as_a_digest(
    client: TestClient, pool: asyncpg.Pool
) -> None:
    code = await new_desk(pool, "F0000A1")
    typed = code.lower().replace("-", " ")  # any case, any separators
    status, answer = await call(client, "POST", "/desk/api/enrol", {"code": typed})
    assert status == 201
    credential = answer["credential"]
    assert credential.startswith("vkd_") and len(credential) > 40
    assert answer["desk"]["facility_code"] == "F0000A1" and answer["jwk"]["crv"] == "Ed25519"
    row = await pool.fetchrow(
        "SELECT * FROM ticketing.desk WHERE desk_id = $1", answer["desk"]["desk_id"]
    )
    assert row["credential_hash"] == hashlib.sha256(credential.encode()).digest()
    assert credential not in str(dict(row)) and code not in str(dict(row))

    status, replay = await call(client, "POST", "/desk/api/enrol", {"code": code})
    assert (status, replay["error"]) == (409, "code_used")
    status, unknown = await call(client, "POST", "/desk/api/enrol", {"code": "2222-3333-4444"})
    assert (status, unknown["error"]) == (403, "unknown_code")
    for body in ({}, {"code": 7}, ["x"], {"code": "x" * 100}):
        status, bad = await call(client, "POST", "/desk/api/enrol", body)
        assert (status, bad["error"]) == (400, "invalid")

    stale = await new_desk(pool, "F0000A1", now=datetime.now(UTC) - timedelta(hours=25))
    status, expired = await call(client, "POST", "/desk/api/enrol", {"code": stale})
    assert (status, expired["error"]) == (410, "code_expired")
    revoked = await new_desk(pool, "F0000A1")
    desk_id = await pool.fetchval("SELECT max(desk_id) FROM ticketing.desk")
    await desks.revoke(pool, desk_id, "test", datetime.now(UTC))
    status, refused = await call(client, "POST", "/desk/api/enrol", {"code": revoked})
    assert (status, refused["error"]) == (403, "desk_revoked")


async def test_desk_routes_take_a_live_desk_credential_and_the_operator_token_stays_for_operators(
    client: TestClient, pool: asyncpg.Pool, settings: Settings
) -> None:
    ticket = await issue(pool, settings, fact(jakarta_today()))
    assert ticket is not None
    desk = await enrolled(client, pool, ticket.facility_code, "Meja 1")
    status, me = await call(client, "GET", "/desk/api/me", bearer=desk.credential)
    assert (status, me["name"], me["facility_code"]) == (200, "Meja 1", ticket.facility_code)
    for bearer in (None, "vkd_unknown", "vkd_" + "A" * 43, settings.operator_token):
        status, answer = await call(client, "GET", "/desk/api/me", bearer=bearer)
        assert (status, answer["error"]) == (401, "unauthorized"), bearer

    await desks.revoke(pool, desk.desk_id, "test", datetime.now(UTC))
    for path in ("/desk/api/verify", "/desk/api/checkin", "/checkin", "/tickets/verify"):
        status, answer = await desk.post(path, {"token": ticket.token})
        assert (status, answer["error"]) == (401, "desk_revoked"), path
    assert (await repository.find(pool, ticket.ticket_id)).redeemed_at is None  # type: ignore[union-attr]

    # the operator token on the operators' routes, as before: not bound to a facility
    status, check = await call(
        client, "POST", "/checkin", {"token": ticket.token, "by": "op"}, settings.operator_token
    )
    assert (status, check["status"], check["redeemed_by"]) == (200, "redeemed", "op")
    stored = await repository.find(pool, ticket.ticket_id)
    assert stored is not None and stored.redeemed_via == "http" and stored.redeemed_desk_id is None


async def test_a_desk_checks_in_its_own_facilitys_tickets_once_and_refuses_bad_input(
    client: TestClient, pool: asyncpg.Pool, settings: Settings
) -> None:
    ours = await issue(pool, settings, fact(jakarta_today()))
    theirs = await issue(pool, settings, fact(jakarta_today()))
    assert ours is not None and theirs is not None
    desk = await enrolled(client, pool, ours.facility_code, "Meja 1")

    status, other = await desk.post("/desk/api/checkin", {"token": theirs.token})
    assert (status, other["status"]) == (403, "another_facility")
    assert other["facility_code"] == theirs.facility_code
    status, other = await desk.post("/tickets/verify", {"token": theirs.token})
    assert (status, other["status"]) == (200, "another_facility")
    assert (await repository.find(pool, theirs.ticket_id)).redeemed_at is None  # type: ignore[union-attr]

    header, payload, _ = ours.token.split(".")
    for bad in (
        {"token": f"{header}.{payload}.{'A' * 86}"},  # forged signature
        {"token": ours.token[:-20]},  # truncated
        {"token": "https://example.org"},  # foreign
    ):
        status, answer = await desk.post("/desk/api/checkin", bad)
        assert (status, answer["status"]) == (422, "forged")
    for bad in (
        {"code": "0OIL1234"},  # not a ticket code
        {"token": ours.token, "temperature_c": 365},
        {"token": ours.token, "blood_pressure": "80/120"},
        {"token": ours.token, "scanned_at": "yesterday"},
        {"token": ours.token, "client_id": "x"},
        {"token": ours.token, "dose_given": "yes"},
    ):
        status, answer = await desk.post("/desk/api/checkin", bad)
        assert (status, answer["error"]) == (400, "invalid"), bad
    assert (await repository.find(pool, ours.ticket_id)).redeemed_at is None  # type: ignore[union-attr]

    status, verified = await desk.post("/desk/api/verify", {"code": ours.code.lower()})
    assert (status, verified["status"], verified["ticket_id"]) == (200, "valid", ours.ticket_id)
    body = {
        "code": ours.code,
        "dose_given": True,
        "temperature_c": "36,7",
        "blood_pressure": "118/76",
    }
    status, done = await desk.post("/desk/api/checkin", body)
    assert (status, done["status"], done["redeemed_by"]) == (200, "redeemed", "Meja 1")
    stored = await repository.find(pool, ours.ticket_id)
    assert stored is not None and stored.redeemed_desk_id == desk.desk_id
    assert (stored.redeemed_via, stored.temperature_c, stored.systolic) == ("desk", 36.7, 118)
    assert stored.dose_given_desk_id == desk.desk_id
    status, again = await desk.post("/desk/api/checkin", {"token": ours.token})
    assert (status, again["status"], again["redeemed_by"]) == (409, "already_used", "Meja 1")
    dose_facts = await pool.fetchval(
        "SELECT count(*) FROM ticketing.outbox WHERE payload->>'ticket_id' = $1", ours.ticket_id
    )
    assert dose_facts == 1


async def test_offline_check_ins_sync_once_judged_at_the_scan_and_two_desks_redeem_once(
    client: TestClient, pool: asyncpg.Pool, settings: Settings
) -> None:
    day = jakarta_today()
    booking = fact(day)
    first_facility = booking.facility
    ticket = await issue(pool, settings, booking)
    assert ticket is not None
    a = await enrolled(client, pool, ticket.facility_code, "Meja A")
    b = await enrolled(client, pool, ticket.facility_code, "Meja B")
    # synced the next morning: judged at the scan (before its day ended), so not "expired"
    scanned = datetime.combine(day, datetime.min.time(), WIB) + timedelta(hours=10)
    client.app[clock_key].fixed = scanned + timedelta(hours=22)
    body = {"token": ticket.token, "client_id": "device-a-0001", "scanned_at": scanned.isoformat()}

    first, again = await a.post("/desk/api/checkin", body), await a.post("/desk/api/checkin", body)
    assert first[0] == again[0] == 200 and first[1] == again[1]  # a resent sync: same answer
    assert datetime.fromisoformat(first[1]["redeemed_at"]) == scanned

    answers = await asyncio.gather(
        *(
            desk.post("/desk/api/checkin", {"token": ticket.token, "client_id": f"race-{i:04d}"})
            for i, desk in enumerate([a, b] * 10)
        )
    )
    assert {status for status, _ in answers} == {409}
    assert {answer["redeemed_by"] for _, answer in answers} == {"Meja A"}
    rows = await pool.fetch(
        "SELECT status FROM ticketing.desk_checkin WHERE ticket_id = $1", ticket.ticket_id
    )
    assert sorted(r["status"] for r in rows) == ["already_used"] * 20 + ["redeemed"]

    # a scan older than the offline window is judged now (here: its day is over)
    booking = fact(day)
    late = await issue(pool, settings, booking.model_copy(update={"facility": first_facility}))
    assert late is not None
    long_ago = {"token": late.token, "scanned_at": (scanned - timedelta(days=5)).isoformat()}
    status, answer = await b.post("/desk/api/checkin", long_ago)
    assert (status, answer["status"]) == (410, "expired")


async def test_a_flood_of_scans_or_guesses_is_slowed_down_never_an_error(
    client: TestClient, pool: asyncpg.Pool, settings: Settings
) -> None:
    ticket = await issue(pool, settings, fact(jakarta_today()))
    assert ticket is not None
    desk = await enrolled(client, pool, ticket.facility_code, "Meja 1")
    answers = await asyncio.gather(
        *(desk.post("/desk/api/verify", {"token": ticket.token}) for _ in range(60))
    )
    statuses = [status for status, _ in answers]
    assert statuses.count(200) >= 30 and statuses.count(429) >= 10
    assert set(statuses) == {200, 429}
    guesses = [
        await call(client, "POST", "/desk/api/enrol", {"code": f"2222-3333-{i:04d}"})
        for i in range(30)
    ]
    assert {status for status, _ in guesses} == {403, 429}
    assert guesses[-1][1]["error"] == "too_many_requests"


async def test_the_desk_app_is_served_from_fixed_files_with_a_strict_policy(
    client: TestClient,
) -> None:
    async with client.get("/desk", allow_redirects=False) as resp:
        assert (resp.status, resp.headers["Location"]) == (308, "/desk/")
    async with client.get("/desk/") as resp:
        assert resp.status == 200 and resp.content_type == "text/html"
        assert "default-src 'self'" in resp.headers["Content-Security-Policy"]
        assert 'src="vendor/zxing-reader.js"' in await resp.text()
    for path, kind in (
        ("/desk/vendor/zxing_reader.wasm", "application/wasm"),
        ("/desk/vendor/noble-ed25519.js", "text/javascript"),
        ("/desk/manifest.webmanifest", "application/manifest+json"),
        ("/desk/sw.js", "text/javascript"),
    ):
        async with client.get(path) as resp:
            assert (resp.status, resp.content_type) == (200, kind), path
    for path in ("/desk/../desk_api.py", "/desk/node_modules/zxing-wasm/package.json"):
        async with client.get(path) as resp:
            assert resp.status == 404, path
