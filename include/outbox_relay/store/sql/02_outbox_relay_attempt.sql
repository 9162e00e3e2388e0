-- Retry state for registered tables that have no attempts/last_error/next_attempt_at
-- columns of their own (legacy tables are registered without altering them).
-- Only rows that failed at least once appear here.
CREATE TABLE IF NOT EXISTS outbox_relay_attempt (
    service         VARCHAR(50)     NOT NULL,
    source_table    VARCHAR(129)    NOT NULL,
    row_id          VARCHAR(191)    NOT NULL,
    attempts        INT UNSIGNED    NOT NULL DEFAULT 0,
    last_error      TEXT            NULL,
    next_attempt_at DATETIME(6)     NULL,
    failed          TINYINT(1)      NOT NULL DEFAULT 0 COMMENT '1 = gave up after max attempts (terminal)',
    updated_at      DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    PRIMARY KEY (service, source_table, row_id),
    KEY ix_outbox_relay_attempt_failed (service, failed, updated_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
