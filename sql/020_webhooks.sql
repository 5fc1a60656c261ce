-- Webhook receiver: at most one open dead letter per inbox row, so a worker that retries a batch
-- (or two workers racing) cannot file the same failure twice; replaying closes it.
CREATE UNIQUE INDEX dead_letters_open_idx ON crm.dead_letters (inbox_id) WHERE replayed_at IS NULL;

-- The CRM webhook worker reads each record's events in occurrence order.
CREATE INDEX inbox_pending_record_idx ON crm.inbox (source, record_key, occurred_at, id) WHERE processed_at IS NULL;
