-- Facility search by name (scheduler.rpc.facilities_search): every word the user typed must occur
-- in the facility's name, address or regency, i.e. `LIKE '%word%'` on the expression below (the
-- repository uses the same expression, or the index is not used). A trigram GIN index answers
-- those without reading every facility. pg_trgm ships with PostgreSQL (contrib) and is a trusted
-- extension: the database owner may create it without being a superuser.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE INDEX facility_search_idx ON scheduler.facility
    USING gin (lower(name || ' ' || address || ' ' || regency) gin_trgm_ops);
