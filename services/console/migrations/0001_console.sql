-- The operators' console (services/console): its accounts, their server-side sessions, the
-- login throttle and the audit log. Everything else it shows or changes belongs to identity,
-- scheduler and ticketing and is reached over NATS only.
CREATE SCHEMA console;

CREATE TABLE console.account (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name                 text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9._-]{1,31}$'),
    role                 text NOT NULL CHECK (role IN ('intake', 'scheduler', 'viewer', 'admin')),
    password_hash        text NOT NULL,  -- Argon2id (PHC string)
    must_change_password boolean NOT NULL DEFAULT true,  -- the one-time password of `operator add`
    created_at           timestamptz NOT NULL DEFAULT now(),
    created_by           text NOT NULL,
    password_changed_at  timestamptz,
    disabled_at          timestamptz
);

-- A session is known by the SHA-256 digest of its cookie's token; it ends when idle too long
-- (last_seen_at, see console.session_idle) or at expires_at, whichever comes first.
CREATE TABLE console.session (
    token_hash   bytea PRIMARY KEY,
    account_id   bigint NOT NULL REFERENCES console.account ON DELETE CASCADE,
    csrf_token   text NOT NULL,
    address      text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);
CREATE INDEX session_account_idx ON console.session (account_id);
CREATE INDEX session_expires_idx ON console.session (expires_at);

-- Failed logins per account name ('account:<digest of the name as typed>': unknown names are
-- throttled like known ones, and a NIK typed by mistake is not kept) and per address
-- ('address:<ip>').
CREATE TABLE console.throttle (
    key               text PRIMARY KEY,
    failures          integer NOT NULL CHECK (failures >= 0),
    window_started_at timestamptz,
    locked_until      timestamptz,
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- Who did what, when, from where, and how it ended. Never a NIK or a number in full.
CREATE TABLE console.audit (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at      timestamptz NOT NULL DEFAULT now(),
    account text,      -- the account acting (for a failed login: the name typed, cut)
    role    text,
    action  text NOT NULL,
    target  text,      -- intake:<id>, session:<id>, file name, desk facility ...
    outcome text NOT NULL CHECK (outcome IN ('ok', 'refused', 'failed')),
    detail  text,
    address text
);
CREATE INDEX audit_at_idx ON console.audit (at);
CREATE INDEX audit_account_idx ON console.audit (account, at);
