-- 024_payout_bill_gen: a WeChat payout retried after a final failure (FAIL
-- or CANCELLED at WeChat, or refused before any bill existed) is sent as a
-- new bill. WeChat answers a repeated out_bill_no with the bill it already
-- has, so `payout retry` could never pay it under the old number.
-- out_bill_no = the batch number without '-', then 'R<bill_gen>' when
-- bill_gen > 0. The old bill is final, so no money can move under it.
ALTER TABLE payouts
  ADD COLUMN IF NOT EXISTS bill_gen INT NOT NULL DEFAULT 0 COMMENT 'WeChat: bills sent before this one (retries after a final failure)';
