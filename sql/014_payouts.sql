-- 014_payouts: creators' payout accounts and the payouts that pay settlement
-- batches (SPEC §12.3). A payout's payout_no is its batch's batch_no: the
-- transfer's idempotency key (Alipay out_biz_no), fixed before the first
-- attempt. A sender owns a payout only by an atomic claim (claimed_until +
-- attempts as read); sent = a transfer request may have left, so the next
-- attempt asks the provider (query) before it sends anything again.

ALTER TABLE creators
  ADD COLUMN IF NOT EXISTS alipay_account VARCHAR(100) NULL COMMENT 'payee identity: logon id (email/phone) or 2088 user id',
  ADD COLUMN IF NOT EXISTS real_name VARCHAR(100) NULL COMMENT 'the payee''s real name (needed with a logon id)',
  ADD COLUMN IF NOT EXISTS wechat_openid VARCHAR(64) NULL;

CREATE TABLE IF NOT EXISTS payouts (
  id                 BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
  payout_no          VARCHAR(48)  NOT NULL COMMENT '= settlement_batches.batch_no',
  batch_id           BIGINT       NOT NULL,
  creator_id         VARCHAR(64)  NOT NULL,
  amount_fen         BIGINT       NOT NULL,
  channel            VARCHAR(16)  NOT NULL,
  status             ENUM('PENDING','PAID','FAILED') NOT NULL DEFAULT 'PENDING',
  sent               TINYINT(1)   NOT NULL DEFAULT 0,
  attempts           INT          NOT NULL DEFAULT 0,
  claimed_until      DATETIME     NULL,
  provider_order_id  VARCHAR(64)  NULL,
  reason             VARCHAR(255) NULL COMMENT 'the provider''s reason for the last refusal or failure',
  created_at         DATETIME     NOT NULL DEFAULT UTC_TIMESTAMP(),
  updated_at         DATETIME     NOT NULL DEFAULT UTC_TIMESTAMP(),
  paid_at            DATETIME     NULL,
  UNIQUE KEY uq_payouts_no (payout_no),
  UNIQUE KEY uq_payouts_batch (batch_id),
  KEY ix_payouts_status (status),
  CONSTRAINT fk_payouts_batch FOREIGN KEY (batch_id) REFERENCES settlement_batches (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
