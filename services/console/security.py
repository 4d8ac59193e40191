"""The console's rules with no IO: roles and what each may do, the login throttle, CSRF tokens,
passwords (Argon2id, argon2-cffi) and account names. Unit-tested exhaustively
(tests/unit/console/)."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


class Role(StrEnum):
    INTAKE = "intake"  # works the intake queue
    SCHEDULER = "scheduler"  # facilities and sessions
    VIEWER = "viewer"  # the figures
    ADMIN = "admin"  # everything, desk enrolment and the audit log


class Permission(StrEnum):
    FIGURES = "figures"
    INTAKE_VIEW = "intake.view"
    INTAKE_DECIDE = "intake.decide"
    SESSIONS_VIEW = "sessions.view"
    SESSIONS_IMPORT = "sessions.import"
    SESSIONS_CANCEL = "sessions.cancel"
    DESKS = "desks"
    AUDIT = "audit"


_GRANTS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: frozenset({Permission.FIGURES}),
    Role.INTAKE: frozenset({Permission.FIGURES, Permission.INTAKE_VIEW, Permission.INTAKE_DECIDE}),
    Role.SCHEDULER: frozenset(
        {
            Permission.FIGURES,
            Permission.SESSIONS_VIEW,
            Permission.SESSIONS_IMPORT,
            Permission.SESSIONS_CANCEL,
        }
    ),
    Role.ADMIN: frozenset(Permission),
}


def allowed(role: str, permission: Permission) -> bool:
    """Whether an account of `role` may do `permission`; an unknown role may do nothing."""
    try:
        return permission in _GRANTS[Role(role)]
    except ValueError:
        return False


def landing(role: str) -> str:
    """The page an account of `role` starts on (a path below /console/)."""
    if allowed(role, Permission.INTAKE_VIEW):
        return "intake"
    if allowed(role, Permission.SESSIONS_VIEW):
        return "sessions"
    return "figures"


# --- the login throttle ------------------------------------------------------------------------


@dataclass(frozen=True)
class ThrottlePolicy:
    """`max_failures` failed logins within `window` lock the key for `lockout`."""

    max_failures: int
    window: timedelta
    lockout: timedelta


# Per account: a handful of guesses; per address: more (an office behind one NAT has several
# operators, each of whom mistypes), but a spray across accounts from one address is stopped.
ACCOUNT_POLICY = ThrottlePolicy(5, timedelta(minutes=15), timedelta(minutes=15))
ADDRESS_POLICY = ThrottlePolicy(20, timedelta(minutes=15), timedelta(minutes=15))


@dataclass(frozen=True)
class ThrottleState:
    failures: int = 0
    window_started_at: datetime | None = None
    locked_until: datetime | None = None

    def locked(self, now: datetime) -> bool:
        return self.locked_until is not None and now < self.locked_until


def after_failure(state: ThrottleState, now: datetime, policy: ThrottlePolicy) -> ThrottleState:
    """The state after one more failed login: a failure outside the window starts a new one; the
    `max_failures`-th within it locks the key for `lockout` and starts counting afresh."""
    if state.locked(now):
        return state
    fresh = state.window_started_at is None or now - state.window_started_at >= policy.window
    failures = 1 if fresh else state.failures + 1
    started = now if fresh else state.window_started_at
    if failures >= policy.max_failures:
        return ThrottleState(0, None, now + policy.lockout)
    return ThrottleState(failures, started, None)


def retry_after(states: list[ThrottleState], now: datetime) -> int:
    """Whole seconds until every locked key is free again (0: none is locked)."""
    ends = [s.locked_until for s in states if s.locked_until and s.locked(now)]
    return max((int((end - now).total_seconds()) + 1 for end in ends), default=0)


# --- tokens ------------------------------------------------------------------------------------


def new_token() -> str:
    """A session token or a CSRF token: 256 random bits."""
    return secrets.token_urlsafe(32)


def digest(token: str) -> bytes:
    """What the server keeps of a session token: a copy of the table opens no session."""
    return hashlib.sha256(token.encode()).digest()


def csrf_ok(expected: str | None, presented: str | None) -> bool:
    """The form's token is the session's (constant time); a missing one never is."""
    if not expected or not presented:
        return False
    return hmac.compare_digest(expected.encode(), presented.encode())


# --- accounts and passwords --------------------------------------------------------------------

ACCOUNT_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{1,31}")
MIN_PASSWORD = 12
MAX_PASSWORD = 256


def account_name_problem(name: str) -> str | None:
    if not ACCOUNT_NAME.fullmatch(name):
        return "2-32 characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit"
    return None


def password_problem(password: str, name: str) -> str | None:
    if len(password) < MIN_PASSWORD:
        return f"at least {MIN_PASSWORD} characters"
    if len(password) > MAX_PASSWORD:
        return f"at most {MAX_PASSWORD} characters"
    if name and name.lower() in password.lower():
        return "not containing the account's name"
    if len(set(password)) < 5:
        return "more than a few different characters"
    return None


def one_time_password() -> str:
    """Given once by `vaksin operator add`, changed at the first login: 4 groups of 4 letters
    and digits without look-alikes (about 95 bits), easy to read out and type."""
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    return "-".join("".join(secrets.choice(alphabet) for _ in range(4)) for _ in range(4))


class Passwords:
    """Argon2id hashes (argon2-cffi's defaults: RFC 9106's second recommendation, 64 MiB,
    3 passes). An unknown account is checked against a dummy hash, so a login takes as long
    whether the account exists or not."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self.hasher = hasher or PasswordHasher()
        self._dummy = self.hasher.hash(secrets.token_urlsafe(16))

    def hash(self, password: str) -> str:
        return self.hasher.hash(password)

    def verify(self, stored: str | None, password: str) -> bool:
        try:
            return self.hasher.verify(stored or self._dummy, password) and stored is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored: str) -> bool:
        return self.hasher.check_needs_rehash(stored)


# --- masking -----------------------------------------------------------------------------------

_DIGITS = re.compile(r"\d{10,}")


def mask_digits(text: str) -> str:
    """Long digit runs (a NIK, a phone number) typed into a free-text field, masked before they
    are written to the audit log: the first 4 digits stay."""
    return _DIGITS.sub(lambda m: m.group()[:4] + "*" * (len(m.group()) - 4), text)
