"""The operator HTTP API of the intake queue on the identity service's HTTP port: bearer token
(401 without it or with another), 404 for an unknown id, 409 for a request that is not open, 400
for a bad query or body, and JSON with the NIK and number masked only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import pytest
from faststream.nats import NatsBroker

from services.common.contracts.subjects import IDENTITY_EVT_INTAKE_DECIDED
from services.common.service import ServiceHost
from services.common.settings import Settings

from .support import SubmitFn, facility_code, identity_events, intake_request

pytestmark = pytest.mark.servers


class Api:
    def __init__(self, session: aiohttp.ClientSession, base: str, token: str) -> None:
        self.session, self.base, self.token = session, base, token

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        anonymous: bool = False,
        data: Any = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any, str]:
        """Status, decoded JSON and raw text of one request."""
        sent = dict(headers or {})
        if not anonymous:
            sent.setdefault("Authorization", f"Bearer {self.token if token is None else token}")
        async with self.session.request(
            method, self.base + path, data=data, json=json, headers=sent
        ) as resp:
            text = await resp.text()
            body = await resp.json() if resp.content_type == "application/json" else None
            return resp.status, body, text


@pytest.fixture
async def api(identity_host: ServiceHost, identity_settings: Settings) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(
            session,
            f"http://127.0.0.1:{identity_settings.health_port}",
            identity_settings.operator_token,
        )


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/operator/intake"),
        ("GET", "/operator/intake/1"),
        ("POST", "/operator/intake/1/approve"),
        ("POST", "/operator/intake/1/reject"),
        ("GET", "/operator/nothing-here"),
    ],
)
@pytest.mark.parametrize("token", [None, "wrong-token", ""])
async def test_without_the_operator_token_everything_is_401(
    api: Api, method: str, path: str, token: str | None
) -> None:
    status, body, _ = await api.call(method, path, token=token, anonymous=token is None)
    assert status == 401
    assert body["error"] == "unauthorized"


async def test_other_auth_schemes_are_401_and_health_needs_no_token(api: Api) -> None:
    status, _, _ = await api.call(
        "GET", "/operator/intake", headers={"Authorization": f"Basic {api.token}"}
    )
    assert status == 401
    status, body, _ = await api.call("GET", "/healthz", anonymous=True)
    assert (status, body) == (200, {"status": "alive"})


async def test_list_returns_the_filtered_queue_masked(api: Api, submit: SubmitFn) -> None:
    facility = facility_code()
    request = intake_request(facility_code=facility)
    submitted = await submit(request)
    status, body, text = await api.call("GET", f"/operator/intake?facility={facility}")
    assert status == 200
    assert body["count"] == 1
    item = body["items"][0]
    assert item["id"] == submitted.intake_id
    assert item["status"] == "open"
    assert item["masked_nik"] == request.nik[:6] + "*" * 10
    assert item["masked_name"] == "D*** L******"
    assert item["name"] is None  # the full name only in the single (audited) view
    assert item["regency_code"] == request.nik[:4]
    assert request.nik not in text and request.wa_id not in text

    status, body, _ = await api.call(
        "GET", f"/operator/intake?facility={facility}&regency=99&older_than_hours=0"
    )
    assert (status, body["count"]) == (200, 0)


@pytest.mark.parametrize(
    "query",
    [
        "status=pending",
        "older_than_hours=abc",
        "older_than_hours=-1",
        "regency=Bogor",
        "limit=0",
    ],
)
async def test_bad_list_filters_are_400(api: Api, query: str) -> None:
    status, body, _ = await api.call("GET", f"/operator/intake?{query}")
    assert status == 400
    assert body["error"] == "invalid"


@pytest.mark.parametrize("ident", ["987654321012", "abc", "-1"])
async def test_unknown_id_is_404(api: Api, ident: str) -> None:
    for method, path in [
        ("GET", f"/operator/intake/{ident}"),
        ("POST", f"/operator/intake/{ident}/approve"),
    ]:
        status, body, _ = await api.call(method, path)
        assert status == 404, path
        assert body["error"] == "not_found"
    status, _, _ = await api.call(
        "POST", f"/operator/intake/{ident}/reject", json={"reason": "nope"}
    )
    assert status == 404


async def test_approve_then_deciding_again_is_409(
    api: Api, submit: SubmitFn, pool: asyncpg.Pool, client: NatsBroker
) -> None:
    request = intake_request()
    submitted = await submit(request)
    path = f"/operator/intake/{submitted.intake_id}"
    status, body, text = await api.call("POST", f"{path}/approve", json={"by": "dinkes-bogor"})
    assert status == 200
    assert body["status"] == "approved"
    assert body["decided_by"] == "dinkes-bogor"
    assert body["person_id"]
    assert request.nik not in text and request.wa_id not in text
    events = await identity_events(client, IDENTITY_EVT_INTAKE_DECIDED, submitted.intake_id)
    assert [e.body["approved"] for e in events] == [True]

    status, body, _ = await api.call("POST", f"{path}/approve")
    assert (status, body["error"]) == (409, "not_open")
    status, body, _ = await api.call("POST", f"{path}/reject", json={"reason": "late"})
    assert (status, body["error"]) == (409, "not_open")
    actions = await pool.fetch(
        "SELECT action, operator, channel FROM identity.operator_action WHERE intake_id = $1",
        submitted.intake_id,
    )
    assert [tuple(a) for a in actions] == [("approve", "dinkes-bogor", "http")]


async def test_reject_needs_a_reason_in_a_json_body(api: Api, submit: SubmitFn) -> None:
    submitted = await submit()
    path = f"/operator/intake/{submitted.intake_id}/reject"
    for kwargs in ({"json": {}}, {"json": {"reason": "  "}}, {"data": "{not json"},
                   {"json": ["a list"]}, {"json": {"reason": 42}}):  # fmt: skip
        status, body, _ = await api.call("POST", path, **kwargs)
        assert status == 400, kwargs
        assert body["error"] == "invalid"
    status, body, _ = await api.call(
        "POST", path, json={"reason": "NIK tidak sesuai KTP"}, headers={"X-Operator": "eka"}
    )
    assert status == 200
    assert (body["status"], body["reason"], body["decided_by"]) == (
        "rejected",
        "NIK tidak sesuai KTP",
        "eka",
    )


async def test_show_gives_the_full_name_and_history_masked_otherwise(
    api: Api, submit: SubmitFn
) -> None:
    request = intake_request(full_name="Made Wirawan")
    submitted = await submit(request)
    status, body, text = await api.call(
        "GET", f"/operator/intake/{submitted.intake_id}", headers={"X-Operator": "fajar"}
    )
    assert status == 200
    assert body["name"] == "Made Wirawan"
    assert body["masked_phone"] == request.wa_id[:5] + "*****" + request.wa_id[-3:]
    assert [(a["action"], a["operator"], a["channel"]) for a in body["actions"]] == [
        ("view", "fajar", "http")
    ]
    assert request.nik not in text and request.wa_id not in text
