-- 022_payout_waiting: a WeChat merchant transfer waiting for the payee to
-- confirm it in WeChat (WAIT_USER_CONFIRM) is its own payout state,
-- WAITING_CONFIRMATION (issue 15: PENDING -> PAID | FAILED, and
-- WAITING_CONFIRMATION for WeChat). It is still open: queried by the next
-- runs, ended by the transfer notification; its package_info is what the
-- payee's confirmation page needs.
ALTER TABLE payouts
  MODIFY COLUMN status ENUM('PENDING','WAITING_CONFIRMATION','PAID','FAILED') NOT NULL DEFAULT 'PENDING';

UPDATE payouts SET status = 'WAITING_CONFIRMATION'
 WHERE status = 'PENDING' AND channel = 'wechat' AND package_info IS NOT NULL AND package_info <> '';
