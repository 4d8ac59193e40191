"""OpenTelemetry tracing of one message end to end: off, and costing nothing, unless configured.

On when the environment asks for it (`configure_tracing`, called once per process):
- `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (OTLP over HTTP/protobuf,
  e.g. a collector or Jaeger on :4318), with `OTEL_TRACES_EXPORTER` unset or `otlp`;
- `OTEL_TRACES_EXPORTER=console` (spans on stdout) or `otlp` (the SDK's default endpoint);
- `VAKSIN_TRACE_FILE=PATH`: spans as JSON lines appended to PATH, what `vaksin up --trace` sets
  and `vaksin trace WAMID` reads (no collector needed).
`OTEL_TRACES_EXPORTER=none` or `OTEL_SDK_DISABLED=true` keep it off. The other `OTEL_*`
variables (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER[_ARG]`,
`OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_BSP_*`) mean what the SDK documents.

When off, nothing is installed: no FastStream middleware (`make_broker`), `span()` hands back one
shared null context, `current_traceparent()` is None; the hot paths check `enabled()` first.

Trace context crosses NATS in the W3C `traceparent` header (FastStream's NatsTelemetryMiddleware
on every broker; `inject()` for the raw nats-py publishes), and crosses Postgres with the rows
that leave later (outbox rows, the notifier's queue): `current_traceparent()` is stored, and
`span(..., parent=traceparent)` continues it.

Every span is redacted before export by the rules of the logs (services/common/logging.py):
NIK-like and phone-like digit runs masked, wamids replaced by their digest (`wamid#<12 hex>`),
and our own attributes named like personal data (`vaksin.*.phone`, ...) masked whole.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from services.common.logging import MASK, SENSITIVE_KEYS, scrub

__all__ = [
    "SpanKind",
    "Status",
    "StatusCode",
    "configure_tracing",
    "current_traceparent",
    "enabled",
    "exporter_configured",
    "extract",
    "inject",
    "install",
    "links_from",
    "span",
    "tracer_provider",
    "uninstall",
]

TRACE_FILE_ENV = "VAKSIN_TRACE_FILE"
TRACE_FILE = "traces.jsonl"  # under DATA_DIR, with `vaksin up --trace`
TRACEPARENT = "traceparent"
_PROPAGATOR = TraceContextTextMapPropagator()
_NULL: contextlib.nullcontext[None] = contextlib.nullcontext()
_provider: TracerProvider | None = None
_tracer: trace.Tracer | None = None


def enabled() -> bool:
    return _tracer is not None


def tracer_provider() -> TracerProvider | None:
    return _provider


def exporter_configured(env: Mapping[str, str]) -> bool:
    """Whether the environment already says where spans go (or that they go nowhere)."""
    return bool(
        env.get(TRACE_FILE_ENV)
        or env.get("OTEL_TRACES_EXPORTER")
        or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    )


def exporter_from_env(env: Mapping[str, str]) -> SpanExporter | None:
    """The exporter the environment asks for, or None: tracing stays off."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    if path := env.get(TRACE_FILE_ENV, "").strip():
        return JsonLinesExporter(Path(path))
    kind = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if kind == "none" or (not kind and not endpoint):
        return None
    if kind == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if kind in ("", "otlp"):
        protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get(
            "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
        )
        if protocol != "http/protobuf":
            raise SystemExit(
                f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol}: only http/protobuf is built in"
            )
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()  # endpoint, headers, timeout from the OTEL_* variables
    raise SystemExit(f"OTEL_TRACES_EXPORTER={kind}: use otlp, console or none")


def configure_tracing(service: str, env: Mapping[str, str] | None = None) -> bool:
    """Install tracing for this process if the environment asks for it; True when on."""
    env = os.environ if env is None else env
    exporter = exporter_from_env(env)
    if exporter is None:
        return False
    install(service, exporter, env=env)
    return True


def install(
    service: str,
    exporter: SpanExporter,
    *,
    batch: bool = True,
    env: Mapping[str, str] | None = None,
) -> TracerProvider:
    """Trace from now on, every span redacted and handed to `exporter` (tests pass an in-memory
    one with `batch=False`). The provider is ours, not OpenTelemetry's global one (which can be
    set once per process): the brokers and our spans are given it explicitly."""
    global _provider, _tracer
    env = os.environ if env is None else env
    attributes = {} if env.get("OTEL_SERVICE_NAME") else {"service.name": f"vaksin-{service}"}
    provider = TracerProvider(resource=Resource.create(attributes))
    redacting = RedactingExporter(exporter)
    provider.add_span_processor(
        BatchSpanProcessor(redacting) if batch else SimpleSpanProcessor(redacting)
    )
    _provider, _tracer = provider, provider.get_tracer("vaksin")
    return provider


def uninstall() -> None:
    """Flush and stop tracing (end of a process, or of a test)."""
    global _provider, _tracer
    provider, _provider, _tracer = _provider, None, None
    if provider is not None:
        provider.shutdown()


def span(
    name: str,
    attributes: Mapping[str, Any] | None = None,
    *,
    parent: str | Mapping[str, str] | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
    links: Sequence[Link] | None = None,
) -> contextlib.AbstractContextManager[Any]:
    """A span around a block, current inside it; `parent` continues a stored traceparent (or
    a headers mapping) instead of the current span. Off: a shared null context (yields None)."""
    if _tracer is None:
        return _NULL
    ctx = extract(parent) if parent is not None else None
    return _tracer.start_as_current_span(
        name, context=ctx, kind=kind, attributes=dict(attributes or {}), links=links
    )


def current_traceparent() -> str | None:
    """The current span as a W3C traceparent, to store with a row that leaves later."""
    if _tracer is None:
        return None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get(TRACEPARENT)


def inject(headers: dict[str, str]) -> dict[str, str]:
    """Add the current trace context to NATS headers (raw nats-py publishes); unchanged off."""
    if _tracer is not None:
        _PROPAGATOR.inject(headers)
    return headers


def extract(carrier: str | Mapping[str, str] | None) -> otel_context.Context:
    if carrier is None:
        return otel_context.Context()
    if isinstance(carrier, str):
        carrier = {TRACEPARENT: carrier}
    return _PROPAGATOR.extract(carrier)


def links_from(carriers: Sequence[Mapping[str, str] | None]) -> list[Link]:
    """Links to the traces of a batch's messages (a batch span has many parents)."""
    found: list[Link] = []
    for carrier in carriers:
        if not carrier:
            continue
        span_context = trace.get_current_span(extract(carrier)).get_span_context()
        if span_context.is_valid:
            found.append(Link(span_context))
    return found


@contextlib.contextmanager
def attached(carrier: str | Mapping[str, str] | None) -> Iterator[None]:
    """Make a stored trace context current for the block (no span of its own)."""
    if _tracer is None or not carrier:
        yield
        return
    token = otel_context.attach(extract(carrier))
    try:
        yield
    finally:
        otel_context.detach(token)


# --- redaction -----------------------------------------------------------------------------------


def redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, list | tuple):
        return tuple(redact_value(v) for v in value)
    return value


def redact_attributes(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    """The logs' rules for span attributes. Keys: a key that is itself personal data (`phone`)
    or one of ours whose last part is (`vaksin.user.phone`); OpenTelemetry's own keys end in
    words like `name` (`messaging.destination.name`) and keep them, their values scrubbed."""
    cleaned: dict[str, Any] = {}
    for key, value in (attributes or {}).items():
        lowered = key.lower()
        sensitive = lowered in SENSITIVE_KEYS or (
            lowered.startswith("vaksin.") and lowered.rsplit(".", 1)[-1] in SENSITIVE_KEYS
        )
        cleaned[key] = MASK if sensitive else redact_value(value)
    return cleaned


def redact_span(span: ReadableSpan) -> ReadableSpan:
    status = span.status
    if status.description:
        status = Status(status.status_code, scrub(status.description))
    return ReadableSpan(
        name=scrub(span.name),
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=redact_attributes(span.attributes),
        events=[
            Event(e.name, redact_attributes(e.attributes), timestamp=e.timestamp)
            for e in span.events
        ],
        links=[Link(link.context, redact_attributes(link.attributes)) for link in span.links],
        kind=span.kind,
        status=status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


class RedactingExporter(SpanExporter):
    """Hands redacted copies of the spans to the real exporter (in the batch processor's
    thread when batching: never on the event loop)."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self.inner.export([redact_span(s) for s in spans])

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return bool(self.inner.force_flush(timeout_millis))


# --- the local span store: JSON lines ------------------------------------------------------------


def span_record(span: ReadableSpan) -> dict[str, Any]:
    """One span as a line of the trace file (what `vaksin trace` reads)."""
    ctx = span.context
    parent = span.parent
    return {
        "trace_id": format(ctx.trace_id, "032x") if ctx else None,
        "span_id": format(ctx.span_id, "016x") if ctx else None,
        "parent_id": format(parent.span_id, "016x") if parent else None,
        "name": span.name,
        "kind": span.kind.name,
        "service": span.resource.attributes.get("service.name"),
        "start_ns": span.start_time,
        "end_ns": span.end_time,
        "status": span.status.status_code.name,
        "status_description": span.status.description,
        "attributes": {k: _jsonable(v) for k, v in (span.attributes or {}).items()},
        "events": [
            {
                "name": e.name,
                "time_ns": e.timestamp,
                "attributes": {k: _jsonable(v) for k, v in (e.attributes or {}).items()},
            }
            for e in span.events
        ],
        "links": [
            {
                "trace_id": format(link.context.trace_id, "032x"),
                "span_id": format(link.context.span_id, "016x"),
            }
            for link in span.links
        ],
    }


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


class JsonLinesExporter(SpanExporter):
    """Appends each span as one JSON line. Every process of `vaksin up` appends to the same
    file: one `write` per line on an O_APPEND descriptor keeps lines whole."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._fd: int | None = None

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self._lock:
            if self._fd is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            for s in spans:
                os.write(self._fd, (json.dumps(span_record(s)) + "\n").encode())
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
