/* app: what a paygate process holds for its whole life — the config, the
 * database connection and the configured channels. Both programs (the
 * FastCGI executable and paygatectl) open one. */
#ifndef APP_H
#define APP_H
#include <stdbool.h>
#include "alipay.h"
#include "stripe.h"
#include "appstore.h"
#include "googleplay.h"
#include "wechat.h"
#include "wechat_v3.h"
#include "wechat_v3_certs.h"
#include "buf.h"
#include "config.h"
#include "db.h"
#include "pg_err.h"

typedef struct pg_app {
    pg_config_t *cfg;
    db_t *db;
    alipay_client_t alipay;     /* valid when cfg->alipay.enabled */
    char *alipay_notify_url;
    char *alipay_return_url;
    wechat_client_t wechat;     /* valid when cfg->wechat.enabled */
    char *wechat_notify_url;
    char *wechat_refund_notify_url;
    char *wechat_transfer_notify_url;   /* MCHTRANSFER.BILL.FINISHED (payouts) */
    /* WeChat Pay API v3: set up whenever the v3 keys are configured (so that
     * v3 payments stay served after a switch back, and v2 ones after the
     * switch to v3); new payments use it when cfg->wechat.api_v3. */
    bool wechat_v3_ready;
    wxv3_client_t wechat_v3;
    wxv3_certstore_t *wechat_certs;   /* platform-certificate mode, else NULL */
    stripe_client_t stripe;     /* valid when cfg->stripe.enabled */
    char *stripe_return_url;    /* base_url/return/stripe: the buyer's landing page after Checkout */
    /* The provider's own name of a payment (payments.provider_trade_no:
     * Stripe's Checkout Session id, chosen by Stripe), for channel bindings,
     * which hold no database. PG_ERR_NOT_FOUND when none is recorded. */
    pg_err (*provider_ref)(struct pg_app *app, arena_t *a, const char *payment_no, const char **out);
    /* payments.api_version of a payment (NULL = v2/the default), for the
     * same reason. PG_ERR_NOT_FOUND when there is no such payment. */
    pg_err (*api_version)(struct pg_app *app, arena_t *a, const char *payment_no, const char **out);
    appstore_verifier_t *appstore;   /* when cfg->appstore.enabled: the root and the chain cache */
    googleplay_client_t googleplay;  /* valid when cfg->googleplay.enabled */
    appstore_api_t appstore_api;     /* key NULL without [appstore] private_key */
} pg_app_t;

/* The v3 client ready for a call or a verification at now: in
 * platform-certificate mode the valid certificates attached, refreshed
 * first when due (a failed refresh is logged; what is held still serves).
 * NULL when v3 is not configured. */
wxv3_client_t *app_wechat_v3(pg_app_t *app, arena_t *a, time_t now);

/* Loads and validates the config, opens the log and connects to the
 * database. A database that is down is not fatal (db_ping reconnects);
 * config problems are (PG_ERR_CONFIG, each problem a line in err). */
pg_err app_open(const char *config_path, pg_app_t **out, buf_t *err);
void   app_close(pg_app_t *app);

/* The client-facing error of a pg_err: HTTP status and stable code. */
int         app_http_status(pg_err e);
const char *app_error_code(pg_err e);

#endif
