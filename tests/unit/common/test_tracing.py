"""Tracing is off unless the environment asks for it, and then every span is redacted by the
logs' rules before it leaves the process; `vaksin trace` finds a message's spans by its wamid."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from faststream.nats.opentelemetry import NatsTelemetryMiddleware
from opentelemetry.sdk.trace.export import ConsoleSpanExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.common import tracing
from services.common.logging import make_formatter
from services.common.service import broker_middlewares
from services.trace_cli import digest, read_spans, render, traces_of

NIK = "3201014507950001"
PHONE = "6281234567890"
WAMID = "wamid.HBgNNjI4MTIzNDU2Nzg5MBUCABIYFjNFQjBGRUJCNjdEQjA3QjM2RjJDNzgA"


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    tracing.install("unit", memory, batch=False)
    try:
        yield memory
    finally:
        tracing.uninstall()


def test_tracing_is_off_without_otel_variables() -> None:
    assert tracing.exporter_from_env({}) is None
    assert tracing.exporter_from_env({"OTEL_SERVICE_NAME": "x"}) is None
    assert tracing.exporter_from_env({"OTEL_TRACES_EXPORTER": "none"}) is None
    assert (
        tracing.exporter_from_env(
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}
        )
        is None
    )
    assert not tracing.configure_tracing("unit", {})
    assert not tracing.enabled()


def test_the_environment_chooses_the_exporter(tmp_path: Path) -> None:
    otlp = tracing.exporter_from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert type(otlp).__name__ == "OTLPSpanExporter"
    console = tracing.exporter_from_env({"OTEL_TRACES_EXPORTER": "console"})
    assert isinstance(console, ConsoleSpanExporter)
    local = tracing.exporter_from_env({"VAKSIN_TRACE_FILE": str(tmp_path / "t.jsonl")})
    assert isinstance(local, tracing.JsonLinesExporter)
    with pytest.raises(SystemExit):
        tracing.exporter_from_env({"OTEL_TRACES_EXPORTER": "zipkin"})


def test_off_nothing_is_installed_and_spans_are_one_shared_null_context() -> None:
    assert not any(isinstance(m, NatsTelemetryMiddleware) for m in broker_middlewares("x"))
    assert tracing.span("a") is tracing.span("b", {"k": "v"})
    with tracing.span("a") as span:
        assert span is None
    assert tracing.current_traceparent() is None
    assert tracing.inject({}) == {}


def test_on_brokers_carry_faststreams_telemetry_middleware(exporter: InMemorySpanExporter) -> None:
    middlewares = broker_middlewares("x")
    assert isinstance(middlewares[0], NatsTelemetryMiddleware)  # outermost: sees redelivery


def test_span_attributes_are_redacted_like_the_logs(exporter: InMemorySpanExporter) -> None:
    with tracing.span(
        "dialog turn",
        {
            "vaksin.wamid": WAMID,
            "vaksin.user.phone": "anything",
            "vaksin.note": f"nik {NIK} from +{PHONE}",
            "phone": PHONE,
            "vaksin.list": [PHONE, "ok"],
            "messaging.destination.name": "wa.inbound.message.3",
        },
    ) as span:
        span.add_event("seen", {"text": "Siti Rahmawati", "detail": f"to {PHONE}"})
        span.set_status(tracing.Status(tracing.StatusCode.ERROR, f"failed for {NIK}"))
    [done] = exporter.get_finished_spans()
    attributes = dict(done.attributes)
    assert attributes["vaksin.wamid"].startswith("wamid#") and WAMID not in str(attributes)
    assert attributes["vaksin.user.phone"] == "[redacted]"
    assert attributes["phone"] == "[redacted]"
    assert NIK not in attributes["vaksin.note"] and PHONE not in attributes["vaksin.note"]
    assert attributes["vaksin.list"] == ("[phone]", "ok")
    assert attributes["messaging.destination.name"] == "wa.inbound.message.3"  # kept
    [event] = done.events
    assert event.attributes["text"] == "[redacted]" and PHONE not in event.attributes["detail"]
    assert NIK not in (done.status.description or "")


def test_a_stored_traceparent_continues_the_trace(exporter: InMemorySpanExporter) -> None:
    with tracing.span("turn") as turn:
        stored = tracing.current_traceparent()
    assert stored is not None and f"{turn.get_span_context().trace_id:032x}" in stored
    with tracing.span("graph send", parent=stored):
        pass
    turn_span, graph = exporter.get_finished_spans()
    assert graph.context.trace_id == turn_span.context.trace_id
    assert graph.parent.span_id == turn_span.context.span_id


def test_log_lines_carry_the_trace_id(exporter: InMemorySpanExporter) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(make_formatter(json_output=True))
    logger = logging.getLogger("test-tracing")
    logger.addHandler(handler)
    try:
        with tracing.span("turn") as span:
            logger.warning("inside")  # a standard-library line, through the same processors
        trace_id = f"{span.get_span_context().trace_id:032x}"
        line = json.loads(stream.getvalue().splitlines()[-1])
        assert line["trace_id"] == trace_id  # never masked as a phone number
    finally:
        logger.removeHandler(handler)


def test_vaksin_trace_finds_a_message_by_its_wamid(tmp_path: Path) -> None:
    path = tmp_path / "traces.jsonl"
    tracing.install("unit", tracing.JsonLinesExporter(path), batch=False)
    try:
        with (
            tracing.span("POST /webhook"),
            tracing.span("webhook message", {"vaksin.wamid": WAMID}),
            tracing.span("dialog turn", {"vaksin.wamid": WAMID, "vaksin.dialog.step": "x"}),
        ):
            pass
        with tracing.span("webhook message", {"vaksin.wamid": "wamid.other"}):
            pass
    finally:
        tracing.uninstall()
    text = path.read_text()
    assert WAMID not in text and PHONE not in text
    spans = read_spans(path)
    [trace_id] = traces_of(spans, WAMID)
    assert traces_of(spans, digest(WAMID)) == [trace_id]
    lines = render([s for s in spans if s["trace_id"] == trace_id])
    assert [line.split("  [")[0].split("ms")[-1].strip() for line in lines] == [
        "POST /webhook",
        "webhook message",
        "dialog turn",
    ]
    assert "dialog.step=x" in lines[2]
