"""The notifier's pure rules: Cloud API rendering (message or template), the 24-hour window,
error classes, backoff, the pair budget, status order."""

from __future__ import annotations

import pytest

from services.common.contracts.notifier import (
    Button,
    ButtonsMessage,
    ListMessage,
    ListRow,
    ListSection,
    SendMessage,
    TextMessage,
)
from services.notifier.domain import (
    BACKOFF_CAP,
    PAIR_BACKOFF_CAP,
    RETRY_AFTER_CAP,
    ErrorClass,
    classify_error,
    normalize_status,
    retry_delay,
    status_advances,
    to_graph_payload,
)

TO = "6281234567890"


def test_text_renders_as_cloud_api_text_without_context() -> None:
    cmd = SendMessage(command_id="c1", to=TO, message=TextMessage(body="Halo"))
    assert to_graph_payload(cmd) == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": TO,
        "biz_opaque_callback_data": "c1",
        "type": "text",
        "text": {"preview_url": False, "body": "Halo"},
    }


def test_reply_to_becomes_context_message_id() -> None:
    cmd = SendMessage(
        command_id="c1", to=TO, message=TextMessage(body="Halo"), reply_to="wamid.IN1"
    )
    assert to_graph_payload(cmd)["context"] == {"message_id": "wamid.IN1"}


def test_buttons_render_as_interactive_reply_buttons() -> None:
    message = ButtonsMessage(
        body="Apakah Anda tenaga kesehatan?",
        buttons=[Button(id="nakes.yes", title="Ya"), Button(id="nakes.no", title="Tidak")],
        footer="Kemenkes",
    )
    payload = to_graph_payload(SendMessage(command_id="c2", to=TO, message=message))
    assert payload["type"] == "interactive"
    assert payload["interactive"] == {
        "type": "button",
        "body": {"text": "Apakah Anda tenaga kesehatan?"},
        "footer": {"text": "Kemenkes"},
        "action": {
            "buttons": [
                {"type": "reply", "reply": {"id": "nakes.yes", "title": "Ya"}},
                {"type": "reply", "reply": {"id": "nakes.no", "title": "Tidak"}},
            ]
        },
    }
    assert "context" not in payload


def test_list_renders_sections_rows_and_optional_description() -> None:
    message = ListMessage(
        body="Pilih lokasi",
        button="Pilih",
        sections=[
            ListSection(
                title="Puskesmas",
                rows=[
                    ListRow(id="loc.P1", title="Puskesmas A", description="Jl. Merdeka 1"),
                    ListRow(id="loc.P2", title="Puskesmas B"),
                ],
            )
        ],
    )
    payload = to_graph_payload(SendMessage(command_id="c3", to=TO, message=message))
    assert payload["interactive"] == {
        "type": "list",
        "body": {"text": "Pilih lokasi"},
        "action": {
            "button": "Pilih",
            "sections": [
                {
                    "title": "Puskesmas",
                    "rows": [
                        {"id": "loc.P1", "title": "Puskesmas A", "description": "Jl. Merdeka 1"},
                        {"id": "loc.P2", "title": "Puskesmas B"},
                    ],
                }
            ],
        },
    }


@pytest.mark.parametrize(
    ("http_status", "code", "expected"),
    [
        (None, None, ErrorClass.TRANSIENT),  # network error, timeout
        (500, None, ErrorClass.TRANSIENT),
        (503, 131016, ErrorClass.TRANSIENT),
        (429, None, ErrorClass.TRANSIENT),
        (400, 1, ErrorClass.TRANSIENT),
        (400, 2, ErrorClass.TRANSIENT),
        (400, 4, ErrorClass.TRANSIENT),
        (400, 80007, ErrorClass.TRANSIENT),
        (400, 130429, ErrorClass.TRANSIENT),
        (400, 131000, ErrorClass.TRANSIENT),
        (400, 131016, ErrorClass.TRANSIENT),
        (400, 131056, ErrorClass.TRANSIENT),
        (400, 131057, ErrorClass.TRANSIENT),
        (400, 100, ErrorClass.PERMANENT),
        (400, 131026, ErrorClass.PERMANENT),
        (400, 131047, ErrorClass.WINDOW_CLOSED),
        (400, 131053, ErrorClass.MEDIA_INVALID),
        (401, 190, ErrorClass.PERMANENT),
        (400, 132000, ErrorClass.PERMANENT),
        (400, 131030, ErrorClass.PERMANENT),
        (400, None, ErrorClass.PERMANENT),
    ],
)
def test_error_classification(http_status: int | None, code: int | None, expected: ErrorClass):
    assert classify_error(http_status, code) is expected


def test_backoff_doubles_from_one_second_up_to_the_cap() -> None:
    delays = [retry_delay(attempt) for attempt in range(1, 10)]
    assert delays[:6] == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0]
    assert delays[6:] == [BACKOFF_CAP] * 3


def test_retry_after_wins_over_backoff_and_is_capped() -> None:
    assert retry_delay(1, retry_after=7) == 7.0
    assert retry_delay(6, retry_after=0) == 0.0
    assert retry_delay(1, retry_after=10**6) == RETRY_AFTER_CAP


def test_pair_rate_limit_backs_off_by_powers_of_four() -> None:
    delays = [retry_delay(attempt, code=131056) for attempt in range(1, 7)]
    assert delays == [1.0, 4.0, 16.0, 64.0, 256.0, PAIR_BACKOFF_CAP]
    assert retry_delay(3, retry_after=2, code=131056) == 2.0


def test_maintenance_waits_about_a_minute() -> None:
    assert retry_delay(1, code=131057) == 60.0


def test_jitter_keeps_delay_in_the_upper_half() -> None:
    assert retry_delay(3, jitter=0.0) == 2.0
    assert retry_delay(3, jitter=0.999) == pytest.approx(4.0, rel=1e-3)
    assert retry_delay(3, retry_after=5, jitter=0.0) == 5.0  # Retry-After is not jittered


@pytest.mark.parametrize(
    ("current", "new", "advances"),
    [
        ("accepted", "sent", True),
        ("sent", "delivered", True),
        ("accepted", "read", True),
        ("delivered", "read", True),
        ("delivered", "sent", False),
        ("read", "delivered", False),
        ("delivered", "delivered", False),
        ("accepted", "failed", True),
        ("sent", "failed", True),
        ("delivered", "failed", False),
        ("read", "failed", False),
        ("failed", "read", False),
        ("failed", "failed", False),
    ],
)
def test_status_never_moves_backwards(current: str, new: str, advances: bool) -> None:
    assert status_advances(current, new) is advances


def test_played_counts_as_read_and_unknown_statuses_are_untracked() -> None:
    assert normalize_status("played") == "read"
    assert normalize_status("DELIVERED") == "delivered"
    assert normalize_status("deleted") is None
