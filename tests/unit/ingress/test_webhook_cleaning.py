"""The parser cleans what it keeps so that every item can be published and stored downstream:
valid UTF-8 without NUL, texts cut at 4,096 characters, bounded ids, strings and numbers."""

from __future__ import annotations

import json
from typing import Any

import pytest

from services.ingress.webhook import (
    ERROR_CODES_MAX,
    ID_MAX,
    SHORT_MAX,
    TEXT_MAX,
    parse_notification,
)

NATS_MAX_PAYLOAD = 1024 * 1024


def _envelope(*messages: Any, statuses: list[Any] | None = None, metadata: Any = None) -> dict:
    value: dict = {
        "messaging_product": "whatsapp",
        "metadata": {"phone_number_id": "PNID"} if metadata is None else metadata,
        "messages": list(messages),
    }
    if statuses:
        value["statuses"] = statuses
    return {"entry": [{"id": "WABA", "changes": [{"field": "messages", "value": value}]}]}


def _text(body: Any, **fields: Any) -> dict:
    return (
        {"from": "628111", "id": "w1", "timestamp": "1700000000", "type": "text"}
        | {"text": {"body": body}}
        | fields
    )


def _button(reply_id: Any, title: Any) -> dict:
    return {
        "from": "628111",
        "id": "w2",
        "type": "interactive",
        "interactive": {"type": "button_reply", "button_reply": {"id": reply_id, "title": title}},
    }


def _storable(model: Any) -> bytes:
    """What the edge publishes: must encode, and fit NATS's default max_payload."""
    data = model.model_dump_json().encode("utf-8")
    assert len(data) < NATS_MAX_PAYLOAD
    return data


def test_lone_surrogate_in_text_becomes_replacement_character() -> None:
    # As Meta's JSON would carry it: an escaped lone surrogate, valid JSON, not valid UTF-8.
    body = b'{"entry":[{"changes":[{"field":"messages","value":{"messages":[{"from":"628111",'
    body += b'"id":"w1","type":"text","text":{"body":"a\\ud800b\\udfffc"}}]}}]}]}'
    [message] = parse_notification(json.loads(body)).messages
    assert message.text == "a\ufffdb\ufffdc"
    _storable(message)


def test_surrogate_bytes_in_raw_body_become_replacement_characters() -> None:
    # json.loads(bytes) decodes with surrogatepass: CESU-8 bytes of U+D800 reach the str.
    body = json.dumps(_envelope(_text("x"))).encode().replace(b'"x"', b'"\xed\xa0\x80"')
    [message] = parse_notification(json.loads(body)).messages
    assert message.text == "\ufffd"
    _storable(message)


def test_valid_surrogate_pair_is_kept_as_the_character() -> None:
    [message] = parse_notification(json.loads(r'{"entry":[{"changes":[{"field":"messages",'
        r'"value":{"messages":[{"from":"1","id":"w","type":"text","text":{"body":"\ud83d\udc89"}}]}}]}]}'
    )).messages  # fmt: skip
    assert message.text == "\U0001f489"


def test_surrogates_and_nul_are_cleaned_in_every_kept_string() -> None:
    bad = "\ud800\x00"
    message = _button(f"nakes.yes{bad}", f"Ya{bad}") | {"from": f"62{bad}", "id": f"w{bad}"}
    status = {"id": f"s{bad}", "status": f"read{bad}", "recipient_id": f"62{bad}"}
    parsed = parse_notification(
        _envelope(message, statuses=[status], metadata={"phone_number_id": f"P{bad}"})
    )
    [m], [s] = parsed.messages, parsed.statuses
    clean = "\ufffd\ufffd"
    assert (m.wamid, m.wa_id, m.phone_number_id) == (f"w{clean}", f"62{clean}", f"P{clean}")
    assert (m.text, m.reply_id) == (f"Ya{clean}", f"nakes.yes{clean}")
    assert (s.wamid, s.status, s.recipient_id) == (f"s{clean}", f"read{clean}", f"62{clean}")
    other_type = parse_notification(_envelope({"from": "1", "id": "w", "type": f"x{bad}"}))
    assert other_type.messages[0].type == f"x{clean}"
    for item in (m, s, other_type.messages[0]):
        assert "\x00" not in _storable(item).decode()


@pytest.mark.parametrize(("length", "kept"), [(TEXT_MAX, TEXT_MAX), (1_500_000, TEXT_MAX)])
def test_text_is_cut_at_whatsapps_4096_characters(length: int, kept: int) -> None:
    [message] = parse_notification(_envelope(_text("é" * length))).messages
    assert message.text == "é" * kept
    _storable(message)


def test_reply_title_id_and_type_are_capped() -> None:
    [reply] = parse_notification(_envelope(_button("i" * 10_000, "t" * 10_000))).messages
    assert (reply.reply_id, reply.text) == ("i" * SHORT_MAX, "t" * SHORT_MAX)
    [other] = parse_notification(_envelope({"from": "1", "id": "w", "type": "y" * 10_000})).messages
    assert other.type == "y" * SHORT_MAX


@pytest.mark.parametrize("field", ["id", "from"])
def test_message_with_overlong_id_is_ignored_not_cut(field: str) -> None:
    # A cut wamid would be another id (the dedupe key): no real id is this long.
    at_limit = parse_notification(_envelope(_text("x", **{field: "7" * ID_MAX})))
    assert len(at_limit.messages) == 1
    over = parse_notification(_envelope(_text("x", **{field: "7" * (ID_MAX + 1)})))
    assert over.messages == [] and over.ignored == 1


def test_status_with_overlong_id_is_ignored_and_overlong_recipient_dropped() -> None:
    long_id = "s" * (ID_MAX + 1)
    parsed = parse_notification(
        _envelope(
            statuses=[
                {"id": long_id, "status": "read"},
                {"id": "s2", "status": "read", "recipient_id": long_id},
            ]
        )
    )
    assert [(s.wamid, s.recipient_id) for s in parsed.statuses] == [("s2", None)]
    assert parsed.ignored == 1


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        ("1700000000", 1700000000),
        (1700000000, 1700000000),
        (float("inf"), 0),
        (float("nan"), 0),
        (-5, 0),
        (10**30, 0),
        ("9" * 5000, 0),
        ([], 0),
        ({"a": 1}, 0),
        (None, 0),
        ("soon", 0),
    ],
)
def test_timestamp_out_of_range_or_wrong_type_is_zero(timestamp: Any, expected: int) -> None:
    [message] = parse_notification(_envelope(_text("x", timestamp=timestamp))).messages
    assert message.timestamp == expected


def test_error_codes_fit_postgres_integer_and_are_capped() -> None:
    errors = [{"code": 131047}, {"code": 2**31}, {"code": "x"}] + [{"code": 1}] * 500
    parsed = parse_notification(
        _envelope(statuses=[{"id": "s", "status": "failed", "errors": errors}])
    )
    codes = parsed.statuses[0].error_codes
    assert codes[:3] == [131047, 0, 0] and len(codes) == ERROR_CODES_MAX


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [({"phone_number_id": 100000000000001}, "100000000000001"), ({"phone_number_id": {}}, ""),
     ({"phone_number_id": True}, ""), ("PNID", ""), ({"phone_number_id": "x" * 300}, "")],
)  # fmt: skip
def test_phone_number_id_is_a_short_string(metadata: Any, expected: str) -> None:
    [message] = parse_notification(_envelope(_text("x"), metadata=metadata)).messages
    assert message.phone_number_id == expected


@pytest.mark.parametrize(
    "message",
    [
        _text(None),
        _text(42),
        _text(["VAKSIN"]),
        _text({"$ne": ""}),
        {"from": "1", "id": "w", "type": "text", "text": "VAKSIN"},
        {"from": "1", "id": "w", "type": 7},
        {"from": "1", "id": "w", "type": "interactive", "interactive": []},
        _button(5, None),
    ],
)
def test_wrong_typed_fields_keep_the_message_without_them(message: dict) -> None:
    [parsed] = parse_notification(_envelope(message)).messages
    assert parsed.text is None and parsed.reply_id is None
    assert isinstance(parsed.type, str) and parsed.type
    _storable(parsed)
