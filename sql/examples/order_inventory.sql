-- Order -> inventory example (the main demo). The order service writes `orders`
-- and an outbox_message row in one transaction; the inventory service keeps stock.
CREATE TABLE IF NOT EXISTS orders (
    order_id     CHAR(36)      NOT NULL,
    sku          VARCHAR(64)   NOT NULL,
    quantity     INT           NOT NULL,
    status       VARCHAR(16)   NOT NULL DEFAULT 'PLACED' COMMENT 'PLACED | RESERVED | CANCELLED',
    reason       TEXT          NULL,
    created_at   DATETIME(6)   NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (order_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE IF NOT EXISTS inventory (
    sku          VARCHAR(64)   NOT NULL,
    stock        INT           NOT NULL,
    PRIMARY KEY (sku)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- One row per stock decrement: duplicates here would be duplicate business effects.
CREATE TABLE IF NOT EXISTS stock_movement (
    id           BIGINT        NOT NULL AUTO_INCREMENT,
    order_id     CHAR(36)      NOT NULL,
    sku          VARCHAR(64)   NOT NULL,
    quantity     INT           NOT NULL,
    created_at   DATETIME(6)   NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    KEY ix_stock_movement_order (order_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
