-- Which relay run sent which rows: one row per run of consecutive row ids that a batch marked SENT. The
-- relay records this instead of writing the run id into every row (`relay_run_id` is left NULL then):
-- a 40-character value written into every row made the SENT update about a quarter slower on MariaDB
-- (the row grows, and the binary log carries it). `outbox-relay explain`, the row history and a backfill's
-- resume read the run from here when the row's own column is NULL. Tables whose ids are not integers,
-- ordered (`order_by`) or sharded tables, and batches whose ids scatter keep writing the row's column.
-- Retention deletes the ranges whose rows are all gone.
CREATE TABLE IF NOT EXISTS outbox_relay_sent_range (
    id              BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    service         VARCHAR(50)     NOT NULL,
    source_table    VARCHAR(129)    NOT NULL,
    first_row_id    BIGINT UNSIGNED NOT NULL,
    last_row_id     BIGINT UNSIGNED NOT NULL,
    run_id          VARCHAR(250)    NOT NULL COMMENT 'the Airflow run (or CLI invocation) that sent the rows',
    sent_at         DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    KEY ix_outbox_relay_sent_range_rows (service, source_table, first_row_id),
    KEY ix_outbox_relay_sent_range_run (service, source_table, run_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
