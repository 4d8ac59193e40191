"""Subject names. `<owner>.rpc.<verb>` is core request/reply and never inside a stream;
`<owner>.evt.<fact>` and `<owner>.cmd.<action>` live on JetStream streams (see `streams.py`)."""

from __future__ import annotations

import zlib

# WhatsApp webhook facts published by the ingress edge (stream WA_INBOUND).
# A user's messages go to one partition (see `partition_of`), consumed one at a time: in order.
WA_INBOUND_MESSAGE = "wa.inbound.message.{partition}"
WA_INBOUND_MESSAGE_ALL = "wa.inbound.message.*"
WA_INBOUND_STATUS = "wa.inbound.status"

# identity: core request/reply
IDENTITY_RPC_NUMBER_STATUS = "identity.rpc.number_status"
IDENTITY_RPC_VERIFY = "identity.rpc.verify"

# screening: core request/reply, and its facts (stream SCREENING)
SCREENING_RPC_QUESTIONNAIRE = "screening.rpc.questionnaire"
SCREENING_RPC_EVALUATE = "screening.rpc.evaluate"
SCREENING_EVT_COMPLETED = "screening.evt.completed"

# notifier: outbound WhatsApp sends (stream NOTIFIER), partitioned by recipient like the inbound.
NOTIFIER_CMD_SEND = "notifier.cmd.send.{partition}"
NOTIFIER_CMD_SEND_ALL = "notifier.cmd.send.*"


def partition_of(key: str, partitions: int) -> int:
    """Stable partition of a key (a wa_id): the same user always maps to the same partition."""
    return zlib.crc32(key.encode()) % partitions


def inbound_message_subject(wa_id: str, partitions: int) -> str:
    return WA_INBOUND_MESSAGE.format(partition=partition_of(wa_id, partitions))


def send_subject(to: str, partitions: int) -> str:
    return NOTIFIER_CMD_SEND.format(partition=partition_of(to, partitions))
