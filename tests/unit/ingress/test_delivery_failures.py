"""What the dialog does with a message that failed for good: note it, nudge only when a later
message may get through and not more than hourly, and apologise once on the next turn."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from importlib import resources

import pytest

from services.common.contracts.notifier import SendFailed
from services.ingress.delivery_failures import NUDGE_TEMPLATE, noted
from services.ingress.dialog import Context, Conversation, Step, Turn, UserInput, handle

NOW = datetime(2021, 1, 20, 3, 0, tzinfo=UTC)
WAITING = Conversation(Step.ASK_SUFFIX, "en", {"x": 1})


def failure(reason: str, at: datetime = NOW) -> SendFailed:
    return SendFailed(command_id="wamid.1:0", to="6281200000001", reason=reason, failed_at=at)


@pytest.mark.parametrize("reason", ["attempts_exhausted", "window_closed", "failed_status"])
def test_a_failure_that_may_pass_is_noted_and_nudged(reason: str) -> None:
    conv, nudge = noted(WAITING, failure(reason))
    assert conv.step == Step.ASK_SUFFIX and conv.data["undelivered"] == reason
    assert nudge is not None and nudge.to == "6281200000001"
    assert nudge.template is not None and nudge.template.name == NUDGE_TEMPLATE
    assert nudge.template.lang == "en" and "could not be delivered" in nudge.message.body


@pytest.mark.parametrize("reason", ["permanent_error", "malformed", "template_not_configured"])
def test_a_failure_that_would_fail_again_is_noted_without_a_nudge(reason: str) -> None:
    conv, nudge = noted(WAITING, failure(reason))
    assert conv.data["undelivered"] == reason and nudge is None


def test_at_most_one_nudge_an_hour() -> None:
    conv, first = noted(WAITING, failure("attempts_exhausted"))
    _, soon = noted(conv, failure("attempts_exhausted", NOW + timedelta(minutes=59)))
    _, later = noted(conv, failure("attempts_exhausted", NOW + timedelta(minutes=61)))
    assert first is not None and soon is None and later is not None


def test_the_next_turn_apologises_once_then_answers() -> None:
    conv = WAITING.at(Step.IDLE, undelivered="permanent_error")
    turn = handle(conv, UserInput("help"), request_id="w", ctx=Context(date(2021, 1, 20)))
    assert isinstance(turn, Turn)
    assert "did not reach you" in turn.replies[0].body and len(turn.replies) >= 2
    assert turn.conversation.data.get("undelivered") is None


@pytest.mark.parametrize("lang", ["id", "en"])
def test_catalog_keys_are_unique(lang: str) -> None:
    """A key written twice would silently replace the first text."""
    raw = resources.files("services.ingress.catalog").joinpath(f"{lang}.json").read_text("utf-8")

    def unique(pairs: list[tuple[str, str]]) -> dict[str, str]:
        keys = [k for k, _ in pairs]
        assert len(keys) == len(set(keys)), [k for k in keys if keys.count(k) > 1]
        return dict(pairs)

    json.loads(raw, object_pairs_hook=unique)
