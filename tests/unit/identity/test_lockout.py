"""Suffix lockout: 5 consecutive failures lock the number for 24 h; success and expiry reset."""

from datetime import UTC, datetime, timedelta

from services.common.contracts.identity import VerifyOutcome
from services.identity.domain import LockPolicy, LockState, VerifyDecision, decide_verification

POLICY = LockPolicy(max_failures=5, duration=timedelta(hours=24))
T0 = datetime(2021, 1, 14, 8, 0, tzinfo=UTC)


def attempt(state: LockState, *, valid: bool = True, matched: bool = False,
            now: datetime = T0) -> VerifyDecision:  # fmt: skip
    return decide_verification(
        suffix_valid=valid, matched=matched, state=state, policy=POLICY, now=now
    )


def fail_times(n: int, now: datetime = T0) -> tuple[LockState, list[VerifyDecision]]:
    state, decisions = LockState(), []
    for _ in range(n):
        decision = attempt(state, now=now)
        decisions.append(decision)
        state = decision.state
    return state, decisions


def test_first_four_failures_count_down_the_attempts() -> None:
    state, decisions = fail_times(4)
    assert [d.outcome for d in decisions] == [VerifyOutcome.MISMATCH] * 4
    assert [d.attempts_left for d in decisions] == [4, 3, 2, 1]
    assert state == LockState(failures=4, locked_until=None)


def test_fifth_failure_locks_the_number_for_24_hours() -> None:
    state, decisions = fail_times(5)
    assert decisions[-1].outcome is VerifyOutcome.LOCKED
    assert decisions[-1].locked_until == T0 + timedelta(hours=24)
    assert decisions[-1].attempts_left == 0
    assert state.is_locked(T0 + timedelta(hours=23, minutes=59))


def test_correct_suffix_is_refused_while_locked() -> None:
    locked, _ = fail_times(5)
    decision = attempt(locked, matched=True, now=T0 + timedelta(hours=1))
    assert decision.outcome is VerifyOutcome.LOCKED
    assert decision.state == locked
    assert decision.locked_until == T0 + timedelta(hours=24)


def test_lock_expiry_resets_the_count() -> None:
    locked, _ = fail_times(5)
    later = T0 + timedelta(hours=24)
    assert not locked.is_locked(later)
    assert locked.attempts_left(POLICY, later) == 5
    decision = attempt(locked, now=later)
    assert decision.outcome is VerifyOutcome.MISMATCH
    assert decision.attempts_left == 4
    assert attempt(locked, matched=True, now=later).outcome is VerifyOutcome.VERIFIED


def test_success_resets_the_count() -> None:
    state, _ = fail_times(4)
    decision = attempt(state, matched=True)
    assert decision.outcome is VerifyOutcome.VERIFIED
    assert decision.state == LockState()
    assert attempt(decision.state).attempts_left == 4


def test_invalid_suffix_costs_no_attempt() -> None:
    state, _ = fail_times(4)
    decision = attempt(state, valid=False)
    assert decision.outcome is VerifyOutcome.INVALID
    assert decision.state == state
    assert decision.attempts_left == 1
    assert attempt(decision.state).outcome is VerifyOutcome.LOCKED


def test_invalid_suffix_while_locked_is_still_locked() -> None:
    locked, _ = fail_times(5)
    assert attempt(locked, valid=False).outcome is VerifyOutcome.LOCKED


def test_policy_values_come_from_the_policy() -> None:
    policy = LockPolicy(max_failures=2, duration=timedelta(hours=1))
    first = decide_verification(
        suffix_valid=True, matched=False, state=LockState(), policy=policy, now=T0
    )
    second = decide_verification(
        suffix_valid=True, matched=False, state=first.state, policy=policy, now=T0
    )
    assert first.attempts_left == 1
    assert second.outcome is VerifyOutcome.LOCKED
    assert second.locked_until == T0 + timedelta(hours=1)
