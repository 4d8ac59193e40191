-- Counters for the operators' console (ticketing.rpc.stats with `tables`): check-ins and doses
-- given, by the day they happened (WIB) and the facility, kept by the statements that record
-- them (a statement trigger with transition tables; redemption updates one ticket a statement).
CREATE TABLE ticketing.figure (
    metric   text NOT NULL CHECK (metric IN ('checked_in', 'dose_given')),
    day      date NOT NULL,
    facility text NOT NULL,
    slot     smallint NOT NULL,
    n        bigint NOT NULL,
    PRIMARY KEY (metric, day, facility, slot)
);

CREATE FUNCTION ticketing.count_ticket_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ticketing.figure AS f (metric, day, facility, slot, n)
    SELECT m.metric, (now() AT TIME ZONE 'Asia/Jakarta')::date, n.facility_code,
           pg_backend_pid() % 8, count(*)
    FROM after_rows n JOIN before_rows o ON o.ticket_id = n.ticket_id
    CROSS JOIN LATERAL (
        SELECT 'checked_in' AS metric WHERE o.redeemed_at IS NULL AND n.redeemed_at IS NOT NULL
        UNION ALL
        SELECT 'dose_given' WHERE o.dose_given_at IS NULL AND n.dose_given_at IS NOT NULL) m
    GROUP BY m.metric, n.facility_code ORDER BY m.metric, n.facility_code
    ON CONFLICT (metric, day, facility, slot) DO UPDATE SET n = f.n + EXCLUDED.n;
    RETURN NULL;
END $$;
CREATE TRIGGER ticket_figures_update AFTER UPDATE ON ticketing.ticket
    REFERENCING OLD TABLE AS before_rows NEW TABLE AS after_rows FOR EACH STATEMENT
    EXECUTE FUNCTION ticketing.count_ticket_updated();

INSERT INTO ticketing.figure (metric, day, facility, slot, n)
SELECT 'checked_in', (redeemed_at AT TIME ZONE 'Asia/Jakarta')::date, facility_code, 0, count(*)
FROM ticketing.ticket WHERE redeemed_at IS NOT NULL GROUP BY 2, 3;
INSERT INTO ticketing.figure (metric, day, facility, slot, n)
SELECT 'dose_given', (dose_given_at AT TIME ZONE 'Asia/Jakarta')::date, facility_code, 0,
       count(*)
FROM ticketing.ticket WHERE dose_given_at IS NOT NULL GROUP BY 2, 3;
