"""Prometheus metrics of the notifier (on its `/metrics`)."""

from prometheus_client import Counter, Gauge, Histogram

COMMANDS = Counter(
    "notifier_commands_total",
    "Send commands taken from NOTIFIER, by outcome",
    ["outcome"],  # queued, duplicate, malformed, dead_lettered (intake failed every delivery)
)
SENDS = Counter(
    "notifier_sends_total",
    "Graph send attempts, by message kind and outcome",
    # kind: text, buttons, list, image, video, template
    # outcome: accepted, retry, failed, window_closed (switched to the template), skipped (an
    # optional message while the window is closed: not sent, or answered 131047)
    ["kind", "outcome"],
)
RETRIES = Counter(
    "notifier_send_retries_total",
    "Sends scheduled again (transient Graph error, or a failed status with a retryable code), "
    "by Meta error code",
    ["code"],
)
DEAD_LETTERS = Counter(
    "notifier_dead_letters_total",
    "Commands that failed for good (sent to NOTIFIER_DLQ with send_failed), by reason",
    ["reason"],
)
TEMPLATE_FALLBACKS = Counter(
    "notifier_template_fallbacks_total",
    "Messages sent as their approved template, by why (window closed, or a 131047 answer)",
    ["reason"],
)
QUEUE_DEPTH = Gauge(
    "notifier_queue_depth", "Commands queued in the notifier (all replicas), by state", ["state"]
)
QUEUE_OLDEST = Gauge(
    "notifier_queue_oldest_ready_seconds",
    "Age of the oldest queued message that may be sent now (0 when none): the queue's lag",
)
GRAPH_ERRORS = Counter(
    "notifier_graph_errors_total",
    "Graph API calls that failed, by call, HTTP status (none: no answer) and Meta's error code",
    ["call", "http_status", "code"],
)
INBOUND_SLOTS = Counter(
    "notifier_inbound_slots_total",
    "Inbound messages against the number's throughput budget, by outcome",
    # charged (the sends after them wait), failed (not charged: the database refused)
    ["outcome"],
)
IN_FLIGHT = Gauge("notifier_in_flight", "Sends this replica holds (waiting for a slot or sending)")
RATE_LIMIT_WAITS = Counter(
    "notifier_rate_limit_waits_total",
    "Sends that had to wait for a budget: throughput (per number) or pair (per user)",
    ["limit"],
)
RATE_LIMIT_WAIT_SECONDS = Histogram(
    "notifier_rate_limit_wait_seconds",
    "How long a send waited for its throughput slot",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
GRAPH_SECONDS = Histogram(
    "notifier_graph_seconds",
    "Duration of Graph API calls, by call",
    ["call"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0),
)
IN_DOUBT = Counter(
    "notifier_in_doubt_total",
    "Attempts whose answer was lost (crash, timeout), by how they were settled",
    ["resolution"],  # status (a status webhook named it), resent (sent again after a grace)
)
MEDIA = Counter(
    "notifier_media_total", "Inline images: uploaded or reused by media id", ["outcome"]
)
MARK_READ = Counter(
    "notifier_mark_read_total",
    "Inbound messages marked read (with or without typing indicator), by outcome",
    ["outcome"],  # read, typing, failed, skipped
)
STATUS_UPDATES = Counter(
    "notifier_status_updates_total",
    "Delivery status webhooks handled, by status and outcome",
    ["status", "outcome"],  # outcome: applied, stale, unknown, retry, ignored, claimed
)
