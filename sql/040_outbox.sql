-- The outbox dispatcher: claims, per-contact order, and what the CRM answered.
--
-- A worker claims a batch of due rows with FOR UPDATE SKIP LOCKED and marks each with a short
-- lease (`claimed_until`, `claimed_by`), commits, delivers, and records the result in its own
-- transaction. Another worker skips rows under a live lease; a crashed worker's claims expire.
ALTER TABLE crm.outbox
    ADD COLUMN claimed_until    timestamptz,
    ADD COLUMN claimed_by       text,
    ADD COLUMN last_attempt_at  timestamptz,
    -- The id the CRM gave the task or activity a `create_task` command created.
    ADD COLUMN crm_record_id    text,
    -- Commands for one contact are delivered in (created_at, id) order: a row waits while an
    -- older undelivered, not dead row of the same contact is pending.
    ADD COLUMN contact_key      text GENERATED ALWAYS AS (payload #>> '{contact,external_id}') STORED;

CREATE INDEX outbox_contact_pending_idx ON crm.outbox (contact_key, created_at, id)
    WHERE delivered_at IS NULL AND dead_at IS NULL;
CREATE INDEX outbox_dead_idx ON crm.outbox (dead_at) WHERE dead_at IS NOT NULL AND delivered_at IS NULL;
