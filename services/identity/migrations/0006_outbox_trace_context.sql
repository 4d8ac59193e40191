-- The trace context (W3C traceparent) of the transaction that wrote an outbox row, so that the
-- relay publishes it in that trace (services/common/outbox.py). NULL while tracing is off.
ALTER TABLE identity.outbox ADD COLUMN trace_context text;
