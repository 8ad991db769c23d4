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

static pg_err alipay_query(pg_app_t *app, arena_t *a, const char *payment_no, channel_trade_t *out, buf_t *err)
{
    alipay_query_result_t q;
    pg_err rc = alipay_trade_query(a, &app->alipay, payment_no, &q, err);
    memset(out, 0, sizeof *out);
    if (rc != PG_OK)
        return rc;
    if (!q.exists) {
        out->state = TRADE_UNKNOWN;
        return PG_OK;
    }
    out->provider_trade_no = q.trade_no;
    out->buyer_ref = q.buyer_id;
    out->paid_time = q.send_pay_date;
    out->amount_fen = q.total_fen;
    if (!strcmp(q.trade_status, "TRADE_SUCCESS") || !strcmp(q.trade_status, "TRADE_FINISHED"))
        out->state = TRADE_PAID;
    else if (!strcmp(q.trade_status, "TRADE_CLOSED"))
        out->state = TRADE_CLOSED;
    else
        out->state = TRADE_WAITING;
    return PG_OK;
}

/* A precreate qr_code lives at most 2 hours; page/wap URLs are signed
 * requests to the gateway, good for the trade's life. */
static int64_t alipay_trade_max_s(const char *method)
{
    return !strcmp(method, "qr") ? 7200 : 0;
}

static pg_err alipay_close(pg_app_t *app, arena_t *a, const char *payment_no, buf_t *err)
{
    return alipay_trade_close(a, &app->alipay, payment_no, err);
}

/* A 10000 reply is a confirmed refund only with fund_change Y (money moved
 * by this call); N or no fund_change: the outcome is confirmed by the refund
 * query, so the refund stays PENDING until then. */
static pg_err alipay_refund(pg_app_t *app, arena_t *a, const channel_refund_t *r, channel_refund_outcome_t *out,
                            buf_t *err)
{
    alipay_refund_result_t res;
    pg_err rc = alipay_trade_refund(a, &app->alipay, r->payment_no, r->refund_no, r->amount_fen, r->reason, &res, err);
    memset(out, 0, sizeof *out);
    if (rc == PG_OK)
        out->state = res.fund_change ? REFUND_DONE : REFUND_PROCESSING;
    else if (rc == PG_ERR_CONFLICT)
        out->state = REFUND_REFUSED;
    return rc;
}

static pg_err alipay_refund_state(pg_app_t *app, arena_t *a, const channel_refund_t *r,
                                  channel_refund_outcome_t *out, buf_t *err)
{
    alipay_refund_query_result_t q;
    pg_err rc = alipay_refund_query(a, &app->alipay, r->payment_no, r->refund_no, &q, err);
    memset(out, 0, sizeof *out);
    if (rc != PG_OK)
        return rc;
    /* Only refund_status REFUND_SUCCESS confirms it; the refund's fields
     * without it mean "not received or failed": Alipay's advice is to send
     * it again with the same out_request_no and amount (answered
     * fund_change N if it did go through meanwhile). */
    if (!q.found || q.refund_status == NULL)
        out->state = REFUND_UNKNOWN;
    else if (q.refund_fen != r->amount_fen)
        return PG_ERR_MISMATCH;
    else
        out->state = REFUND_DONE;
    return PG_OK;
}

const pay_channel_t CHANNEL_ALIPAY = {
    .name = "alipay",
    .methods = ALIPAY_METHODS,
    .enabled = alipay_enabled,
    .start = alipay_start,
    .default_method = alipay_default_method,
    .fee_rate_bp = alipay_fee_rate_bp,
    .query = alipay_query,
    .close = alipay_close,
    .min_close_age_s = 0,
    .trade_max_s = alipay_trade_max_s,
    .pay_data_ttl_s = alipay_trade_max_s,
    .refund = alipay_refund,
    .refund_query = alipay_refund_state,
};
