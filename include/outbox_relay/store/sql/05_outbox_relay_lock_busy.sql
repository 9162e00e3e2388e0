-- Relay runs in a row that found a service's relay lock held by another session, one row per service and
-- shard while it lasts (the next run that gets the lock deletes it). Counted here, beside the lock, so
-- that a wedged holder is found whatever runs the relay (any scheduler, the CLI): at the service's
-- relay_lock_busy_runs_to_fail the run fails, naming the holder's connection id.
CREATE TABLE IF NOT EXISTS outbox_relay_lock_busy (
    service         VARCHAR(50)     NOT NULL,
    shard           INT             NOT NULL DEFAULT -1 COMMENT '-1: the whole table',
    busy_runs       INT UNSIGNED    NOT NULL DEFAULT 0,
    holder          BIGINT UNSIGNED NULL     COMMENT 'MySQL connection id of the holder the last busy run saw',
    first_busy_at   DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at      DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    PRIMARY KEY (service, shard)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
