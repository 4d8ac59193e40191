"""Subject names. `<owner>.rpc.<verb>` is core request/reply and never inside a stream;
`<owner>.evt.<fact>` and `<owner>.cmd.<action>` live on JetStream streams (see `streams.py`).
Every service with a schema answers `<owner>.rpc.stats` with its own counts (`vaksin stats`)."""

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
IDENTITY_RPC_CHECK_NIK = "identity.rpc.check_nik"
IDENTITY_RPC_INTAKE_SUBMIT = "identity.rpc.intake_submit"
IDENTITY_RPC_INTAKE_STATUS = "identity.rpc.intake_status"
IDENTITY_RPC_PERSON = "identity.rpc.person"
IDENTITY_RPC_STATS = "identity.rpc.stats"
# identity: the intake queue for operators (the console; contracts/operations.py)
IDENTITY_RPC_INTAKE_LIST = "identity.rpc.intake_list"
IDENTITY_RPC_INTAKE_DETAIL = "identity.rpc.intake_detail"
IDENTITY_RPC_INTAKE_DECIDE = "identity.rpc.intake_decide"
# identity: intake facts (stream IDENTITY), through the outbox
IDENTITY_EVT_INTAKE_SUBMITTED = "identity.evt.intake_submitted"
IDENTITY_EVT_INTAKE_DECIDED = "identity.evt.intake_decided"

# screening: core request/reply, and its facts (stream SCREENING)
SCREENING_RPC_QUESTIONNAIRE = "screening.rpc.questionnaire"
SCREENING_RPC_EVALUATE = "screening.rpc.evaluate"
SCREENING_RPC_STATS = "screening.rpc.stats"
SCREENING_EVT_COMPLETED = "screening.evt.completed"

# scheduler: core request/reply (queue group `scheduler`), and its booking facts (stream SCHEDULER)
SCHEDULER_RPC_FACILITY = "scheduler.rpc.facility"
SCHEDULER_RPC_FACILITIES_NEARBY = "scheduler.rpc.facilities_nearby"
SCHEDULER_RPC_FACILITIES_SEARCH = "scheduler.rpc.facilities_search"
SCHEDULER_RPC_OFFER = "scheduler.rpc.offer"
SCHEDULER_RPC_ALTERNATIVES = "scheduler.rpc.alternatives"
SCHEDULER_RPC_HOLD = "scheduler.rpc.hold"
SCHEDULER_RPC_CONFIRM = "scheduler.rpc.confirm"
SCHEDULER_RPC_CANCEL = "scheduler.rpc.cancel"
SCHEDULER_RPC_BOOKINGS = "scheduler.rpc.bookings"
SCHEDULER_RPC_STATS = "scheduler.rpc.stats"
# scheduler: facilities and sessions for operators (the console; contracts/operations.py)
SCHEDULER_RPC_FACILITIES_IMPORT = "scheduler.rpc.facilities_import"
SCHEDULER_RPC_SESSIONS_IMPORT = "scheduler.rpc.sessions_import"
SCHEDULER_RPC_SESSIONS = "scheduler.rpc.sessions"
SCHEDULER_RPC_SESSION_CANCEL = "scheduler.rpc.session_cancel"
SCHEDULER_EVT_BOOKED = "scheduler.evt.booked"
SCHEDULER_EVT_CANCELLED = "scheduler.evt.cancelled"
SCHEDULER_EVT_RESCHEDULED = "scheduler.evt.rescheduled"

# ticketing: the current tickets of a person (core request/reply, queue group `ticketing`), and
# its facts (stream TICKETING); the scheduler books dose 2 on dose_given.
TICKETING_RPC_TICKETS = "ticketing.rpc.tickets"
TICKETING_RPC_STATS = "ticketing.rpc.stats"
# ticketing: facility desks for operators (the console; contracts/operations.py)
TICKETING_RPC_DESK_ADD = "ticketing.rpc.desk_add"
TICKETING_RPC_DESKS = "ticketing.rpc.desks"
TICKETING_EVT_DOSE_GIVEN = "ticketing.evt.dose_given"

# notifier: outbound WhatsApp sends (stream NOTIFIER), partitioned by recipient like the inbound.
NOTIFIER_CMD_SEND = "notifier.cmd.send.{partition}"
NOTIFIER_CMD_SEND_ALL = "notifier.cmd.send.*"
# A send that failed for good (stream NOTIFIER): for the dialog, so no user is left waiting.
NOTIFIER_EVT_SEND_FAILED = "notifier.evt.send_failed"
# Its dead letter: the command and its last error (stream NOTIFIER_DLQ, kept 30 days).
NOTIFIER_DLQ_SEND = "notifier.dlq.send"

# Dead letters (stream DEAD_LETTERS): a durable consumer's message that failed every delivery,
# and a signed webhook body that can never be stored.
DEADLETTER_CONSUMER = "deadletter.consumer.{durable}"
DEADLETTER_WEBHOOK = "deadletter.webhook"
# notifier: its counts (core request/reply, queue group `notifier`).
NOTIFIER_RPC_STATS = "notifier.rpc.stats"

# The dialog's counts (schema `ingress`; core request/reply, queue group `dialog`). The webhook
# edge has no database and does not answer it.
INGRESS_RPC_STATS = "ingress.rpc.stats"
# The channel that reaches a number unasked, answered by the dialog (contracts/channels.py).
INGRESS_RPC_ROUTE = "ingress.rpc.route"

# The operators' console's counts (schema `console`; core request/reply, queue group `console`).
CONSOLE_RPC_STATS = "console.rpc.stats"


def partition_of(key: str, partitions: int) -> int:
    """Stable partition of a key (a wa_id): the same user always maps to the same partition."""
    return zlib.crc32(key.encode()) % partitions


def inbound_message_subject(wa_id: str, partitions: int) -> str:
    return WA_INBOUND_MESSAGE.format(partition=partition_of(wa_id, partitions))


def send_subject(to: str, partitions: int) -> str:
    return NOTIFIER_CMD_SEND.format(partition=partition_of(to, partitions))
