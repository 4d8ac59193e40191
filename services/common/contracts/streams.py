"""Every JetStream stream, defined once. The owning service declares it; others only bind."""

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


def bind(stream: JStream) -> JStream:
    """The same stream for a consumer that does not own it: bind, never create or update."""
    return JStream(name=stream.name, declare=False)
