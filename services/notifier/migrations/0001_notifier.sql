-- The notifier's record of every outbound WhatsApp message: one row per send command
-- (command_id is the idempotency key), its Meta wamid once accepted, and its latest status.
CREATE SCHEMA notifier;

CREATE TABLE notifier.outbound_message (
    command_id      text PRIMARY KEY,
    recipient       text NOT NULL,
    kind            text NOT NULL,
    payload         jsonb NOT NULL,
    -- The unique constraint is also the index that status webhooks look messages up by.
    wamid           text UNIQUE,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'accepted', 'sent', 'delivered', 'read', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    last_error_code integer,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
