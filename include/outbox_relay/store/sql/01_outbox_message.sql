-- The project's standard outbox table. A service writes one row here in the
-- same local transaction as its business rows; the relay does the rest.
-- Registering a service with no `columns:` mapping assumes exactly this shape.
CREATE TABLE IF NOT EXISTS outbox_message (
    id              BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    message_id      CHAR(36)        NOT NULL COMMENT 'unique message id (UUID), sent as a header',
    aggregate_id    VARCHAR(191)    NOT NULL COMMENT 'business key: Kafka key, per-key order',
    event_type      VARCHAR(191)    NOT NULL,
    topic           VARCHAR(249)    NOT NULL,
    payload         LONGTEXT        NOT NULL COMMENT 'JSON body',
    headers         TEXT            NULL     COMMENT 'optional JSON object of extra headers',
    status          VARCHAR(16)     NOT NULL DEFAULT 'NEW' COMMENT 'NEW | SENT | CONFIRMED | FAILED',
    attempts        INT UNSIGNED    NOT NULL DEFAULT 0,
    last_error      TEXT            NULL,
    next_attempt_at DATETIME(6)     NULL,
    created_at      DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    sent_at         DATETIME(6)     NULL,
    relay_run_id    VARCHAR(250)    NULL     COMMENT 'Airflow run id that published the row',
    confirmed_at    DATETIME(6)     NULL,
    updated_at      DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    UNIQUE KEY uq_outbox_message_message_id (message_id),
    -- The relay scans `status = NEW ORDER BY id`: this index makes that a range read.
    KEY ix_outbox_message_status_id (status, id),
    -- Backfills select by creation time; retention ages rows by update time.
    KEY ix_outbox_message_created_at (created_at),
    KEY ix_outbox_message_status_updated (status, updated_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
