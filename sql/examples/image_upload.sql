-- Image upload confirmed by object-store events (scenario image_upload). No outbox on the producer
-- side: the bucket's S3 notifications are the events. The image service owns `image`; the part
-- service owns `part` and `part_image_request`. The *_log tables get one row per applied change, so
-- a duplicate there is a duplicate business effect.
CREATE TABLE IF NOT EXISTS image (
    image_id        BIGINT         NOT NULL AUTO_INCREMENT,
    service         VARCHAR(100)   NOT NULL COMMENT 'owning business service = folder of the object key',
    status          VARCHAR(16)    NOT NULL DEFAULT 'PENDING' COMMENT 'PENDING | READY',
    bucket          VARCHAR(255)   NULL,
    path            VARCHAR(1024)  NULL COMMENT 'decoded object key',
    size            BIGINT         NULL,
    uploaded_millis BIGINT         NULL COMMENT 'epochMillis of the key in path: only a newer upload replaces it',
    created_at      DATETIME(6)    NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at      DATETIME(6)    NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    PRIMARY KEY (image_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE IF NOT EXISTS image_change_log (
    id              BIGINT         NOT NULL AUTO_INCREMENT,
    image_id        BIGINT         NOT NULL,
    path            VARCHAR(1024)  NOT NULL,
    uploaded_millis BIGINT         NOT NULL,
    message_id      VARCHAR(191)   NOT NULL,
    applied_at      DATETIME(6)    NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    KEY ix_image_change_log_image (image_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE IF NOT EXISTS part (
    part_id         BIGINT         NOT NULL AUTO_INCREMENT,
    name            VARCHAR(200)   NOT NULL,
    image_id        BIGINT         NULL COMMENT 'set once the image is confirmed uploaded',
    PRIMARY KEY (part_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- Written when the part service asks for an upload: which part an image id belongs to.
CREATE TABLE IF NOT EXISTS part_image_request (
    image_id        BIGINT         NOT NULL,
    part_id         BIGINT         NOT NULL,
    requested_at    DATETIME(6)    NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (image_id),
    KEY ix_part_image_request_part (part_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE IF NOT EXISTS part_image_link_log (
    id              BIGINT         NOT NULL AUTO_INCREMENT,
    part_id         BIGINT         NOT NULL,
    image_id        BIGINT         NOT NULL,
    message_id      VARCHAR(191)   NOT NULL,
    linked_at       DATETIME(6)    NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    KEY ix_part_image_link_log_image (image_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
