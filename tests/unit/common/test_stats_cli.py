"""`vaksin stats` without servers: whom it asks, that no stream swallows its requests, and how the
answers read."""

from __future__ import annotations

from faststream.nats import JStream

from services.common.contracts import streams
from services.common.contracts.stats import ServiceStats
from services.registry import SERVICES
from services.stats_cli import NOT_ANSWERING, SOURCES, render


def test_every_service_with_a_database_is_asked_in_the_registry_order() -> None:
    assert list(SOURCES) == [name for name in SERVICES if name != "ingress"]  # the edge has none


def _matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: `*` one token, `>` one or more at the end."""
    want, have = pattern.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(have) > i
        if i >= len(have) or token not in ("*", have[i]):
            return False
    return len(want) == len(have)


def test_the_matcher_knows_nats_wildcards() -> None:
    assert _matches("notifier.evt.>", "notifier.evt.send_failed")
    assert _matches("wa.inbound.*", "wa.inbound.status")
    assert not _matches("notifier.evt.>", "notifier.evt")
    assert not _matches("notifier.evt.>", "notifier.rpc.stats")


def test_no_stream_captures_a_stats_request() -> None:
    # A stream over a request subject would answer it with its publish ack.
    defined = [s for s in vars(streams).values() if isinstance(s, JStream)]
    assert defined
    for source in SOURCES.values():
        for stream in defined:
            for pattern in stream.subjects:
                assert not _matches(pattern, source.subject), (stream.name, source.subject)


def test_counts_read_with_labels_and_thousands_separators() -> None:
    text = render(
        {
            "identity": ServiceStats(
                service="identity",
                counts={"people": 1_234_567, "people_from_intake": 12, "intake.open": 3},
            ),
            "dialog": ServiceStats(
                service="dialog",
                counts={"conversations": 1_000, "step.screening_question": 1, "new_key": 5},
            ),
        }
    )
    lines = text.splitlines()
    assert lines[0] == "identity"
    assert lines[1].startswith("  people in the registry") and lines[1].endswith("1,234,567")
    assert lines[3].startswith("  intake requests open") and lines[3].endswith(" 3")
    assert len({len(line) for line in lines[1:4]}) == 1  # numbers aligned on the right
    assert "    at step screening question" in text
    assert "  new_key" in text  # a count without a label yet is shown by its key
    assert "1,000" in text


def test_a_silent_service_is_named_on_one_line() -> None:
    text = render(
        {
            "identity": ServiceStats(service="identity", counts={"people": 1}),
            "screening": ServiceStats(service="screening", error=NOT_ANSWERING),
        }
    )
    assert text.splitlines()[-1] == "screening: not answering"
