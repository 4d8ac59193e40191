-- The operators' console (services/console) works the intake queue over NATS: its actions are
-- recorded like the CLI's and the HTTP API's, under channel 'console'.
ALTER TABLE identity.operator_action DROP CONSTRAINT operator_action_channel_check,
    ADD CONSTRAINT operator_action_channel_check CHECK (channel IN ('cli', 'http', 'console'));

-- When the person first proved the number with the NIK suffix (the console's "verified").
ALTER TABLE identity.person ADD COLUMN verified_at timestamptz;
-- The intake detail shows registry entries with the same name at the same facility.
CREATE INDEX person_facility_idx ON identity.person (facility_code);
-- Locked numbers now (stats), without reading every number that ever failed once.
CREATE INDEX number_lock_until_idx ON identity.number_lock (locked_until)
    WHERE locked_until IS NOT NULL;

-- Counters for the console's figures, kept by the statements that change the data (statement
-- triggers with transition tables: a registry import of 1.5 million rows adds a few hundred
-- counter rows, not a trigger call per row). By day (WIB) and the NIK's region (province and
-- regency digits, what the masked NIK shows). `slot` spreads concurrent writers of the same
-- day and region over rows (by backend), so no counter row becomes a queue; readers sum.
CREATE TABLE identity.figure (
    metric  text NOT NULL
        CHECK (metric IN ('registered', 'verified', 'intake_submitted', 'intake_approved',
                          'intake_rejected')),
    day     date NOT NULL,
    regency text NOT NULL,
    slot    smallint NOT NULL,
    n       bigint NOT NULL,
    PRIMARY KEY (metric, day, regency, slot)
);

CREATE FUNCTION identity.count_person_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO identity.figure AS f (metric, day, regency, slot, n)
    SELECT 'registered', (now() AT TIME ZONE 'Asia/Jakarta')::date, left(masked_nik, 4),
           pg_backend_pid() % 8, count(*)
    FROM inserted GROUP BY left(masked_nik, 4) ORDER BY left(masked_nik, 4)
    ON CONFLICT (metric, day, regency, slot) DO UPDATE SET n = f.n + EXCLUDED.n;
    RETURN NULL;
END $$;
CREATE TRIGGER person_figures_insert AFTER INSERT ON identity.person
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT
    EXECUTE FUNCTION identity.count_person_inserted();

-- 'verified' is counted by the statement that sets verified_at (repository.mark_verified): an
-- UPDATE trigger would also join every row of a registry re-import, and transition tables cannot
-- be limited to a column.

CREATE FUNCTION identity.count_intake_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO identity.figure AS f (metric, day, regency, slot, n)
    SELECT 'intake_submitted', (now() AT TIME ZONE 'Asia/Jakarta')::date, regency_code,
           pg_backend_pid() % 8, count(*)
    FROM inserted GROUP BY regency_code ORDER BY regency_code
    ON CONFLICT (metric, day, regency, slot) DO UPDATE SET n = f.n + EXCLUDED.n;
    RETURN NULL;
END $$;
CREATE TRIGGER intake_figures_insert AFTER INSERT ON identity.intake
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT
    EXECUTE FUNCTION identity.count_intake_inserted();

CREATE FUNCTION identity.count_intake_decided() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO identity.figure AS f (metric, day, regency, slot, n)
    SELECT 'intake_' || n.status, (now() AT TIME ZONE 'Asia/Jakarta')::date, n.regency_code,
           pg_backend_pid() % 8, count(*)
    FROM after_rows n JOIN before_rows o ON o.id = n.id
    WHERE o.status = 'open' AND n.status <> 'open'
    GROUP BY n.status, n.regency_code ORDER BY n.status, n.regency_code
    ON CONFLICT (metric, day, regency, slot) DO UPDATE SET n = f.n + EXCLUDED.n;
    RETURN NULL;
END $$;
CREATE TRIGGER intake_figures_update AFTER UPDATE ON identity.intake
    REFERENCING OLD TABLE AS before_rows NEW TABLE AS after_rows FOR EACH STATEMENT
    EXECUTE FUNCTION identity.count_intake_decided();

-- What happened before the counters existed, on the day it happened.
INSERT INTO identity.figure (metric, day, regency, slot, n)
SELECT 'registered', (created_at AT TIME ZONE 'Asia/Jakarta')::date, left(masked_nik, 4), 0,
       count(*)
FROM identity.person GROUP BY 2, 3;
INSERT INTO identity.figure (metric, day, regency, slot, n)
SELECT 'intake_submitted', (created_at AT TIME ZONE 'Asia/Jakarta')::date, regency_code, 0,
       count(*)
FROM identity.intake GROUP BY 2, 3;
INSERT INTO identity.figure (metric, day, regency, slot, n)
SELECT 'intake_' || status, (decided_at AT TIME ZONE 'Asia/Jakarta')::date, regency_code, 0,
       count(*)
FROM identity.intake WHERE status <> 'open' GROUP BY status, 2, 3;
