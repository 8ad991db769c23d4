-- 003_ledger: the double-entry ledger, settlement batches, imported bills and
-- reconciliation results. Amounts are BIGINT fen; an entry's sign: positive
-- = debit (money owed to us: clearing), negative = credit (where it goes:
-- fees, platform revenue, creator payable). Every txn_id sums to zero.

ALTER TABLE payments
  ADD COLUMN IF NOT EXISTS fee_fen BIGINT NULL COMMENT 'channel fee booked when paid',
  ADD COLUMN IF NOT EXISTS creator_id VARCHAR(64) NULL COMMENT 'whose share it was when paid';

CREATE TABLE IF NOT EXISTS ledger_entries (
  id                   BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
  txn_id               VARCHAR(48)  NOT NULL COMMENT 'pay:<payment_no> | refund:<refund_no> | settle:<batch_no>',
  account              VARCHAR(80)  NOT NULL,
  amount_fen           BIGINT       NOT NULL,
  kind                 ENUM('payment','refund','settlement') NOT NULL,
  channel              VARCHAR(16)  NULL,
  payment_id           BIGINT       NULL,
  refund_id            BIGINT       NULL,
  creator_id           VARCHAR(64)  NULL,
  posted_at            DATETIME     NOT NULL DEFAULT UTC_TIMESTAMP(),
  business_date        DATE         NOT NULL COMMENT 'Beijing-time day of the movement',
  available_on         DATE         NULL COMMENT 'creator payable: first day it may be settled',
  settlement_batch_id  BIGINT       NULL,
  UNIQUE KEY uq_ledger_txn_account (txn_id, account),
  KEY ix_ledger_account (account),
  KEY ix_ledger_business_date (business_date),
  KEY ix_ledger_settle (creator_id, settlement_batch_id, available_on)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS settlement_batches (
  id           BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
  batch_no     VARCHAR(48)  NOT NULL,
  creator_id   VARCHAR(64)  NOT NULL,
  settle_date  DATE         NOT NULL,
  amount_fen   BIGINT       NOT NULL,
  entries      INT          NOT NULL,
  created_at   DATETIME     NOT NULL DEFAULT UTC_TIMESTAMP(),
  UNIQUE KEY uq_settlement_batch_no (batch_no),
  UNIQUE KEY uq_settlement_creator_date (creator_id, settle_date),
  CONSTRAINT fk_settlement_creator FOREIGN KEY (creator_id) REFERENCES creators (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS bill_rows (
  id                  BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
  channel             VARCHAR(16)  NOT NULL,
  bill_date           DATE         NOT NULL,
  kind                ENUM('payment','refund') NOT NULL,
  provider_trade_no   VARCHAR(64)  NULL,
  out_trade_no        VARCHAR(64)  NULL,
  out_refund_no       VARCHAR(64)  NULL,
  provider_refund_no  VARCHAR(64)  NULL,
  amount_fen          BIGINT       NOT NULL,
  fee_fen             BIGINT       NOT NULL,
  status              VARCHAR(32)  NULL,
  finished_at         VARCHAR(32)  NULL,
  row_hash            CHAR(64)     NOT NULL COMMENT 'identity of the row: importing twice adds nothing',
  imported_at         DATETIME     NOT NULL DEFAULT UTC_TIMESTAMP(),
  UNIQUE KEY uq_bill_rows (channel, bill_date, row_hash),
  KEY ix_bill_rows_trade (out_trade_no)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS recon_runs (
  id                 BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
  channel            VARCHAR(16)  NOT NULL,
  bill_date          DATE         NOT NULL,
  matched            INT          NOT NULL DEFAULT 0,
  amount_mismatch    INT          NOT NULL DEFAULT 0,
  status_mismatch    INT          NOT NULL DEFAULT 0,
  fee_mismatch       INT          NOT NULL DEFAULT 0,
  missing_local      INT          NOT NULL DEFAULT 0,
  missing_provider   INT          NOT NULL DEFAULT 0,
  run_at             DATETIME     NOT NULL DEFAULT UTC_TIMESTAMP(),
  KEY ix_recon_runs_day (channel, bill_date)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS recon_items (
  id             BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
  run_id         BIGINT       NOT NULL,
  category       ENUM('matched','amount_mismatch','status_mismatch','fee_mismatch','missing_local',
                      'missing_provider') NOT NULL,
  kind           ENUM('payment','refund') NOT NULL,
  out_trade_no   VARCHAR(64)  NULL,
  out_refund_no  VARCHAR(64)  NULL,
  local_fen      BIGINT       NULL,
  bill_fen       BIGINT       NULL,
  detail         VARCHAR(255) NULL,
  KEY ix_recon_items_run (run_id, category),
  CONSTRAINT fk_recon_items_run FOREIGN KEY (run_id) REFERENCES recon_runs (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
