-- 007_notification_limits: the notify endpoints are public. A rejected
-- notification keeps only its first 2 KiB (with the length and SHA-256 of
-- the whole body), each source may store only so many per minute (the rest
-- are counted in notification_sources), and cron prunes everything but
-- accepted notifications after [server] notification_retention_days.

ALTER TABLE notifications
  ADD COLUMN IF NOT EXISTS raw_len INT NULL COMMENT 'bytes received; raw_body may hold only the first 2 KiB',
  ADD COLUMN IF NOT EXISTS raw_sha256 CHAR(64) NULL COMMENT 'SHA-256 (hex) of the whole body received',
  ADD COLUMN IF NOT EXISTS source VARCHAR(45) NULL COMMENT 'sender address (after trusted proxies)';

CREATE INDEX IF NOT EXISTS ix_notifications_outcome_received ON notifications (outcome, received_at);

CREATE TABLE IF NOT EXISTS notification_sources (
  source       VARCHAR(45)  NOT NULL COMMENT 'sender address of rejected notifications',
  minute       DATETIME     NOT NULL COMMENT 'UTC minute',
  rejected     INT          NOT NULL DEFAULT 0 COMMENT 'rejected notifications received in that minute (stored or not)',
  PRIMARY KEY (source, minute),
  KEY ix_notification_sources_minute (minute)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
