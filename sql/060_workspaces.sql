-- Tenancy: one installation serves several business units. A connector belongs to a workspace
-- (config `workspace:`, default `default`); every row of CRM, marketing, nurture and attribution
-- data carries the workspace of the connector it came from, and every reporting view has a
-- `workspace` column (appended last, so the contract's columns keep their positions).
--
-- Installation-wide on purpose (reference data, shared by every workspace): currencies, attribution
-- models and settings, nurture definitions and calendars, and the migrations. The inbox, its dead
-- letters and the work leases are drained by every worker: they record the workspace once it is
-- known. docs/SCALING.md says how these map onto a distributed cluster.

CREATE TABLE crm.workspaces (
    name        text PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    created_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO crm.workspaces (name) VALUES ('default');

ALTER TABLE crm.connectors ADD COLUMN workspace text NOT NULL DEFAULT 'default' REFERENCES crm.workspaces (name);

-- A row's workspace is its connector's, set here rather than by each writer so no write path can
-- get it wrong (a BEFORE trigger runs before ON CONFLICT arbitration, so upserts keyed on the
-- workspace see it). A connector not registered yet keeps the row's own value.
CREATE FUNCTION crm.stamp_workspace() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF NEW.connector IS NOT NULL THEN
        NEW.workspace := coalesce((SELECT c.workspace FROM crm.connectors c WHERE c.name = NEW.connector), NEW.workspace);
    END IF;
    RETURN NEW;
END
$fn$;

DO $do$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['sync_cursors', 'sync_runs', 'owners', 'accounts', 'contacts', 'deals',
                             'deal_contacts', 'deal_accounts', 'stage_history', 'activities', 'pipeline_stages',
                             'campaigns', 'touches', 'enrollments', 'lead_scores', 'handoffs', 'stalled',
                             'nurture_policies', 'nurture_scoring_rules', 'nurture_suppressions']
    LOOP
        EXECUTE format('ALTER TABLE crm.%I ADD COLUMN workspace text NOT NULL DEFAULT %L', t, 'default');
        EXECUTE format('CREATE TRIGGER %I BEFORE INSERT OR UPDATE OF connector ON crm.%I
                        FOR EACH ROW EXECUTE FUNCTION crm.stamp_workspace()', t || '_workspace', t);
    END LOOP;
END
$do$;

-- Campaign names are the business unit's own: two workspaces may both run "webinar-2026".
ALTER TABLE crm.campaigns DROP CONSTRAINT campaigns_pkey, ADD PRIMARY KEY (workspace, campaign);
ALTER TABLE crm.campaign_costs ADD COLUMN workspace text NOT NULL DEFAULT 'default' REFERENCES crm.workspaces (name);
ALTER TABLE crm.campaign_costs DROP CONSTRAINT campaign_costs_pkey,
    ADD PRIMARY KEY (workspace, campaign, category, currency, period, source);

-- The inbox and its dead letters are queues every worker drains, whatever the workspace: an event
-- is committed before anyone knows where it belongs (it may name no workspace and be matched by
-- e-mail). The processor records the workspace it resolved; NULL while pending, or when the event
-- belongs nowhere known.
ALTER TABLE crm.inbox ADD COLUMN workspace text;
ALTER TABLE crm.dead_letters ADD COLUMN workspace text;

-- Commands name their contact's connector; operators read backlog per business unit.
ALTER TABLE crm.outbox ADD COLUMN workspace text NOT NULL DEFAULT 'default';

-- Derived tables: the refresh writes the deal's workspace itself (a trigger per row would cost
-- more than the refresh's own work at a million touches).
ALTER TABLE crm.deal_touches ADD COLUMN workspace text NOT NULL DEFAULT 'default';
ALTER TABLE crm.attribution_credits ADD COLUMN workspace text NOT NULL DEFAULT 'default';
ALTER TABLE crm.campaign_influence ADD COLUMN workspace text NOT NULL DEFAULT 'default';
ALTER TABLE crm.campaign_influence DROP CONSTRAINT campaign_influence_pkey, ADD PRIMARY KEY (workspace, campaign, currency);
ALTER TABLE crm.attribution_totals ADD COLUMN workspace text NOT NULL DEFAULT 'default';
ALTER TABLE crm.attribution_totals DROP CONSTRAINT attribution_totals_pkey,
    ADD PRIMARY KEY (workspace, model, campaign, currency);

CREATE OR REPLACE FUNCTION crm.refresh_attribution_credits() RETURNS void LANGUAGE plpgsql
    SET work_mem = '128MB' AS $fn$
DECLARE
    s crm.attribution_settings%ROWTYPE;
BEGIN
    SELECT * INTO s FROM crm.attribution_settings WHERE singleton;

    -- Touches that arrived before their contact was synced: resolve them by e-mail now, inside
    -- their own workspace (the same address can be a contact of two business units).
    UPDATE crm.touches t
       SET connector = c.connector, contact_external_id = c.external_id
      FROM crm.contacts c
     WHERE t.contact_external_id IS NULL AND t.email IS NOT NULL
       AND lower(c.email) = lower(t.email) AND NOT c.deleted AND c.workspace = t.workspace;

    TRUNCATE crm.deal_touches;
    INSERT INTO crm.deal_touches (workspace, connector, deal_external_id, touch_id, campaign, occurred_at)
    SELECT d.workspace, d.connector, d.external_id, t.id, t.campaign, t.occurred_at
      FROM crm.deals d
      JOIN crm.deal_contacts dc ON dc.connector = d.connector AND dc.deal_external_id = d.external_id
      JOIN crm.touches t ON t.connector = dc.connector AND t.contact_external_id = dc.contact_external_id
     WHERE NOT d.deleted
       AND t.occurred_at >= coalesce(d.created_at, '-infinity') - make_interval(days => s.lookback_days)
       AND t.occurred_at <= CASE WHEN d.is_closed THEN coalesce(d.closed_at, 'infinity') ELSE 'infinity' END;

    TRUNCATE crm.attribution_credits;
    INSERT INTO crm.attribution_credits (workspace, model, connector, deal_external_id, touch_id, campaign, currency, credit)
    WITH won AS (
        SELECT d.workspace, d.connector, d.external_id, d.amount, d.currency, d.created_at,
               coalesce(d.closed_at, d.modified_at) AS closed_at,
               10::numeric ^ coalesce(cur.minor_units, 2) AS unit_scale
          FROM crm.deals d
          LEFT JOIN crm.currencies cur ON cur.code = upper(d.currency)
         WHERE d.is_won AND NOT d.deleted AND d.amount IS NOT NULL AND d.currency IS NOT NULL
    ), ranked AS (
        SELECT w.*, dt.touch_id, dt.campaign, dt.occurred_at,
               row_number() OVER (PARTITION BY w.connector, w.external_id ORDER BY dt.occurred_at, dt.touch_id) AS rn,
               count(*) OVER (PARTITION BY w.connector, w.external_id) AS n,
               row_number() OVER (PARTITION BY w.connector, w.external_id
                                  ORDER BY abs(extract(epoch FROM dt.occurred_at - coalesce(w.created_at, dt.occurred_at))),
                                           dt.occurred_at, dt.touch_id) AS creation_rank
          FROM won w
          JOIN crm.deal_touches dt ON dt.connector = w.connector AND dt.deal_external_id = w.external_id
    ), roles AS (
        SELECT r.*, m.model, m.middle_weight, m.decay,
               (CASE WHEN r.rn = 1 THEN m.first_weight ELSE 0 END
                + CASE WHEN r.creation_rank = 1 THEN m.creation_weight ELSE 0 END
                + CASE WHEN r.rn = r.n THEN m.last_weight ELSE 0 END) AS role_weight
          FROM ranked r CROSS JOIN crm.attribution_models m
    ), shared AS (
        SELECT ro.*,
               count(*) FILTER (WHERE ro.role_weight = 0) OVER deal AS roleless
          FROM roles ro
        WINDOW deal AS (PARTITION BY ro.model, ro.connector, ro.external_id)
    ), raw AS (
        SELECT sh.*,
               CASE WHEN sh.decay THEN
                        power(0.5::float8, greatest(extract(epoch FROM sh.closed_at - sh.occurred_at), 0) / 86400.0
                                           / s.half_life_days::float8)::numeric
                    WHEN sh.role_weight > 0 THEN sh.role_weight
                    ELSE sh.middle_weight / sh.roleless END AS weight
          FROM shared sh
    ), shares AS (
        SELECT r.*,
               r.amount * r.unit_scale * r.weight / sum(r.weight) OVER deal AS exact_units
          FROM raw r
         WHERE r.weight > 0
        WINDOW deal AS (PARTITION BY r.model, r.connector, r.external_id)
    ), floored AS (
        SELECT sh.*, floor(sh.exact_units) AS base_units,
               sh.amount * sh.unit_scale
                 - sum(floor(sh.exact_units)) OVER deal AS leftover_units,
               row_number() OVER (PARTITION BY sh.model, sh.connector, sh.external_id
                                  ORDER BY sh.exact_units - floor(sh.exact_units) DESC, sh.occurred_at DESC, sh.touch_id DESC) AS remainder_rank
          FROM shares sh
        WINDOW deal AS (PARTITION BY sh.model, sh.connector, sh.external_id)
    )
    SELECT f.workspace, f.model, f.connector, f.external_id, f.touch_id, f.campaign, upper(f.currency),
           trim_scale((f.base_units
            + CASE WHEN f.remainder_rank <= floor(f.leftover_units) THEN 1 ELSE 0 END
            -- sub-unit precision in the amount itself stays with the first-ranked touch
            + CASE WHEN f.remainder_rank = 1 THEN f.leftover_units - floor(f.leftover_units) ELSE 0 END
           ) / f.unit_scale)
      FROM floored f;

    UPDATE crm.attribution_settings SET refreshed_at = now() WHERE singleton;
END
$fn$;

CREATE OR REPLACE FUNCTION crm.refresh_attribution() RETURNS void LANGUAGE plpgsql
    SET work_mem = '128MB' AS $fn$
DECLARE
    margin numeric;
BEGIN
    PERFORM crm.refresh_attribution_credits();
    SELECT gross_margin INTO margin FROM crm.attribution_settings WHERE singleton;

    TRUNCATE crm.campaign_influence;
    INSERT INTO crm.campaign_influence (workspace, campaign, currency, influenced_deals)
    SELECT p.workspace, p.campaign, upper(d.currency), count(*)
      FROM (SELECT DISTINCT workspace, campaign, connector, deal_external_id
              FROM crm.deal_touches WHERE campaign IS NOT NULL) p
      JOIN crm.deals d ON d.connector = p.connector AND d.external_id = p.deal_external_id
     WHERE d.currency IS NOT NULL
     GROUP BY 1, 2, 3;

    TRUNCATE crm.attribution_totals;
    INSERT INTO crm.attribution_totals (workspace, model, campaign, currency, won_deals, attributed_revenue, attributed_gross_profit)
    SELECT p.workspace, p.model, p.campaign, p.currency,
           count(*) FILTER (WHERE p.credit > 0), sum(p.credit), sum(p.credit * coalesce(d.gross_margin, margin))
      FROM (SELECT workspace, model, campaign, currency, connector, deal_external_id, sum(credit) AS credit
              FROM crm.attribution_credits WHERE campaign IS NOT NULL
             GROUP BY 1, 2, 3, 4, 5, 6) p
      JOIN crm.deals d ON d.connector = p.connector AND d.external_id = p.deal_external_id
     GROUP BY 1, 2, 3, 4;
END
$fn$;

-- Reporting views: the contract's columns in their order, then `workspace`.
CREATE OR REPLACE VIEW reporting.deals AS
SELECT connector, external_id, name, amount, currency, pipeline, stage, canonical_stage, owner,
       created_at, closed_at, is_closed, is_won, modified_at, deleted, workspace
  FROM crm.deals;

CREATE OR REPLACE VIEW reporting.contacts AS
SELECT connector, external_id, email, name, company, owner, modified_at, deleted, workspace
  FROM crm.contacts;

CREATE OR REPLACE VIEW reporting.stage_history AS
SELECT connector, deal_external_id, stage, canonical_stage, entered_at, workspace
  FROM crm.stage_history
 ORDER BY connector, deal_external_id, entered_at;

CREATE OR REPLACE VIEW reporting.pipeline_stages AS
SELECT connector, pipeline, pipeline_label, stage, label, display_order, canonical_stage, sales_owned, workspace
  FROM crm.pipeline_stages
 ORDER BY connector, pipeline, display_order;

CREATE OR REPLACE VIEW reporting.unmapped_stages AS
SELECT connector, pipeline, stage, count(*) AS deals, max(modified_at) AS last_seen, workspace
  FROM crm.deals
 WHERE canonical_stage IS NULL AND stage IS NOT NULL AND NOT deleted
 GROUP BY workspace, connector, pipeline, stage
UNION ALL
SELECT p.connector, p.pipeline, p.stage, 0, p.synced_at, p.workspace
  FROM crm.pipeline_stages p
 WHERE p.canonical_stage IS NULL
   AND NOT EXISTS (SELECT 1 FROM crm.deals d
                    WHERE d.connector = p.connector AND d.stage = p.stage AND d.canonical_stage IS NULL AND NOT d.deleted);

CREATE OR REPLACE VIEW reporting.roi_by_campaign AS
WITH costs AS (
    SELECT workspace, campaign, upper(currency) AS currency, sum(amount) AS cost
      FROM crm.campaign_costs GROUP BY 1, 2, 3
), keys AS (
    SELECT workspace, campaign, currency FROM costs
    UNION SELECT workspace, campaign, currency FROM crm.campaign_influence
    UNION SELECT workspace, campaign, currency FROM crm.attribution_totals
)
SELECT m.model, k.campaign, k.currency,
       coalesce(co.cost, 0) AS cost,
       coalesce(i.influenced_deals, 0) AS influenced_deals,
       coalesce(t.won_deals, 0) AS won_deals,
       coalesce(t.attributed_revenue, 0) AS attributed_revenue,
       coalesce(t.attributed_gross_profit, 0) AS attributed_gross_profit,
       CASE WHEN coalesce(co.cost, 0) = 0 THEN NULL
            ELSE round((coalesce(t.attributed_gross_profit, 0) - co.cost) / co.cost, 6) END AS roi,
       k.workspace
  FROM crm.attribution_models m
 CROSS JOIN keys k
  LEFT JOIN costs co ON co.workspace = k.workspace AND co.campaign = k.campaign AND co.currency = k.currency
  LEFT JOIN crm.campaign_influence i
         ON i.workspace = k.workspace AND i.campaign = k.campaign AND i.currency = k.currency
  LEFT JOIN crm.attribution_totals t
         ON t.workspace = k.workspace AND t.model = m.model AND t.campaign = k.campaign AND t.currency = k.currency;

CREATE OR REPLACE VIEW reporting.unattributed_won_deals AS
SELECT d.connector, d.external_id, d.name, d.amount, d.currency, d.closed_at, d.workspace
  FROM crm.deals d
 WHERE d.is_won AND NOT d.deleted
   AND NOT EXISTS (SELECT 1 FROM crm.attribution_credits c
                    WHERE c.connector = d.connector AND c.deal_external_id = d.external_id);

CREATE OR REPLACE VIEW reporting.email_kpis AS
WITH events AS (
    SELECT workspace, sequence, step, kind, coalesce(connector || ':' || contact_external_id, lower(email)) AS who
      FROM crm.touches
     WHERE sequence IS NOT NULL AND step IS NOT NULL
), counts AS (
    SELECT workspace, sequence, step,
           count(DISTINCT who) FILTER (WHERE kind = 'email.sent') AS sent,
           count(DISTINCT who) FILTER (WHERE kind = 'email.delivered') AS delivered,
           count(DISTINCT who) FILTER (WHERE kind = 'email.opened') AS opened,
           count(DISTINCT who) FILTER (WHERE kind = 'email.clicked') AS clicked,
           count(DISTINCT who) FILTER (WHERE kind = 'email.unsubscribed') AS unsubscribed,
           count(DISTINCT who) FILTER (WHERE kind = 'email.bounced') AS bounced,
           count(DISTINCT who) FILTER (WHERE kind IN ('form.submitted', 'meeting.booked')) AS conversions
      FROM events GROUP BY workspace, sequence, step
)
SELECT sequence, step, sent, delivered, opened, clicked, unsubscribed, bounced,
       round(opened::numeric / nullif(coalesce(nullif(delivered, 0), sent), 0), 4) AS open_rate,
       round(clicked::numeric / nullif(coalesce(nullif(delivered, 0), sent), 0), 4) AS click_rate,
       round(unsubscribed::numeric / nullif(coalesce(nullif(delivered, 0), sent), 0), 4) AS unsubscribe_rate,
       conversions,
       round(conversions::numeric / nullif(sent, 0), 4) AS conversion_rate,
       workspace
  FROM counts;

CREATE OR REPLACE VIEW reporting.pipeline_funnel AS
WITH ladder(canonical_stage, rank) AS (
    VALUES ('lead', 0), ('mql', 1), ('sql', 2), ('discovery', 3), ('proposal', 4), ('negotiation', 5),
           ('closed_won', 6), ('closed_lost', 6)
), entries AS (
    SELECT h.workspace, h.connector, coalesce(d.pipeline, '') AS pipeline, h.deal_external_id, h.canonical_stage, l.rank,
           h.entered_at,
           lead(h.entered_at) OVER (PARTITION BY h.connector, h.deal_external_id ORDER BY h.entered_at) AS left_at
      FROM crm.stage_history h
      JOIN ladder l ON l.canonical_stage = h.canonical_stage
      JOIN crm.deals d ON d.connector = h.connector AND d.external_id = h.deal_external_id AND NOT d.deleted
), per_deal AS (
    SELECT e.workspace, e.connector, e.pipeline, e.deal_external_id, e.canonical_stage, e.rank,
           min(e.entered_at) AS first_entered,
           sum(extract(epoch FROM e.left_at - e.entered_at)) / 86400.0 AS days_in_stage,
           bool_or(EXISTS (SELECT 1 FROM entries later
                            WHERE later.connector = e.connector AND later.deal_external_id = e.deal_external_id
                              AND later.rank > e.rank AND later.canonical_stage <> 'closed_lost'
                              AND later.entered_at > e.entered_at)) AS advanced
      FROM entries e
     GROUP BY 1, 2, 3, 4, 5, 6
)
SELECT connector, pipeline, canonical_stage,
       count(*) AS deals_entered,
       count(*) FILTER (WHERE advanced) AS deals_advanced,
       round(count(*) FILTER (WHERE advanced)::numeric / nullif(count(*), 0), 4) AS conversion_rate,
       round((percentile_cont(0.5) WITHIN GROUP (ORDER BY days_in_stage))::numeric, 2) AS median_days_in_stage,
       workspace
  FROM per_deal
 GROUP BY workspace, connector, pipeline, canonical_stage, rank
 ORDER BY workspace, connector, pipeline, rank, canonical_stage;

CREATE OR REPLACE VIEW reporting.nurture_status AS
SELECT sequence, status, count(*) AS contacts, workspace
  FROM crm.enrollments
 GROUP BY workspace, sequence, status;

CREATE OR REPLACE VIEW reporting.nurture_enrollments AS
SELECT connector, contact_external_id, sequence, step, status, paused_reason, next_step_due_at, workspace
  FROM crm.enrollments;

CREATE OR REPLACE VIEW reporting.stalled_prospects AS
SELECT s.connector, s.contact_external_id, s.owner, s.canonical_stage,
       floor(extract(epoch FROM s.flagged_at - coalesce(s.last_sales_touch_at, s.flagged_at)) / 86400)::integer
           AS days_since_sales_touch,
       s.reactivated_at, s.workspace
  FROM crm.stalled s
 WHERE s.cleared_at IS NULL;

CREATE OR REPLACE VIEW reporting.sla_breaches AS
SELECT connector, contact_external_id, owner, handed_off_at, first_sales_touch_at,
       round((extract(epoch FROM coalesce(first_sales_touch_at, greatest(checked_at, breached_at)) - sla_due_at) / 3600.0)::numeric, 2)
           AS hours_late,
       workspace
  FROM crm.handoffs
 WHERE breached_at IS NOT NULL;

CREATE OR REPLACE VIEW reporting.work_leases AS
SELECT job, holder, expires_at, not_before, acquired_at, finished_at, runs,
       holder IS NOT NULL AND expires_at > now() AS running,
       -- a connector's sync belongs to its workspace; the other jobs serve every workspace
       (SELECT c.workspace FROM crm.connectors c WHERE job = 'sync:' || c.name) AS workspace
  FROM crm.work_leases;

CREATE VIEW reporting.workspaces AS
SELECT w.name AS workspace, w.created_at,
       (SELECT array_agg(c.name ORDER BY c.name) FROM crm.connectors c WHERE c.workspace = w.name) AS connectors
  FROM crm.workspaces w;
