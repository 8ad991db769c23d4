/* store_wxmp: see include/store/store_wxmp.h. */
#include "store_wxmp.h"

pg_err store_wxmp_get(db_t *db, arena_t *a, const char *appid, const char *kind, bool lock,
                      const char **value, bool *fresh)
{
    db_val_t p[] = { DB_S(appid), DB_S(kind) };
    db_result_t r;
    pg_err rc = db_query(db, a, lock
                         ? "SELECT value, refresh_at > UNIX_TIMESTAMP() AS fresh FROM wechat_mp_credentials"
                           " WHERE appid = ? AND kind = ? FOR UPDATE"
                         : "SELECT value, refresh_at > UNIX_TIMESTAMP() AS fresh FROM wechat_mp_credentials"
                           " WHERE appid = ? AND kind = ?",
                         p, 2, &r);
    *value = NULL;
    *fresh = false;
    if (rc != PG_OK || r.rows == 0)
        return rc;
    *value = db_cell(&r, 0, "value");
    *fresh = *value != NULL && **value != '\0' && db_cell_i64(&r, 0, "fresh") == 1;
    return PG_OK;
}

pg_err store_wxmp_reserve(db_t *db, const char *appid, const char *kind)
{
    db_val_t p[] = { DB_S(appid), DB_S(kind) };
    return db_exec(db, "INSERT IGNORE INTO wechat_mp_credentials (appid, kind) VALUES (?, ?)", p, 2, NULL, NULL);
}

pg_err store_wxmp_put(db_t *db, const char *appid, const char *kind, const char *value, int64_t expires_in)
{
    db_val_t p[] = { DB_S(appid), DB_S(kind), DB_S(value), DB_I(expires_in), DB_I(expires_in), DB_I(expires_in) };
    return db_exec(db,
                   "INSERT INTO wechat_mp_credentials (appid, kind, value, fetched_at, expires_at, refresh_at)"
                   " VALUES (?, ?, ?, UNIX_TIMESTAMP(), UNIX_TIMESTAMP() + ?, UNIX_TIMESTAMP() + ? - LEAST(300, ? DIV 2))"
                   " ON DUPLICATE KEY UPDATE value = VALUES(value), fetched_at = VALUES(fetched_at),"
                   " expires_at = VALUES(expires_at), refresh_at = VALUES(refresh_at)",
                   p, 6, NULL, NULL);
}

pg_err store_wxmp_forget(db_t *db, const char *appid, const char *kind)
{
    db_val_t p[] = { DB_S(appid), DB_S(kind) };
    return db_exec(db, "UPDATE wechat_mp_credentials SET refresh_at = 0 WHERE appid = ? AND kind = ?", p, 2,
                   NULL, NULL);
}
