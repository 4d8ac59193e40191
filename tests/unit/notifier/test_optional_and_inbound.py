"""An optional message (the vaccine video) is skipped, not sent, while the user's 24-hour window is
closed; recent inbound messages to our number take a slot of its throughput budget."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.common.contracts.notifier import (
    SendMessage,
    TemplateFallback,
    VideoMessage,
)
from services.common.contracts.whatsapp import InboundMessage
from services.notifier.domain import (
    FINISHED,
    INBOUND_SLOT_HORIZON,
    PENDING,
    SKIPPED,
    Form,
    choose_form,
    inbound_slots,
    skippable,
)

TO = "6281234567890"
NUMBER = "100000000000001"
NOW = datetime(2021, 1, 20, 9, 0, tzinfo=UTC)
OPEN = NOW - timedelta(hours=2)
CLOSED = NOW - timedelta(days=2)


def video(*, optional: bool, template: TemplateFallback | None = None) -> SendMessage:
    return SendMessage(
        command_id="video:1",
        to=TO,
        message=VideoMessage(link="https://example.org/vaksin.mp4", caption="Cara kerja vaksin"),
        optional=optional,
        template=template,
    )


@pytest.mark.parametrize(
    ("wrote", "form"),
    [(None, Form.SKIP), (CLOSED, Form.SKIP), (OPEN, Form.MESSAGE)],
)
def test_an_optional_message_is_skipped_only_while_the_window_is_closed(
    wrote: datetime | None, form: Form
) -> None:
    assert choose_form(video(optional=True), wrote, NOW, force_template=False) is form


def test_a_message_that_is_not_optional_is_never_skipped() -> None:
    assert choose_form(video(optional=False), CLOSED, NOW, force_template=False) is Form.MESSAGE


def test_optional_does_not_apply_to_a_message_with_a_template() -> None:
    cmd = video(optional=True, template=TemplateFallback(name="conversation_resume"))
    assert not skippable(cmd)
    assert choose_form(cmd, CLOSED, NOW, force_template=False) is Form.TEMPLATE
    assert choose_form(cmd, OPEN, NOW, force_template=False) is Form.MESSAGE


def test_a_command_from_a_sender_that_does_not_know_the_field_is_not_optional() -> None:
    body = {"command_id": "c", "to": TO, "message": {"kind": "text", "body": "Halo"}}
    cmd = SendMessage.model_validate(body)
    assert cmd.optional is False
    assert choose_form(cmd, CLOSED, NOW, force_template=False) is Form.MESSAGE


def test_skipped_is_a_finished_status_and_pending_is_not() -> None:
    assert SKIPPED in FINISHED
    assert PENDING not in FINISHED


def inbound(age: timedelta, number: str = NUMBER) -> InboundMessage:
    return InboundMessage(
        wamid=f"wamid.{age.total_seconds()}",
        wa_id=TO,
        phone_number_id=number,
        timestamp=int((NOW - age).timestamp()),
        type="text",
        text="VAKSIN",
    )


def test_each_recent_inbound_message_to_our_number_takes_a_slot() -> None:
    messages = [inbound(timedelta(seconds=0)), inbound(timedelta(seconds=1))] * 3
    assert inbound_slots(messages, NUMBER, NOW) == 6


def test_an_inbound_message_older_than_the_horizon_takes_no_slot_now() -> None:
    messages = [
        inbound(INBOUND_SLOT_HORIZON - timedelta(seconds=1)),
        inbound(INBOUND_SLOT_HORIZON),
        inbound(timedelta(hours=1)),  # replayed after an outage
    ]
    assert inbound_slots(messages, NUMBER, NOW) == 1


def test_an_inbound_message_to_another_number_takes_none_of_ours() -> None:
    messages = [inbound(timedelta(0), number="100000000000002"), inbound(timedelta(0))]
    assert inbound_slots(messages, NUMBER, NOW) == 1


def test_a_message_stamped_ahead_of_our_clock_takes_a_slot() -> None:
    assert inbound_slots([inbound(timedelta(seconds=-2))], NUMBER, NOW) == 1
