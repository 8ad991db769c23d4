-- 024_payout_bill_gen: a payout retried after a final failure (FAIL or
-- CANCELLED at WeChat, FAIL or REFUND at Alipay, or refused before any
-- transfer existed) is sent under a new transfer number. Both providers
-- answer a repeated out_bill_no / out_biz_no with the transfer they already
-- have, so `payout retry` could never pay it under the old number.
-- WeChat out_bill_no = the batch number without '-', Alipay out_biz_no = the
-- batch number; then 'R<bill_gen>' when bill_gen > 0. The earlier transfer is
-- final, so no money can move under it.
ALTER TABLE payouts
  ADD COLUMN IF NOT EXISTS bill_gen INT NOT NULL DEFAULT 0 COMMENT 'transfers sent before the current one (retries after a final failure)';
