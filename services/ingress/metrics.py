"""Prometheus metrics of the ingress (webhook edge and dialog)."""

from prometheus_client import Counter, Histogram

WEBHOOK_REQUESTS = Counter("vaksin_webhook_requests_total", "Webhook POSTs by result", ["result"])
WEBHOOK_SECONDS = Histogram(
    "vaksin_webhook_seconds",
    "Time to acknowledge a signed webhook POST",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
INBOUND_PUBLISHED = Counter(
    "vaksin_inbound_published_total", "Webhook items published to WA_INBOUND", ["kind"]
)
WEBHOOK_POISON = Counter(
    "vaksin_webhook_poison_total",
    "Signed webhook items that could never be stored: acknowledged and kept in DEAD_LETTERS",
    ["reason"],
)
DIALOG_TURNS = Counter("vaksin_dialog_turns_total", "Dialog turns by resulting step", ["step"])
DIALOG_TURN_SECONDS = Histogram(
    "vaksin_dialog_turn_seconds",
    "Time of one dialog turn (state, questions to the services, store, replies published), "
    "by resulting step",
    ["step"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
DIALOG_DUPLICATES = Counter(
    "vaksin_dialog_duplicates_total", "Inbound messages already processed (redelivered)"
)
DIALOG_GIVEN_UP = Counter(
    "vaksin_dialog_given_up_total", "Inbound messages answered with 'busy' after every retry failed"
)
DELIVERY_FAILURES = Counter(
    "vaksin_dialog_delivery_failures_total",
    "Messages to users that failed for good (notifier.evt.send_failed), by reason",
    ["reason"],
)
