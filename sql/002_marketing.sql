-- Campaigns, costs, touches and attribution.

-- Minor units per currency: attribution credits are exact to the last unit of the deal's currency.
CREATE TABLE crm.currencies (
    code         text PRIMARY KEY,
    minor_units  integer NOT NULL CHECK (minor_units BETWEEN 0 AND 4)
);
INSERT INTO crm.currencies (code, minor_units) VALUES
    ('JPY', 0), ('KRW', 0), ('USD', 2), ('EUR', 2), ('GBP', 2), ('AUD', 2), ('CAD', 2), ('CHF', 2),
    ('CNY', 2), ('HKD', 2), ('SGD', 2), ('TWD', 2), ('INR', 2), ('SEK', 2), ('NOK', 2), ('DKK', 2),
    ('NZD', 2), ('BRL', 2), ('MXN', 2), ('THB', 2), ('KWD', 3), ('BHD', 3);

CREATE TABLE crm.campaigns (
    campaign       text PRIMARY KEY,       -- the key touches and costs refer to
    name           text,
    connector      text,
    external_id    text,
    actual_cost    numeric,
    budgeted_cost  numeric,
    currency       text,
    modified_at    timestamptz,
    deleted        boolean NOT NULL DEFAULT false
);
CREATE UNIQUE INDEX campaigns_external_idx ON crm.campaigns (connector, external_id) WHERE external_id IS NOT NULL;

-- What the programme cost. `source` is 'import' (costs CSV) or 'crm' (Salesforce ActualCost).
CREATE TABLE crm.campaign_costs (
    campaign  text NOT NULL,
    category  text NOT NULL,
    amount    numeric NOT NULL CHECK (amount >= 0),
    currency  text NOT NULL,
    period    text NOT NULL CHECK (period ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'),
    source    text NOT NULL DEFAULT 'import',
    PRIMARY KEY (campaign, category, currency, period, source)
);

-- Every marketing touch. `touch_key` is the delivery id (events) or the CRM record id, so the
-- same touch recorded twice is one row.
CREATE TABLE crm.touches (
    id                   bigserial PRIMARY KEY,
    touch_key            text NOT NULL UNIQUE,
    connector            text,
    contact_external_id  text,
    email                text,
    campaign             text,
    kind                 text NOT NULL,
    occurred_at          timestamptz NOT NULL,
    sequence             text,
    step                 integer,
    url                  text,
    source               text NOT NULL DEFAULT 'events',
    recorded_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX touches_contact_idx ON crm.touches (connector, contact_external_id, occurred_at);
CREATE INDEX touches_email_idx ON crm.touches (lower(email)) WHERE contact_external_id IS NULL;

-- Attribution models as data: each touch's raw weight is the sum of the weights of the roles it
-- holds (first, the one nearest the deal's creation, last) plus an even share of `middle_weight`
-- when it holds none; `decay` models weigh by age instead. Raw weights are normalised per deal,
-- which defines the degenerate cases (one touch gets all; two touches under U-shaped split 50/50).
CREATE TABLE crm.attribution_models (
    model            text PRIMARY KEY,
    description      text NOT NULL,
    first_weight     numeric NOT NULL DEFAULT 0,
    creation_weight  numeric NOT NULL DEFAULT 0,
    last_weight      numeric NOT NULL DEFAULT 0,
    middle_weight    numeric NOT NULL DEFAULT 0,
    decay            boolean NOT NULL DEFAULT false
);
INSERT INTO crm.attribution_models (model, description, first_weight, creation_weight, last_weight, middle_weight, decay) VALUES
    ('first_touch', 'all credit to the first touch', 1, 0, 0, 0, false),
    ('last_touch',  'all credit to the last touch before the close', 0, 0, 1, 0, false),
    ('linear',      'equal credit to every touch', 0, 0, 0, 1, false),
    ('u_shaped',    '40% first, 40% last, 20% shared by the rest', 0.4, 0, 0.4, 0.2, false),
    ('w_shaped',    '30% first, 30% nearest the deal''s creation, 30% last, 10% shared by the rest', 0.3, 0.3, 0.3, 0.1, false),
    ('time_decay',  'weight halves every half-life before the close', 0, 0, 0, 0, true);

-- Settings the application writes from its config before each refresh.
CREATE TABLE crm.attribution_settings (
    singleton        boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    gross_margin     numeric NOT NULL DEFAULT 0.5,
    lookback_days    integer NOT NULL DEFAULT 90,
    half_life_days   numeric NOT NULL DEFAULT 7,
    refreshed_at     timestamptz
);
INSERT INTO crm.attribution_settings DEFAULT VALUES;

-- Touches that reached each deal through its contacts, inside the look-back window (all deals:
-- `influenced_deals` counts open ones too).
CREATE TABLE crm.deal_touches (
    connector         text NOT NULL,
    deal_external_id  text NOT NULL,
    touch_id          bigint NOT NULL,
    campaign          text,
    occurred_at       timestamptz NOT NULL,
    PRIMARY KEY (connector, deal_external_id, touch_id)
);
CREATE INDEX deal_touches_campaign_idx ON crm.deal_touches (campaign);

CREATE TABLE crm.attribution_credits (
    model             text NOT NULL,
    connector         text NOT NULL,
    deal_external_id  text NOT NULL,
    touch_id          bigint NOT NULL,
    campaign          text,
    currency          text NOT NULL,
    credit            numeric NOT NULL,
    PRIMARY KEY (model, connector, deal_external_id, touch_id)
);
CREATE INDEX attribution_credits_campaign_idx ON crm.attribution_credits (model, campaign, currency);

-- Recomputes links and credits from scratch, set-based. Credits are distributed with the largest
-- remainder method in the currency's minor units, so every deal's credits add up to its amount
-- exactly and none is negative.
CREATE FUNCTION crm.refresh_attribution() RETURNS void LANGUAGE plpgsql AS $fn$
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
    SELECT DISTINCT d.connector, d.external_id, t.id, t.campaign, t.occurred_at
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
               coalesce(cur.minor_units, 2) AS minor_units
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
               r.amount * power(10::numeric, r.minor_units) * r.weight / sum(r.weight) OVER deal AS exact_units
          FROM raw r
         WHERE r.weight > 0
        WINDOW deal AS (PARTITION BY r.model, r.connector, r.external_id)
    ), floored AS (
        SELECT sh.*, floor(sh.exact_units) AS base_units,
               sh.amount * power(10::numeric, sh.minor_units)
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
           ) / power(10::numeric, f.minor_units))
      FROM floored f;

    UPDATE crm.attribution_settings SET refreshed_at = now() WHERE singleton;
END
$fn$;
