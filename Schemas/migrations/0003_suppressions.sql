-- Firings the policy kept from becoming a prompt, with the reason, so analysts can see
-- what Beckon chose not to do. One row per firing and reason however often a partition is
-- reprocessed (suppression_id is deterministic, like decision_id).
CREATE TABLE suppressions (
    suppression_id    text PRIMARY KEY,
    visitor_id        text NOT NULL,
    rule_id           text NOT NULL,
    rule_version      text NOT NULL,
    action            text NOT NULL CHECK (action IN ('offer_help', 'coupon', 'handoff')),
    reason            text NOT NULL CHECK (reason IN ('cooldown', 'cap', 'min_gap', 'in_chat', 'dismissed_backoff', 'budget', 'lower_priority', 'holdout')),
    event_time        timestamptz NOT NULL,
    trigger_event_id  text NOT NULL,
    source_topic      text,
    source_partition  integer,
    stored_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX suppressions_rule_time ON suppressions (rule_id, event_time);

-- Per rule and reason: how often the policy held a firing back.
CREATE VIEW rule_suppressions AS
SELECT rule_id, reason, count(*) AS firings, min(event_time) AS first_seen, max(event_time) AS last_seen
FROM suppressions
GROUP BY rule_id, reason;
