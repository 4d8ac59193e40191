-- Vaccination places and times, seats held while a user decides, bookings, the bookings the
-- scheduler makes on its own (dose 2; a move after a cancelled session), and its outbox.
--
-- Seats: `session.reserved` counts the session's holds in status 'held' plus its active bookings,
-- and is only ever changed by single conditional UPDATEs (`reserved < capacity` re-checked on the
-- locked row under Read Committed), so a seat that does not exist cannot be taken. A hold past its
-- expiry still counts until a statement that needs a seat in its session (or the sweep) marks it
-- 'expired' and gives the seat back in the same statement: no correctness rests on the sweep.
CREATE SCHEMA scheduler;

CREATE TABLE scheduler.facility (
    code       text PRIMARY KEY,
    name       text NOT NULL,
    address    text NOT NULL,
    regency    text NOT NULL,  -- kabupaten/kota: "nearby" means the same regency
    province   text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX facility_regency_idx ON scheduler.facility (lower(regency));

-- fillfactor leaves room in each page so that the frequent `reserved` updates stay HOT.
CREATE TABLE scheduler.session (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- short: list rows are slot.<id>
    facility_code text NOT NULL REFERENCES scheduler.facility (code),
    day           date NOT NULL,     -- local (WIB) date and times
    starts        time NOT NULL,
    ends          time NOT NULL,
    vaccine       text NOT NULL,
    capacity      integer NOT NULL CHECK (capacity >= 0),
    reserved      integer NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    status        text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'cancelled')),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (reserved <= capacity),  -- belt and braces: the UPDATEs already never go past it
    CHECK (ends > starts),
    UNIQUE (facility_code, day, starts, vaccine)  -- the import's natural key
) WITH (fillfactor = 50);
CREATE INDEX session_day_idx ON scheduler.session (day);

CREATE TABLE scheduler.hold (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id          text NOT NULL UNIQUE,  -- idempotency key: the offering wamid
    person_id           text NOT NULL,
    wa_id               text NOT NULL,
    lang                text NOT NULL,
    dose                smallint NOT NULL CHECK (dose IN (1, 2)),
    session_id          bigint NOT NULL REFERENCES scheduler.session (id),
    replaces_booking_id bigint,  -- a reschedule: confirm swaps in one transaction
    status              text NOT NULL DEFAULT 'held'
        CHECK (status IN ('held', 'confirmed', 'expired', 'released')),
    expires_at          timestamptz NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now()
);
-- At most one unconfirmed hold per person: a new offer releases the previous one first.
CREATE UNIQUE INDEX hold_one_live_per_person ON scheduler.hold (person_id) WHERE status = 'held';
-- Only holds in status 'held' are in it, so it stays small: the sweep scans all of it.
CREATE INDEX hold_lapse_idx ON scheduler.hold (session_id, expires_at) WHERE status = 'held';

CREATE TABLE scheduler.booking (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id          text NOT NULL UNIQUE,  -- idempotency key: the confirming wamid, or auto:<id>
    hold_id             bigint UNIQUE REFERENCES scheduler.hold (id),  -- a hold books once
    person_id           text NOT NULL,
    wa_id               text NOT NULL,
    lang                text NOT NULL,
    dose                smallint NOT NULL CHECK (dose IN (1, 2)),
    session_id          bigint NOT NULL REFERENCES scheduler.session (id),
    replaces_booking_id bigint REFERENCES scheduler.booking (id),
    status              text NOT NULL DEFAULT 'active'
        CHECK (status IN ('active', 'cancelled', 'rescheduled', 'done')),
    cancel_reason       text CHECK (cancel_reason IN ('user', 'session_cancelled')),
    cancel_request_id   text,  -- idempotency key of the cancelling wamid (unique, below)
    reminded_at         timestamptz,  -- the day-before reminder was queued (once, ever)
    created_at          timestamptz NOT NULL DEFAULT now(),
    ended_at            timestamptz
);
-- One active booking per person and dose: the authoritative "already booked" (SQLSTATE 23505).
CREATE UNIQUE INDEX booking_one_active_per_dose ON scheduler.booking (person_id, dose)
    WHERE status = 'active';
CREATE INDEX booking_session_idx ON scheduler.booking (session_id) WHERE status = 'active';
CREATE UNIQUE INDEX booking_cancel_request ON scheduler.booking (cancel_request_id)
    WHERE cancel_request_id IS NOT NULL;  -- partial: no index entry for a booking never cancelled
CREATE INDEX booking_person_idx ON scheduler.booking (person_id);

-- Bookings the scheduler makes by itself and keeps trying to make: dose 2 after dose 1 was given,
-- and a new session for a booking whose session the facility cancelled.
CREATE TABLE scheduler.auto_booking (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source          text NOT NULL UNIQUE,  -- dose2:<dose-1 booking> | rebook:<cancelled booking>
    kind            text NOT NULL CHECK (kind IN ('dose2', 'rebook')),
    person_id       text NOT NULL,
    wa_id           text NOT NULL,
    lang            text NOT NULL,
    dose            smallint NOT NULL CHECK (dose IN (1, 2)),
    facility_code   text NOT NULL REFERENCES scheduler.facility (code),
    vaccine         text NOT NULL,
    earliest        date NOT NULL,
    latest          date NOT NULL,
    status          text NOT NULL DEFAULT 'waiting'
        CHECK (status IN ('waiting', 'booked', 'missed', 'superseded')),
    booking_id      bigint REFERENCES scheduler.booking (id),
    told_waiting    boolean NOT NULL DEFAULT false,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (latest >= earliest)
);
CREATE INDEX auto_booking_due_idx ON scheduler.auto_booking (next_attempt_at)
    WHERE status = 'waiting';
CREATE INDEX auto_booking_person_idx ON scheduler.auto_booking (person_id);

-- Transactional outbox (services/common/outbox.py): booking facts and the messages the scheduler
-- sends itself (dose 2, reminders, cancelled sessions) leave with the change that caused them.
CREATE TABLE scheduler.outbox (
    id bigserial PRIMARY KEY,
    subject text NOT NULL,
    stream text NOT NULL,
    payload jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
