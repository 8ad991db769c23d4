-- 004_refund_claim: a refund is sent to its provider only by whoever claimed
-- it (API request or cron pass): the claim is an atomic UPDATE of PENDING
-- refund, its attempts as read and a free (or expired) claim.

ALTER TABLE refunds
  ADD COLUMN IF NOT EXISTS claimed_until DATETIME NULL COMMENT 'a sender owns the refund until then (UTC)';
