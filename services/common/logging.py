"""structlog setup shared by every service, with PII redaction before anything is rendered.

Every line (our own and the standard-library ones from FastStream, aiohttp, asyncpg) goes through
`redact_pii`: 16-digit runs (NIK-like) and Indonesian or international phone numbers are masked in
every string value, keys that name personal data are masked whole, and in the identity context
(`pii_context="identity"` bound on the logger) any 6-digit run, i.e. a NIK suffix, is masked too.
"""

from __future__ import annotations

import hashlib
import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog
from opentelemetry import trace

NIK_RE = re.compile(r"(?<!\d)\d{16}(?!\d)")
# +62 / 62 / 0 followed by 8 and 7-12 digits (Indonesian mobiles), or any 10-15 digit run
# (wa_ids of other countries). Runs longer than 15 digits are caught by NIK_RE or left as ids.
PHONE_RE = re.compile(r"(?<![\d])(?:\+?62|0)8\d{7,12}(?!\d)|(?<![\d.])\+?\d{10,15}(?![\d])")
SUFFIX_RE = re.compile(r"(?<!\d)\d{6}(?!\d)")
# Meta's wamids are base64 that embeds the user's phone number: keep a short digest instead, so
# log lines still correlate without carrying the number in an encoded form.
WAMID_RE = re.compile(r"wamid\.[A-Za-z0-9+/=_-]+")
SENSITIVE_KEYS = frozenset(
    {
        "nik",
        "phone",
        "wa_id",
        "to",
        "from",
        "from_",
        "recipient",
        "recipient_id",
        "name",
        "suffix",
        "text",
        "body",
        "dob",
        "birth_date",
        "full_name",
        "profile_name",
    }
)
MASK = "[redacted]"
_TRACE_KEYS = frozenset({"trace_id", "span_id"})


def _wamid_digest(match: re.Match[str]) -> str:
    return "wamid#" + hashlib.sha256(match.group().encode()).hexdigest()[:12]


def scrub(value: str, *, suffixes: bool = False) -> str:
    value = WAMID_RE.sub(_wamid_digest, value)
    value = NIK_RE.sub("[nik]", value)
    value = PHONE_RE.sub("[phone]", value)
    if suffixes:
        value = SUFFIX_RE.sub("[suffix]", value)
    return value


def _scrub_any(value: Any, suffixes: bool) -> Any:
    if isinstance(value, str):
        return scrub(value, suffixes=suffixes)
    if isinstance(value, dict):
        return {
            k: MASK if str(k).lower() in SENSITIVE_KEYS else _scrub_any(v, suffixes)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_scrub_any(v, suffixes) for v in value]
    return value


def redact_pii(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    suffixes = event_dict.get("pii_context") == "identity"
    for key in list(event_dict):
        if key in _TRACE_KEYS:
            continue  # hex ids (add_trace_ids), whose digit runs could look like a phone number
        if key.lower() in SENSITIVE_KEYS:
            event_dict[key] = MASK
        else:
            event_dict[key] = _scrub_any(event_dict[key], suffixes)
    return event_dict


def add_trace_ids(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """`trace_id` and `span_id` of the current span, when tracing is on (services/common/
    tracing.py): a log line leads to its trace, and back. Off, the current span is invalid."""
    span_context = trace.get_current_span().get_span_context()
    if span_context.is_valid:
        event_dict.setdefault("trace_id", format(span_context.trace_id, "032x"))
        event_dict.setdefault("span_id", format(span_context.span_id, "016x"))
    return event_dict


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        add_trace_ids,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def make_formatter(json_output: bool) -> logging.Formatter:
    renderer: Any = (
        structlog.processors.JSONRenderer() if json_output else structlog.dev.ConsoleRenderer()
    )
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            *_shared_processors(),
            structlog.stdlib.ExtraAdder(),
            structlog.processors.format_exc_info,
        ],
        # Redaction runs last before rendering, for our lines and the standard library's alike.
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            redact_pii,
            renderer,
        ],
    )


def configure_logging(
    service: str, level: str = "INFO", json_output: bool | None = None
) -> structlog.stdlib.BoundLogger:
    """Route structlog and the standard library through one redacting pipeline to stderr."""
    if json_output is None:
        json_output = not sys.stderr.isatty()
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(make_formatter(json_output))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("asyncio", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    structlog.contextvars.bind_contextvars(service=service)
    return structlog.get_logger(service)
