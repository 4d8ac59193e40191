"""What both callbacks check before anything else, and how they read a number. Pure but for
the request object: the shared secret (constant-time) and/or the IP allow-list, and an
Indonesian MSISDN in the form the dialog keys people by (`628...`)."""

from __future__ import annotations

import hmac
import ipaddress
import re
from functools import cache

from aiohttp import web

_SEPARATORS = re.compile(r"[\s\-().]")
_MSISDN = re.compile(r"^62\d{7,13}$")


def number(raw: str) -> str | None:
    """`+62812...`, `62812...` or `0812...` as `62812...`; None for anything else."""
    phone = _SEPARATORS.sub("", raw or "")[:32].lstrip("+")
    if phone.startswith("0"):
        phone = "62" + phone[1:]
    elif phone.startswith("620"):
        phone = "62" + phone[3:]
    return phone if phone.isascii() and _MSISDN.match(phone) else None


@cache
def _networks(allowed: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(
        ipaddress.ip_network(a.strip(), strict=False) for a in allowed.split(",") if a.strip()
    )


def allowed(request: web.Request, secret: str, allowed_ips: str) -> bool:
    """The caller is the aggregator or gateway: every check configured passes (at least one
    must be)."""
    if not secret and not allowed_ips:
        return False
    if secret:
        given = request.query.get("key") or request.headers.get("X-Callback-Key") or ""
        if not hmac.compare_digest(given.encode(), secret.encode()):
            return False
    if allowed_ips:
        try:
            peer = ipaddress.ip_address(request.remote or "")
        except ValueError:
            return False
        if not any(peer in network for network in _networks(allowed_ips)):
            return False
    return True


def clean(value: object, limit: int) -> str:
    """A form value as text we can store and publish: bounded, valid UTF-8, no NUL."""
    if not isinstance(value, str):
        return ""
    return re.sub(r"[\ud800-\udfff\x00]", "\ufffd", value[:limit])
