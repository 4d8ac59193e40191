"""`vaksin trace [WAMID]`: the spans of one user message, from the local span file that
`vaksin up --trace` has every service append to (DATA_DIR/traces.jsonl, or VAKSIN_TRACE_FILE).

Spans are stored redacted, as the logs are: a wamid appears as its digest (`wamid#<12 hex>`),
so the WAMID given here is digested the same way to find them. Without a WAMID, the latest
messages are listed with their digests and how long each took to its last reply.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.common import tracing
from services.common.logging import scrub
from services.common.settings import Settings

Span = dict[str, Any]
WAMID_KEY = "vaksin.wamid"


def trace_file(settings: Settings, given: Path | None) -> Path:
    if given is not None:
        return given
    configured = settings.runtime().get("trace_file")
    return Path(configured) if configured else settings.data_dir / tracing.TRACE_FILE


def read_spans(path: Path) -> list[Span]:
    spans = []
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            try:
                spans.append(json.loads(line))
            except ValueError:
                continue  # a line being written by a running service
    return spans


def digest(wamid: str) -> str:
    """What the span file holds for this wamid (the logs' redaction)."""
    return wamid if wamid.startswith("wamid#") else scrub(wamid)


def traces_of(spans: Iterable[Span], wamid: str) -> list[str]:
    wanted = digest(wamid)
    found: dict[str, None] = {}
    for span in sorted(spans, key=lambda s: s["start_ns"]):
        if span["attributes"].get(WAMID_KEY) == wanted:
            found.setdefault(span["trace_id"], None)
    return list(found)


def render(spans: list[Span]) -> list[str]:
    """One trace as an indented tree, children in start order, times from the trace's start."""
    if not spans:
        return []
    start = min(s["start_ns"] for s in spans)
    ids = {s["span_id"] for s in spans}
    children: dict[str | None, list[Span]] = defaultdict(list)
    for span in spans:
        parent = span["parent_id"] if span["parent_id"] in ids else None
        children[parent].append(span)
    lines: list[str] = []

    def walk(parent: str | None, depth: int) -> None:
        for span in sorted(children[parent], key=lambda s: s["start_ns"]):
            at = (span["start_ns"] - start) / 1e6
            took = ((span["end_ns"] or span["start_ns"]) - span["start_ns"]) / 1e6
            status = " ERROR" if span["status"] == "ERROR" else ""
            attributes = {
                k: v
                for k, v in span["attributes"].items()
                if k.startswith(("vaksin.", "http.response")) and k != WAMID_KEY
            }
            extra = " ".join(f"{k.removeprefix('vaksin.')}={v}" for k, v in attributes.items())
            lines.append(
                f"{at:9.1f} ms {took:9.1f} ms  {'  ' * depth}{span['name']}"
                f"  [{span.get('service') or '?'}]{status}{'  ' + extra if extra else ''}"
            )
            for event in span.get("events", []):
                if event["name"] == "exception":
                    kind = event["attributes"].get("exception.type", "")
                    lines.append(f"{'':26}{'  ' * depth}  ! {kind}")
                else:
                    lines.append(f"{'':26}{'  ' * depth}  - {event['name']}")
            walk(span["span_id"], depth + 1)

    walk(None, 0)
    return lines


def latest(spans: list[Span], count: int) -> list[str]:
    """The latest messages seen by the webhook: when, digest, and the trace's whole span."""
    by_trace: dict[str, list[Span]] = defaultdict(list)
    for span in spans:
        by_trace[span["trace_id"]].append(span)
    rows = []
    for span in spans:
        if span["name"] == "webhook message" and WAMID_KEY in span["attributes"]:
            trace = by_trace[span["trace_id"]]
            took = (max(s["end_ns"] or 0 for s in trace) - span["start_ns"]) / 1e9
            rows.append((span["start_ns"], span["attributes"][WAMID_KEY], took, len(trace)))
    rows.sort()
    return [
        f"{datetime.fromtimestamp(at / 1e9, UTC):%Y-%m-%d %H:%M:%S} {wamid}  "
        f"{took:7.2f} s  {n} spans"
        for at, wamid, took, n in rows[-count:]
    ]


def run_trace(settings: Settings, wamid: str | None, *, file: Path | None, last: int) -> int:
    path = trace_file(settings, file)
    if not path.exists():
        print(
            f"No spans in {path}: start the system with `vaksin up --trace` "
            f"(or set {tracing.TRACE_FILE_ENV}).",
            file=sys.stderr,
        )
        return 1
    spans = read_spans(path)
    if wamid is None:
        print("\n".join(latest(spans, last)) or "no messages traced yet")
        return 0
    trace_ids = traces_of(spans, wamid)
    if not trace_ids:
        print(f"no spans of {digest(wamid)} in {path}", file=sys.stderr)
        return 1
    for trace_id in trace_ids:
        print(f"trace {trace_id}")
        print("\n".join(render([s for s in spans if s["trace_id"] == trace_id])))
    return 0
