/* channel_alipay: Alipay as a checkout channel: page and wap give a signed
 * URL to the gateway (no call), qr asks alipay.trade.precreate. */
#include <string.h>

#include "alipay.h"
#include "channel.h"

static const char *const ALIPAY_METHODS[] = { "page", "wap", "qr", NULL };

static bool alipay_enabled(const pg_app_t *app)
{
    return app->cfg->alipay.enabled;
}

static pg_err alipay_start(pg_app_t *app, arena_t *a, const char *method, const channel_payment_t *p,
                           channel_instruction_t *out, buf_t *err)
{
    alipay_trade_t t;
    buf_t url;
    pg_err rc;
    memset(&t, 0, sizeof t);
    t.out_trade_no = p->payment_no;
    t.amount_fen = p->amount_fen;
    t.subject = p->subject;
    t.expires_at = p->expires_at;
    t.quit_url = p->quit_url;
    if (!strcmp(method, "qr")) {
        char *qr = NULL;
        rc = alipay_precreate(a, &app->alipay, &t, &qr, err);
        out->field = "qr_code";
        out->value = qr;
        out->scan = true;
        return rc;
    }
    buf_init(&url, a);
    rc = alipay_build_pay_url(a, &app->alipay, !strcmp(method, "wap") ? ALIPAY_WAP : ALIPAY_PAGE, &t, 0, &url);
    out->field = "pay_url";
    out->value = url.data;
    return rc;
}

static const char *alipay_default_method(const char *ua, bool has_openid)
{
    (void)has_openid;
    return channel_ua_is_mobile(ua) ? "wap" : "page";
}

static int64_t alipay_fee_rate_bp(const pg_app_t *app)
{
    return app->cfg->fees.alipay_rate_bp;
}

const pay_channel_t CHANNEL_ALIPAY = {
    .name = "alipay",
    .methods = ALIPAY_METHODS,
    .enabled = alipay_enabled,
    .start = alipay_start,
    .default_method = alipay_default_method,
    .fee_rate_bp = alipay_fee_rate_bp,
};
