CREATE SCHEMA IF NOT EXISTS ingress;

-- Every inbound message id (wamid) the dialog has acted on: Meta retries for up to 7 days,
-- far beyond JetStream's duplicate window, so this is what makes "exactly one effect" hold.
CREATE TABLE ingress.processed_message (
    wamid text PRIMARY KEY,
    processed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX processed_message_age ON ingress.processed_message (processed_at);

-- Where each user is in the conversation; survives restarts, so an idle chat resumes.
CREATE TABLE ingress.conversation (
    wa_id text PRIMARY KEY,
    step text NOT NULL,
    lang text NOT NULL DEFAULT 'id',
    data jsonb NOT NULL DEFAULT '{}',
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Transactional outbox (services/common/outbox.py): replies leave with the state change.
CREATE TABLE ingress.outbox (
    id bigserial PRIMARY KEY,
    subject text NOT NULL,
    stream text NOT NULL,
    payload jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
