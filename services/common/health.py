"""`/healthz` (alive: no dependency calls), `/readyz` (dependencies reachable) and `/metrics`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

ReadyCheck = Callable[[], Awaitable[bool]]
checks_key = web.AppKey("ready_checks", dict)


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


async def readyz(request: web.Request) -> web.Response:
    checks: dict[str, ReadyCheck] = request.app[checks_key]
    names = list(checks)
    results = await asyncio.gather(*(_safe(checks[n]) for n in names))
    report = dict(zip(names, results, strict=True))
    status = 200 if all(results) else 503
    return web.json_response({"ready": status == 200, "checks": report}, status=status)


async def metrics(_request: web.Request) -> web.Response:
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _safe(check: ReadyCheck) -> bool:
    try:
        return await asyncio.wait_for(check(), timeout=2.0)
    except Exception:
        return False


def add_health_routes(app: web.Application, checks: dict[str, ReadyCheck]) -> None:
    app[checks_key] = checks
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)


def http_ready_check(url: str) -> ReadyCheck:
    """Another process's /readyz, for the local runner's 'everything is up' answer."""

    async def check() -> bool:
        timeout = aiohttp.ClientTimeout(total=1.5)
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as resp:
            return resp.status == 200

    return check
