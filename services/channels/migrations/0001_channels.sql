-- SMS and USSD adapters (services/channels): menus, turns received, USSD sessions and screens,
-- the SMS send queue with its per-number budget, and opt-outs.
CREATE SCHEMA IF NOT EXISTS channels;

-- The channel that reaches a number unasked (tickets, reminders): where it last wrote from.
CREATE TABLE channels.number_channel (
    number      text PRIMARY KEY,
    channel     text NOT NULL CHECK (channel IN ('whatsapp', 'sms', 'ussd')),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- The options of the last menu shown to a number on a channel: a typed number picks one.
CREATE TABLE channels.menu (
    channel     text NOT NULL,
    number      text NOT NULL,
    options     jsonb NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (channel, number)
);

-- The dialog's commands as received: a turn is shown once all its parts are here.
CREATE TABLE channels.reply_part (
    command_id   text PRIMARY KEY,
    channel      text NOT NULL,
    number       text NOT NULL,
    in_reply_to  text,
    idx          integer NOT NULL,
    count        integer NOT NULL,
    lang         text NOT NULL,
    step         text,
    message      jsonb NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX reply_part_turn ON channels.reply_part (in_reply_to);
CREATE INDEX reply_part_received ON channels.reply_part (received_at);

-- The latest USSD screen of a number (pages, options, whether it ends the session), and
-- whether a session has shown it: one that came too late is shown on the next dial.
CREATE TABLE channels.ussd_screen (
    number      text PRIMARY KEY,
    inbound_id  text NOT NULL,
    pages       jsonb NOT NULL,
    options     jsonb NOT NULL,
    final       boolean NOT NULL,
    shown       boolean NOT NULL DEFAULT false,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- An aggregator's USSD session: how many of its inputs were taken, the turn it shows, the page.
CREATE TABLE channels.ussd_session (
    session_id  text PRIMARY KEY,
    number      text NOT NULL,
    consumed    integer NOT NULL DEFAULT 0,
    inbound_id  text,
    page        integer NOT NULL DEFAULT 0,
    started_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ussd_session_started ON channels.ussd_session (started_at);

-- SMS to send, one row per message (a long one is concatenated by the gateway), in order per
-- number; `status`: queued, sending (leased), submitted (gateway accepted), delivered, failed,
-- skipped (the number opted out).
CREATE TABLE channels.sms_outbound (
    id            bigserial PRIMARY KEY,
    command_id    text NOT NULL,
    seq           integer NOT NULL,
    number        text NOT NULL,
    content       text NOT NULL,
    coding        text NOT NULL,
    parts         integer NOT NULL,
    always        boolean NOT NULL DEFAULT false,  -- the opt-out confirmation itself
    status        text NOT NULL DEFAULT 'queued',
    attempts      integer NOT NULL DEFAULT 0,
    not_before    timestamptz NOT NULL DEFAULT now(),
    lease_until   timestamptz,
    gateway_id    text UNIQUE,
    last_error    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    submitted_at  timestamptz,
    done_at       timestamptz,
    UNIQUE (command_id, seq)
);
CREATE INDEX sms_outbound_pending ON channels.sms_outbound (number, id)
    WHERE status IN ('queued', 'sending');

-- Per-number send budget: the earliest next send, and today's count (Jakarta's day).
CREATE TABLE channels.sms_budget (
    number   text PRIMARY KEY,
    next_at  timestamptz NOT NULL,
    day      date NOT NULL,
    sent     integer NOT NULL
);

-- Numbers that sent STOP / BERHENTI: nothing but the confirmation goes to them until they
-- write again.
CREATE TABLE channels.sms_optout (
    number  text PRIMARY KEY,
    at      timestamptz NOT NULL DEFAULT now()
);
