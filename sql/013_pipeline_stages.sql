-- Every stage of every deal pipeline the CRM lists, with the canonical stage the mapping gives it
-- (NULL: unmapped). Rewritten per connector on each sync, so renamed or removed stages follow.
CREATE TABLE crm.pipeline_stages (
    connector        text NOT NULL,
    pipeline         text NOT NULL,
    stage            text NOT NULL,
    pipeline_label   text,
    label            text,
    display_order    integer NOT NULL,
    canonical_stage  text,
    sales_owned      boolean NOT NULL DEFAULT false,
    synced_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (connector, pipeline, stage)
);

CREATE VIEW reporting.pipeline_stages AS
SELECT connector, pipeline, pipeline_label, stage, label, display_order, canonical_stage, sales_owned
  FROM crm.pipeline_stages
 ORDER BY connector, pipeline, display_order;

-- Unmapped stages: the ones deals sit in (as before), and the ones the CRM lists that no deal
-- uses yet (deals = 0), so a new stage is mapped before the first deal moves into it.
CREATE OR REPLACE VIEW reporting.unmapped_stages AS
SELECT connector, pipeline, stage, count(*) AS deals, max(modified_at) AS last_seen
  FROM crm.deals
 WHERE canonical_stage IS NULL AND stage IS NOT NULL AND NOT deleted
 GROUP BY connector, pipeline, stage
UNION ALL
SELECT p.connector, p.pipeline, p.stage, 0, p.synced_at
  FROM crm.pipeline_stages p
 WHERE p.canonical_stage IS NULL
   AND NOT EXISTS (SELECT 1 FROM crm.deals d
                    WHERE d.connector = p.connector AND d.stage = p.stage AND d.canonical_stage IS NULL AND NOT d.deleted);
