"""Facility desks: the devices that check tickets in with the desk app, each bound to one
facility. An operator adds one (`vaksin desk add`) and gets a one-time enrolment code (24 h);
the device trades it for its credential (`POST /desk/api/enrol`), which it sends with every
call. Only digests of both are stored; a desk can be revoked (`vaksin desk revoke`), after which
its credential opens nothing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import asyncpg

from services.ticketing import domain
from services.ticketing import repository as repo

Desk = repo.Desk


@dataclass(frozen=True)
class NewDesk:
    desk: Desk
    enrolment_code: str  # shown once: only its digest is stored


async def add(
    pool: asyncpg.Pool,
    *,
    facility_code: str,
    facility_name: str,
    name: str,
    by: str,
    now: datetime,
) -> NewDesk:
    code = domain.new_enrolment_code()
    desk = await repo.add_desk(
        pool,
        facility_code=facility_code,
        facility_name=facility_name,
        name=name,
        enrolment_hash=domain.digest(domain.enrolment_code(code) or ""),
        expires_at=now + domain.ENROLMENT_TTL,
        by=by,
        now=now,
    )
    return NewDesk(desk, code)


class Refusal(StrEnum):
    """Why an enrolment code or a credential opens nothing (each told to the device)."""

    UNKNOWN_CODE = "unknown_code"
    CODE_USED = "code_used"
    CODE_EXPIRED = "code_expired"
    DESK_REVOKED = "desk_revoked"
    UNKNOWN_CREDENTIAL = "unauthorized"


@dataclass(frozen=True)
class Enrolled:
    desk: Desk
    credential: str  # handed to the device once: only its digest is stored


async def enrol(pool: asyncpg.Pool, typed: str, now: datetime) -> Enrolled | Refusal:
    code = domain.enrolment_code(typed)
    if code is None:
        return Refusal.UNKNOWN_CODE
    credential = domain.new_desk_credential()
    desk, other = await repo.enrol_desk(pool, domain.digest(code), domain.digest(credential), now)
    if desk is not None:
        return Enrolled(desk, credential)
    if other is None:
        return Refusal.UNKNOWN_CODE
    if other.revoked_at is not None:
        return Refusal.DESK_REVOKED
    if other.enrolled_at is not None:
        return Refusal.CODE_USED
    return Refusal.CODE_EXPIRED


async def authenticate(pool: asyncpg.Pool, credential: str, now: datetime) -> Desk | Refusal:
    """The desk a presented credential belongs to. It is found by its SHA-256 digest, never by
    comparing secrets: how long the index probe takes depends on the digest, which an attacker
    cannot steer towards a stored one, so there is no timing to learn from (the same holds for
    enrolment codes; the shared operator token, compared as such, uses hmac.compare_digest)."""
    if not credential.startswith(domain.CREDENTIAL_PREFIX) or len(credential) > 100:
        return Refusal.UNKNOWN_CREDENTIAL
    desk = await repo.desk_by_credential(pool, domain.digest(credential), now)
    if desk is None:
        return Refusal.UNKNOWN_CREDENTIAL
    if desk.revoked_at is not None:
        return Refusal.DESK_REVOKED
    return desk


async def revoke(
    pool: asyncpg.Pool, desk_id: int, by: str, now: datetime
) -> tuple[Desk | None, bool]:
    return await repo.revoke_desk(pool, desk_id, by, now)


async def listing(
    pool: asyncpg.Pool, facility_code: str | None = None, with_revoked: bool = False
) -> list[repo.DeskListing]:
    return await repo.list_desks(pool, facility_code, with_revoked)
