-- Beckon's tables for analysts and operators.
-- Privacy: no chat text, no raw event bodies, no emails or names. user ids are stored
-- only as a hash (user_hash); visitor ids are the trackers' pseudonymous ids.

-- Every decision, holdout ones included; one row per decision_id, however often a
-- partition is reprocessed.
CREATE TABLE decisions (
    decision_id       text PRIMARY KEY,
    visitor_id        text NOT NULL,
    user_hash         text,
    action            text NOT NULL CHECK (action IN ('offer_help', 'coupon', 'handoff')),
    rule_id           text NOT NULL,
    rule_version      text NOT NULL,
    intent            jsonb NOT NULL DEFAULT '{}',
    reason            text NOT NULL,
    payload           jsonb NOT NULL DEFAULT '{}',
    channel           text NOT NULL,
    event_time        timestamptz NOT NULL,
    decided_at        timestamptz NOT NULL,
    expires_at        timestamptz NOT NULL,
    trigger_event_id  text NOT NULL,
    experiment        text NOT NULL CHECK (experiment IN ('treatment', 'holdout')),
    source_topic      text,
    source_partition  integer,
    stored_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX decisions_rule_time ON decisions (rule_id, event_time);
CREATE INDEX decisions_visitor ON decisions (visitor_id, event_time);

-- Purchases and conversions, for uplift.
CREATE TABLE outcomes (
    event_id    text PRIMARY KEY,
    visitor_id  text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('purchase', 'conversion')),
    value       numeric,
    currency    text,
    event_time  timestamptz NOT NULL,
    late        boolean NOT NULL DEFAULT false
);
CREATE INDEX outcomes_visitor ON outcomes (visitor_id, event_time);

-- What the frontends reported back about a decision.
CREATE TABLE decision_feedback (
    event_id     text PRIMARY KEY,
    decision_id  text NOT NULL,
    visitor_id   text NOT NULL,
    feedback     text NOT NULL CHECK (feedback IN ('shown', 'accepted', 'dismissed')),
    event_time   timestamptz NOT NULL
);
CREATE INDEX decision_feedback_decision ON decision_feedback (decision_id);

-- Refused input. The original bytes stay untouched on the dead-letter topic; this table
-- keeps where they are and why they were refused (not the bytes: they may hold chat text).
CREATE TABLE dead_letters (
    source_topic      text NOT NULL,
    source_partition  integer NOT NULL,
    source_offset     bigint NOT NULL,
    kafka_timestamp   timestamptz,
    reason_code       text NOT NULL,
    reason_path       text NOT NULL,
    reason            text NOT NULL,
    payload_bytes     integer NOT NULL,
    stored_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source_topic, source_partition, source_offset)
);

-- The text of every rule version that made decisions.
CREATE TABLE rule_versions (
    rule_id       text NOT NULL,
    rule_version  text NOT NULL,
    file          text NOT NULL,
    body          text NOT NULL,
    first_loaded  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (rule_id, rule_version)
);

-- Per rule: decisions, acceptance, and conversion in treatment against holdout.
CREATE VIEW rule_uplift AS
WITH d AS (
    SELECT d.rule_id, d.experiment, d.decision_id, d.visitor_id, d.event_time,
           EXISTS (SELECT 1 FROM decision_feedback f WHERE f.decision_id = d.decision_id AND f.feedback = 'accepted') AS accepted,
           EXISTS (SELECT 1 FROM outcomes o WHERE o.visitor_id = d.visitor_id AND o.event_time >= d.event_time
                   AND o.event_time < d.event_time + interval '24 hours') AS converted
    FROM decisions d
)
SELECT rule_id,
       count(*) FILTER (WHERE experiment = 'treatment') AS treatment_decisions,
       count(*) FILTER (WHERE experiment = 'holdout') AS holdout_decisions,
       avg(accepted::int) FILTER (WHERE experiment = 'treatment') AS acceptance_rate,
       avg(converted::int) FILTER (WHERE experiment = 'treatment') AS treatment_conversion,
       avg(converted::int) FILTER (WHERE experiment = 'holdout') AS holdout_conversion,
       avg(converted::int) FILTER (WHERE experiment = 'treatment')
         - avg(converted::int) FILTER (WHERE experiment = 'holdout') AS uplift
FROM d
GROUP BY rule_id;
