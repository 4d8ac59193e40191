-- Intake of unlisted health workers: requests waiting for an operator, the audit of what operators
-- did, the per-number daily submission counter, idempotent answers, and identity's outbox.
-- Like the registry, no raw NIK: a keyed hash, a masked form, and the suffix bound to the phone.
-- The one raw number is `wa_id`, kept only while the request is open (the decision is announced
-- to it through identity.evt.intake_decided) and erased when it is decided.
CREATE TABLE identity.intake (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id     text NOT NULL UNIQUE,  -- the wamid that submitted it
    status         text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'approved', 'rejected')),
    nik_hash       text NOT NULL,
    masked_nik     text NOT NULL,
    suffix_hash    text NOT NULL,  -- HMAC of (phone, last 6 NIK digits), as in identity.person
    birth_date     date NOT NULL,
    sex            text NOT NULL CHECK (sex IN ('F', 'M')),
    regency_code   text NOT NULL,  -- province + regency digits of the NIK (first registration)
    unknown_region boolean NOT NULL,
    name           text NOT NULL,
    masked_name    text NOT NULL,
    profession     text NOT NULL,  -- Profession.id of the contract
    facility_code  text NOT NULL,
    phone_hash     text NOT NULL,
    masked_phone   text NOT NULL,
    wa_id          text,  -- NULL once decided
    lang           text NOT NULL,
    reason         text,  -- why it was rejected
    decided_by     text,
    decided_at     timestamptz,
    person_id      uuid REFERENCES identity.person (id),
    created_at     timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 'open') = (decided_at IS NULL)),
    CHECK ((status = 'open') = (wa_id IS NOT NULL)),
    CHECK (status <> 'rejected' OR reason IS NOT NULL),
    CHECK (status <> 'approved' OR person_id IS NOT NULL)
);
-- One open request per number and per NIK.
CREATE UNIQUE INDEX intake_open_phone_idx ON identity.intake (phone_hash) WHERE status = 'open';
CREATE UNIQUE INDEX intake_open_nik_idx ON identity.intake (nik_hash) WHERE status = 'open';
CREATE INDEX intake_queue_idx ON identity.intake (created_at) WHERE status = 'open';
CREATE INDEX intake_phone_idx ON identity.intake (phone_hash, created_at);

-- Submissions per number and day (WIB) that reached the registry lookup, for the daily limit.
CREATE TABLE identity.intake_attempt (
    phone_hash text NOT NULL,
    day        date NOT NULL,
    attempts   integer NOT NULL CHECK (attempts > 0),
    PRIMARY KEY (phone_hash, day)
);

-- Who did what to which request, and when.
CREATE TABLE identity.operator_action (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    intake_id bigint NOT NULL REFERENCES identity.intake (id),
    action    text NOT NULL CHECK (action IN ('view', 'approve', 'reject')),
    operator  text NOT NULL,
    channel   text NOT NULL CHECK (channel IN ('cli', 'http')),
    reason    text,
    at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX operator_action_intake_idx ON identity.operator_action (intake_id, at);

-- Answers to intake_submit by idempotency key (the wamid): a redelivered message gets the same
-- answer and is never counted twice against the daily limit.
CREATE TABLE identity.intake_answer (
    request_id text PRIMARY KEY,
    answer     jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX intake_answer_age_idx ON identity.intake_answer (created_at);

-- Transactional outbox (services/common/outbox.py): identity.evt.* leave with the row.
CREATE TABLE identity.outbox (
    id         bigserial PRIMARY KEY,
    subject    text NOT NULL,
    stream     text NOT NULL,
    payload    jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
