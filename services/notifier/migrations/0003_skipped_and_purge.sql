-- Optional messages (SendMessage.optional, e.g. the vaccine video) are not sent while the user's
-- 24-hour window is closed, and not failed either: they end `skipped`.
ALTER TABLE notifier.outbound_message
    DROP CONSTRAINT outbound_message_status_check,
    ADD CONSTRAINT outbound_message_status_check
        CHECK (status IN ('pending', 'accepted', 'sent', 'delivered', 'read', 'failed', 'skipped'));

-- The periodic purge takes old rows in bounded batches, oldest first, without reading the rest
-- of the table. created_at never changes and uploaded_at seldom does: an index entry per row.
CREATE INDEX outbound_message_created_at ON notifier.outbound_message (created_at);
CREATE INDEX media_uploaded_at ON notifier.media (uploaded_at);
