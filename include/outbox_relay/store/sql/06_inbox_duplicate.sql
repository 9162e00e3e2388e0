-- Redeliveries each consumer skipped (the inbox keeps one row per message id, so it cannot count them):
-- one row per inbox table and consumer, updated in the transaction that found the duplicate. The Outbox
-- page shows it beside what the inbox processed.
CREATE TABLE IF NOT EXISTS inbox_duplicate (
    inbox_table     VARCHAR(129)    NOT NULL,
    consumer        VARCHAR(100)    NOT NULL,
    skipped         BIGINT UNSIGNED NOT NULL DEFAULT 0,
    last_message_id VARCHAR(191)    NULL,
    last_skipped_at DATETIME(6)     NULL,
    PRIMARY KEY (inbox_table, consumer)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
