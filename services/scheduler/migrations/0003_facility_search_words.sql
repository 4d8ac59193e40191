-- Facility search that understands how people write facility names (issue 17): abbreviations
-- (`PKM`, `Pusk.`, `RSUD`, `RS`, `Kab.`, ...) typed for the full word and the other way round,
-- and small typos (pg_trgm word similarity, used by the repository only when no facility has
-- every word).
--
-- Both sides are brought to one canonical form by the same function: every word of a facility's
-- name, address and regency (kept in `search_text`, set by a trigger) and every word the user
-- types (the repository calls the function on the query). A word is what lies between blanks and
-- punctuation (`Kab.Bogor` is two words); one listed in `search_word` is replaced by its canonical
-- form, which may be several words (`rsud` -> `rumah sakit umum daerah`). A new abbreviation is a
-- new migration that inserts it and recomputes `search_text` (UPDATE ... SET search_text =
-- scheduler.search_normalize(...)), since stored texts do not follow the table by themselves.
--
-- pg_trgm: required since 0002 (contrib, shipped with PostgreSQL and the embedded server; a
-- trusted extension since PostgreSQL 13, so the database owner may create it).

CREATE TABLE scheduler.search_word (
    word      text PRIMARY KEY CHECK (word = lower(word) AND word !~ '[[:space:]]'),
    canonical text NOT NULL CHECK (canonical = lower(canonical) AND canonical <> '')
);

INSERT INTO scheduler.search_word (word, canonical) VALUES
    ('pkm', 'puskesmas'),
    ('pusk', 'puskesmas'),
    ('puskes', 'puskesmas'),
    ('pustu', 'puskesmas pembantu'),
    ('rs', 'rumah sakit'),
    ('rsu', 'rumah sakit umum'),
    ('rsud', 'rumah sakit umum daerah'),
    ('rsup', 'rumah sakit umum pusat'),
    ('rsia', 'rumah sakit ibu dan anak'),
    ('rsb', 'rumah sakit bersalin'),
    ('rsj', 'rumah sakit jiwa'),
    ('rsgm', 'rumah sakit gigi dan mulut'),
    ('kab', 'kabupaten'),
    ('kabup', 'kabupaten'),
    ('kodya', 'kota'),
    ('kotamadya', 'kota'),
    ('kec', 'kecamatan'),
    ('kel', 'kelurahan'),
    ('prov', 'provinsi'),
    ('adm', 'administrasi'),
    ('jl', 'jalan'),
    ('jln', 'jalan');

-- STABLE, not IMMUTABLE: it reads search_word (so no expression index; the stored column instead).
CREATE FUNCTION scheduler.search_normalize(raw text) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(string_agg(coalesce(w.canonical, t.word), ' ' ORDER BY t.n), '')
    FROM regexp_split_to_table(lower(coalesce(raw, '')), '[[:space:].,;:!?()"''/]+')
         WITH ORDINALITY AS t(word, n)
    LEFT JOIN scheduler.search_word w ON w.word = t.word
    WHERE t.word <> ''
$$;

ALTER TABLE scheduler.facility ADD COLUMN search_text text NOT NULL DEFAULT '';

CREATE FUNCTION scheduler.facility_search_text() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.search_text := scheduler.search_normalize(
        NEW.name || ' ' || NEW.address || ' ' || NEW.regency);
    RETURN NEW;
END
$$;

CREATE TRIGGER facility_search_text
    BEFORE INSERT OR UPDATE OF name, address, regency ON scheduler.facility
    FOR EACH ROW EXECUTE FUNCTION scheduler.facility_search_text();

UPDATE scheduler.facility
SET search_text = scheduler.search_normalize(name || ' ' || address || ' ' || regency);

-- The trigram index now answers the canonical text (same name: the search's index).
DROP INDEX scheduler.facility_search_idx;
CREATE INDEX facility_search_idx ON scheduler.facility USING gin (search_text gin_trgm_ops);
