-- Durable inbox for webhook events, the nurture engine's state, and the outbound command outbox.

-- Every accepted webhook event, committed before the request is acknowledged. The delivery id makes
-- a redelivery a no-op.
CREATE TABLE crm.inbox (
    id            bigserial PRIMARY KEY,
    source        text NOT NULL,               -- 'events', or the connector name
    delivery_id   text NOT NULL,
    event_type    text NOT NULL,
    occurred_at   timestamptz NOT NULL,
    record_key    text,                        -- what the event is about, for per-record ordering
    payload       jsonb NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now(),
    processed_at  timestamptz,
    attempts      integer NOT NULL DEFAULT 0,
    UNIQUE (source, delivery_id)
);
CREATE INDEX inbox_pending_idx ON crm.inbox (occurred_at, id) WHERE processed_at IS NULL;

CREATE TABLE crm.dead_letters (
    id           bigserial PRIMARY KEY,
    inbox_id     bigint NOT NULL REFERENCES crm.inbox (id),
    reason       text NOT NULL,
    failed_at    timestamptz NOT NULL DEFAULT now(),
    replayed_at  timestamptz
);

CREATE TABLE crm.enrollments (
    id                   bigserial PRIMARY KEY,
    connector            text NOT NULL,
    contact_external_id  text NOT NULL,
    sequence             text NOT NULL,
    track                text NOT NULL DEFAULT 'main',
    step                 integer NOT NULL DEFAULT 0,       -- last step sent; 0 before the first
    status               text NOT NULL CHECK (status IN ('active', 'paused', 'completed', 'exited')),
    paused_reason        text,
    paused_at            timestamptz,
    remaining_delay      interval,                         -- kept while paused, restored on resume
    next_step_due_at     timestamptz,
    enrolled_at          timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL,
    exit_reason          text,
    UNIQUE (connector, contact_external_id, sequence)
);
CREATE INDEX enrollments_due_idx ON crm.enrollments (next_step_due_at) WHERE status = 'active';

CREATE TABLE crm.lead_scores (
    connector            text NOT NULL,
    contact_external_id  text NOT NULL,
    score                integer NOT NULL DEFAULT 0,
    updated_at           timestamptz NOT NULL,
    PRIMARY KEY (connector, contact_external_id)
);

CREATE TABLE crm.handoffs (
    connector             text NOT NULL,
    contact_external_id   text NOT NULL,
    owner                 text,
    score                 integer NOT NULL,
    handed_off_at         timestamptz NOT NULL,
    sla_due_at            timestamptz NOT NULL,
    first_sales_touch_at  timestamptz,
    breached_at           timestamptz,
    PRIMARY KEY (connector, contact_external_id, handed_off_at)
);

CREATE TABLE crm.stalled (
    connector             text NOT NULL,
    contact_external_id   text NOT NULL,
    owner                 text,
    canonical_stage       text,
    last_sales_touch_at   timestamptz,
    flagged_at            timestamptz NOT NULL,
    reactivated_at        timestamptz,
    cleared_at            timestamptz,
    PRIMARY KEY (connector, contact_external_id, flagged_at)
);

-- Commands to the MA tool and the CRMs. `id` is the idempotency key sent as `webhook-id`; it never
-- changes across retries.
CREATE TABLE crm.outbox (
    id               text PRIMARY KEY,
    destination      text NOT NULL,              -- 'ma' or a connector name
    command_type     text NOT NULL,
    payload          jsonb NOT NULL,
    created_at       timestamptz NOT NULL,
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL,
    delivered_at     timestamptz,
    dead_at          timestamptz,
    last_error       text
);
CREATE INDEX outbox_due_idx ON crm.outbox (next_attempt_at) WHERE delivered_at IS NULL AND dead_at IS NULL;
