-- Answers to verify requests by idempotency key (the inbound wamid), so a redelivered chat
-- message gets the same answer and never costs a second attempt.
CREATE TABLE identity.verify_request (
    request_id text PRIMARY KEY,
    answer     jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX verify_request_age_idx ON identity.verify_request (created_at);
