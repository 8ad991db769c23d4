-- 017_wechat_api_version: the provider API version a payment was made with
-- (WeChat Pay: 'v3', or NULL for v2 and for channels with one API). Query,
-- close and refunds of a payment use the version it was made with, so a v2
-- payment in flight when [wechat] api_version switches to v3 stays v2.

ALTER TABLE payments
  ADD COLUMN api_version VARCHAR(8) NULL;
