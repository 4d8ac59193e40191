-- The channel that reaches a person's number unasked (whatsapp, sms, ussd), as the dialog said it
-- when the person last held a seat: reminders, dose 2 and session notices go by SMS to who booked
-- by SMS or USSD (services/common/contracts/channels.py `outbound`). No row: WhatsApp.
CREATE TABLE scheduler.reach (
    wa_id text PRIMARY KEY,
    channel text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
