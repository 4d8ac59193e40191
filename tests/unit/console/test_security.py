"""The console's pure rules: what each role may do, the login throttle, CSRF tokens, passwords
(Argon2id) and the masking of long digit runs in the audit log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from argon2 import PasswordHasher

from services.console import security
from services.console.security import Permission, Role, ThrottlePolicy, ThrottleState

NOW = datetime(2021, 1, 14, 8, 0, tzinfo=UTC)
POLICY = ThrottlePolicy(3, timedelta(minutes=15), timedelta(minutes=10))


@pytest.mark.parametrize(
    ("role", "granted"),
    [
        ("viewer", {Permission.FIGURES}),
        ("intake", {Permission.FIGURES, Permission.INTAKE_VIEW, Permission.INTAKE_DECIDE}),
        (
            "scheduler",
            {
                Permission.FIGURES,
                Permission.SESSIONS_VIEW,
                Permission.SESSIONS_IMPORT,
                Permission.SESSIONS_CANCEL,
            },
        ),
        ("admin", set(Permission)),
        ("root", set()),  # an unknown role may do nothing
    ],
)
def test_each_role_may_do_exactly_its_own_work(role: str, granted: set[Permission]) -> None:
    assert {p for p in Permission if security.allowed(role, p)} == granted


def test_only_an_admin_enrols_desks_and_reads_the_audit_log() -> None:
    assert [r for r in Role if security.allowed(r, Permission.DESKS)] == [Role.ADMIN]
    assert [r for r in Role if security.allowed(r, Permission.AUDIT)] == [Role.ADMIN]


def test_each_role_lands_on_a_page_it_may_see() -> None:
    pages = {"intake": Permission.INTAKE_VIEW, "sessions": Permission.SESSIONS_VIEW,
             "figures": Permission.FIGURES}  # fmt: skip
    for role in Role:
        assert security.allowed(role, pages[security.landing(role)])
    assert security.landing("viewer") == "figures"


def test_failures_within_the_window_lock_the_key_for_the_lockout() -> None:
    state = ThrottleState()
    for minute in range(2):
        state = security.after_failure(state, NOW + timedelta(minutes=minute), POLICY)
        assert not state.locked(NOW + timedelta(minutes=minute))
    assert state.failures == 2
    locked = security.after_failure(state, NOW + timedelta(minutes=2), POLICY)
    assert locked.locked(NOW + timedelta(minutes=2))
    assert locked.locked(NOW + timedelta(minutes=11, seconds=59))
    assert not locked.locked(NOW + timedelta(minutes=12))
    assert security.retry_after([locked], NOW + timedelta(minutes=2)) == 601
    # A failure while locked changes nothing (the lock does not grow with the attempts).
    assert security.after_failure(locked, NOW + timedelta(minutes=5), POLICY) == locked


def test_a_failure_after_the_window_starts_counting_again() -> None:
    state = security.after_failure(ThrottleState(), NOW, POLICY)
    state = security.after_failure(state, NOW + timedelta(minutes=1), POLICY)
    later = security.after_failure(state, NOW + timedelta(minutes=16), POLICY)
    assert (later.failures, later.window_started_at) == (1, NOW + timedelta(minutes=16))
    assert security.retry_after([later, ThrottleState()], NOW + timedelta(minutes=16)) == 0


def test_the_csrf_token_must_be_the_sessions_own() -> None:
    token = security.new_token()
    assert security.csrf_ok(token, token)
    assert not security.csrf_ok(token, security.new_token())
    assert not security.csrf_ok(token, None)
    assert not security.csrf_ok(token, "")
    assert not security.csrf_ok(None, None)
    assert not security.csrf_ok("", "")


def test_a_session_token_is_kept_as_a_digest_only() -> None:
    token = security.new_token()
    assert len(token) >= 43 and security.digest(token) == security.digest(token)
    assert token.encode() not in security.digest(token)


def test_passwords_are_argon2id_and_an_unknown_account_never_verifies() -> None:
    passwords = security.Passwords(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    stored = passwords.hash("correct horse battery")
    assert stored.startswith("$argon2id$")
    assert passwords.verify(stored, "correct horse battery")
    assert not passwords.verify(stored, "correct horse batterx")
    assert not passwords.verify(None, "correct horse battery")
    assert not passwords.verify("not a hash", "x")


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("short1", "at least 12 characters"),
        ("aaaaaaaaaaaaaaaa", "more than a few different characters"),
        ("my-name-is-ani-2021", "not containing the account's name"),
        ("x" * 257, "at most 256 characters"),
        ("a long enough passphrase", None),
    ],
)
def test_password_rules(password: str, problem: str | None) -> None:
    assert security.password_problem(password, "ani") == problem


def test_one_time_passwords_are_long_random_and_readable() -> None:
    words = {security.one_time_password() for _ in range(50)}
    assert len(words) == 50
    for word in words:
        assert len(word) == 19 and word.count("-") == 3
        assert not set(word) & set("01ilo")


@pytest.mark.parametrize(
    ("name", "ok"),
    [("ani", True), ("dinkes.bogor-1", True), ("A", False), ("ani budi", False), ("-x", False)],
)
def test_account_names(name: str, ok: bool) -> None:
    assert (security.account_name_problem(name) is None) is ok


def test_long_digit_runs_are_masked_for_the_audit_log() -> None:
    text = "NIK 3201014508850123 and 6281234567890, request 42"
    assert security.mask_digits(text) == "NIK 3201************ and 6281*********, request 42"
