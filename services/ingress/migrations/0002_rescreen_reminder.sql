-- One reminder per postponed screening: the row is claimed in the same transaction that puts the
-- reminder in the outbox, so several dialog replicas and restarts still send it once.
CREATE TABLE ingress.rescreen_reminder (
    wa_id text NOT NULL,
    rescreen_on date NOT NULL,
    sent_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (wa_id, rescreen_on)
);
-- ISO dates sort as text the way they sort as dates (and a text index needs no cast).
CREATE INDEX conversation_postponed_idx ON ingress.conversation ((data ->> 'rescreen_on'))
    WHERE step = 'postponed';
