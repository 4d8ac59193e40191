"""The redaction processor every log line passes through."""

from __future__ import annotations

import io
import json
import logging

import structlog

from services.common.logging import configure_logging, make_formatter, redact_pii, scrub


def test_nik_and_phones_in_free_text_are_masked() -> None:
    text = "nik 3201014507850001 from 6281234567890, +6281234567890 and 081234567890"
    masked = scrub(text)
    assert "3201014507850001" not in masked and "81234567890" not in masked
    assert masked.count("[phone]") == 3 and "[nik]" in masked


def test_suffixes_are_masked_only_in_identity_context() -> None:
    event = {"event": "tried 850001", "pii_context": "identity"}
    assert "850001" not in redact_pii(None, "info", event)["event"]
    assert "850001" in redact_pii(None, "info", {"event": "tried 850001"})["event"]


def test_personal_keys_are_masked_whole_even_nested() -> None:
    event = {
        "event": "x",
        "phone": "whatever",
        "extra": {"wa_id": "1", "name": "Siti"},
        "items": [{"to": "62811"}],
    }
    out = redact_pii(None, "info", event)
    assert out["phone"] == "[redacted]"
    assert out["extra"] == {"wa_id": "[redacted]", "name": "[redacted]"}
    assert out["items"] == [{"to": "[redacted]"}]


def test_wamids_become_stable_digests() -> None:
    wamid = "wamid.HBgNNTUxMTk4NzY1NDMyMRUCABIYFDNBMDFBMkIzQzRENUU2RjcwODkxAA=="
    once, twice = scrub(f"got {wamid}"), scrub(f"again {wamid}")
    assert wamid not in once and "HBgN" not in once
    assert once.split()[-1] == twice.split()[-1]


def test_standard_library_lines_are_redacted_too() -> None:
    configure_logging("test", "INFO", json_output=True)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(make_formatter(json_output=True))
    logging.getLogger().addHandler(handler)
    try:
        logging.getLogger("somelib").warning("sending to 6281234567890")
        structlog.get_logger("ours").info("verify", wa_id="6281234567890", note="3201014507850001")
    finally:
        logging.getLogger().removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 2
    assert "6281234567890" not in stream.getvalue() and "3201014507850001" not in stream.getvalue()
