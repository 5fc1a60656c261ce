-- Attribution at scale (1,000,000 touches, 100,000 deals; see BENCHMARKS.md): the derived tables
-- lose indexes nothing reads (each refresh rewrites them whole, and index upkeep was half the
-- time), the unit scale of a deal's currency is computed once per deal rather than per touch and
-- model, and the refresh sorts in memory.

DROP INDEX crm.deal_touches_campaign_idx;
ALTER TABLE crm.deal_touches DROP CONSTRAINT deal_touches_pkey;
DROP INDEX crm.attribution_credits_campaign_idx;
ALTER TABLE crm.attribution_credits DROP CONSTRAINT attribution_credits_pkey;

-- A touch belongs to one contact and a deal lists a contact once, so (deal, touch) pairs are
-- unique without DISTINCT.
CREATE OR REPLACE FUNCTION crm.refresh_attribution_credits() RETURNS void LANGUAGE plpgsql
    SET work_mem = '128MB' AS $fn$
DECLARE
    s crm.attribution_settings%ROWTYPE;
BEGIN
    SELECT * INTO s FROM crm.attribution_settings WHERE singleton;

    -- Touches that arrived before their contact was synced: resolve them by e-mail now.
    UPDATE crm.touches t
       SET connector = c.connector, contact_external_id = c.external_id
      FROM crm.contacts c
     WHERE t.contact_external_id IS NULL AND t.email IS NOT NULL
       AND lower(c.email) = lower(t.email) AND NOT c.deleted;

    TRUNCATE crm.deal_touches;
    INSERT INTO crm.deal_touches (connector, deal_external_id, touch_id, campaign, occurred_at)
    SELECT d.connector, d.external_id, t.id, t.campaign, t.occurred_at
      FROM crm.deals d
      JOIN crm.deal_contacts dc ON dc.connector = d.connector AND dc.deal_external_id = d.external_id
      JOIN crm.touches t ON t.connector = dc.connector AND t.contact_external_id = dc.contact_external_id
     WHERE NOT d.deleted
       AND t.occurred_at >= coalesce(d.created_at, '-infinity') - make_interval(days => s.lookback_days)
       AND t.occurred_at <= CASE WHEN d.is_closed THEN coalesce(d.closed_at, 'infinity') ELSE 'infinity' END;

    TRUNCATE crm.attribution_credits;
    INSERT INTO crm.attribution_credits (model, connector, deal_external_id, touch_id, campaign, currency, credit)
    WITH won AS (
        SELECT d.connector, d.external_id, d.amount, d.currency, d.created_at,
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
    SELECT f.model, f.connector, f.external_id, f.touch_id, f.campaign, upper(f.currency),
           trim_scale((f.base_units
            + CASE WHEN f.remainder_rank <= floor(f.leftover_units) THEN 1 ELSE 0 END
            -- sub-unit precision in the amount itself stays with the first-ranked touch
            + CASE WHEN f.remainder_rank = 1 THEN f.leftover_units - floor(f.leftover_units) ELSE 0 END
           ) / f.unit_scale)
      FROM floored f;

    UPDATE crm.attribution_settings SET refreshed_at = now() WHERE singleton;
END
$fn$;

-- Totals aggregate per deal first (hash aggregates), then per campaign: no DISTINCT sorts over
-- every link and credit.
CREATE OR REPLACE FUNCTION crm.refresh_attribution() RETURNS void LANGUAGE plpgsql
    SET work_mem = '128MB' AS $fn$
DECLARE
    margin numeric;
BEGIN
    PERFORM crm.refresh_attribution_credits();
    SELECT gross_margin INTO margin FROM crm.attribution_settings WHERE singleton;

    TRUNCATE crm.campaign_influence;
    INSERT INTO crm.campaign_influence (campaign, currency, influenced_deals)
    SELECT p.campaign, upper(d.currency), count(*)
      FROM (SELECT DISTINCT campaign, connector, deal_external_id FROM crm.deal_touches WHERE campaign IS NOT NULL) p
      JOIN crm.deals d ON d.connector = p.connector AND d.external_id = p.deal_external_id
     WHERE d.currency IS NOT NULL
     GROUP BY 1, 2;

    TRUNCATE crm.attribution_totals;
    INSERT INTO crm.attribution_totals (model, campaign, currency, won_deals, attributed_revenue, attributed_gross_profit)
    SELECT p.model, p.campaign, p.currency,
           count(*) FILTER (WHERE p.credit > 0), sum(p.credit), sum(p.credit * coalesce(d.gross_margin, margin))
      FROM (SELECT model, campaign, currency, connector, deal_external_id, sum(credit) AS credit
              FROM crm.attribution_credits WHERE campaign IS NOT NULL
             GROUP BY 1, 2, 3, 4, 5) p
      JOIN crm.deals d ON d.connector = p.connector AND d.external_id = p.deal_external_id
     GROUP BY 1, 2, 3;
END
$fn$;
