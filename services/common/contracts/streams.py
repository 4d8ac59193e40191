"""Every JetStream stream, defined once. Each service that publishes to or consumes from a stream
declares it from this one definition (create or update to the same config), so services can start
in any order and no two definitions ever fight over a stream's configuration."""

from __future__ import annotations

from faststream.nats import JStream, StorageType

DAY = 24 * 3600

WA_INBOUND = JStream(
    name="WA_INBOUND",
    subjects=["wa.inbound.>"],
    storage=StorageType.FILE,
    # Nats-Msg-Id = wamid: Meta's quick retries are dropped here; later ones by the dialog's inbox.
    duplicate_window=600,
    max_age=7 * DAY,
)

NOTIFIER = JStream(
    name="NOTIFIER",
    subjects=["notifier.cmd.>", "notifier.evt.>"],
    storage=StorageType.FILE,
    duplicate_window=600,
    max_age=7 * DAY,
)

# Dead letters of the notifier (commands that failed for good, with their last error): apart from
# NOTIFIER so that replaying or purging them never touches live commands.
NOTIFIER_DLQ = JStream(
    name="NOTIFIER_DLQ",
    subjects=["notifier.dlq.>"],
    storage=StorageType.FILE,
    duplicate_window=600,
    max_age=30 * DAY,
)

SCREENING = JStream(
    name="SCREENING",
    subjects=["screening.evt.>"],
    storage=StorageType.FILE,
    duplicate_window=600,
    max_age=30 * DAY,
)

SCHEDULER = JStream(
    name="SCHEDULER",
    subjects=["scheduler.evt.>"],  # never scheduler.rpc.*: a stream must not capture a request
    storage=StorageType.FILE,
    duplicate_window=600,
    max_age=30 * DAY,
)

TICKETING = JStream(
    name="TICKETING",
    subjects=["ticketing.evt.>"],
    storage=StorageType.FILE,
    duplicate_window=600,
    max_age=30 * DAY,
)

IDENTITY = JStream(
    name="IDENTITY",
    subjects=["identity.evt.>"],  # never identity.rpc.*: a stream must not capture a request
    storage=StorageType.FILE,
    duplicate_window=600,
    # An intake decision may wait for days before the dialog reads it after an outage.
    max_age=30 * DAY,
)
