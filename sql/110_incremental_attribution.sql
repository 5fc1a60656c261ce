-- Reporting views that keep up with their data (issue 12, part 2). Until now the attribution
-- tables were recomputed only by `report roi`, the demo and serve's five-minute job, so after a sync
-- an analyst could read `won_deals 0` for a campaign whose won deals were already in
-- reporting.deals. Now every write that can change a deal's figures queues the deal, and the
-- command that wrote it recomputes just the queued deals before it finishes
-- (crm.refresh_attribution_pending()). The full refresh stays, for `--full` and as the fallback
-- when something every deal depends on changed (settings, models, currencies, a TRUNCATE).
--
-- The incremental path must leave exactly the rows a full refresh would: links and credits per
-- deal are computed by the same statement (crm.attribution_compute, scoped to the queued deals), and
-- the per-campaign totals are adjusted by the queued deals' old contributions (read from the rows
-- about to be replaced) and new ones. That needs, per stored row, what the contribution was made
-- of at the time: the deal's currency on each link and its effective gross margin on each credit
-- (either may have changed since), and per total how many deals it sums, so a total that no deal
-- contributes to any more is removed rather than left at zero. Totals are stored with
-- trim_scale(): a sum's scale is the largest of its terms', so a delta (old − removed + added)
-- could otherwise print 15.00 where the full refresh prints 15.0, with the same value.

-- Deals whose figures are stale. Append-only: a refresh deletes the rows its snapshot saw, so a
-- row queued by a transaction that commits while the refresh runs stays for the next one. A row
-- with connector and deal NULL means "every deal": the next refresh is a full one.
CREATE TABLE crm.attribution_pending (
    connector         text,
    deal_external_id  text,
    workspace         text,
    queued_at         timestamptz NOT NULL DEFAULT now(),
    CHECK ((connector IS NULL) = (deal_external_id IS NULL))
);

-- Row contents the deltas need (see above). Filled by the next refresh, which is a full one.
ALTER TABLE crm.deal_touches ADD COLUMN currency text;            -- upper(deal currency) at refresh
ALTER TABLE crm.attribution_credits ADD COLUMN gross_margin numeric;  -- coalesce(deal's, settings')
ALTER TABLE crm.attribution_totals ADD COLUMN credited_deals bigint NOT NULL DEFAULT 0;

-- The incremental path replaces a few deals' rows; without these it would scan every link and
-- credit twice per refresh. The full refresh drops them while it rewrites the tables and builds
-- them once at the end (cheaper than keeping them up to date row by row: see BENCHMARKS.md).
-- One column, not (connector, deal): half the build time at a million rows, and ids that two
-- connectors share are told apart by a filter.
CREATE INDEX deal_touches_deal_idx ON crm.deal_touches (deal_external_id);
CREATE INDEX attribution_credits_deal_idx ON crm.attribution_credits (deal_external_id);

-- ---------------------------------------------------------------------------------------------
-- Queueing. Statement-level triggers with transition tables: one INSERT … SELECT per statement,
-- so the sync's bulk upserts pay one small join per page rather than a call per row.

CREATE FUNCTION crm.attribution_queue_deal_rows() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    -- Only the columns the refresh reads: an upsert that rewrote a deal unchanged queues nothing.
    IF TG_OP = 'INSERT' THEN
        INSERT INTO crm.attribution_pending (workspace, connector, deal_external_id)
        SELECT DISTINCT n.workspace, n.connector, n.external_id FROM new_deals n;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO crm.attribution_pending (workspace, connector, deal_external_id)
        SELECT DISTINCT o.workspace, o.connector, o.external_id FROM old_deals o;
    ELSE
        INSERT INTO crm.attribution_pending (workspace, connector, deal_external_id)
        SELECT n.workspace, n.connector, n.external_id
          FROM new_deals n
          LEFT JOIN old_deals o ON o.connector = n.connector AND o.external_id = n.external_id
         WHERE o.connector IS NULL
            OR (o.workspace, o.amount, o.currency, o.created_at, o.closed_at, o.modified_at, o.is_closed, o.is_won,
                o.deleted, o.gross_margin)
               IS DISTINCT FROM
               (n.workspace, n.amount, n.currency, n.created_at, n.closed_at, n.modified_at, n.is_closed, n.is_won,
                n.deleted, n.gross_margin)
        UNION
        SELECT o.workspace, o.connector, o.external_id
          FROM old_deals o
         WHERE NOT EXISTS (SELECT 1 FROM new_deals n WHERE n.connector = o.connector AND n.external_id = o.external_id);
    END IF;
    RETURN NULL;
END
$fn$;

-- deal_contacts and deal_accounts: a link added, removed or changed queues its deal.
CREATE FUNCTION crm.attribution_queue_link_rows() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO crm.attribution_pending (workspace, connector, deal_external_id)
        SELECT DISTINCT n.workspace, n.connector, n.deal_external_id FROM new_links n;
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        INSERT INTO crm.attribution_pending (workspace, connector, deal_external_id)
        SELECT DISTINCT o.workspace, o.connector, o.deal_external_id FROM old_links o;
    END IF;
    RETURN NULL;
END
$fn$;

-- A touch reaches deals through its contact: queue every deal that lists the contact (the look-back
-- window is the refresh's business). On UPDATE only touches whose linking columns changed count,
-- the old contact's deals as well as the new one's.
CREATE FUNCTION crm.attribution_queue_touch_rows() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO crm.attribution_pending (workspace, connector, deal_external_id)
        SELECT DISTINCT dc.workspace, dc.connector, dc.deal_external_id
          FROM (SELECT DISTINCT connector, contact_external_id FROM new_touches WHERE contact_external_id IS NOT NULL) t
          JOIN crm.deal_contacts dc ON dc.connector = t.connector AND dc.contact_external_id = t.contact_external_id;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO crm.attribution_pending (workspace, connector, deal_external_id)
        SELECT DISTINCT dc.workspace, dc.connector, dc.deal_external_id
          FROM (SELECT DISTINCT connector, contact_external_id FROM old_touches WHERE contact_external_id IS NOT NULL) t
          JOIN crm.deal_contacts dc ON dc.connector = t.connector AND dc.contact_external_id = t.contact_external_id;
    ELSE
        INSERT INTO crm.attribution_pending (workspace, connector, deal_external_id)
        SELECT DISTINCT dc.workspace, dc.connector, dc.deal_external_id
          FROM (SELECT n.connector, n.contact_external_id, o.connector AS old_connector, o.contact_external_id AS old_contact
                  FROM new_touches n
                  FULL JOIN old_touches o ON o.id = n.id
                 WHERE (o.id, o.connector, o.contact_external_id, o.campaign, o.occurred_at)
                       IS DISTINCT FROM (n.id, n.connector, n.contact_external_id, n.campaign, n.occurred_at)) t
         CROSS JOIN LATERAL (VALUES (t.connector, t.contact_external_id), (t.old_connector, t.old_contact)) AS c(connector, contact)
          JOIN crm.deal_contacts dc ON dc.connector = c.connector AND dc.contact_external_id = c.contact;
    END IF;
    RETURN NULL;
END
$fn$;

-- What every deal depends on (settings, models, currencies), or a TRUNCATE (no transition table to
-- read): the next refresh is a full one. refreshed_at is written by the refresh itself and is not
-- a setting.
CREATE FUNCTION crm.attribution_queue_everything() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    INSERT INTO crm.attribution_pending (workspace, connector, deal_external_id) VALUES (NULL, NULL, NULL);
    RETURN NULL;
END
$fn$;

CREATE FUNCTION crm.attribution_queue_settings_rows() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF EXISTS (SELECT 1 FROM new_settings n FULL JOIN old_settings o ON o.singleton = n.singleton
                WHERE (o.gross_margin, o.lookback_days, o.half_life_days)
                      IS DISTINCT FROM (n.gross_margin, n.lookback_days, n.half_life_days)) THEN
        INSERT INTO crm.attribution_pending (workspace, connector, deal_external_id) VALUES (NULL, NULL, NULL);
    END IF;
    RETURN NULL;
END
$fn$;

DO $do$
DECLARE
    t record;
    op text;
BEGIN
    FOR t IN SELECT * FROM (VALUES ('deals', 'new_deals', 'old_deals', 'attribution_queue_deal_rows'),
                                   ('deal_contacts', 'new_links', 'old_links', 'attribution_queue_link_rows'),
                                   ('deal_accounts', 'new_links', 'old_links', 'attribution_queue_link_rows'),
                                   ('touches', 'new_touches', 'old_touches', 'attribution_queue_touch_rows'))
                          AS v(tab, new_name, old_name, fn)
    LOOP
        FOREACH op IN ARRAY ARRAY['INSERT', 'UPDATE', 'DELETE'] LOOP
            EXECUTE format('CREATE TRIGGER %I AFTER %s ON crm.%I REFERENCING %s FOR EACH STATEMENT EXECUTE FUNCTION crm.%I()',
                           t.tab || '_attribution_' || lower(op), op, t.tab,
                           CASE op WHEN 'INSERT' THEN format('NEW TABLE AS %I', t.new_name)
                                   WHEN 'DELETE' THEN format('OLD TABLE AS %I', t.old_name)
                                   ELSE format('OLD TABLE AS %I NEW TABLE AS %I', t.old_name, t.new_name) END,
                           t.fn);
        END LOOP;
    END LOOP;
    FOREACH op IN ARRAY ARRAY['deals', 'deal_contacts', 'deal_accounts', 'touches', 'attribution_models',
                              'attribution_settings', 'currencies'] LOOP
        EXECUTE format('CREATE TRIGGER %I AFTER TRUNCATE ON crm.%I FOR EACH STATEMENT EXECUTE FUNCTION crm.attribution_queue_everything()',
                       op || '_attribution_truncate', op);
    END LOOP;
    FOREACH op IN ARRAY ARRAY['attribution_models', 'currencies'] LOOP
        EXECUTE format('CREATE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE ON crm.%I FOR EACH STATEMENT EXECUTE FUNCTION crm.attribution_queue_everything()',
                       op || '_attribution_change', op);
    END LOOP;
END
$do$;

CREATE TRIGGER attribution_settings_attribution_update AFTER UPDATE ON crm.attribution_settings
    REFERENCING OLD TABLE AS old_settings NEW TABLE AS new_settings
    FOR EACH STATEMENT EXECUTE FUNCTION crm.attribution_queue_settings_rows();
CREATE TRIGGER attribution_settings_attribution_change AFTER INSERT OR DELETE ON crm.attribution_settings
    FOR EACH STATEMENT EXECUTE FUNCTION crm.attribution_queue_everything();

-- ---------------------------------------------------------------------------------------------
-- Computing.

-- Touches that arrived before their contact was synced: resolve them by e-mail, inside their own
-- workspace (the same address can be a contact of two business units). Its UPDATE queues the
-- deals of the contacts it resolved, so callers run it before they take the queue.
CREATE FUNCTION crm.attribution_resolve_touches() RETURNS void LANGUAGE sql AS $fn$
    UPDATE crm.touches t
       SET connector = c.connector, contact_external_id = c.external_id
      FROM crm.contacts c
     WHERE t.contact_external_id IS NULL AND t.email IS NOT NULL
       AND lower(c.email) = lower(t.email) AND NOT c.deleted AND c.workspace = t.workspace;
$fn$;

-- Links and credits of the deals `deals` names (a relation of crm.deals rows: the table itself, or
-- the queued deals), written into crm.deal_touches and crm.attribution_credits, whose rows for
-- those deals the caller has removed. One statement text for both paths is what makes them agree;
-- it is EXECUTEd so each path gets its own plan (hash joins over everything, index lookups for a
-- few deals). `deals` is one of the two fixed texts of this file, never user input.
--
-- A touch belongs to one contact and a deal lists a contact once, so (deal, touch) pairs are
-- unique without DISTINCT. Credits: see sql/002_marketing.sql (largest remainder in the currency's
-- minor units, so every deal's credits add up to its amount exactly).
CREATE FUNCTION crm.attribution_compute(deals text) RETURNS void LANGUAGE plpgsql AS $fn$
DECLARE
    s crm.attribution_settings%ROWTYPE;
BEGIN
    SELECT * INTO s FROM crm.attribution_settings WHERE singleton;

    EXECUTE format($sql$
    INSERT INTO crm.deal_touches (workspace, connector, deal_external_id, touch_id, campaign, occurred_at, currency)
    SELECT d.workspace, d.connector, d.external_id, t.id, t.campaign, t.occurred_at, upper(d.currency)
      FROM %s d
      JOIN crm.deal_contacts dc ON dc.connector = d.connector AND dc.deal_external_id = d.external_id
      JOIN crm.touches t ON t.connector = dc.connector AND t.contact_external_id = dc.contact_external_id
     WHERE NOT d.deleted
       AND t.occurred_at >= coalesce(d.created_at, '-infinity') - make_interval(days => $1)
       AND t.occurred_at <= CASE WHEN d.is_closed THEN coalesce(d.closed_at, 'infinity') ELSE 'infinity' END
    $sql$, deals) USING s.lookback_days;

    EXECUTE format($sql$
    INSERT INTO crm.attribution_credits (workspace, model, connector, deal_external_id, touch_id, campaign, currency, credit,
                                         gross_margin)
    WITH won AS (
        SELECT d.workspace, d.connector, d.external_id, d.amount, d.currency, d.created_at,
               coalesce(d.closed_at, d.modified_at) AS closed_at,
               10::numeric ^ coalesce(cur.minor_units, 2) AS unit_scale,
               coalesce(d.gross_margin, $2) AS gross_margin
          FROM %s d
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
                                           / $1::float8)::numeric
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
           ) / f.unit_scale),
           f.gross_margin
      FROM floored f
    $sql$, deals) USING s.half_life_days, s.gross_margin;
END
$fn$;

-- The full refresh: every link, credit and total from scratch, and the queue emptied (what it
-- consumed is in what it read: it deletes the queue before it reads the data). Serialised with the
-- incremental refresh by the same transaction-level advisory lock; in the caller's transaction.
DROP FUNCTION crm.refresh_attribution_credits();
CREATE OR REPLACE FUNCTION crm.refresh_attribution() RETURNS void LANGUAGE plpgsql
    SET work_mem = '128MB' AS $fn$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('crm-sync attribution refresh'));
    PERFORM crm.attribution_resolve_touches();
    DELETE FROM crm.attribution_pending;

    -- TRUNCATE has locked the tables already; the indexes are built once, after the rows.
    TRUNCATE crm.deal_touches, crm.attribution_credits, crm.campaign_influence, crm.attribution_totals;
    DROP INDEX crm.deal_touches_deal_idx;
    DROP INDEX crm.attribution_credits_deal_idx;
    PERFORM crm.attribution_compute('crm.deals');
    CREATE INDEX deal_touches_deal_idx ON crm.deal_touches (deal_external_id);
    CREATE INDEX attribution_credits_deal_idx ON crm.attribution_credits (deal_external_id);

    -- Influence counts every deal a campaign touched (open ones too) with a currency.
    INSERT INTO crm.campaign_influence (workspace, campaign, currency, influenced_deals)
    SELECT p.workspace, p.campaign, p.currency, count(*)
      FROM (SELECT DISTINCT workspace, campaign, currency, connector, deal_external_id
              FROM crm.deal_touches WHERE campaign IS NOT NULL AND currency IS NOT NULL) p
     GROUP BY 1, 2, 3;

    -- Totals aggregate per deal first (hash aggregates), then per campaign.
    INSERT INTO crm.attribution_totals (workspace, model, campaign, currency, won_deals, attributed_revenue,
                                        attributed_gross_profit, credited_deals)
    SELECT p.workspace, p.model, p.campaign, p.currency,
           count(*) FILTER (WHERE p.credit > 0), trim_scale(sum(p.credit)), trim_scale(sum(p.credit * p.gross_margin)),
           count(*)
      FROM (SELECT workspace, model, campaign, currency, connector, deal_external_id, sum(credit) AS credit,
                   min(gross_margin) AS gross_margin
              FROM crm.attribution_credits WHERE campaign IS NOT NULL
             GROUP BY 1, 2, 3, 4, 5, 6) p
     GROUP BY 1, 2, 3, 4;

    UPDATE crm.attribution_settings SET refreshed_at = now() WHERE singleton;
END
$fn$;

-- The incremental refresh: recomputes the links, credits and totals of the queued deals only, and
-- returns how many deals it recomputed (every deal when the queue asked for a full refresh, which it
-- then runs). Leaves exactly the rows crm.refresh_attribution() would leave. Deletes exactly the
-- queue rows its snapshot saw: a deal queued by a transaction that commits meanwhile stays queued.
-- Two callers at once (replicas, a sync beside the inbox worker) take turns on the advisory lock;
-- the second then finds only what was queued after the first took the queue. In the caller's
-- transaction.
--
-- random_page_cost 1.1: the planner's default (4, a disk seek) prices the index lookups of a
-- thousand deals above scanning every link and credit, which is what it then did (3× slower at a
-- million touches); the derived tables are read by key here and sit in memory on a warm server.
CREATE FUNCTION crm.refresh_attribution_pending() RETURNS bigint LANGUAGE plpgsql
    SET work_mem = '128MB' SET random_page_cost = 1.1 AS $fn$
DECLARE
    batch_size bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('crm-sync attribution refresh'));
    PERFORM crm.attribution_resolve_touches();

    -- Scratch tables of this transaction (a second call in it reuses them).
    IF to_regclass('pg_temp.attribution_batch') IS NULL THEN
        CREATE TEMP TABLE attribution_batch (connector text, deal_external_id text) ON COMMIT DROP;
        CREATE TEMP TABLE attribution_influence_delta (workspace text, campaign text, currency text, deals bigint)
            ON COMMIT DROP;
        CREATE TEMP TABLE attribution_totals_delta
            (workspace text, model text, campaign text, currency text, won bigint, revenue numeric, profit numeric,
             deals bigint) ON COMMIT DROP;
    END IF;
    TRUNCATE pg_temp.attribution_batch, pg_temp.attribution_influence_delta, pg_temp.attribution_totals_delta;
    WITH consumed AS (
        DELETE FROM crm.attribution_pending RETURNING connector, deal_external_id
    )
    INSERT INTO pg_temp.attribution_batch SELECT DISTINCT connector, deal_external_id FROM consumed;

    IF EXISTS (SELECT 1 FROM pg_temp.attribution_batch WHERE connector IS NULL) THEN
        PERFORM crm.refresh_attribution();
        RETURN (SELECT count(*) FROM crm.deals);
    END IF;
    SELECT count(*) INTO batch_size FROM pg_temp.attribution_batch;
    IF batch_size > 0 THEN
        ANALYZE pg_temp.attribution_batch;

        -- The queued deals' rows as they stand go, and their contributions come off the totals;
        -- then their new rows, whose contributions go on.
        PERFORM crm.attribution_contributions(-1,
            'DELETE FROM crm.deal_touches dt USING pg_temp.attribution_batch b
              WHERE dt.deal_external_id = b.deal_external_id AND dt.connector = b.connector RETURNING dt.*',
            'DELETE FROM crm.attribution_credits c USING pg_temp.attribution_batch b
              WHERE c.deal_external_id = b.deal_external_id AND c.connector = b.connector RETURNING c.*');
        PERFORM crm.attribution_compute(
            '(SELECT d.* FROM crm.deals d JOIN pg_temp.attribution_batch b
                 ON b.connector = d.connector AND b.deal_external_id = d.external_id)');
        PERFORM crm.attribution_contributions(1,
            'SELECT dt.* FROM crm.deal_touches dt JOIN pg_temp.attribution_batch b
                 ON dt.deal_external_id = b.deal_external_id AND dt.connector = b.connector',
            'SELECT c.* FROM crm.attribution_credits c JOIN pg_temp.attribution_batch b
                 ON c.deal_external_id = b.deal_external_id AND c.connector = b.connector');

        INSERT INTO crm.campaign_influence AS i (workspace, campaign, currency, influenced_deals)
        SELECT workspace, campaign, currency, sum(deals)
          FROM pg_temp.attribution_influence_delta GROUP BY 1, 2, 3 HAVING sum(deals) <> 0
        ON CONFLICT (workspace, campaign, currency)
        DO UPDATE SET influenced_deals = i.influenced_deals + EXCLUDED.influenced_deals;
        DELETE FROM crm.campaign_influence WHERE influenced_deals = 0;

        INSERT INTO crm.attribution_totals AS t (workspace, model, campaign, currency, won_deals, attributed_revenue,
                                                 attributed_gross_profit, credited_deals)
        SELECT workspace, model, campaign, currency, sum(won), trim_scale(sum(revenue)), trim_scale(sum(profit)), sum(deals)
          FROM pg_temp.attribution_totals_delta GROUP BY 1, 2, 3, 4
        ON CONFLICT (workspace, model, campaign, currency)
        DO UPDATE SET won_deals = t.won_deals + EXCLUDED.won_deals,
                      attributed_revenue = trim_scale(t.attributed_revenue + EXCLUDED.attributed_revenue),
                      attributed_gross_profit = trim_scale(t.attributed_gross_profit + EXCLUDED.attributed_gross_profit),
                      credited_deals = t.credited_deals + EXCLUDED.credited_deals;
        DELETE FROM crm.attribution_totals WHERE credited_deals = 0;
    END IF;

    UPDATE crm.attribution_settings SET refreshed_at = now() WHERE singleton;
    RETURN batch_size;
END
$fn$;

-- What the links and credits `links` and `credits` return (statements whose rows are
-- crm.deal_touches and crm.attribution_credits rows: the queued deals' rows as they are deleted,
-- or as they were recomputed) contribute to the totals, times `direction`, appended to the delta
-- tables of crm.refresh_attribution_pending(). The same grouping as the full refresh's totals: per
-- deal first, then per campaign. Both texts are fixed in this file, never user input.
CREATE FUNCTION crm.attribution_contributions(direction integer, links text, credits text) RETURNS void
    LANGUAGE plpgsql AS $fn$
BEGIN
    EXECUTE format($sql$
    WITH l AS (%s)
    INSERT INTO pg_temp.attribution_influence_delta (workspace, campaign, currency, deals)
    SELECT p.workspace, p.campaign, p.currency, $1 * count(*)
      FROM (SELECT DISTINCT workspace, campaign, currency, connector, deal_external_id
              FROM l WHERE campaign IS NOT NULL AND currency IS NOT NULL) p
     GROUP BY 1, 2, 3
    $sql$, links) USING direction;

    EXECUTE format($sql$
    WITH c AS (%s)
    INSERT INTO pg_temp.attribution_totals_delta (workspace, model, campaign, currency, won, revenue, profit, deals)
    SELECT p.workspace, p.model, p.campaign, p.currency,
           $1 * count(*) FILTER (WHERE p.credit > 0), $1 * sum(p.credit), $1 * sum(p.credit * p.gross_margin),
           $1 * count(*)
      FROM (SELECT workspace, model, campaign, currency, connector, deal_external_id, sum(credit) AS credit,
                   min(gross_margin) AS gross_margin
              FROM c WHERE campaign IS NOT NULL
             GROUP BY 1, 2, 3, 4, 5, 6) p
     GROUP BY 1, 2, 3, 4
    $sql$, credits) USING direction;
END
$fn$;

-- How current the attribution figures are, per workspace: `refreshed_at`, when a refresh (full or
-- incremental) last brought them up to date; `pending_deals`, how many of the workspace's deals
-- changed since and wait for the next one (every deal of the workspace when a full refresh is due).
-- pending_deals 0 means the views reflect every committed change.
CREATE FUNCTION reporting.attribution_status()
    RETURNS TABLE (refreshed_at timestamptz, pending_deals bigint, workspace text)
    LANGUAGE sql STABLE AS $fn$
    SELECT s.refreshed_at,
           CASE WHEN EXISTS (SELECT 1 FROM crm.attribution_pending p WHERE p.connector IS NULL)
                THEN (SELECT count(*) FROM crm.deals d WHERE d.workspace = w.name)
                ELSE (SELECT count(*) FROM (SELECT DISTINCT p.connector, p.deal_external_id
                                              FROM crm.attribution_pending p WHERE p.workspace = w.name) q)
           END,
           w.name
      FROM crm.workspaces w CROSS JOIN crm.attribution_settings s
     ORDER BY w.name;
$fn$;

-- The stored rows predate the columns above: the next refresh is a full one.
INSERT INTO crm.attribution_pending (workspace, connector, deal_external_id) VALUES (NULL, NULL, NULL);
