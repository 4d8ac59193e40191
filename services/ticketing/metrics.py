"""Prometheus metrics of the ticketing service (served on its /metrics)."""

from prometheus_client import Counter

TICKETS = Counter("vaksin_ticketing_tickets_total", "Tickets issued and revoked", ["event"])
CHECKS = Counter(
    "vaksin_ticketing_checks_total",
    "Ticket checks and check-ins at the desk by action (verify, checkin) and answer",
    ["action", "status"],
)
ISSUE_FAILURES = Counter(
    "vaksin_ticketing_issue_failures_total",
    "Booking facts given up after every retry (the booking has no ticket: look at the logs)",
)
