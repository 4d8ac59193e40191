-- The channel of the user's last message (whatsapp, sms, ussd), stored by each turn: what
-- reaches the number unasked (`ingress.rpc.route`: a ticket, a reminder), so a user who started
-- on USSD and wrote on WhatsApp since is reached on WhatsApp again.
ALTER TABLE ingress.conversation ADD COLUMN channel text NOT NULL DEFAULT 'whatsapp';
