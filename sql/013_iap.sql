-- 013_iap: in-app purchases from the App Store and Google Play (SPEC 12.5).
-- A product carries the store's product ids; every store purchase we learn
-- of (notification or posted by the shop's backend) is one iap_purchases row,
-- unique per (channel, store transaction): concurrent duplicates meet on that
-- key and record one order. A purchase whose product or buyer we cannot map
-- is kept as an anomaly, never dropped. The account token is the UUID the
-- app passes to the store (appAccountToken / obfuscatedAccountId) so that
-- notifications find their buyer.

ALTER TABLE products
  ADD COLUMN IF NOT EXISTS appstore_id VARCHAR(255) NULL COMMENT 'App Store productId',
  ADD COLUMN IF NOT EXISTS googleplay_id VARCHAR(255) NULL COMMENT 'Google Play product id (sku)',
  ADD UNIQUE KEY IF NOT EXISTS uq_products_appstore_id (appstore_id),
  ADD UNIQUE KEY IF NOT EXISTS uq_products_googleplay_id (googleplay_id);

ALTER TABLE refunds
  ADD COLUMN IF NOT EXISTS reversed_at DATETIME NULL COMMENT 'a store refund the store reversed (Apple REFUND_REVERSED)';

CREATE TABLE IF NOT EXISTS iap_account_tokens (
  token       CHAR(36)     NOT NULL PRIMARY KEY,
  user_ref    VARCHAR(64)  NOT NULL,
  created_at  DATETIME     NOT NULL DEFAULT UTC_TIMESTAMP(),
  UNIQUE KEY uq_iap_account_tokens_user (user_ref)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS iap_purchases (
  id                 BIGINT        NOT NULL AUTO_INCREMENT PRIMARY KEY,
  channel            VARCHAR(16)   NOT NULL COMMENT 'appstore | googleplay',
  store_txn_id       VARCHAR(128)  NOT NULL COMMENT 'Apple transactionId; Google: SHA-256 of the purchase token',
  original_txn_id    VARCHAR(128)  NULL,
  store_product_id   VARCHAR(255)  NOT NULL,
  account_token      VARCHAR(64)   NULL,
  user_ref           VARCHAR(64)   NULL,
  product_id         BIGINT        NULL,
  order_id           BIGINT        NULL,
  payment_id         BIGINT        NULL,
  status             ENUM('PAID','REFUNDED','ANOMALY') NOT NULL,
  anomaly            VARCHAR(32)   NULL COMMENT 'unknown_product | unknown_buyer | double_purchase',
  price_milli        BIGINT        NULL COMMENT 'the store price in milli-units of currency',
  currency           CHAR(3)       NULL,
  environment        VARCHAR(16)   NULL,
  purchase_token     TEXT          NULL COMMENT 'Google purchase token',
  acknowledged       TINYINT(1)    NOT NULL DEFAULT 0 COMMENT 'Google: acknowledged to the store',
  refund_no          VARCHAR(32)   NULL,
  payload            MEDIUMTEXT    NULL COMMENT 'the verified store payload',
  purchased_at       DATETIME      NULL,
  created_at         DATETIME      NOT NULL DEFAULT UTC_TIMESTAMP(),
  updated_at         DATETIME      NOT NULL DEFAULT UTC_TIMESTAMP(),
  UNIQUE KEY uq_iap_purchases_txn (channel, store_txn_id),
  KEY ix_iap_purchases_order (order_id),
  KEY ix_iap_purchases_status (channel, status, acknowledged)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
