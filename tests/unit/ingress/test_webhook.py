"""Signature checking, handshake and envelope parsing: pure functions, every fixture body."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.ingress.webhook import (
    Signature,
    check_handshake,
    check_signature,
    parse_notification,
    sign,
)

FIXTURES = Path(__file__).parents[2] / "fixtures" / "webhooks"
SECRET = "app-secret"


def fixture_bodies() -> list[tuple[str, bytes]]:
    bodies: list[tuple[str, bytes]] = []
    for path in sorted(FIXTURES.glob("*/*.json")):
        if path.parent.name == "pywa":
            for key, envelope in json.loads(path.read_text()).items():
                bodies.append((f"{path.name}#{key}", json.dumps(envelope).encode()))
        else:
            bodies.append((path.name, path.read_bytes()))
    return bodies


def test_signature_over_raw_bytes_matches_meta_format() -> None:
    body = b'{"object":"whatsapp_business_account"}'
    header = sign(body, SECRET)
    assert header.startswith("sha256=") and len(header) == 7 + 64
    assert check_signature(body, header, SECRET) is Signature.OK


def test_signature_known_vector() -> None:
    # HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog") from RFC 4231-style tables.
    body = b"The quick brown fox jumps over the lazy dog"
    assert sign(body, "key") == (
        "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
    )


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, Signature.MISSING),
        ("", Signature.MISSING),
        ("sha256=" + "0" * 64, Signature.INVALID),
        ("sha1=abc", Signature.INVALID),
        ("garbage", Signature.INVALID),
    ],
)
def test_missing_or_wrong_signature_is_refused(header: str | None, expected: Signature) -> None:
    assert check_signature(b"{}", header, SECRET) is expected


def test_signature_breaks_when_one_byte_changes() -> None:
    body = b'{"text":"caf\\u00e9"}'
    header = sign(body, SECRET)
    assert (
        check_signature(body.replace(b"\\u00e9", "é".encode()), header, SECRET) is Signature.INVALID
    )


def test_signature_with_other_secret_is_refused() -> None:
    body = b"{}"
    assert check_signature(body, sign(body, "other"), SECRET) is Signature.INVALID


def test_handshake_echoes_challenge_only_for_right_token() -> None:
    ok = {"hub.mode": "subscribe", "hub.verify_token": "tok", "hub.challenge": "1158201444"}
    assert check_handshake(ok, "tok") == "1158201444"
    assert check_handshake({**ok, "hub.verify_token": "nope"}, "tok") is None
    assert check_handshake({**ok, "hub.mode": "unsubscribe"}, "tok") is None
    assert check_handshake({}, "tok") is None


def _envelope(*messages: dict, statuses: list[dict] | None = None) -> dict:
    value: dict = {"messaging_product": "whatsapp", "metadata": {"phone_number_id": "PNID"}}
    if messages:
        value["messages"] = list(messages)
    if statuses:
        value["statuses"] = statuses
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": value}]}],
    }


def test_text_button_list_and_template_replies_are_normalised() -> None:
    payload = _envelope(
        {
            "from": "628111",
            "id": "w1",
            "timestamp": "1700000000",
            "type": "text",
            "text": {"body": "VAKSIN"},
        },
        {
            "from": "628111",
            "id": "w2",
            "timestamp": "1700000001",
            "type": "interactive",
            "interactive": {
                "type": "button_reply",
                "button_reply": {"id": "nakes.yes", "title": "Ya"},
            },
        },
        {
            "from": "628111",
            "id": "w3",
            "timestamp": "1700000002",
            "type": "interactive",
            "interactive": {"type": "list_reply", "list_reply": {"id": "loc.F1", "title": "RS"}},
        },
        {
            "from": "628111",
            "id": "w4",
            "timestamp": "1700000003",
            "type": "button",
            "button": {"payload": "slot.ok", "text": "OK"},
        },
    )
    messages = parse_notification(payload).messages
    assert [(m.wamid, m.text, m.reply_id) for m in messages] == [
        ("w1", "VAKSIN", None),
        ("w2", "Ya", "nakes.yes"),
        ("w3", "RS", "loc.F1"),
        ("w4", "OK", "slot.ok"),
    ]
    assert all(m.phone_number_id == "PNID" and m.wa_id == "628111" for m in messages)
    assert messages[0].timestamp == 1700000000


def test_batched_entries_and_changes_are_all_walked() -> None:
    one = _envelope({"from": "1", "id": "a", "type": "text", "text": {"body": "x"}})
    two = _envelope(
        {"from": "2", "id": "b", "type": "text", "text": {"body": "y"}},
        statuses=[{"id": "s1", "status": "read", "timestamp": "5"}],
    )
    payload = {"object": "whatsapp_business_account", "entry": one["entry"] + two["entry"]}
    parsed = parse_notification(payload)
    assert [m.wamid for m in parsed.messages] == ["a", "b"]
    assert [(s.wamid, s.status) for s in parsed.statuses] == [("s1", "read")]


def test_failed_status_keeps_error_codes() -> None:
    status = {
        "id": "s",
        "status": "failed",
        "timestamp": "1",
        "recipient_id": "62811",
        "errors": [{"code": 131047, "title": "Re-engagement message"}],
    }
    parsed = parse_notification(_envelope(statuses=[status]))
    assert parsed.statuses[0].error_codes == [131047]


@pytest.mark.parametrize(
    "payload",
    [
        None,
        [],
        "text",
        42,
        {"entry": "x"},
        {"entry": [None, {"changes": [None, 3]}]},
        {"entry": [{"changes": [{"field": "messages", "value": {"messages": [{"id": 5}]}}]}]},
        {"entry": [{"changes": [{"field": "messages", "value": {"messages": [{"from": "1"}]}}]}]},
    ],
)
def test_malformed_shapes_are_ignored_not_fatal(payload: object) -> None:
    parsed = parse_notification(payload)
    assert parsed.messages == [] and parsed.statuses == []


@pytest.mark.parametrize(("name", "body"), fixture_bodies(), ids=[n for n, _ in fixture_bodies()])
def test_every_fixture_parses_without_error(name: str, body: bytes) -> None:
    payload = json.loads(body)
    parsed = parse_notification(payload)
    changes = [c for e in payload.get("entry", []) for c in e.get("changes", [])]
    if all(c.get("field") != "messages" for c in changes):
        assert parsed.messages == [] and parsed.statuses == [], name
    for message in parsed.messages:
        assert message.wamid and message.wa_id


def test_fixture_set_covers_messages_statuses_and_other_fields() -> None:
    parsed = [parse_notification(json.loads(body)) for _, body in fixture_bodies()]
    assert sum(len(p.messages) for p in parsed) >= 30
    assert sum(len(p.statuses) for p in parsed) >= 8
    assert sum(p.ignored for p in parsed) >= 20
