/* admin: accounts, sessions, CSRF, roles, audit. See include/core/admin.h. */
#include "admin.h"

#include <string.h>

#include "crypto.h"
#include "log.h"
#include "pwhash.h"
#include "store_admin.h"
#include "text.h"

admin_role_t admin_role_parse(const char *name)
{
    if (!name)
        return ADMIN_ROLE_NONE;
    if (!strcmp(name, "viewer"))
        return ADMIN_ROLE_VIEWER;
    if (!strcmp(name, "operator"))
        return ADMIN_ROLE_OPERATOR;
    if (!strcmp(name, "owner"))
        return ADMIN_ROLE_OWNER;
    return ADMIN_ROLE_NONE;
}

bool admin_username_ok(const char *username)
{
    return text_is_token(username, ADMIN_USERNAME_MAX, "_.@-");
}

void admin_audit(pg_app_t *app, const char *username, const char *action, const char *target, const char *outcome,
                 const char *detail, const char *address)
{
    if (store_admin_audit_add(app->db, username ? username : "-", action, target, outcome, detail, address) != PG_OK)
        log_msg(LOG_ERROR, "admin audit not written: %s %s %s: %s", action, target ? target : "-", outcome,
                db_last_error(app->db));
}

pg_err admin_account_add(pg_app_t *app, const char *actor, const char *address, const char *username,
                         const char *role, const char *password, buf_t *msg)
{
    char hash[PWHASH_STR_MAX];
    pg_err rc;
    if (!admin_username_ok(username)) {
        buf_puts(msg, "the user name must be 1..64 of [A-Za-z0-9_.@-]");
        return PG_ERR_BAD_INPUT;
    }
    if (admin_role_parse(role) == ADMIN_ROLE_NONE) {
        buf_puts(msg, "the role must be viewer, operator or owner");
        return PG_ERR_BAD_INPUT;
    }
    rc = pwhash_hash(password, hash);
    if (rc == PG_ERR_BAD_INPUT) {
        buf_printf(msg, "the password must be %d..%d characters", PWHASH_PASSWORD_MIN, PWHASH_PASSWORD_MAX);
        return rc;
    }
    if (rc != PG_OK) {
        buf_puts(msg, "the password could not be hashed");
        return rc;
    }
    rc = store_admin_user_add(app->db, username, role, hash);
    crypto_wipe(hash, sizeof hash);
    admin_audit(app, actor, "account_add", username, rc == PG_OK ? "ok" : rc == PG_ERR_CONFLICT ? "taken" : "error",
                role, address);
    return rc;
}

pg_err admin_account_set_active(pg_app_t *app, const char *actor, const char *address, const char *username,
                                bool active)
{
    uint64_t changed = 0;
    pg_err rc;
    if (!active && actor && username && !strcmp(actor, username))
        return PG_ERR_CONFLICT;
    rc = store_admin_user_set_active(app->db, username, active, &changed);
    if (rc == PG_OK && changed == 0)
        rc = PG_ERR_NOT_FOUND;
    admin_audit(app, actor, active ? "account_enable" : "account_disable", username,
                rc == PG_OK ? "ok" : rc == PG_ERR_NOT_FOUND ? "not_found" : "error", NULL, address);
    return rc;
}

static pg_err new_session(pg_app_t *app, int64_t user_id, const char *address, char token[ADMIN_TOKEN_LEN + 1])
{
    char csrf[ADMIN_TOKEN_LEN + 1], hash[65];
    pg_err rc = crypto_random_alnum(token, ADMIN_TOKEN_LEN);
    if (rc == PG_OK)
        rc = crypto_random_alnum(csrf, ADMIN_TOKEN_LEN);
    if (rc != PG_OK)
        return rc;
    crypto_sha256_hex(token, ADMIN_TOKEN_LEN, hash);
    store_admin_sessions_prune(app->db, ADMIN_SESSION_IDLE_S, ADMIN_SESSION_ABSOLUTE_S);
    rc = store_admin_session_insert(app->db, hash, user_id, csrf, address);
    if (rc != PG_OK)
        crypto_wipe(token, ADMIN_TOKEN_LEN + 1);
    return rc;
}

pg_err admin_login(pg_app_t *app, arena_t *a, const char *username, const char *password, const char *address,
                   char token_out[ADMIN_TOKEN_LEN + 1])
{
    admin_user_row_t u;
    int64_t by_user = 0, by_address = 0;
    const char *who = admin_username_ok(username) ? username : "(invalid)";
    const char *addr = address ? address : "-";
    bool ok;
    pg_err rc = store_admin_failures_count(app->db, a, who, addr, ADMIN_THROTTLE_WINDOW_S, &by_user, &by_address);
    if (rc != PG_OK)
        return rc;
    if (by_user >= ADMIN_THROTTLE_PER_USER || by_address >= ADMIN_THROTTLE_PER_ADDRESS) {
        admin_audit(app, who, "login", NULL, "throttled", by_user >= ADMIN_THROTTLE_PER_USER ? "account" : "address",
                    address);
        return PG_ERR_CONFLICT;
    }
    rc = store_admin_user_by_name(app->db, a, who, &u);
    if (rc != PG_OK && rc != PG_ERR_NOT_FOUND)
        return rc;
    /* An unknown or disabled account costs one hash verification too. */
    ok = pwhash_verify(rc == PG_OK && u.active ? u.password_hash : NULL, password);
    if (!ok) {
        store_admin_failure_add(app->db, who, addr);
        admin_audit(app, who, "login", NULL, "wrong_password", NULL, address);
        return PG_ERR_UNAUTHORIZED;
    }
    rc = new_session(app, u.id, address, token_out);
    if (rc != PG_OK)
        return rc;
    store_admin_failures_clear(app->db, who);
    admin_audit(app, who, "login", NULL, "ok", u.role, address);
    return PG_OK;
}

pg_err admin_session_find(pg_app_t *app, arena_t *a, const char *token, admin_session_t *out)
{
    admin_session_row_t row;
    char hash[65];
    pg_err rc;
    memset(out, 0, sizeof *out);
    if (!token || strlen(token) != ADMIN_TOKEN_LEN || !text_is_token(token, ADMIN_TOKEN_LEN, ""))
        return PG_ERR_NOT_FOUND;
    crypto_sha256_hex(token, ADMIN_TOKEN_LEN, hash);
    rc = store_admin_session_get(app->db, a, hash, ADMIN_SESSION_IDLE_S, ADMIN_SESSION_ABSOLUTE_S, &row);
    if (rc != PG_OK)
        return rc;
    out->user_id = row.user_id;
    out->username = row.username;
    out->role_name = row.role;
    out->role = admin_role_parse(row.role);
    out->csrf_token = row.csrf_token;
    out->token_hash = arena_strdup(a, hash);
    if (row.idle_s >= 60)
        store_admin_session_touch(app->db, hash);
    return out->token_hash ? PG_OK : PG_ERR_NOMEM;
}

pg_err admin_logout(pg_app_t *app, const admin_session_t *s, const char *address)
{
    pg_err rc = store_admin_session_delete(app->db, s->token_hash);
    admin_audit(app, s->username, "logout", NULL, rc == PG_OK ? "ok" : "error", NULL, address);
    return rc;
}

bool admin_csrf_ok(const admin_session_t *s, const char *form_token)
{
    return s && s->csrf_token && form_token && crypto_ct_streq(s->csrf_token, form_token);
}

bool admin_role_allows(const admin_session_t *s, admin_role_t needed)
{
    return s && s->role != ADMIN_ROLE_NONE && s->role >= needed;
}
