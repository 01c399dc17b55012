-- Where a restarted (or newly assigned) consumer must start re-reading a partition to
-- rebuild its window state: the earliest offset that still belongs to the session of a
-- visitor in memory when `committed_offset` was committed. Written in the same
-- transaction as the decisions of that batch.
CREATE TABLE beckon_partition_state (
    group_id          text NOT NULL,
    topic             text NOT NULL,
    partition         integer NOT NULL,
    committed_offset  bigint NOT NULL,
    rebuild_from      bigint NOT NULL,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, topic, partition)
);
