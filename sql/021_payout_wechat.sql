-- 021_payout_wechat: WeChat merchant transfers as a payout channel. While a
-- transfer waits for the payee to confirm in WeChat (WAIT_USER_CONFIRM) the
-- payout stays PENDING and keeps WeChat's package_info, which the payee's
-- confirmation (wx.requestMerchantTransfer) needs.
ALTER TABLE payouts
  ADD COLUMN IF NOT EXISTS package_info VARCHAR(512) NULL COMMENT 'WeChat: package of a transfer waiting for the payee';
