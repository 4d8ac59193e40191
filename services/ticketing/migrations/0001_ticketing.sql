-- Tickets: one per booking, with its signed token (the QR payload), its revocation and its single
-- redemption. Redemption is one conditional UPDATE (`redeemed_at IS NULL AND revoked_at IS NULL
-- AND expires_at > now`) on the locked row, so the same ticket scanned twice at once is redeemed
-- once, and a revocation racing a check-in is ordered by the same row lock.
CREATE SCHEMA ticketing;

CREATE TABLE ticketing.ticket (
    ticket_id        text PRIMARY KEY,
    code             text NOT NULL UNIQUE,
    booking_id       bigint NOT NULL UNIQUE,
    person_id        text NOT NULL,
    dose             smallint NOT NULL CHECK (dose IN (1, 2)),
    vaccine          text NOT NULL,
    facility_code    text NOT NULL,
    facility_name    text NOT NULL,
    facility_address text NOT NULL,
    session_date     date NOT NULL,
    start_time       time NOT NULL,
    end_time         time NOT NULL,
    masked_name      text NOT NULL,
    masked_nik       text,
    token            text NOT NULL,
    qr_png           bytea NOT NULL,  -- the token's QR code, rendered once
    issued_at        timestamptz NOT NULL DEFAULT now(),
    expires_at       timestamptz NOT NULL,
    revoked_at       timestamptz,
    revoked_reason   text,
    -- the check-in at the desk, and the on-site screening recorded with it
    redeemed_at      timestamptz,
    redeemed_by      text,
    redeemed_via     text CHECK (redeemed_via IN ('http', 'cli')),
    temperature_c    numeric(3, 1) CHECK (temperature_c BETWEEN 30 AND 45),
    systolic         smallint CHECK (systolic BETWEEN 50 AND 300),
    diastolic        smallint CHECK (diastolic BETWEEN 20 AND 200),
    dose_given_at    timestamptz,
    dose_given_by    text,
    CHECK (dose_given_at IS NULL OR redeemed_at IS NOT NULL)
);
CREATE INDEX ticket_person_idx ON ticketing.ticket (person_id);

-- Bookings known to be void (rescheduled away or cancelled). Booking facts arrive on separate
-- consumers, so a cancellation may be handled before the booking it cancels: the booking then
-- finds itself here and no ticket is issued.
CREATE TABLE ticketing.void_booking (
    booking_id bigint PRIMARY KEY,
    reason     text NOT NULL,
    voided_at  timestamptz NOT NULL DEFAULT now()
);

-- Transactional outbox (services/common/outbox.py): the ticket's messages leave with the ticket,
-- and ticketing.evt.dose_given with the check-in that recorded it.
CREATE TABLE ticketing.outbox (
    id bigserial PRIMARY KEY,
    subject text NOT NULL,
    stream text NOT NULL,
    payload jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
