-- Row history: one row per outbox row that a replay (or a backfill republish) touched, and one per failed relay attempt. Append-only:
-- the relay only ever INSERTs here (grant the relay's user INSERT and SELECT on it, nothing more, to
-- make that a database guarantee). `outbox-relay explain` and the Outbox page read it per row.
CREATE TABLE IF NOT EXISTS outbox_relay_replay (
    id              BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    service         VARCHAR(50)     NOT NULL,
    source_table    VARCHAR(129)    NOT NULL,
    row_id          VARCHAR(191)    NOT NULL,
    message_id      VARCHAR(255)    NULL,
    action          VARCHAR(32)     NOT NULL COMMENT 'requeue (FAILED -> NEW) | republish (SENT, sent again) | dead_letter | attempt | gave_up (by the relay)',
    previous_status VARCHAR(64)     NULL,
    previous_attempts INT UNSIGNED  NULL,
    previous_error  TEXT            NULL,
    previous_run_id VARCHAR(250)    NULL COMMENT 'the row''s relay_run_id before (never overwritten by a replay)',
    requested_by    VARCHAR(250)    NOT NULL,
    reason          VARCHAR(1000)   NOT NULL,
    run_id          VARCHAR(250)    NOT NULL COMMENT 'the Airflow run (or CLI invocation) that replayed it',
    created_at      DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    KEY ix_outbox_relay_replay_row (service, source_table, row_id, id),
    KEY ix_outbox_relay_replay_time (service, created_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
