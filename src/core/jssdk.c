/* jssdk: see include/core/jssdk.h. */
#include "jssdk.h"

#include <string.h>
#include <time.h>

#include "crypto.h"
#include "log.h"
#include "store_wxmp.h"
#include "wechat_mp.h"

#define KIND_TOKEN "access_token"
#define KIND_TICKET "jsapi_ticket"

typedef struct refresh_ctx {
    pg_app_t *app;
    arena_t *a;
    wxmp_client_t client;
    const char *ticket;         /* out */
    pg_err why;                 /* the failure of a WeChat call */
    buf_t err;
} refresh_ctx_t;

/* WeChat's own words, unless they quote the secret (a hostile or broken upstream). */
static const char *safe_reason(const refresh_ctx_t *c)
{
    const char *text = c->err.data ? c->err.data : "";
    if (c->client.secret && *c->client.secret && strstr(text, c->client.secret))
        return "(the reply quoted the app_secret: withheld)";
    return text;
}

static pg_err new_token(refresh_ctx_t *c, db_t *db, const char **token)
{
    wxmp_credential_t got;
    pg_err rc = wxmp_fetch_access_token(c->a, &c->client, &got, &c->err);
    if (rc != PG_OK) {
        c->why = rc;
        log_msg(LOG_ERROR, "wechat [wechat] appid %s: access token (stable_token) refused: %s%s", c->client.appid,
                safe_reason(c), got.errcode == 40125 || got.errcode == 40001
                ? " (is [wechat] app_secret the Official Account's AppSecret?)"
                : got.errcode == 40164 ? " (add this server's address to the Official Account's IP whitelist)" : "");
        return rc;
    }
    *token = got.value;
    return store_wxmp_put(db, c->client.appid, KIND_TOKEN, got.value, got.expires_in);
}

static pg_err ticket_with(refresh_ctx_t *c, const char *token, wxmp_credential_t *got)
{
    buf_clear(&c->err);
    return wxmp_fetch_jsapi_ticket(c->a, &c->client, token, got, &c->err);
}

/* Under the ticket row's lock: another process may have refreshed it while
 * this one waited; else token (cached or new), then the ticket; one new
 * token when WeChat calls the cached one invalid or expired. */
static pg_err refresh_tx(db_t *db, void *ctx)
{
    refresh_ctx_t *c = ctx;
    const char *ticket, *token;
    bool fresh, token_fresh;
    wxmp_credential_t got;
    pg_err rc;
    c->why = PG_OK;
    if ((rc = store_wxmp_reserve(db, c->client.appid, KIND_TICKET)) != PG_OK ||
        (rc = store_wxmp_get(db, c->a, c->client.appid, KIND_TICKET, true, &ticket, &fresh)) != PG_OK)
        return rc;
    if (fresh) {
        c->ticket = ticket;
        return PG_OK;
    }
    if ((rc = store_wxmp_get(db, c->a, c->client.appid, KIND_TOKEN, false, &token, &token_fresh)) != PG_OK)
        return rc;
    if (!token_fresh && (rc = new_token(c, db, &token)) != PG_OK)
        return rc;
    rc = ticket_with(c, token, &got);
    if (rc == PG_ERR_UPSTREAM && wxmp_is_token_error(got.errcode) && token_fresh) {
        log_msg(LOG_WARN, "wechat [wechat] appid %s: getticket: %s: fetching a new access token", c->client.appid,
                safe_reason(c));
        if ((rc = store_wxmp_forget(db, c->client.appid, KIND_TOKEN)) != PG_OK || (rc = new_token(c, db, &token)) != PG_OK)
            return rc;
        rc = ticket_with(c, token, &got);
    }
    if (rc != PG_OK) {
        c->why = rc;
        log_msg(LOG_ERROR, "wechat [wechat] appid %s: jsapi_ticket (getticket) refused: %s", c->client.appid,
                safe_reason(c));
        return rc;
    }
    c->ticket = got.value;
    return store_wxmp_put(db, c->client.appid, KIND_TICKET, got.value, got.expires_in);
}

static const char *api_base(arena_t *a, const char *base)
{
    size_t n = strlen(base);
    while (n > 0 && base[n - 1] == '/')
        n--;
    return arena_strndup(a, base, n);
}

static pg_err current_ticket(pg_app_t *app, arena_t *a, const char **ticket)
{
    const pg_config_t *cfg = app->cfg;
    refresh_ctx_t c;
    bool fresh;
    pg_err rc = store_wxmp_get(app->db, a, cfg->wechat.appid, KIND_TICKET, false, ticket, &fresh);
    if (rc == PG_OK && fresh)
        return PG_OK;              /* the usual case: no call to WeChat */
    memset(&c, 0, sizeof c);
    c.app = app;
    c.a = a;
    c.client.api_base = api_base(a, cfg->wechat.mp_api_base);
    c.client.appid = cfg->wechat.appid;
    c.client.secret = cfg->wechat.app_secret;
    c.client.http.ca_file = cfg->wechat.ca_file;
    buf_init(&c.err, a);
    if (c.client.api_base == NULL)
        return PG_ERR_NOMEM;
    rc = db_tx(app->db, refresh_tx, &c);
    if (rc != PG_OK && c.why == PG_OK)
        log_msg(LOG_ERROR, "wechat jsapi_ticket: database: %s", db_last_error(app->db));
    *ticket = c.ticket;
    return rc != PG_OK && c.why != PG_OK ? c.why : rc;
}

pg_err jssdk_page_config(pg_app_t *app, arena_t *a, const char *page_url, jssdk_config_t *out)
{
    const pg_config_t *cfg = app->cfg;
    const char *ticket = NULL;
    pg_err rc;
    memset(out, 0, sizeof *out);
    if (!cfg->wechat.enabled || !cfg->wechat.appid || !*cfg->wechat.appid || !cfg->wechat.app_secret ||
        !*cfg->wechat.app_secret) {
        log_msg(LOG_ERROR, "payout confirmation page: [wechat] app_secret is not set: the page cannot run "
                "the JS-SDK's wx.config, payees cannot confirm transfers in WeChat");
        return PG_ERR_CONFIG;
    }
    if ((rc = current_ticket(app, a, &ticket)) != PG_OK)
        return rc;
    out->appid = cfg->wechat.appid;
    out->timestamp = (int64_t)time(NULL);
    if ((rc = crypto_random_alnum(out->noncestr, sizeof out->noncestr - 1)) != PG_OK)
        return rc;
    return wxmp_jssdk_signature(ticket, out->noncestr, out->timestamp, page_url, out->signature);
}
