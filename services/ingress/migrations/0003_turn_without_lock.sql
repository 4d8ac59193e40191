-- A dialog turn is two statements and no transaction (repository.py): the conversation carries a
-- version the turn's write is conditional on (optimistic: whoever else changed it meanwhile makes
-- the turn run again), and the last turn's message id and replies, so a turn whose replies may
-- not have left before a crash sends them again when its message is delivered again.
ALTER TABLE ingress.conversation
    ADD COLUMN version bigint NOT NULL DEFAULT 0,
    ADD COLUMN last_wamid text,
    ADD COLUMN last_replies jsonb;
