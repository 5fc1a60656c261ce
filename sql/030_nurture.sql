-- The nurture engine: sequence definitions as data, business-day calendars, policies per connector,
-- watermarks, suppressions, and the columns the tick needs on the tables of 003.

ALTER TABLE crm.enrollments
    ADD COLUMN track_position integer NOT NULL DEFAULT 0,   -- position in `track` of the last step sent
    ADD COLUMN last_sent_at timestamptz;

-- Written by the engine from Mappings/sequences/*.yaml before each tick (only when they changed).
CREATE TABLE crm.nurture_sequences (
    name           text PRIMARY KEY,
    trigger_kind   text NOT NULL CHECK (trigger_kind IN ('event', 'stage', 'dormant', 'stalled')),
    trigger_event  text,
    trigger_asset  text,             -- the event's campaign equals it, or its URL contains it
    trigger_stage  text,
    dormant_days   integer,
    time_zone      text NOT NULL,
    window_start   time NOT NULL,
    window_end     time NOT NULL,
    calendar       text NOT NULL
);

CREATE TABLE crm.nurture_steps (
    sequence             text NOT NULL,
    track                text NOT NULL,
    position             integer NOT NULL,
    step                 integer NOT NULL,
    delay_business_days  integer NOT NULL,
    subject              text NOT NULL,
    PRIMARY KEY (sequence, track, position),
    UNIQUE (sequence, step)
);

CREATE TABLE crm.nurture_branches (
    sequence     text NOT NULL,
    position     integer NOT NULL,
    track        text NOT NULL,      -- the track holding after_step
    after_step   integer NOT NULL,
    condition    text NOT NULL CHECK (condition IN ('opened', 'not_opened', 'clicked', 'viewed')),
    matching     text,
    within_days  integer NOT NULL,
    to_track     text NOT NULL,
    PRIMARY KEY (sequence, position)
);

CREATE TABLE crm.nurture_goals (
    sequence  text NOT NULL,
    position  integer NOT NULL,
    event     text,
    asset     text,
    stage     text,
    PRIMARY KEY (sequence, position)
);

-- One row per calendar day: `ord` counts the business days up to and including `day`, so "N
-- business days after d" is the business day whose ord is ord(d) + N.
CREATE TABLE crm.nurture_calendar_days (
    calendar  text NOT NULL,
    day       date NOT NULL,
    ord       integer NOT NULL,
    business  boolean NOT NULL,
    PRIMARY KEY (calendar, day)
);
CREATE UNIQUE INDEX nurture_calendar_business_idx ON crm.nurture_calendar_days (calendar, ord) WHERE business;

-- The mapping's policy per connector.
CREATE TABLE crm.nurture_policies (
    connector              text PRIMARY KEY,
    sales_owned            text[] NOT NULL,
    activity_window        interval NOT NULL,
    activities             text[] NOT NULL,
    max_silent             interval NOT NULL,
    stall_after            interval NOT NULL,
    reactivation_sequence  text,
    handoff_threshold      integer NOT NULL,
    sla                    interval NOT NULL
);

CREATE TABLE crm.nurture_scoring_rules (
    connector  text NOT NULL,
    position   integer NOT NULL,
    event      text NOT NULL,
    matching   text,
    points     integer NOT NULL,
    PRIMARY KEY (connector, position)
);

-- What the definitions above were written from: the engine rewrites them only when this differs.
CREATE TABLE crm.nurture_definitions (
    singleton    boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    fingerprint  text NOT NULL
);

-- The last touch id each touch-driven phase has consumed (enrolment triggers, scoring).
CREATE TABLE crm.nurture_watermarks (
    name      text PRIMARY KEY,
    touch_id  bigint NOT NULL DEFAULT 0
);
INSERT INTO crm.nurture_watermarks (name) VALUES ('enroll'), ('scoring');

-- Unsubscribed or hard-bounced: left every sequence, never enrolled or mailed again.
CREATE TABLE crm.nurture_suppressions (
    connector            text NOT NULL,
    contact_external_id  text NOT NULL,
    reason               text NOT NULL,
    suppressed_at        timestamptz NOT NULL,
    PRIMARY KEY (connector, contact_external_id)
);

CREATE INDEX touches_kind_idx ON crm.touches (kind, occurred_at);
CREATE INDEX stalled_open_idx ON crm.stalled (connector, contact_external_id) WHERE cleared_at IS NULL;

-- The tick's last look at an open breach: hours_late grows with it until the owner calls.
ALTER TABLE crm.handoffs ADD COLUMN checked_at timestamptz;

-- The outbound command body of CONTRACT.md; `extra` adds command-specific fields.
CREATE FUNCTION crm.nurture_command(p_type text, p_id text, p_now timestamptz, p_email text, p_connector text,
                                    p_contact text, p_sequence text, p_step integer, p_reason text, p_extra jsonb)
RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_build_object(
        'type', p_type, 'id', p_id,
        'created_at', to_char(p_now AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
        'contact', jsonb_build_object('email', p_email, 'external_id', p_connector || ':' || p_contact),
        'sequence', p_sequence, 'step', p_step, 'reason', p_reason) || coalesce(p_extra, '{}'::jsonb)
$$;

CREATE OR REPLACE VIEW reporting.sla_breaches AS
SELECT connector, contact_external_id, owner, handed_off_at, first_sales_touch_at,
       round((extract(epoch FROM coalesce(first_sales_touch_at, greatest(checked_at, breached_at)) - sla_due_at) / 3600.0)::numeric, 2)
           AS hours_late
  FROM crm.handoffs
 WHERE breached_at IS NOT NULL;
