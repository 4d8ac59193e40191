-- Counters for the operators' console (screening.rpc.stats with `tables`): screenings by the day
-- they were stored (WIB) and their outcome, kept by the statement that stores them (a statement
-- trigger with a transition table). Every user's screening lands on the same few counter rows
-- of the day, so `slot` spreads concurrent writers (by backend) over rows; readers sum.
CREATE TABLE screening.figure (
    outcome text NOT NULL,
    day     date NOT NULL,
    slot    smallint NOT NULL,
    n       bigint NOT NULL,
    PRIMARY KEY (outcome, day, slot)
);

CREATE FUNCTION screening.count_screening_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO screening.figure AS f (outcome, day, slot, n)
    SELECT outcome, (now() AT TIME ZONE 'Asia/Jakarta')::date, pg_backend_pid() % 8, count(*)
    FROM inserted GROUP BY outcome ORDER BY outcome
    ON CONFLICT (outcome, day, slot) DO UPDATE SET n = f.n + EXCLUDED.n;
    RETURN NULL;
END $$;
CREATE TRIGGER screening_figures_insert AFTER INSERT ON screening.screening
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT
    EXECUTE FUNCTION screening.count_screening_inserted();

INSERT INTO screening.figure (outcome, day, slot, n)
SELECT outcome, (created_at AT TIME ZONE 'Asia/Jakarta')::date, 0, count(*)
FROM screening.screening GROUP BY 1, 2;
