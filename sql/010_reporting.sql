-- The reporting schema: stable names and columns that analysts and BI tools rely on.

CREATE VIEW reporting.deals AS
SELECT connector, external_id, name, amount, currency, pipeline, stage, canonical_stage, owner,
       created_at, closed_at, is_closed, is_won, modified_at, deleted
  FROM crm.deals;

CREATE VIEW reporting.contacts AS
SELECT connector, external_id, email, name, company, owner, modified_at, deleted
  FROM crm.contacts;

CREATE VIEW reporting.stage_history AS
SELECT connector, deal_external_id, stage, canonical_stage, entered_at
  FROM crm.stage_history
 ORDER BY connector, deal_external_id, entered_at;

-- Stages the CRM uses that no mapping names: stored, and listed here so someone maps them.
CREATE VIEW reporting.unmapped_stages AS
SELECT connector, pipeline, stage, count(*) AS deals, max(modified_at) AS last_seen
  FROM crm.deals
 WHERE canonical_stage IS NULL AND stage IS NOT NULL AND NOT deleted
 GROUP BY connector, pipeline, stage;

CREATE VIEW reporting.attribution_models AS
SELECT model, description, first_weight, creation_weight, last_weight, middle_weight, decay
  FROM crm.attribution_models;

CREATE VIEW reporting.roi_by_campaign AS
WITH settings AS (
    SELECT gross_margin FROM crm.attribution_settings WHERE singleton
), costs AS (
    SELECT campaign, upper(currency) AS currency, sum(amount) AS cost
      FROM crm.campaign_costs GROUP BY 1, 2
), influence AS (
    SELECT dt.campaign, upper(d.currency) AS currency, count(DISTINCT (dt.connector, dt.deal_external_id)) AS influenced_deals
      FROM crm.deal_touches dt
      JOIN crm.deals d ON d.connector = dt.connector AND d.external_id = dt.deal_external_id
     WHERE dt.campaign IS NOT NULL AND d.currency IS NOT NULL
     GROUP BY 1, 2
), credits AS (
    SELECT c.model, c.campaign, c.currency,
           count(DISTINCT (c.connector, c.deal_external_id)) FILTER (WHERE c.credit > 0) AS won_deals,
           sum(c.credit) AS attributed_revenue,
           sum(c.credit * coalesce(d.gross_margin, (SELECT gross_margin FROM settings))) AS attributed_gross_profit
      FROM crm.attribution_credits c
      JOIN crm.deals d ON d.connector = c.connector AND d.external_id = c.deal_external_id
     WHERE c.campaign IS NOT NULL
     GROUP BY 1, 2, 3
), keys AS (
    SELECT campaign, currency FROM costs
    UNION SELECT campaign, currency FROM influence
    UNION SELECT campaign, currency FROM credits
)
SELECT m.model, k.campaign, k.currency,
       coalesce(co.cost, 0) AS cost,
       coalesce(i.influenced_deals, 0) AS influenced_deals,
       coalesce(cr.won_deals, 0) AS won_deals,
       coalesce(cr.attributed_revenue, 0) AS attributed_revenue,
       coalesce(cr.attributed_gross_profit, 0) AS attributed_gross_profit,
       CASE WHEN coalesce(co.cost, 0) = 0 THEN NULL
            ELSE round((coalesce(cr.attributed_gross_profit, 0) - co.cost) / co.cost, 6) END AS roi
  FROM crm.attribution_models m
 CROSS JOIN keys k
  LEFT JOIN costs co ON co.campaign = k.campaign AND co.currency = k.currency
  LEFT JOIN influence i ON i.campaign = k.campaign AND i.currency = k.currency
  LEFT JOIN credits cr ON cr.model = m.model AND cr.campaign = k.campaign AND cr.currency = k.currency;

CREATE VIEW reporting.unattributed_won_deals AS
SELECT d.connector, d.external_id, d.name, d.amount, d.currency, d.closed_at
  FROM crm.deals d
 WHERE d.is_won AND NOT d.deleted
   AND NOT EXISTS (SELECT 1 FROM crm.attribution_credits c
                    WHERE c.connector = d.connector AND c.deal_external_id = d.external_id);

CREATE VIEW reporting.email_kpis AS
WITH events AS (
    SELECT sequence, step, kind, coalesce(connector || ':' || contact_external_id, lower(email)) AS who
      FROM crm.touches
     WHERE sequence IS NOT NULL AND step IS NOT NULL
), counts AS (
    SELECT sequence, step,
           count(DISTINCT who) FILTER (WHERE kind = 'email.sent') AS sent,
           count(DISTINCT who) FILTER (WHERE kind = 'email.delivered') AS delivered,
           count(DISTINCT who) FILTER (WHERE kind = 'email.opened') AS opened,
           count(DISTINCT who) FILTER (WHERE kind = 'email.clicked') AS clicked,
           count(DISTINCT who) FILTER (WHERE kind = 'email.unsubscribed') AS unsubscribed,
           count(DISTINCT who) FILTER (WHERE kind = 'email.bounced') AS bounced,
           count(DISTINCT who) FILTER (WHERE kind IN ('form.submitted', 'meeting.booked')) AS conversions
      FROM events GROUP BY sequence, step
)
SELECT sequence, step, sent, delivered, opened, clicked, unsubscribed, bounced,
       round(opened::numeric / nullif(coalesce(nullif(delivered, 0), sent), 0), 4) AS open_rate,
       round(clicked::numeric / nullif(coalesce(nullif(delivered, 0), sent), 0), 4) AS click_rate,
       round(unsubscribed::numeric / nullif(coalesce(nullif(delivered, 0), sent), 0), 4) AS unsubscribe_rate,
       conversions,
       round(conversions::numeric / nullif(sent, 0), 4) AS conversion_rate
  FROM counts;

CREATE VIEW reporting.pipeline_funnel AS
WITH ladder(canonical_stage, rank) AS (
    VALUES ('lead', 0), ('mql', 1), ('sql', 2), ('discovery', 3), ('proposal', 4), ('negotiation', 5),
           ('closed_won', 6), ('closed_lost', 6)
), entries AS (
    SELECT h.connector, coalesce(d.pipeline, '') AS pipeline, h.deal_external_id, h.canonical_stage, l.rank,
           h.entered_at,
           lead(h.entered_at) OVER (PARTITION BY h.connector, h.deal_external_id ORDER BY h.entered_at) AS left_at
      FROM crm.stage_history h
      JOIN ladder l ON l.canonical_stage = h.canonical_stage
      JOIN crm.deals d ON d.connector = h.connector AND d.external_id = h.deal_external_id AND NOT d.deleted
), per_deal AS (
    SELECT e.connector, e.pipeline, e.deal_external_id, e.canonical_stage, e.rank,
           min(e.entered_at) AS first_entered,
           sum(extract(epoch FROM e.left_at - e.entered_at)) / 86400.0 AS days_in_stage,
           bool_or(EXISTS (SELECT 1 FROM entries later
                            WHERE later.connector = e.connector AND later.deal_external_id = e.deal_external_id
                              AND later.rank > e.rank AND later.canonical_stage <> 'closed_lost'
                              AND later.entered_at > e.entered_at)) AS advanced
      FROM entries e
     GROUP BY 1, 2, 3, 4, 5
)
SELECT connector, pipeline, canonical_stage,
       count(*) AS deals_entered,
       count(*) FILTER (WHERE advanced) AS deals_advanced,
       round(count(*) FILTER (WHERE advanced)::numeric / nullif(count(*), 0), 4) AS conversion_rate,
       round((percentile_cont(0.5) WITHIN GROUP (ORDER BY days_in_stage))::numeric, 2) AS median_days_in_stage
  FROM per_deal
 GROUP BY connector, pipeline, canonical_stage, rank
 ORDER BY connector, pipeline, rank, canonical_stage;

CREATE VIEW reporting.nurture_status AS
SELECT sequence, status, count(*) AS contacts
  FROM crm.enrollments
 GROUP BY sequence, status;

CREATE VIEW reporting.nurture_enrollments AS
SELECT connector, contact_external_id, sequence, step, status, paused_reason, next_step_due_at
  FROM crm.enrollments;

CREATE VIEW reporting.stalled_prospects AS
SELECT s.connector, s.contact_external_id, s.owner, s.canonical_stage,
       floor(extract(epoch FROM s.flagged_at - coalesce(s.last_sales_touch_at, s.flagged_at)) / 86400)::integer
           AS days_since_sales_touch,
       s.reactivated_at
  FROM crm.stalled s
 WHERE s.cleared_at IS NULL;

CREATE VIEW reporting.sla_breaches AS
SELECT connector, contact_external_id, owner, handed_off_at, first_sales_touch_at,
       round((extract(epoch FROM coalesce(first_sales_touch_at, breached_at) - sla_due_at) / 3600.0)::numeric, 2)
           AS hours_late
  FROM crm.handoffs
 WHERE breached_at IS NOT NULL;
