#!/usr/bin/env bash
# What stamping every row with its connector's workspace costs on the sync's write path
# (crm.stamp_workspace, sql/060_workspaces.sql): the same upsert of N deals into crm.deals with
# the trigger enabled and disabled, alternated over several rounds in one fresh database, so the
# baseline is measured in the same run. Prints the median of each and their ratio.
#
#   scripts/bench-workspace-stamp.sh [N]        (default 100000 deals, ROUNDS=5)
#
# Uses DATABASE_URL when set, else a private cluster under .crm-sync/bench-postgres.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100000}
ROUNDS=${ROUNDS:-5}
URL=${DATABASE_URL:-$(scripts/pg.sh start .crm-sync/bench-postgres | tail -n 1)}
DB=bench_workspace_$$
psql -q -X -v ON_ERROR_STOP=1 "$URL" -c "CREATE DATABASE $DB" >/dev/null
BENCH_URL=$(printf '%s' "$URL" | sed -E "s#/[^/?]+(\?|$)#/$DB\1#")
trap 'psql -q -X "$URL" -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true' EXIT
for file in sql/*.sql; do psql -q -X -v ON_ERROR_STOP=1 "$BENCH_URL" -f "$file" >/dev/null; done

psql -q -X -v ON_ERROR_STOP=1 "$BENCH_URL" -v n="$N" -v rounds="$ROUNDS" <<'SQL'
SET bench.n = :'n';
SET bench.rounds = :'rounds';
INSERT INTO crm.workspaces (name) VALUES ('emea');
INSERT INTO crm.connectors (name, kind, base_url, workspace) VALUES ('hs', 'hubspot', 'http://x', 'emea');
CREATE TEMP TABLE timings (stamped boolean, ms float8, stamped_rows bigint);
-- The shape of RecordWriter's deal upsert ("never older over newer"); run twice per round: the
-- first pass inserts (a first sync), the second updates every row (an incremental one).
CREATE FUNCTION pg_temp.upsert(n integer, shift interval) RETURNS void LANGUAGE sql AS $fn$
    INSERT INTO crm.deals (connector, external_id, name, amount, currency, pipeline, stage, canonical_stage, modified_at)
    SELECT 'hs', g::text, 'Deal ' || g, (g % 997) * 1000, 'JPY', 'default', 'qualifiedtobuy', 'sql',
           '2026-11-01'::timestamptz + g * interval '1 second' + shift
      FROM generate_series(1, n) g
    ON CONFLICT (connector, external_id) DO UPDATE
       SET name = EXCLUDED.name, amount = EXCLUDED.amount, stage = EXCLUDED.stage, modified_at = EXCLUDED.modified_at
     WHERE crm.deals.modified_at <= EXCLUDED.modified_at
$fn$;
DO $do$
DECLARE
    n integer := current_setting('bench.n')::integer;
    stamped boolean;
    t0 timestamptz;
BEGIN
    FOR r IN 1 .. current_setting('bench.rounds')::integer * 2 LOOP
        stamped := r % 2 = 1;
        TRUNCATE crm.deals;
        EXECUTE format('ALTER TABLE crm.deals %s TRIGGER deals_workspace', CASE WHEN stamped THEN 'ENABLE' ELSE 'DISABLE' END);
        t0 := clock_timestamp();
        PERFORM pg_temp.upsert(n, interval '0');
        PERFORM pg_temp.upsert(n, interval '1 day');
        INSERT INTO timings
        SELECT stamped, extract(epoch FROM clock_timestamp() - t0) * 1000, count(*) FILTER (WHERE workspace = 'emea')
          FROM crm.deals;
    END LOOP;
    ALTER TABLE crm.deals ENABLE TRIGGER deals_workspace;
END
$do$;
\pset footer off
SELECT CASE WHEN stamped THEN 'with crm.stamp_workspace' ELSE 'trigger disabled (baseline)' END AS "upsert of n deals ×2",
       count(*) AS rounds,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1) AS median_ms,
       max(stamped_rows) AS rows_stamped_emea
  FROM timings GROUP BY stamped ORDER BY stamped;
SELECT round((percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) FILTER (WHERE stamped)
            / percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) FILTER (WHERE NOT stamped))::numeric, 3) AS "ratio (stamped / baseline)"
  FROM timings;
SQL
