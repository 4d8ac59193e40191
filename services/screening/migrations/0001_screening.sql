-- Screening rule sets (versioned data with effective dates) and every screening done, with the
-- answers and the rule set they were judged by (audit). A rule set is immutable once loaded: a
-- correction is a new id, so a screening's rule_set_id always means the rules it was judged by.
CREATE SCHEMA screening;

CREATE TABLE screening.rule_set (
    id             text PRIMARY KEY,
    vaccine        text NOT NULL,
    effective_from date NOT NULL,
    definition     jsonb NOT NULL,  -- the validated document (services/screening/rules.py)
    checksum       text NOT NULL,   -- sha256 of its canonical JSON
    loaded_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE screening.screening (
    id               uuid PRIMARY KEY,
    request_id       text NOT NULL UNIQUE,  -- idempotency key (the inbound wamid)
    person_id        text NOT NULL,
    rule_set_id      text NOT NULL REFERENCES screening.rule_set (id),
    lang             text NOT NULL,
    screened_on      date NOT NULL,
    answers          jsonb NOT NULL,
    birth_date_known boolean NOT NULL,       -- false: age rules were skipped
    outcome          text NOT NULL
        CHECK (outcome IN ('eligible', 'postpone', 'not_eligible', 'refer')),
    reasons          jsonb NOT NULL,         -- ids of the rules that fired, deciding ones first
    rescreen_on      date,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX screening_person_idx ON screening.screening (person_id, created_at);

-- Transactional outbox (services/common/outbox.py): screening.evt.completed leaves with the row.
CREATE TABLE screening.outbox (
    id bigserial PRIMARY KEY,
    subject text NOT NULL,
    stream text NOT NULL,
    payload jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
