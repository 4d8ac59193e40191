-- Counters for the operators' console (scheduler.rpc.stats with `tables`): bookings made, by the
-- day they were made (WIB), the facility and the dose, kept by the statement that inserts them
-- (a statement trigger with a transition table). A reschedule (a booking that replaces another)
-- is not a new booking. Booking a seat already locks the session's row, so a counter per
-- facility and day adds no queue of its own; `slot` spreads concurrent writers all the same.
-- The regency comes from scheduler.facility when read (a few thousand rows).
CREATE TABLE scheduler.figure (
    metric   text NOT NULL CHECK (metric IN ('booked_dose_1', 'booked_dose_2')),
    day      date NOT NULL,
    facility text NOT NULL,
    slot     smallint NOT NULL,
    n        bigint NOT NULL,
    PRIMARY KEY (metric, day, facility, slot)
);

CREATE FUNCTION scheduler.count_booking_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO scheduler.figure AS f (metric, day, facility, slot, n)
    SELECT 'booked_dose_' || b.dose, (now() AT TIME ZONE 'Asia/Jakarta')::date,
           s.facility_code, pg_backend_pid() % 8, count(*)
    FROM inserted b JOIN scheduler.session s ON s.id = b.session_id
    WHERE b.replaces_booking_id IS NULL
    GROUP BY b.dose, s.facility_code ORDER BY b.dose, s.facility_code
    ON CONFLICT (metric, day, facility, slot) DO UPDATE SET n = f.n + EXCLUDED.n;
    RETURN NULL;
END $$;
CREATE TRIGGER booking_figures_insert AFTER INSERT ON scheduler.booking
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT
    EXECUTE FUNCTION scheduler.count_booking_inserted();

INSERT INTO scheduler.figure (metric, day, facility, slot, n)
SELECT 'booked_dose_' || b.dose, (b.created_at AT TIME ZONE 'Asia/Jakarta')::date,
       s.facility_code, 0, count(*)
FROM scheduler.booking b JOIN scheduler.session s ON s.id = b.session_id
WHERE b.replaces_booking_id IS NULL
GROUP BY b.dose, 2, s.facility_code;
