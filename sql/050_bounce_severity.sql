-- A bounce is hard (the address does not exist: suppress for good) or soft (mailbox full, server
-- down: try again later). The ESP says which in the event (`bounce_type` or `severity`); a bounce
-- that does not say is taken as hard, the safe side for a sender's reputation.
ALTER TABLE crm.touches ADD COLUMN bounce text CHECK (bounce IN ('hard', 'soft'));
