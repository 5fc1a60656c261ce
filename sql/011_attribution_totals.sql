-- Per-campaign totals materialised by the refresh, so reporting.roi_by_campaign reads a few
-- hundred rows instead of aggregating every deal-touch link and credit on each query (measured:
-- 250 ms at 100,000 touches with the aggregating view; see BENCHMARKS.md).

CREATE TABLE crm.campaign_influence (
    campaign          text NOT NULL,
    currency          text NOT NULL,
    influenced_deals  bigint NOT NULL,
    PRIMARY KEY (campaign, currency)
);

CREATE TABLE crm.attribution_totals (
    model                    text NOT NULL,
    campaign                 text NOT NULL,
    currency                 text NOT NULL,
    won_deals                bigint NOT NULL,
    attributed_revenue       numeric NOT NULL,
    attributed_gross_profit  numeric NOT NULL,
    PRIMARY KEY (model, campaign, currency)
);

ALTER FUNCTION crm.refresh_attribution() RENAME TO refresh_attribution_credits;

-- Links, credits, then the totals the ROI view reads, in the caller's transaction.
CREATE FUNCTION crm.refresh_attribution() RETURNS void LANGUAGE plpgsql AS $fn$
DECLARE
    margin numeric;
BEGIN
    PERFORM crm.refresh_attribution_credits();
    SELECT gross_margin INTO margin FROM crm.attribution_settings WHERE singleton;

    TRUNCATE crm.campaign_influence;
    INSERT INTO crm.campaign_influence (campaign, currency, influenced_deals)
    SELECT dt.campaign, upper(d.currency), count(DISTINCT (dt.connector, dt.deal_external_id))
      FROM crm.deal_touches dt
      JOIN crm.deals d ON d.connector = dt.connector AND d.external_id = dt.deal_external_id
     WHERE dt.campaign IS NOT NULL AND d.currency IS NOT NULL
     GROUP BY 1, 2;

    TRUNCATE crm.attribution_totals;
    INSERT INTO crm.attribution_totals (model, campaign, currency, won_deals, attributed_revenue, attributed_gross_profit)
    SELECT c.model, c.campaign, c.currency,
           count(DISTINCT (c.connector, c.deal_external_id)) FILTER (WHERE c.credit > 0),
           sum(c.credit),
           sum(c.credit * coalesce(d.gross_margin, margin))
      FROM crm.attribution_credits c
      JOIN crm.deals d ON d.connector = c.connector AND d.external_id = c.deal_external_id
     WHERE c.campaign IS NOT NULL
     GROUP BY 1, 2, 3;
END
$fn$;

CREATE OR REPLACE VIEW reporting.roi_by_campaign AS
WITH costs AS (
    SELECT campaign, upper(currency) AS currency, sum(amount) AS cost
      FROM crm.campaign_costs GROUP BY 1, 2
), keys AS (
    SELECT campaign, currency FROM costs
    UNION SELECT campaign, currency FROM crm.campaign_influence
    UNION SELECT campaign, currency FROM crm.attribution_totals
)
SELECT m.model, k.campaign, k.currency,
       coalesce(co.cost, 0) AS cost,
       coalesce(i.influenced_deals, 0) AS influenced_deals,
       coalesce(t.won_deals, 0) AS won_deals,
       coalesce(t.attributed_revenue, 0) AS attributed_revenue,
       coalesce(t.attributed_gross_profit, 0) AS attributed_gross_profit,
       CASE WHEN coalesce(co.cost, 0) = 0 THEN NULL
            ELSE round((coalesce(t.attributed_gross_profit, 0) - co.cost) / co.cost, 6) END AS roi
  FROM crm.attribution_models m
 CROSS JOIN keys k
  LEFT JOIN costs co ON co.campaign = k.campaign AND co.currency = k.currency
  LEFT JOIN crm.campaign_influence i ON i.campaign = k.campaign AND i.currency = k.currency
  LEFT JOIN crm.attribution_totals t ON t.model = m.model AND t.campaign = k.campaign AND t.currency = k.currency;
