-- 002_lifecycle: refunds, entitlements, merchant webhooks (outbox), and the
-- payment columns that active query and late/double payments need.

ALTER TABLE payments
  ADD COLUMN IF NOT EXISTS anomaly VARCHAR(32) NULL COMMENT 'late_payment | double_payment',
  ADD COLUMN IF NOT EXISTS last_query_at DATETIME NULL,
  ADD COLUMN IF NOT EXISTS query_count INT NOT NULL DEFAULT 0;

CREATE TABLE IF NOT EXISTS refunds (
  id                  BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
  refund_no           VARCHAR(32)  NOT NULL COMMENT 'out_request_no (Alipay) / out_refund_no (WeChat)',
  order_id            BIGINT       NOT NULL,
  payment_id          BIGINT       NOT NULL,
  amount_fen          BIGINT       NOT NULL,
  reason              VARCHAR(200) NULL,
  kind                ENUM('merchant','auto') NOT NULL DEFAULT 'merchant' COMMENT 'auto: a late or double payment given back',
  status              ENUM('PENDING','SUCCEEDED','FAILED') NOT NULL DEFAULT 'PENDING',
  request_id          VARCHAR(64)  NULL,
  request_hash        CHAR(64)     NULL,
  provider_refund_no  VARCHAR(64)  NULL,
  failure             VARCHAR(200) NULL,
  attempts            INT          NOT NULL DEFAULT 0,
  last_attempt_at     DATETIME     NULL,
  created_at          DATETIME     NOT NULL DEFAULT UTC_TIMESTAMP(),
  succeeded_at        DATETIME     NULL,
  UNIQUE KEY uq_refunds_refund_no (refund_no),
  UNIQUE KEY uq_refunds_request_id (request_id),
  KEY ix_refunds_order (order_id),
  KEY ix_refunds_status (status),
  CONSTRAINT fk_refunds_order FOREIGN KEY (order_id) REFERENCES orders (id),
  CONSTRAINT fk_refunds_payment FOREIGN KEY (payment_id) REFERENCES payments (id),
  CONSTRAINT ck_refunds_amount CHECK (amount_fen > 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- What a buyer may read. Shops may query this table directly:
-- SELECT product_id FROM entitlements WHERE user_ref = ? AND status = 'ACTIVE'.
CREATE TABLE IF NOT EXISTS entitlements (
  id          BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
  user_ref    VARCHAR(64)  NOT NULL,
  product_id  BIGINT       NOT NULL,
  order_id    BIGINT       NOT NULL,
  status      ENUM('ACTIVE','REVOKED') NOT NULL DEFAULT 'ACTIVE',
  granted_at  DATETIME     NOT NULL DEFAULT UTC_TIMESTAMP(),
  revoked_at  DATETIME     NULL,
  UNIQUE KEY uq_entitlements_order (order_id),
  KEY ix_entitlements_user (user_ref, status),
  CONSTRAINT fk_entitlements_product FOREIGN KEY (product_id) REFERENCES products (id),
  CONSTRAINT fk_entitlements_order FOREIGN KEY (order_id) REFERENCES orders (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- The outbox: written in the transaction that changes the state, delivered
-- later by `paygatectl webhooks deliver` (and cron).
CREATE TABLE IF NOT EXISTS webhook_events (
  id               BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
  event_id         VARCHAR(32)  NOT NULL,
  type             VARCHAR(40)  NOT NULL,
  order_no         VARCHAR(32)  NULL,
  payload          TEXT         NOT NULL,
  status           ENUM('PENDING','DELIVERED','DEAD') NOT NULL DEFAULT 'PENDING',
  attempts         INT          NOT NULL DEFAULT 0,
  next_attempt_at  DATETIME     NOT NULL DEFAULT UTC_TIMESTAMP(),
  last_error       VARCHAR(255) NULL,
  created_at       DATETIME     NOT NULL DEFAULT UTC_TIMESTAMP(),
  delivered_at     DATETIME     NULL,
  UNIQUE KEY uq_webhook_events_event_id (event_id),
  KEY ix_webhook_events_due (status, next_attempt_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
