-- Stage changes that share one timestamp (bulk edits, automation) keep the CRM's own order.
-- `crm_order` is the entry's place in the history as the CRM gave it in one write (a deal's
-- history list oldest first, or a page of history rows); `recorded_at` orders entries the CRM
-- gave in different writes. `position` in reporting.stage_history is the entry's 1-based place in
-- the deal's history, and the funnel reads order from it instead of from `entered_at` alone.
ALTER TABLE crm.stage_history ADD COLUMN crm_order integer;

CREATE VIEW crm.stage_history_ordered AS
SELECT h.*,
       row_number() OVER (PARTITION BY h.connector, h.deal_external_id
                              ORDER BY h.entered_at, h.recorded_at, h.crm_order NULLS LAST, h.stage) AS position
  FROM crm.stage_history h;

-- `position` is appended after the existing columns, so the contract's columns keep their places.
CREATE OR REPLACE VIEW reporting.stage_history AS
SELECT connector, deal_external_id, stage, canonical_stage, entered_at, workspace, position
  FROM crm.stage_history_ordered
 ORDER BY connector, deal_external_id, position;

CREATE OR REPLACE VIEW reporting.pipeline_funnel AS
WITH ladder(canonical_stage, rank) AS (
    VALUES ('lead', 0), ('mql', 1), ('sql', 2), ('discovery', 3), ('proposal', 4), ('negotiation', 5),
           ('closed_won', 6), ('closed_lost', 6)
), entries AS (
    SELECT h.workspace, h.connector, coalesce(d.pipeline, '') AS pipeline, h.deal_external_id, h.canonical_stage, l.rank,
           h.entered_at, h.position,
           lead(h.entered_at) OVER (PARTITION BY h.connector, h.deal_external_id ORDER BY h.position) AS left_at
      FROM crm.stage_history_ordered h
      JOIN ladder l ON l.canonical_stage = h.canonical_stage
      JOIN crm.deals d ON d.connector = h.connector AND d.external_id = h.deal_external_id AND NOT d.deleted
), per_deal AS (
    SELECT e.workspace, e.connector, e.pipeline, e.deal_external_id, e.canonical_stage, e.rank,
           min(e.entered_at) AS first_entered,
           sum(extract(epoch FROM e.left_at - e.entered_at)) / 86400.0 AS days_in_stage,
           bool_or(EXISTS (SELECT 1 FROM entries later
                            WHERE later.connector = e.connector AND later.deal_external_id = e.deal_external_id
                              AND later.rank > e.rank AND later.canonical_stage <> 'closed_lost'
                              AND later.position > e.position)) AS advanced
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
