-- Consumer-side inbox: one row per processed message id, written in the same
-- transaction as the consumer's business change, so a redelivery is skipped.
CREATE TABLE IF NOT EXISTS inbox_message (
    consumer        VARCHAR(100)    NOT NULL COMMENT 'consumer/service name',
    message_id      VARCHAR(191)    NOT NULL,
    topic           VARCHAR(249)    NOT NULL,
    kafka_partition INT             NOT NULL,
    kafka_offset    BIGINT          NOT NULL,
    status          VARCHAR(16)     NOT NULL COMMENT 'SUCCESS | FAILED',
    error           TEXT            NULL,
    received_at     DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (consumer, message_id),
    KEY ix_inbox_message_received (received_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
