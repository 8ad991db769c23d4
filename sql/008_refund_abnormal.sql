-- 008_refund_abnormal: a refund the provider reports abnormal (WeChat
-- refund_status CHANGE: it took the money but could not pay the buyer, e.g.
-- a cancelled or frozen card; handled by hand in the merchant platform) is
-- neither FAILED nor SUCCEEDED: ABNORMAL holds its amount against the paid
-- amount, and reconciliation lists it until the provider ends it.

ALTER TABLE refunds
  MODIFY COLUMN status ENUM('PENDING','SUCCEEDED','FAILED','ABNORMAL') NOT NULL DEFAULT 'PENDING';

ALTER TABLE recon_runs
  ADD COLUMN IF NOT EXISTS refund_abnormal INT NOT NULL DEFAULT 0 AFTER missing_provider;

ALTER TABLE recon_items
  MODIFY COLUMN category ENUM('matched','amount_mismatch','status_mismatch','fee_mismatch','missing_local',
                              'missing_provider','refund_abnormal') NOT NULL;
