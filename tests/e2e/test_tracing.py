"""One user message, one trace: from the webhook through JetStream, the dialog turn and its
questions to the services, to the notifier's queue and Meta's Graph API, parented across the
services by the trace context in the NATS headers and in the notifier's queue rows. A delivery
that fails and comes back is a retry in the same trace. No NIK, phone number or name in any
span (the logs' redaction), wherever the spans go."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.common import tracing
from services.common.logging import scrub
from services.ingress import handlers
from tests.deploy.test_observability import (
    dashboard_expressions,
    metric_names,
    rules,
    series_names,
)
from tests.e2e.conftest import System, body_of, new_person
from tests.faults import FailsOnce

pytestmark = pytest.mark.servers


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on for the system built after it (list it before `system`)."""
    exporter = InMemorySpanExporter()
    tracing.install("e2e", exporter, batch=False)
    try:
        yield exporter
    finally:
        tracing.uninstall()


def _hex(span_id: int) -> str:
    return format(span_id, "016x")


async def trace_of(
    exporter: InMemorySpanExporter, wamid: str, until: str, within: float = 15.0
) -> list[ReadableSpan]:
    """Every span of the trace whose webhook span names the wamid, once one is named `until`."""
    digest = scrub(wamid)
    deadline = time.monotonic() + within
    while True:
        finished = exporter.get_finished_spans()
        roots = [
            s
            for s in finished
            if s.name == "webhook message" and s.attributes.get("vaksin.wamid") == digest
        ]
        if roots:
            trace_id = roots[0].context.trace_id
            found = [s for s in finished if s.context.trace_id == trace_id]
            if any(s.name == until for s in found):
                return found
        assert time.monotonic() < deadline, f"no trace of {digest} with a {until!r} span"
        await asyncio.sleep(0.1)


def ancestors(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> list[str]:
    names = []
    while span.parent is not None and span.parent.span_id in by_id:
        span = by_id[span.parent.span_id]
        names.append(span.name)
    return names


async def test_one_message_is_one_trace_from_the_webhook_to_the_graph_api(
    spans: InMemorySpanExporter, system: System, tmp_path: Path
) -> None:
    nakes = new_person("Siti Rahmawati")
    await system.register(nakes, tmp=tmp_path)
    await system.turn(nakes.phone, "VAKSIN")
    wamid = await system.say(nakes.phone, "ya", reply_id="nakes.yes")
    await system.replies(nakes.phone, 2)
    trace = await trace_of(spans, wamid, until="graph send")
    by_id = {s.context.span_id: s for s in trace}
    names = [s.name for s in trace]

    # One root: the webhook request; everything else hangs below it.
    roots = [s for s in trace if s.parent is None or s.parent.span_id not in by_id]
    assert [r.name for r in roots] == ["POST /webhook"], names

    [turn] = [s for s in trace if s.name == "dialog turn"]
    assert turn.attributes["vaksin.wamid"] == scrub(wamid)
    assert turn.attributes["vaksin.dialog.step"] == "ask_suffix"
    # The turn runs in the dialog's consumer of WA_INBOUND, which continues the webhook's publish.
    turn_path = ancestors(turn, by_id)
    assert turn_path[0].startswith("wa.inbound.message.") and turn_path[0].endswith(" process")
    assert turn_path[-2:] == ["webhook message", "POST /webhook"]
    consumer = by_id[turn.parent.span_id]
    assert consumer.attributes["vaksin.consumer"].startswith("ingress-dialog-p")

    # Its question to identity: the request below the turn, the responder below the request.
    [request] = [s for s in trace if s.name == "identity.rpc.number_status publish"]
    [responder] = [s for s in trace if s.name == "identity.rpc.number_status process"]
    assert "dialog turn" in ancestors(request, by_id)
    assert by_id[responder.parent.span_id].name == "identity.rpc.number_status create"
    assert ancestors(responder, by_id)[1] == "dialog turn", names

    # The reply: published by the turn, queued by the notifier, sent to Meta, in this trace.
    [graph] = [s for s in trace if s.name == "graph send"]
    graph_path = ancestors(graph, by_id)
    assert graph_path[0] == "notifier send"
    assert graph_path[1].startswith("notifier.cmd.send.") and graph_path[2] == "dialog turn"
    assert graph.attributes["vaksin.wamid"].startswith("wamid#")
    assert any(s.name == "notifier intake" and "dialog turn" in ancestors(s, by_id) for s in trace)

    # Nothing personal in any attribute of any span of the run.
    for span in spans.get_finished_spans():
        events = [v for e in span.events for v in e.attributes.values()]
        for value in [*span.attributes.values(), *events]:
            text = str(value)
            assert nakes.phone not in text and nakes.nik not in text and nakes.suffix not in text
            assert nakes.name not in text and "Siti" not in text
            assert "wamid.test" not in text  # digested, as in the logs


async def test_a_redelivered_turn_is_a_retry_in_the_same_trace(
    spans: InMemorySpanExporter, system: System, monkeypatch: pytest.MonkeyPatch
) -> None:
    decide = FailsOnce(handlers._decide)
    monkeypatch.setattr(handlers, "_decide", decide)
    nakes = new_person()
    wamid = await system.say(nakes.phone, "VAKSIN")
    assert "tenaga kesehatan" in body_of((await system.replies(nakes.phone, 1))[0]).lower()
    trace = await trace_of(spans, wamid, until="graph send")

    deliveries = sorted(
        (s for s in trace if s.attributes.get("vaksin.consumer", "").startswith("ingress-dialog")),
        key=lambda s: s.start_time,
    )
    assert [d.attributes["vaksin.delivery"] for d in deliveries] == [1, 2]
    first, retry = deliveries
    assert first.status.is_ok is False  # the failure, recorded
    assert any(e.name == "delivered again later" for e in first.events)
    assert retry.attributes["vaksin.retry"] is True and retry.status.is_ok
    # Both continue the same publish of the webhook: siblings in the message's trace.
    assert first.parent.span_id == retry.parent.span_id
    assert sum(s.name == "dialog turn" for s in trace) == 2


async def test_dashboards_and_alerts_name_only_what_a_running_system_serves(
    system: System,
) -> None:
    """The deploy/ check against the real thing: every metric named by a dashboard or an
    alert is on the /metrics of the running services."""
    served: set[str] = set()
    for name, host in system.hosts.items():
        async with system.http.get(f"http://127.0.0.1:{host.port}/metrics") as resp:
            assert resp.status == 200, name
            served |= series_names(await resp.text())
    expressions = dashboard_expressions() + [(r["alert"], r["expr"]) for r in rules()]
    missing = {
        f"{where}: {metric}"
        for where, expr in expressions
        for metric in metric_names(expr) - served
        if metric != "up"
    }
    assert not missing, sorted(missing)
    assert "vaksin_consumer_oldest_pending_seconds" in served  # the watcher polls at start
