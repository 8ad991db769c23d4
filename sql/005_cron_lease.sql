-- 005_cron_lease: cron's lease (replaces GET_LOCK, which belongs to one
-- connection and one Galera node). One row per periodic job: a pass does
-- its duties only while the row names it as holder with expires_at in the
-- future (server clock, UTC), renews it between duties and stops when the
-- renewal finds another holder. A crashed pass's lease expires by itself.

CREATE TABLE IF NOT EXISTS cron_leases (
  name        VARCHAR(32)  NOT NULL PRIMARY KEY,
  holder      VARCHAR(64)  NOT NULL DEFAULT '' COMMENT 'host:pid:random of the pass holding it (or last held it)',
  expires_at  DATETIME(6)  NOT NULL DEFAULT '1970-01-01 00:00:00' COMMENT 'UTC; free when in the past',
  taken_at    DATETIME(6)  NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
