-- Birth date and sex as encoded in the NIK (women: day + 40), so screening's age rules need not
-- ask the user. Existing rows get them on the next registry re-import.
ALTER TABLE identity.person ADD COLUMN birth_date date, ADD COLUMN sex text CHECK (sex IN ('F', 'M'));
