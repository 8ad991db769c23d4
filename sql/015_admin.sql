-- 015_admin: the operator's console (/admin/). Accounts with a memory-hard
-- password hash (libsodium crypto_pwhash, Argon2id), sessions stored only as
-- the SHA-256 of their random token, failed logins counted per account and
-- per address (shared by every process), and the audit log of every action.

CREATE TABLE IF NOT EXISTS admin_users (
  id             BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
  username       VARCHAR(64)  NOT NULL,
  role           ENUM('viewer','operator','owner') NOT NULL,
  password_hash  VARCHAR(255) NOT NULL COMMENT 'crypto_pwhash_str (Argon2id, with its own salt and limits)',
  active         TINYINT(1)   NOT NULL DEFAULT 1,
  created_at     DATETIME     NOT NULL DEFAULT UTC_TIMESTAMP(),
  updated_at     DATETIME     NOT NULL DEFAULT UTC_TIMESTAMP(),
  UNIQUE KEY uq_admin_users_username (username)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS admin_sessions (
  token_hash     CHAR(64)     NOT NULL PRIMARY KEY COMMENT 'SHA-256 (hex) of the cookie token; the token itself is never stored',
  user_id        BIGINT       NOT NULL,
  csrf_token     CHAR(43)     NOT NULL COMMENT 'synchronizer token of this session',
  address        VARCHAR(45)  NULL,
  created_at     DATETIME     NOT NULL DEFAULT UTC_TIMESTAMP(),
  last_seen_at   DATETIME     NOT NULL DEFAULT UTC_TIMESTAMP(),
  KEY ix_admin_sessions_user (user_id),
  KEY ix_admin_sessions_created (created_at),
  CONSTRAINT fk_admin_sessions_user FOREIGN KEY (user_id) REFERENCES admin_users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS admin_login_failures (
  id             BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
  username       VARCHAR(64)  NOT NULL,
  address        VARCHAR(45)  NOT NULL,
  failed_at      DATETIME     NOT NULL DEFAULT UTC_TIMESTAMP(),
  KEY ix_admin_login_failures_user (username, failed_at),
  KEY ix_admin_login_failures_addr (address, failed_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS admin_audit (
  id             BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
  at             DATETIME(3)  NOT NULL DEFAULT UTC_TIMESTAMP(3),
  username       VARCHAR(64)  NOT NULL COMMENT 'who (as typed, for failed logins)',
  action         VARCHAR(40)  NOT NULL COMMENT 'login, login_failed, login_throttled, logout, refund, close, webhook_retry, account_add, ...',
  target         VARCHAR(64)  NULL COMMENT 'order_no, event id, account',
  outcome        VARCHAR(40)  NOT NULL COMMENT 'ok or the error code',
  detail         VARCHAR(255) NULL,
  address        VARCHAR(45)  NULL COMMENT 'from where (after trusted proxies)',
  KEY ix_admin_audit_at (at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
