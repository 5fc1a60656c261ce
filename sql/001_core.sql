-- Core CRM mirror: connectors, cursors, owners, accounts, contacts, deals, stage history, activities.
-- Every CRM record is keyed on (connector, external_id); a row is only ever replaced by a version
-- whose CRM modification stamp is not older (enforced by the upserts in CRMSyncStorage).
CREATE SCHEMA IF NOT EXISTS crm;
CREATE SCHEMA IF NOT EXISTS reporting;

CREATE TABLE crm.connectors (
    name        text PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('hubspot', 'salesforce', 'pipedrive')),
    base_url    text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- The incremental position per connector and object type. Written in the same transaction as the
-- rows it covers, so a crash never leaves the cursor ahead of the data.
CREATE TABLE crm.sync_cursors (
    connector           text NOT NULL,
    stream              text NOT NULL,   -- a connector's feed: deals, contacts, calls, OpportunityHistory...
    modified_at         timestamptz,
    ids_at_modified_at  text[] NOT NULL DEFAULT '{}',
    updated_at          timestamptz NOT NULL DEFAULT now(),
    last_full_sync_at   timestamptz,
    PRIMARY KEY (connector, stream)
);

CREATE TABLE crm.sync_runs (
    id           bigserial PRIMARY KEY,
    run_id       text NOT NULL,
    connector    text NOT NULL,
    full_sync    boolean NOT NULL DEFAULT false,
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz,
    status       text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    records      bigint NOT NULL DEFAULT 0,
    pages        bigint NOT NULL DEFAULT 0,
    retries      bigint NOT NULL DEFAULT 0,
    error        text
);
CREATE INDEX sync_runs_connector_idx ON crm.sync_runs (connector, started_at DESC);

CREATE TABLE crm.owners (
    connector    text NOT NULL,
    external_id  text NOT NULL,
    email        text,
    name         text,
    modified_at  timestamptz NOT NULL,
    deleted      boolean NOT NULL DEFAULT false,
    synced_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (connector, external_id)
);

CREATE TABLE crm.accounts (
    connector    text NOT NULL,
    external_id  text NOT NULL,
    name         text,
    domain       text,
    owner        text,
    modified_at  timestamptz NOT NULL,
    deleted      boolean NOT NULL DEFAULT false,
    merged_into  text,
    synced_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (connector, external_id)
);

CREATE TABLE crm.contacts (
    connector            text NOT NULL,
    external_id          text NOT NULL,
    email                text,
    name                 text,
    company              text,
    account_external_id  text,
    owner                text,
    lifecycle_stage      text,
    modified_at          timestamptz NOT NULL,
    deleted              boolean NOT NULL DEFAULT false,
    merged_into          text,
    synced_at            timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (connector, external_id)
);
CREATE INDEX contacts_email_idx ON crm.contacts (lower(email));

CREATE TABLE crm.deals (
    connector        text NOT NULL,
    external_id      text NOT NULL,
    name             text,
    amount           numeric,
    currency         text,
    pipeline         text,
    stage            text,
    canonical_stage  text,          -- NULL: the stage is not in the mapping (reported, never dropped)
    owner            text,
    created_at       timestamptz,
    closed_at        timestamptz,
    is_closed        boolean NOT NULL DEFAULT false,
    is_won           boolean NOT NULL DEFAULT false,
    gross_margin     numeric,       -- per-deal override of attribution.gross_margin
    modified_at      timestamptz NOT NULL,
    deleted          boolean NOT NULL DEFAULT false,
    merged_into      text,
    synced_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (connector, external_id)
);
CREATE INDEX deals_stage_idx ON crm.deals (connector, canonical_stage);

CREATE TABLE crm.deal_contacts (
    connector            text NOT NULL,
    deal_external_id     text NOT NULL,
    contact_external_id  text NOT NULL,
    PRIMARY KEY (connector, deal_external_id, contact_external_id)
);
CREATE INDEX deal_contacts_contact_idx ON crm.deal_contacts (connector, contact_external_id);

CREATE TABLE crm.deal_accounts (
    connector            text NOT NULL,
    deal_external_id     text NOT NULL,
    account_external_id  text NOT NULL,
    PRIMARY KEY (connector, deal_external_id, account_external_id)
);

-- One row per stage a deal entered at the CRM's own time. The key makes a replayed page, an
-- overlapping poll or a retried sync a no-op.
CREATE TABLE crm.stage_history (
    connector         text NOT NULL,
    deal_external_id  text NOT NULL,
    stage             text NOT NULL,
    canonical_stage   text,
    entered_at        timestamptz NOT NULL,
    source            text NOT NULL DEFAULT 'poll',
    recorded_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (connector, deal_external_id, stage, entered_at)
);

CREATE TABLE crm.activities (
    connector             text NOT NULL,
    external_id           text NOT NULL,
    kind                  text NOT NULL,
    subject               text,
    owner                 text,
    contact_external_ids  text[] NOT NULL DEFAULT '{}',
    deal_external_ids     text[] NOT NULL DEFAULT '{}',
    occurred_at           timestamptz NOT NULL,
    modified_at           timestamptz NOT NULL,
    deleted               boolean NOT NULL DEFAULT false,
    synced_at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (connector, external_id)
);
CREATE INDEX activities_contacts_idx ON crm.activities USING gin (contact_external_ids);
