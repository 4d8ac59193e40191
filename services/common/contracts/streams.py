"""Every JetStream stream, defined once. Each service that publishes to or consumes from a stream
declares it from this one definition (create or update to the same config), so services can start
in any order and no two definitions ever fight over a stream's configuration.

A stream never covers an `*.rpc.*` subject: it would answer the request with its publish ack.

How many copies of each stream a cluster keeps is a deployment's choice (NATS_STREAM_REPLICAS),
applied when a stream is declared (`services/common/jetstream.py`); their consumers follow the
stream's replica count (JetStream's default, which we never override)."""

from __future__ import annotations

from faststream.nats import JStream, StorageType

DAY = 24 * 3600


def _stream(name: str, *subjects: str, days: int = 30) -> JStream:
    # Nats-Msg-Id dedupes repeats for 10 minutes: publishers' retries (a wamid from Meta, an outbox
    # row re-sent after a crash); anything later is caught by the consumers' own records.
    return JStream(name=name, subjects=list(subjects), storage=StorageType.FILE,
                   duplicate_window=600, max_age=days * DAY)  # fmt: skip


WA_INBOUND = _stream("WA_INBOUND", "wa.inbound.>", days=7)
NOTIFIER = _stream("NOTIFIER", "notifier.cmd.>", "notifier.evt.>", days=7)
# Dead letters of the notifier (commands that failed for good, with their last error): apart from
# NOTIFIER so that replaying or purging them never touches live commands.
NOTIFIER_DLQ = _stream("NOTIFIER_DLQ", "notifier.dlq.>")
SCREENING = _stream("SCREENING", "screening.evt.>")
SCHEDULER = _stream("SCHEDULER", "scheduler.evt.>")
TICKETING = _stream("TICKETING", "ticketing.evt.>")
# An intake decision may wait for days before the dialog reads it after an outage.
IDENTITY = _stream("IDENTITY", "identity.evt.>")
# What was accepted but could never be handled (see contracts/deadletters.py).
DEAD_LETTERS = _stream("DEAD_LETTERS", "deadletter.>")
# SMS and USSD: replies and notices for users of those channels, and the gateway's delivery
# reports (services/channels; see contracts/channels.py).
CHANNELS = _stream("CHANNELS", "channels.cmd.>", "channels.evt.>", days=7)

STREAMS = (
    WA_INBOUND, NOTIFIER, NOTIFIER_DLQ, SCREENING, SCHEDULER, TICKETING, IDENTITY, DEAD_LETTERS,
    CHANNELS,
)  # fmt: skip
