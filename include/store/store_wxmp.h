/* store_wxmp: the WeChat Official Account's access token and jsapi_ticket,
 * cached for every process and host (sql/023_wechat_mp_credentials.sql).
 * kind is "access_token" or "jsapi_ticket". A credential is fresh until its
 * refresh_at: expires_in minus a margin (300 s, or half of a shorter
 * lifetime), so that a page signed with it keeps working. */
#ifndef STORE_WXMP_H
#define STORE_WXMP_H
#include <stdbool.h>
#include <stdint.h>
#include "arena.h"
#include "db.h"
#include "pg_err.h"

/* The credential (value NULL when there is none) and whether it is still
 * fresh. lock: SELECT ... FOR UPDATE (inside db_tx, after store_wxmp_reserve). */
pg_err store_wxmp_get(db_t *db, arena_t *a, const char *appid, const char *kind, bool lock,
                      const char **value, bool *fresh);
/* Makes sure the row exists (an empty one), so that it can be locked. */
pg_err store_wxmp_reserve(db_t *db, const char *appid, const char *kind);
/* Records a credential WeChat just issued for expires_in seconds. */
pg_err store_wxmp_put(db_t *db, const char *appid, const char *kind, const char *value, int64_t expires_in);
/* Marks the credential stale (WeChat called it invalid or expired). */
pg_err store_wxmp_forget(db_t *db, const char *appid, const char *kind);

#endif
