"""Prometheus metrics of the scheduler (served on its /metrics)."""

from prometheus_client import Counter, Histogram

REQUESTS = Counter(
    "vaksin_scheduler_requests_total",
    "scheduler.rpc.* requests by verb and outcome (ok, or the error code)",
    ["verb", "outcome"],
)
REQUEST_SECONDS = Histogram(
    "vaksin_scheduler_request_seconds",
    "Time to answer a scheduler.rpc.* request",
    ["verb"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
AUTOMATIC_BOOKINGS = Counter(
    "vaksin_scheduler_automatic_bookings_total",
    "Attempts of automatic bookings (dose 2, moves after a cancelled session) by outcome",
    ["kind", "outcome"],
)
REMINDERS = Counter("vaksin_scheduler_reminders_total", "Day-before reminders queued")
