-- User registration -> welcome coupon (event-table pattern, write-up 001).
-- User service: app_user + EventPublish (its outbox, relayed as service `users`).
-- Coupon service: EventProcess (what it received, deduped on the event id) + coupon.
-- The demo keeps both services' tables in one database; in production each has its own.
CREATE TABLE IF NOT EXISTS app_user (
    user_id      BIGINT        NOT NULL AUTO_INCREMENT,
    username     VARCHAR(64)   NOT NULL,
    status       VARCHAR(16)   NOT NULL DEFAULT 'ACTIVE' COMMENT 'ACTIVE | DEACTIVATED',
    created_at   DATETIME(6)   NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (user_id),
    UNIQUE KEY uq_app_user_username (username)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- The write-up's fields (id, status, payload, eventType) plus aggregateId (the user: Kafka key, so one
-- user's events stay in order) and createdAt (thresholds, backfills, retention).
-- id is a UUIDv7 in text form: time-ordered, so primary-key order (the relay's claim order) is creation
-- order. ascii_bin makes the comparison plain byte order.
CREATE TABLE IF NOT EXISTS EventPublish (
    id           CHAR(36)      CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    status       VARCHAR(16)   NOT NULL DEFAULT 'NEW' COMMENT 'NEW | PUBLISHED',
    payload      JSON          NOT NULL,
    eventType    VARCHAR(64)   NOT NULL COMMENT 'USER_CREATED | USER_DEACTIVATED',
    aggregateId  VARCHAR(64)   NOT NULL,
    createdAt    DATETIME(6)   NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    KEY ix_EventPublish_status_id (status, id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- Same fields as EventPublish. The primary key on the event id is the dedupe: a redelivered event
-- cannot be recorded twice. payload is LONGTEXT (not JSON) so that even a malformed body is recorded
-- and then FAILED with its error instead of blocking the receiver.
CREATE TABLE IF NOT EXISTS EventProcess (
    id           CHAR(36)      CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    status       VARCHAR(16)   NOT NULL DEFAULT 'NEW' COMMENT 'NEW | PROCESSED | FAILED',
    payload      LONGTEXT      NOT NULL,
    eventType    VARCHAR(64)   NOT NULL,
    aggregateId  VARCHAR(64)   NULL,
    error        TEXT          NULL,
    receivedAt   DATETIME(6)   NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    processedAt  DATETIME(6)   NULL,
    PRIMARY KEY (id),
    KEY ix_EventProcess_status_id (status, id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- One coupon per user, enforced by the database (uq_coupon_user), not only by code.
CREATE TABLE IF NOT EXISTS coupon (
    coupon_id    BIGINT        NOT NULL AUTO_INCREMENT,
    user_id      BIGINT        NOT NULL,
    amount       DECIMAL(10,2) NOT NULL,
    status       VARCHAR(16)   NOT NULL DEFAULT 'ACTIVE' COMMENT 'ACTIVE | REVOKED',
    event_id     CHAR(36)      CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    created_at   DATETIME(6)   NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (coupon_id),
    UNIQUE KEY uq_coupon_user (user_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
