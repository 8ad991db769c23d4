-- 023_wechat_mp_credentials: the Official Account's access token and JS-SDK
-- jsapi_ticket (issue 15: the payee's confirmation page runs wx.config,
-- signed with the jsapi_ticket). Shared by every FastCGI process and host:
-- fetched once, kept until shortly before it expires (refresh_at), fetched
-- again under the row's lock (one process fetches, the others wait and read
-- it). Times are the database's UNIX_TIMESTAMP().
CREATE TABLE IF NOT EXISTS wechat_mp_credentials (
  appid      VARCHAR(64) NOT NULL,
  kind       ENUM('access_token','jsapi_ticket') NOT NULL,
  value      VARCHAR(512) NULL,
  fetched_at BIGINT NOT NULL DEFAULT 0,
  expires_at BIGINT NOT NULL DEFAULT 0,
  refresh_at BIGINT NOT NULL DEFAULT 0,
  PRIMARY KEY (appid, kind)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
