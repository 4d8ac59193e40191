-- Facility desks: the devices (a phone or tablet at desk 1 of a Puskesmas) that check tickets in
-- with the desk app (/desk/). An operator adds a desk (`vaksin desk add`), which gives a one-time
-- enrolment code; the device trades it for its credential. Only SHA-256 digests of the code and
-- of the credential are kept (both are random: 59 and 256 bits), so a copy of this table opens
-- nothing. A desk is bound to one facility and can be revoked; its check-ins name it.
CREATE TABLE ticketing.desk (
    desk_id              bigserial PRIMARY KEY,
    facility_code        text NOT NULL,
    facility_name        text NOT NULL,
    name                 text NOT NULL CHECK (length(name) BETWEEN 1 AND 60),
    enrolment_hash       bytea NOT NULL UNIQUE,  -- kept after use: a replayed code is told so
    enrolment_expires_at timestamptz NOT NULL,
    enrolled_at          timestamptz,
    credential_hash      bytea UNIQUE,
    created_at           timestamptz NOT NULL DEFAULT now(),
    created_by           text NOT NULL,
    revoked_at           timestamptz,
    revoked_by           text,
    last_seen_at         timestamptz,
    CHECK ((enrolled_at IS NULL) = (credential_hash IS NULL))
);
CREATE INDEX desk_facility_idx ON ticketing.desk (facility_code);

-- Every check-in a desk sent, with the device's id for it: a sync resent after a lost answer
-- gets the first answer again instead of a second effect (or a false "already used"). The
-- device's time of the scan is kept next to the time the server received it (offline queues).
CREATE TABLE ticketing.desk_checkin (
    desk_id     bigint NOT NULL REFERENCES ticketing.desk,
    client_id   text NOT NULL,
    ticket_id   text,
    status      text NOT NULL,
    scanned_at  timestamptz NOT NULL,
    received_at timestamptz NOT NULL,
    answer      jsonb NOT NULL,
    PRIMARY KEY (desk_id, client_id)
);
CREATE INDEX desk_checkin_ticket_idx ON ticketing.desk_checkin (ticket_id);

-- Which desk checked a ticket in and recorded its dose (NULL for the operator token and the CLI).
ALTER TABLE ticketing.ticket
    ADD COLUMN redeemed_desk_id bigint REFERENCES ticketing.desk,
    ADD COLUMN dose_given_desk_id bigint REFERENCES ticketing.desk,
    DROP CONSTRAINT ticket_redeemed_via_check,
    ADD CONSTRAINT ticket_redeemed_via_check CHECK (redeemed_via IN ('http', 'cli', 'desk'));
