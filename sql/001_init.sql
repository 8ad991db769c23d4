-- 001_init: catalogue, orders, payments and the raw notification log.
-- Money columns are BIGINT fen. Times are UTC (the connection sets time_zone).
-- Statements end with ';' at the end of a line (the migrator splits there).

CREATE TABLE IF NOT EXISTS creators (
  id          VARCHAR(64)  NOT NULL PRIMARY KEY,
  name        VARCHAR(200) NOT NULL,
  created_at  DATETIME     NOT NULL DEFAULT UTC_TIMESTAMP()
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS products (
  id          BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
  sku         VARCHAR(64)  NOT NULL,
  title       VARCHAR(200) NOT NULL,
  price_fen   BIGINT       NOT NULL,
  creator_id  VARCHAR(64)  NULL,
  active      TINYINT(1)   NOT NULL DEFAULT 1,
  created_at  DATETIME     NOT NULL DEFAULT UTC_TIMESTAMP(),
  UNIQUE KEY uq_products_sku (sku),
  CONSTRAINT fk_products_creator FOREIGN KEY (creator_id) REFERENCES creators (id),
  CONSTRAINT ck_products_price CHECK (price_fen > 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS orders (
  id            BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
  order_no      VARCHAR(32)  NOT NULL,
  product_id    BIGINT       NOT NULL,
  user_ref      VARCHAR(64)  NOT NULL,
  amount_fen    BIGINT       NOT NULL,
  status        ENUM('CREATED','PAID','PARTIALLY_REFUNDED','REFUNDED','CLOSED') NOT NULL DEFAULT 'CREATED',
  refunded_fen  BIGINT       NOT NULL DEFAULT 0,
  request_id    VARCHAR(64)  NULL,
  request_hash  CHAR(64)     NULL,
  created_at    DATETIME     NOT NULL DEFAULT UTC_TIMESTAMP(),
  paid_at       DATETIME     NULL,
  closed_at     DATETIME     NULL,
  UNIQUE KEY uq_orders_order_no (order_no),
  UNIQUE KEY uq_orders_request_id (request_id),
  KEY ix_orders_user (user_ref),
  KEY ix_orders_status_created (status, created_at),
  CONSTRAINT fk_orders_product FOREIGN KEY (product_id) REFERENCES products (id),
  CONSTRAINT ck_orders_amount CHECK (amount_fen > 0 AND refunded_fen >= 0 AND refunded_fen <= amount_fen)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS payments (
  id                 BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
  payment_no         VARCHAR(32)  NOT NULL,
  order_id           BIGINT       NOT NULL,
  channel            VARCHAR(16)  NOT NULL,
  method             VARCHAR(16)  NOT NULL,
  amount_fen         BIGINT       NOT NULL,
  status             ENUM('CREATED','PAID','CLOSED') NOT NULL DEFAULT 'CREATED',
  provider_trade_no  VARCHAR(64)  NULL,
  buyer_ref          VARCHAR(128) NULL,
  pay_data           TEXT         NULL,
  expires_at         DATETIME     NOT NULL,
  paid_at            DATETIME     NULL,
  closed_at          DATETIME     NULL,
  created_at         DATETIME     NOT NULL DEFAULT UTC_TIMESTAMP(),
  updated_at         DATETIME     NOT NULL DEFAULT UTC_TIMESTAMP(),
  UNIQUE KEY uq_payments_payment_no (payment_no),
  KEY ix_payments_order (order_id),
  KEY ix_payments_status_expires (status, expires_at),
  CONSTRAINT fk_payments_order FOREIGN KEY (order_id) REFERENCES orders (id),
  CONSTRAINT ck_payments_amount CHECK (amount_fen > 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS notifications (
  id           BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
  channel      VARCHAR(16)  NOT NULL,
  kind         VARCHAR(16)  NOT NULL,
  payment_no   VARCHAR(64)  NULL,
  notify_id    VARCHAR(128) NULL,
  outcome      ENUM('accepted','duplicate','ignored','bad_signature','mismatch','amount_mismatch',
                    'unknown_payment','bad_input') NOT NULL,
  detail       VARCHAR(255) NULL,
  raw_body     MEDIUMBLOB   NOT NULL,
  received_at  DATETIME(3)  NOT NULL DEFAULT UTC_TIMESTAMP(3),
  KEY ix_notifications_payment (payment_no),
  KEY ix_notifications_received (received_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
