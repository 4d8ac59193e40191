-- The health-worker registry and per-number suffix lockouts. No raw NIK or phone is stored:
-- keyed hashes (HMAC with NIK_PEPPER) for lookups and uniqueness, masked forms for display.
CREATE SCHEMA identity;

CREATE TABLE identity.person (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    nik_hash      text NOT NULL UNIQUE,
    masked_nik    text NOT NULL,
    name          text NOT NULL,
    masked_name   text NOT NULL,
    phone_hash    text NOT NULL,
    masked_phone  text NOT NULL,
    suffix_hash   text NOT NULL,  -- HMAC of (phone, last 6 NIK digits): valid only for that phone
    profession    text NOT NULL,
    facility_code text NOT NULL,
    source        text NOT NULL DEFAULT 'registry',
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX person_phone_hash_idx ON identity.person (phone_hash);

CREATE TABLE identity.number_lock (
    phone_hash   text PRIMARY KEY,
    failures     integer NOT NULL DEFAULT 0 CHECK (failures >= 0),
    locked_until timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
