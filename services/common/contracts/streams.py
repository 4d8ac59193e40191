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

SCREENING = JStream(
    name="SCREENING",
    subjects=["screening.evt.>"],
    storage=StorageType.FILE,
    duplicate_window=600,
    max_age=30 * DAY,
)
