"""The console's HTTP rules against the real service (real NATS and Postgres; no other service
is needed for these): `vaksin operator add` and the first login's password change, the session
cookie's flags, the throttle per account, CSRF on every POST, roles enforced on the server, the
audit log, and a page that says so when an owner does not answer."""

from __future__ import annotations

import argparse
import io
import re
import secrets
from collections.abc import AsyncIterator

import aiohttp
import asyncpg
import pytest
from argon2 import PasswordHasher

from services.common.embedded import free_port
from services.common.service import ServiceHost
from services.common.settings import Settings
from services.console import cli
from services.console.app import build_host
from services.console.security import Passwords

pytestmark = pytest.mark.servers

FAST = Passwords(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
NEW_PASSWORD = "a long enough passphrase"


@pytest.fixture
async def console(settings: Settings) -> AsyncIterator[ServiceHost]:
    host = build_host(settings.model_copy(update={"health_port": free_port()}), FAST)
    await host.start()
    try:
        yield host
    finally:
        await host.stop()


def url(host: ServiceHost, path: str = "") -> str:
    return f"http://127.0.0.1:{host.port}/console/{path}"


async def add_operator(settings: Settings, role: str) -> tuple[str, str]:
    name = f"op-{secrets.token_hex(4)}"
    out = io.StringIO()
    args = argparse.Namespace(action="add", name=name, role=role)
    assert await cli.run_operator(settings, args, out=out, passwords=FAST) == 0
    match = re.search(r"one-time password\s+(\S+)", out.getvalue())
    assert match, out.getvalue()
    return name, match.group(1)


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match, page[:500]
    return match.group(1)


async def login(
    http: aiohttp.ClientSession, host: ServiceHost, name: str, password: str
) -> aiohttp.ClientResponse:
    async with http.get(url(host, "login")) as page:
        token = csrf_of(await page.text())
    async with http.post(
        url(host, "login"),
        data={"name": name, "password": password, "csrf": token},
        allow_redirects=False,
    ) as resp:
        await resp.read()
        return resp


async def signed_in(settings: Settings, host: ServiceHost, role: str) -> aiohttp.ClientSession:
    """A browser-like client of an account of `role` whose password has been changed."""
    name, password = await add_operator(settings, role)
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    assert (await login(http, host, name, password)).status == 303
    async with http.get(url(host, "password")) as page:
        token = csrf_of(await page.text())
    async with http.post(url(host, "password"), allow_redirects=False,
                         data={"current": password, "new": NEW_PASSWORD, "repeat": NEW_PASSWORD,
                               "csrf": token}) as resp:  # fmt: skip
        assert resp.status == 303
    return http


async def test_a_first_login_must_change_the_one_time_password_and_the_cookie_is_strict(
    settings: Settings, console: ServiceHost
) -> None:
    name, password = await add_operator(settings, "viewer")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        resp = await login(http, console, name, password)
        assert resp.status == 303 and resp.headers["Location"] == "/console/password"
        cookie = next(
            c for c in resp.headers.getall("Set-Cookie") if c.startswith("vaksin_console=")
        )
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console/" in cookie
        async with http.get(url(console, "figures"), allow_redirects=False) as figures:
            assert (figures.status, figures.headers["Location"]) == (303, "/console/password")
        async with http.get(url(console, "password")) as page:
            token = csrf_of(await page.text())
        async with http.post(url(console, "password"), allow_redirects=False,
                             data={"current": password, "new": "short", "repeat": "short",
                                   "csrf": token}) as weak:  # fmt: skip
            assert weak.status == 400 and "at least 12 characters" in await weak.text()
        async with http.post(url(console, "password"), allow_redirects=False,
                             data={"current": password, "new": NEW_PASSWORD,
                                   "repeat": NEW_PASSWORD, "csrf": token}) as changed:  # fmt: skip
            assert changed.status == 303
        async with http.get(url(console, "audit"), allow_redirects=False) as audit:
            assert audit.status == 403  # a viewer
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        assert (await login(http, console, name, password)).status == 401  # the old one is gone
        resp = await login(http, console, name, NEW_PASSWORD)
        assert resp.status == 303 and resp.headers["Location"] == "/console/"


async def test_five_wrong_passwords_lock_the_account_even_for_the_right_one(
    settings: Settings, console: ServiceHost, pool: asyncpg.Pool
) -> None:
    name, password = await add_operator(settings, "intake")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        for _ in range(5):
            assert (await login(http, console, name, "wrong password!")).status == 401
        locked = await login(http, console, name, password)
        assert locked.status == 429 and int(locked.headers["Retry-After"]) > 60
    outcomes = await pool.fetch(
        "SELECT outcome, detail FROM console.audit WHERE account = $1 AND action = 'login' ORDER BY id",
        name,
    )
    assert [(r["outcome"], r["detail"]) for r in outcomes] == [
        ("refused", "wrong name or password")
    ] * 5 + [("refused", "throttled")]


async def test_a_post_without_the_sessions_csrf_token_is_refused_and_audited(
    settings: Settings, console: ServiceHost, pool: asyncpg.Pool
) -> None:
    http = await signed_in(settings, console, "scheduler")
    async with http:
        async with http.post(url(console, "sessions/1/cancel"), data={"csrf": "forged"}) as resp:
            assert resp.status == 403 and "CSRF" in await resp.text()
        async with http.post(url(console, "logout"), data={}) as resp:
            assert resp.status == 403
        async with http.get(url(console, "sessions"), allow_redirects=False) as still:
            assert still.status != 303  # not logged out by the forged request
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM console.audit WHERE action LIKE 'csrf:%' AND outcome = 'refused' "
            "AND target = '/console/sessions/1/cancel'"
        )
        >= 1
    )


async def test_a_viewer_is_refused_every_action_on_the_server(
    settings: Settings, console: ServiceHost
) -> None:
    http = await signed_in(settings, console, "viewer")
    async with http:
        async with http.get(url(console, "figures")) as page:
            token = csrf_of(await page.text())
        for path, data in (
            ("sessions/1/cancel", {}),
            ("intake/1/decide", {"decision": "approve"}),
            ("desks", {"facility": "F1", "name": "Meja"}),
        ):
            async with http.post(url(console, path), data={**data, "csrf": token}) as resp:
                assert resp.status == 403, path
        for path in ("intake", "sessions", "imports", "audit"):
            async with http.get(url(console, path), allow_redirects=False) as resp:
                assert resp.status == 403, path


async def test_without_a_session_pages_lead_to_the_login_and_posts_are_refused(
    console: ServiceHost,
) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(url(console, "intake"), allow_redirects=False) as resp:
            assert (resp.status, resp.headers["Location"]) == (303, "/console/login")
            assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
        async with http.post(url(console, "intake/1/decide"), data={"decision": "approve"}) as resp:
            assert resp.status == 401


async def test_a_page_says_so_when_its_owner_does_not_answer(
    settings: Settings, console: ServiceHost
) -> None:
    http = await signed_in(settings, console, "intake")  # identity is not running here
    async with http, http.get(url(console, "intake")) as resp:
        assert resp.status == 503 and "identity is not answering" in await resp.text()
