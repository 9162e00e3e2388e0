-- Generic message table with compensation, consumer table and reconciliation
-- (include/outbox_examples/generic_message). One database is shared by several subsystems:
-- `billing` and `shipping` both write their messages to `message_send` (told apart by
-- service_name), and the `ledger` consumer records every message it handles in `message_consume`.

-- Producer table: the original's columns plus what the fix needs.
-- status: 0 unsent, 1 sent, 2 FAILED (the fix: the original had only 0/1, so a row that could not be
-- sent stayed 0 for ever, indistinguishable from one not tried yet). attempts/last_error/
-- next_attempt_at hold the retry state the compensation job needs; retry_flag 0 = no retries.
CREATE TABLE IF NOT EXISTS message_send (
    id              BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    message_id      CHAR(36)        NOT NULL COMMENT 'message id (UUID), sent as outbox-message-id',
    business_id     VARCHAR(191)    NOT NULL COMMENT 'Kafka key: per-business-id order',
    service_name    VARCHAR(64)     NOT NULL COMMENT 'subsystem that owns the row (row_filter)',
    topic           VARCHAR(249)    NOT NULL,
    kafka_partition INT             NULL     COMMENT 'NULL = partition chosen by key',
    body            LONGTEXT        NOT NULL COMMENT 'JSON message body',
    status          TINYINT         NOT NULL DEFAULT 0 COMMENT '0 unsent | 1 sent | 2 failed',
    retry_flag      TINYINT         NOT NULL DEFAULT 1 COMMENT '0 no retry | 1 retry',
    attempts        INT UNSIGNED    NOT NULL DEFAULT 0,
    last_error      TEXT            NULL,
    next_attempt_at DATETIME(6)     NULL,
    created_at      DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    sent_at         DATETIME(6)     NULL,
    updated_at      DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    UNIQUE KEY uq_message_send_message_id (message_id),
    -- Each subsystem's relay scans `service_name = ? AND status = 0 ORDER BY id`.
    KEY ix_message_send_service_status_id (service_name, status, id),
    KEY ix_message_send_created (created_at),
    KEY ix_message_send_status_updated (status, updated_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Consumer table: written in the SAME transaction as the consumer's business change; the unique key
-- (service_name, message_id) is the dedupe. status: 0 not yet, 1 consumed OK, 2 failed (error_text).
CREATE TABLE IF NOT EXISTS message_consume (
    id              BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    message_id      VARCHAR(191)    NOT NULL,
    business_id     VARCHAR(191)    NULL,
    topic           VARCHAR(249)    NOT NULL,
    kafka_partition INT             NOT NULL,
    kafka_offset    BIGINT          NOT NULL,
    body            LONGTEXT        NULL,
    status          TINYINT         NOT NULL DEFAULT 0 COMMENT '0 not yet | 1 consumed | 2 failed',
    error_text      TEXT            NULL,
    service_name    VARCHAR(64)     NOT NULL COMMENT 'consuming subsystem',
    created_at      DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    UNIQUE KEY uq_message_consume_service_message (service_name, message_id),
    KEY ix_message_consume_created (created_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Producer-side business tables of the two subsystems.
CREATE TABLE IF NOT EXISTS invoice (
    invoice_id      CHAR(36)        NOT NULL,
    amount_cents    BIGINT          NOT NULL,
    created_at      DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (invoice_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE IF NOT EXISTS shipment (
    shipment_id     CHAR(36)        NOT NULL,
    invoice_id      CHAR(36)        NOT NULL,
    created_at      DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (shipment_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- Consumer-side business effect: one row per handled message. Deliberately no unique key, so a
-- duplicate effect would show up as a second row with the same message_id.
CREATE TABLE IF NOT EXISTS ledger_entry (
    id              BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    message_id      VARCHAR(191)    NOT NULL,
    business_id     VARCHAR(191)    NOT NULL,
    seq             INT             NOT NULL COMMENT 'the event number within its business id',
    kind            VARCHAR(32)     NOT NULL,
    amount_cents    BIGINT          NOT NULL,
    created_at      DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    KEY ix_ledger_entry_message (message_id),
    KEY ix_ledger_entry_business (business_id, id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
