/* admin: the use cases of the operator's console — accounts, login with
 * throttling, sessions (random token, only its SHA-256 stored, idle and
 * absolute expiry), the CSRF synchronizer token of a session, roles, and
 * the audit log. The pages themselves are in fcgi-app/admin.c (controller)
 * and src/web/admin_html.c (rendering). */
#ifndef ADMIN_H
#define ADMIN_H
#include <stdbool.h>
#include <stdint.h>
#include "app.h"

#define ADMIN_TOKEN_LEN 43            /* [A-Za-z0-9]{43}: about 256 bits */
#define ADMIN_SESSION_IDLE_S (30 * 60)
#define ADMIN_SESSION_ABSOLUTE_S (12 * 3600)
#define ADMIN_THROTTLE_WINDOW_S (15 * 60)
#define ADMIN_THROTTLE_PER_USER 5     /* failed logins per account and window */
#define ADMIN_THROTTLE_PER_ADDRESS 20 /* failed logins per address and window */
#define ADMIN_USERNAME_MAX 64

typedef enum { ADMIN_ROLE_NONE = 0, ADMIN_ROLE_VIEWER = 1, ADMIN_ROLE_OPERATOR = 2, ADMIN_ROLE_OWNER = 3 } admin_role_t;

typedef struct admin_session {
    int64_t user_id;
    const char *username;
    admin_role_t role;
    const char *role_name;
    const char *csrf_token;
    const char *token_hash;
} admin_session_t;

/* "viewer" -> ADMIN_ROLE_VIEWER ...; ADMIN_ROLE_NONE for anything else. */
admin_role_t admin_role_parse(const char *name);
bool         admin_username_ok(const char *username);

/* A new account, made by actor ("cli" for paygatectl admin add) from
 * address (NULL for the CLI). PG_ERR_CONFLICT when the name is taken,
 * PG_ERR_BAD_INPUT with msg for a bad name, role or password. Audited. */
pg_err admin_account_add(pg_app_t *app, const char *actor, const char *address, const char *username,
                         const char *role, const char *password, buf_t *msg);
/* Disables (ending its sessions) or enables an account. PG_ERR_NOT_FOUND
 * when there is none; PG_ERR_CONFLICT when actor would disable itself. */
pg_err admin_account_set_active(pg_app_t *app, const char *actor, const char *address, const char *username,
                                bool active);

/* A login attempt from address. PG_OK: a new session, its cookie token in
 * token_out (ADMIN_TOKEN_LEN + 1). PG_ERR_UNAUTHORIZED: wrong account or
 * password (the same answer and about the same time for both).
 * PG_ERR_CONFLICT: throttled (too many failures for the account or the
 * address in the window): the password is not even checked. Every outcome
 * is audited. */
pg_err admin_login(pg_app_t *app, arena_t *a, const char *username, const char *password, const char *address,
                   char token_out[ADMIN_TOKEN_LEN + 1]);

/* The session of a cookie token (NULL/garbage: PG_ERR_NOT_FOUND). Touches
 * last_seen_at (at most once a minute). */
pg_err admin_session_find(pg_app_t *app, arena_t *a, const char *token, admin_session_t *out);
pg_err admin_logout(pg_app_t *app, const admin_session_t *s, const char *address);

/* The form's token against the session's, in constant time. */
bool admin_csrf_ok(const admin_session_t *s, const char *form_token);
bool admin_role_allows(const admin_session_t *s, admin_role_t needed);

/* One line of the audit log (who, what, on what, outcome, from where). */
void admin_audit(pg_app_t *app, const char *username, const char *action, const char *target, const char *outcome,
                 const char *detail, const char *address);

#endif
