/* app: process-wide state. See include/app.h. */
#include "app.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "log.h"
#include "metrics.h"
#include "store.h"

static char *join_url(const char *base, const char *path)
{
    size_t n = strlen(base) + strlen(path) + 1;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s%s", base, path);
    return s;
}

static void alipay_setup(pg_app_t *app)
{
    pg_config_t *c = app->cfg;
    alipay_client_t *a = &app->alipay;
    memset(a, 0, sizeof *a);
    app->alipay_notify_url = join_url(c->server.base_url, "/notify/alipay");
    app->alipay_return_url = join_url(c->server.base_url, "/return/alipay");
    a->app_id = c->alipay.app_id;
    a->gateway = c->alipay.gateway;
    a->seller_id = c->alipay.seller_id;
    a->notify_url = app->alipay_notify_url;
    a->return_url = app->alipay_return_url;
    a->app_private_key = c->alipay.app_private_key;
    a->alipay_public_key = c->alipay.alipay_public_key;
    if (c->alipay.cert_mode) {
        a->app_cert_sn = c->alipay.app_cert_sn;
        a->alipay_root_cert_sn = c->alipay.alipay_root_cert_sn;
        a->alipay_cert_sn = c->alipay.alipay_cert_sn;
    }
    a->http.ca_file = c->alipay.ca_file;
    a->http.connect_timeout_ms = 3000;
    a->http.total_timeout_ms = 10000;
}

static void wechat_setup(pg_app_t *app)
{
    pg_config_t *c = app->cfg;
    wechat_client_t *w = &app->wechat;
    memset(w, 0, sizeof *w);
    app->wechat_notify_url = join_url(c->server.base_url, "/notify/wechat");
    app->wechat_refund_notify_url = join_url(c->server.base_url, "/notify/wechat/refund");
    app->wechat_transfer_notify_url = join_url(c->server.base_url, "/notify/wechat/transfer");
    w->appid = c->wechat.appid;
    w->mch_id = c->wechat.mch_id;
    w->api_key = c->wechat.api_key;
    w->gateway = c->wechat.gateway;
    w->notify_url = app->wechat_notify_url;
    w->sign_type = !strcmp(c->wechat.sign_type, "MD5") ? WECHAT_SIGN_MD5 : WECHAT_SIGN_HMAC_SHA256;
    w->http.ca_file = c->wechat.ca_file;
    w->http.connect_timeout_ms = 3000;
    w->http.total_timeout_ms = 10000;
    w->client_cert = c->wechat.client_cert;
    w->client_key = c->wechat.client_key;
}

static void wechat_v3_setup(pg_app_t *app)
{
    const pg_config_t *c = app->cfg;
    wxv3_client_t *v = &app->wechat_v3;
    buf_t err;
    memset(v, 0, sizeof *v);
    if (!c->wechat.api_v3_key || !*c->wechat.api_v3_key || !c->wechat.mch_key)
        return;
    v->appid = c->wechat.appid;
    v->mchid = c->wechat.mch_id;
    v->mch_serial_no = c->wechat.mch_serial_no;
    v->mch_key = c->wechat.mch_key;
    v->api_v3_key = c->wechat.api_v3_key;
    v->notify_url = app->wechat_notify_url;
    v->refund_notify_url = app->wechat_refund_notify_url;
    v->pubkey_id = c->wechat.wechatpay_public_key_id;
    v->pubkey = c->wechat.wechatpay_public_key;
    v->gateway = c->wechat.gateway;
    v->http.ca_file = c->wechat.ca_file;
    v->http.connect_timeout_ms = 3000;
    v->http.total_timeout_ms = 10000;
    app->wechat_v3_ready = true;
    if (!c->wechat.platform_cert_dir || !*c->wechat.platform_cert_dir)
        return;
    app->wechat_certs = calloc(1, sizeof *app->wechat_certs);
    buf_init(&err, NULL);
    if (!app->wechat_certs || wxv3_certstore_open(app->wechat_certs, c->wechat.platform_cert_dir, &err) != PG_OK) {
        log_msg(LOG_ERROR, "wechat v3: platform certificates in %s not loaded: %s", c->wechat.platform_cert_dir,
                err.len ? err.data : "out of memory");
        free(app->wechat_certs);
        app->wechat_certs = NULL;
        app->wechat_v3_ready = false;
    }
    buf_free(&err);
}

wxv3_client_t *app_wechat_v3(pg_app_t *app, arena_t *a, time_t now)
{
    buf_t err;
    if (!app->wechat_v3_ready)
        return NULL;
    if (!app->wechat_certs)
        return &app->wechat_v3;
    wxv3_certstore_attach(app->wechat_certs, &app->wechat_v3, now);
    if (wxv3_certstore_due(app->wechat_certs, now) && now - app->wechat_certs->last_attempt >= WXV3_CERTS_RETRY_S) {
        buf_init(&err, a);
        if (wxv3_certstore_refresh(app->wechat_certs, a, &app->wechat_v3, now, &err) != PG_OK)
            log_msg(LOG_WARN, "wechat v3: platform certificates not refreshed: %s", err.len ? err.data : "-");
        wxv3_certstore_attach(app->wechat_certs, &app->wechat_v3, now);
    }
    return &app->wechat_v3;
}

static void stripe_setup(pg_app_t *app)
{
    const pg_config_t *c = app->cfg;
    stripe_client_t *s = &app->stripe;
    app->stripe_return_url = join_url(c->server.base_url, "/return/stripe");
    s->secret_key = c->stripe.secret_key;
    s->api_base = c->stripe.api_base;
    s->currency = c->stripe.currency;
    s->http.ca_file = c->stripe.ca_file;
}

static pg_err app_api_version(pg_app_t *app, arena_t *a, const char *payment_no, const char **out)
{
    return store_payment_api_version(app->db, a, payment_no, out);
}

static pg_err app_provider_ref(pg_app_t *app, arena_t *a, const char *payment_no, const char **out)
{
    return store_payment_provider_ref(app->db, a, payment_no, out);
}

static pg_err appstore_api_setup(pg_app_t *app, buf_t *err)
{
    pg_config_t *c = app->cfg;
    appstore_api_t *api = &app->appstore_api;
    api->api_base = c->appstore.api_base;
    api->issuer_id = c->appstore.issuer_id;
    api->key_id = c->appstore.key_id;
    api->bundle_id = c->appstore.bundle_id;
    api->http.ca_file = c->appstore.ca_file;
    api->http.connect_timeout_ms = 3000;
    api->http.total_timeout_ms = 10000;
    if (!c->appstore.private_key || !*c->appstore.private_key)
        return PG_OK;
    pg_err rc = pki_privkey_load(c->appstore.private_key, &api->key, err);
    if (rc != PG_OK)
        buf_printf(err, "\n%s: [appstore] private_key: not an App Store Connect .p8 key\n", c->path);
    return rc;
}

static pg_err googleplay_setup(pg_app_t *app, buf_t *err)
{
    pg_config_t *c = app->cfg;
    googleplay_client_t *g = &app->googleplay;
    g->package_name = c->googleplay.package_name;
    g->api_base = c->googleplay.api_base;
    g->push_audience = c->googleplay.push_audience;
    g->push_email = c->googleplay.push_email;
    g->push_certs_url = c->googleplay.push_certs_url;
    g->http.ca_file = c->googleplay.ca_file;
    g->http.connect_timeout_ms = 3000;
    g->http.total_timeout_ms = 10000;
    pg_err rc = googleplay_load_service_account(g, c->googleplay.service_account, err);
    if (rc != PG_OK)
        buf_printf(err, "\n%s: [googleplay] service_account: not usable\n", c->path);
    return rc;
}

pg_err app_open(const char *config_path, pg_app_t **out, buf_t *err)
{
    pg_app_t *app;
    pg_err rc;
    db_params_t dbp;
    *out = NULL;
    if (!config_path) {
        buf_puts(err, "no config file: pass -c FILE or set PAYGATE_CONFIG\n");
        return PG_ERR_CONFIG;
    }
    app = calloc(1, sizeof *app);
    if (!app)
        return PG_ERR_NOMEM;
    rc = config_load(config_path, true, &app->cfg, err);
    if (rc != PG_OK) {
        free(app);
        return rc;
    }
    if (log_open(app->cfg->server.log_file) != 0)
        buf_printf(err, "%s: [server] log_file: cannot open '%s'; logging to stderr\n",
                   config_path, app->cfg->server.log_file);
    if (!app->cfg->metrics.enabled)
        metrics_disable();
    else
        (void)metrics_open(app->cfg->metrics.state_file, app->cfg->path);   /* failure: logged, counts stay local */
    if (app->cfg->alipay.enabled)
        alipay_setup(app);
    if (app->cfg->wechat.enabled) {
        wechat_setup(app);
        wechat_v3_setup(app);
    }
    if (app->cfg->stripe.enabled)
        stripe_setup(app);
    app->provider_ref = app_provider_ref;
    if (app->cfg->appstore.enabled &&
        (rc = appstore_verifier_load(app->cfg->appstore.root_cert, &app->appstore, err)) != PG_OK) {
        buf_printf(err, "\n%s: [appstore] root_cert: not usable\n", config_path);
        app_close(app);
        return PG_ERR_CONFIG;
    }
    if (app->cfg->appstore.enabled && appstore_api_setup(app, err) != PG_OK) {
        app_close(app);
        return PG_ERR_CONFIG;
    }
    if (app->cfg->googleplay.enabled && googleplay_setup(app, err) != PG_OK) {
        app_close(app);
        return PG_ERR_CONFIG;
    }
    app->api_version = app_api_version;
    dbp.host = app->cfg->database.host;
    dbp.port = app->cfg->database.port;
    dbp.socket = app->cfg->database.socket;
    dbp.user = app->cfg->database.user;
    dbp.password = app->cfg->database.password;
    dbp.name = app->cfg->database.name;
    if (db_connect(&dbp, &app->db, NULL) != PG_OK)
        log_msg(LOG_WARN, "database not reachable at start-up: %s", db_last_error(app->db));
    if (!app->db) {
        app_close(app);
        return PG_ERR_NOMEM;
    }
    *out = app;
    return PG_OK;
}

void app_close(pg_app_t *app)
{
    if (!app)
        return;
    db_close(app->db);
    appstore_verifier_free(app->appstore);
    googleplay_client_free(&app->googleplay);
    pki_privkey_free(app->appstore_api.key);
    metrics_close();
    free(app->alipay_notify_url);
    free(app->alipay_return_url);
    free(app->wechat_notify_url);
    free(app->wechat_refund_notify_url);
    free(app->wechat_transfer_notify_url);
    if (app->wechat_certs)
        wxv3_certstore_close(app->wechat_certs);
    free(app->wechat_certs);
    free(app->stripe_return_url);
    config_free(app->cfg);
    free(app);
}

int app_http_status(pg_err e)
{
    switch (e) {
    case PG_OK: return 200;
    case PG_ERR_BAD_INPUT: return 400;
    case PG_ERR_UNSUPPORTED: return 400;
    case PG_ERR_UNAUTHORIZED: return 401;
    case PG_ERR_BAD_SIGNATURE: return 403;
    case PG_ERR_NOT_FOUND: return 404;
    case PG_ERR_CONFLICT: return 409;
    case PG_ERR_MISMATCH: return 409;
    case PG_ERR_TOO_LARGE: return 413;
    case PG_ERR_UPSTREAM: return 502;
    case PG_ERR_DB: return 503;
    case PG_ERR_COMMIT_UNKNOWN: return 503;
    case PG_ERR_TIMEOUT: return 504;
    default: return 500;
    }
}

const char *app_error_code(pg_err e)
{
    switch (e) {
    case PG_ERR_BAD_INPUT: return "invalid_request";
    case PG_ERR_UNSUPPORTED: return "unsupported_method";
    case PG_ERR_UNAUTHORIZED: return "unauthorized";
    case PG_ERR_BAD_SIGNATURE: return "bad_signature";
    case PG_ERR_NOT_FOUND: return "not_found";
    case PG_ERR_CONFLICT: return "conflict";
    case PG_ERR_MISMATCH: return "mismatch";
    case PG_ERR_TOO_LARGE: return "body_too_large";
    case PG_ERR_UPSTREAM: return "upstream_error";
    case PG_ERR_DB: return "database_unavailable";
    case PG_ERR_COMMIT_UNKNOWN: return "outcome_unknown";
    case PG_ERR_TIMEOUT: return "upstream_timeout";
    default: return "internal_error";
    }
}
