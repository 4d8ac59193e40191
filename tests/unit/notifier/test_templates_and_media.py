"""Business-initiated messages become their approved template outside the 24-hour window; images
go by uploaded media id or link, videos by link; the pair budget allows bursts then spaces
messages; the contract refuses what WhatsApp would."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from services.common.contracts.notifier import (
    ImageMessage,
    SendMessage,
    TemplateFallback,
    TextMessage,
    VideoMessage,
)
from services.common.settings import Settings, WhatsAppTemplate
from services.notifier.domain import (
    Form,
    TemplateProblem,
    choose_form,
    next_pair_tat,
    pair_allowed_at,
    template_payload,
    to_graph_payload,
    window_open,
)

TO = "6281234567890"
NOW = datetime(2021, 1, 20, 9, 0, tzinfo=UTC)
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 32).decode()
TEMPLATES = {
    "appointment_reminder": WhatsAppTemplate(
        name="vaksin_jadwal_v3", params=3, languages={"id": "id", "en": "en_US"}
    )
}


def reminder(lang: str = "id", params: list[str] | None = None) -> SendMessage:
    return SendMessage(
        command_id="remind-1",
        to=TO,
        reply_to="wamid.OLD",
        message=TextMessage(body="Besok pukul 09.00 di Puskesmas Cempaka"),
        template=TemplateFallback(
            name="appointment_reminder",
            lang=lang,
            params=params if params is not None else ["Puskesmas Cempaka", "21-01-2021", "09.00"],
        ),
    )


@pytest.mark.parametrize(
    ("wrote", "is_open"),
    [
        (None, False),
        (NOW - timedelta(minutes=5), True),
        (NOW - timedelta(hours=23, minutes=49), True),
        (NOW - timedelta(hours=23, minutes=51), False),  # about to close: treated as closed
        (NOW - timedelta(days=3), False),
    ],
)
def test_the_window_is_24_hours_from_the_users_last_message(
    wrote: datetime | None, is_open: bool
) -> None:
    assert window_open(wrote, NOW) is is_open


def test_a_reply_is_always_free_form() -> None:
    cmd = SendMessage(command_id="c", to=TO, message=TextMessage(body="Halo"))
    assert choose_form(cmd, None, NOW, force_template=False) is Form.MESSAGE


def test_a_business_initiated_message_is_a_template_only_outside_the_window() -> None:
    cmd = reminder()
    assert choose_form(cmd, NOW - timedelta(hours=1), NOW, force_template=False) is Form.MESSAGE
    assert choose_form(cmd, NOW - timedelta(days=2), NOW, force_template=False) is Form.TEMPLATE
    assert choose_form(cmd, NOW - timedelta(hours=1), NOW, force_template=True) is Form.TEMPLATE


def test_the_template_comes_from_the_configuration_in_the_users_language() -> None:
    payload = template_payload(reminder(lang="en"), TEMPLATES)
    assert payload["type"] == "template"
    assert payload["template"] == {
        "name": "vaksin_jadwal_v3",
        "language": {"code": "en_US"},
        "components": [
            {
                "type": "body",
                "parameters": [
                    {"type": "text", "text": "Puskesmas Cempaka"},
                    {"type": "text", "text": "21-01-2021"},
                    {"type": "text", "text": "09.00"},
                ],
            }
        ],
    }
    assert "context" not in payload  # no quoting a days-old message
    assert payload["biz_opaque_callback_data"] == "remind-1"


def test_an_unknown_language_falls_back_to_indonesian() -> None:
    payload = template_payload(reminder(lang="jv"), TEMPLATES)
    assert payload["template"]["language"] == {"code": "id"}


def test_template_parameters_lose_what_meta_refuses() -> None:
    params = ["Puskesmas\nCempaka", "21-01-2021\t", "09.00      pagi"]
    payload = template_payload(reminder(params=params), TEMPLATES)
    texts = [p["text"] for p in payload["template"]["components"][0]["parameters"]]
    assert texts == ["Puskesmas Cempaka", "21-01-2021", "09.00 pagi"]


def test_a_template_not_configured_or_with_wrong_parameters_is_refused_here() -> None:
    with pytest.raises(TemplateProblem) as missing:
        template_payload(reminder(), {})
    assert missing.value.reason == "template_not_configured"
    with pytest.raises(TemplateProblem) as mismatch:
        template_payload(reminder(params=["only one"]), TEMPLATES)
    assert mismatch.value.reason == "template_params_mismatch"
    plain = SendMessage(command_id="c", to=TO, message=TextMessage(body="x"))
    with pytest.raises(TemplateProblem) as none:
        template_payload(plain, TEMPLATES)
    assert none.value.reason == "window_closed"


def test_the_local_templates_cover_the_dialogs_reminder() -> None:
    templates = Settings().whatsapp_templates
    assert templates["rescreen_reminder"].params == 1
    assert set(templates["rescreen_reminder"].languages) == {"id", "en"}


def test_an_inline_png_is_sent_by_its_uploaded_media_id() -> None:
    cmd = SendMessage(
        command_id="c", to=TO, message=ImageMessage(png_base64=PNG, caption="Tiket ABC123")
    )
    payload = to_graph_payload(cmd, media_id="1479537139650973")
    assert payload["type"] == "image"
    assert payload["image"] == {"id": "1479537139650973", "caption": "Tiket ABC123"}
    with pytest.raises(ValueError, match="upload it first"):
        to_graph_payload(cmd)


def test_images_by_link_and_videos_by_link() -> None:
    image = SendMessage(
        command_id="c", to=TO, message=ImageMessage(link="https://cdn.example.org/t.png")
    )
    assert to_graph_payload(image)["image"] == {"link": "https://cdn.example.org/t.png"}
    video = SendMessage(
        command_id="c",
        to=TO,
        message=VideoMessage(link="https://example.org/vaksin.mp4", caption="Cara kerja vaksin"),
    )
    assert to_graph_payload(video)["video"] == {
        "link": "https://example.org/vaksin.mp4",
        "caption": "Cara kerja vaksin",
    }


@pytest.mark.parametrize(
    "fields",
    [
        {},  # neither PNG nor link
        {"png_base64": PNG, "link": "https://example.org/t.png"},  # both
        {"png_base64": base64.b64encode(b"GIF89a....").decode()},  # not a PNG
        {"png_base64": "not base64!"},
        {"link": "http://example.org/t.png"},  # not https
        {"link": "https://example.org/t.png", "caption": "x" * 1025},
    ],
)
def test_the_contract_refuses_images_whatsapp_would_refuse(fields: dict) -> None:
    with pytest.raises(ValidationError):
        ImageMessage(**fields)


def test_a_video_needs_an_https_link() -> None:
    with pytest.raises(ValidationError):
        VideoMessage(link="ftp://example.org/v.mp4")


def test_new_kinds_travel_in_a_send_command() -> None:
    cmd = SendMessage(command_id="c", to=TO, message=ImageMessage(png_base64=PNG))
    again = SendMessage.model_validate_json(cmd.model_dump_json())
    assert isinstance(again.message, ImageMessage)
    assert again.message.png() == base64.b64decode(PNG)


def test_the_pair_budget_allows_a_burst_then_one_per_interval() -> None:
    tat = None
    sent_at = []
    now = NOW
    for _ in range(6):
        allowed = pair_allowed_at(tat, now, interval=6.0, burst=3)
        if allowed is not None:
            now = allowed
        sent_at.append((now - NOW).total_seconds())
        tat = next_pair_tat(tat, now, interval=6.0)
    assert sent_at == [0.0, 0.0, 0.0, 6.0, 12.0, 18.0]


def test_an_idle_user_has_the_whole_burst_again() -> None:
    tat = NOW + timedelta(seconds=12)  # two messages ahead
    assert pair_allowed_at(tat, NOW + timedelta(minutes=5), interval=6.0, burst=3) is None
    assert next_pair_tat(tat, NOW + timedelta(minutes=5), interval=6.0) == NOW + timedelta(
        minutes=5, seconds=6
    )
