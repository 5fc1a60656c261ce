-- Every sync run, by whichever replica ran it: the cluster's record of what ran, when, and how it
-- ended. The scrape-time gauges (last success, lag) read from here, so every replica's /metrics
-- reports the same, true value instead of only what it ran itself.
ALTER TABLE crm.sync_runs ADD COLUMN replica text;
CREATE INDEX sync_runs_succeeded_idx ON crm.sync_runs (connector, finished_at DESC) WHERE status = 'succeeded';

CREATE VIEW reporting.sync_runs AS
SELECT run_id, connector, replica, full_sync, started_at, finished_at, status, records, pages, retries, error, workspace
  FROM crm.sync_runs
 ORDER BY started_at DESC;
