-- Exactly-once delivery (`delivery: exactly_once`): how far each relay's Kafka transactions are recorded in
-- this database, one row per service and shard. A batch's Kafka transaction carries a progress record
-- (the progress topic, keyed by service and shard) with its sequence number; the database transaction that
-- marks the batch SENT moves `seq` to it. After a crash between the two commits the next run finds a
-- committed progress record beyond `seq` (reading the topic from `scan_from`) and marks its rows SENT
-- without publishing them again.
CREATE TABLE IF NOT EXISTS outbox_relay_progress (
    service         VARCHAR(50)     NOT NULL,
    shard           INT             NOT NULL DEFAULT -1 COMMENT '-1: the whole table',
    seq             BIGINT UNSIGNED NOT NULL DEFAULT 0 COMMENT 'last batch whose rows are marked here',
    scan_from       BIGINT          NOT NULL DEFAULT 0 COMMENT 'progress topic offset to read from on start',
    updated_at      DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    PRIMARY KEY (service, shard)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
