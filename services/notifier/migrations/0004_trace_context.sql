-- The trace context (W3C traceparent) of the transaction that wrote an outbox row, so that the
-- relay publishes it in that trace (services/common/outbox.py). NULL while tracing is off.
ALTER TABLE notifier.outbox ADD COLUMN trace_context text;

-- The trace context of the command a queued message came with (its `traceparent` header), kept
-- with the row so that the Graph API call, whenever it happens, joins the message's trace.
ALTER TABLE notifier.outbound_message ADD COLUMN trace_context text;
