/* channel_wechat: WeChat Pay v2 as a checkout channel. native gives a
 * code_url to scan, mweb an H5 URL, jsapi the signed object the WeChat
 * in-app browser's getBrandWCPayRequest takes. Amounts go out as fen. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "wechat.h"
#include "wechat_v3.h"

static const char *const WECHAT_METHODS[] = { "native", "jsapi", "mweb", NULL };

static bool wechat_enabled(const pg_app_t *app)
{
    return app->cfg->wechat.enabled;
}

static const char *trade_type_of(const char *method)
{
    if (!strcmp(method, "jsapi"))
        return "JSAPI";
    if (!strcmp(method, "mweb"))
        return "MWEB";
    return "NATIVE";
}

static char *jsapi_object(arena_t *a, const kv_list_t *params)
{
    json_t *obj = json_object();
    char *text, *copy;
    for (size_t i = 0; i < params->count; i++)
        json_object_set_new(obj, params->items[i].key, json_string(params->items[i].value));
    text = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(obj);
    copy = text ? arena_strdup(a, text) : NULL;
    free(text);
    return copy;
}

/* MWEB's scene_info: h5_info with the site's URL (the origin of base_url:
 * WeChat checks the H5 page's domain against it), not an empty one. */
static const char *mweb_scene_info(arena_t *a, const char *base_url)
{
    const char *host = strstr(base_url, "://");
    const char *slash = host ? strchr(host + 3, '/') : NULL;
    json_t *h5 = json_object(), *root = json_object();
    char *text, *copy;
    json_object_set_new(h5, "type", json_string("Wap"));
    json_object_set_new(h5, "wap_url", json_stringn(base_url, slash ? (size_t)(slash - base_url) : strlen(base_url)));
    json_object_set_new(h5, "wap_name", json_string("shop"));
    json_object_set_new(root, "h5_info", h5);
    text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    copy = text ? arena_strdup(a, text) : NULL;
    free(text);
    return copy;
}

static pg_err wechat_start_v2(pg_app_t *app, arena_t *a, const char *method, const channel_payment_t *p,
                              channel_instruction_t *out, buf_t *err)
{
    wechat_order_t o;
    wechat_prepay_t prepay;
    char err_code[64] = "";
    pg_err rc;
    memset(&o, 0, sizeof o);
    o.out_trade_no = p->payment_no;
    o.body = p->subject;
    o.total_fee = p->amount_fen;
    o.trade_type = trade_type_of(method);
    o.openid = p->openid;
    o.spbill_create_ip = p->client_ip;
    o.product_id = p->product_sku;
    o.expires_at = p->expires_at;
    if (!strcmp(method, "mweb") && (o.scene_info = mweb_scene_info(a, app->cfg->server.base_url)) == NULL)
        return PG_ERR_NOMEM;
    rc = wechat_unifiedorder(a, &app->wechat, &o, &prepay, err_code, err);
    if (rc != PG_OK)
        return rc;
    if (!strcmp(method, "jsapi")) {
        kv_list_t params;
        kv_init(&params, a);
        rc = wechat_jsapi_params(a, &app->wechat, prepay.prepay_id, time(NULL), NULL, &params);
        out->field = "jsapi";
        out->value = rc == PG_OK ? jsapi_object(a, &params) : NULL;
        out->is_json = true;
        return rc;
    }
    if (!strcmp(method, "mweb")) {
        out->field = "mweb_url";
        out->value = prepay.mweb_url;
        return PG_OK;
    }
    out->field = "code_url";
    out->value = prepay.code_url;
    out->scan = true;
    return PG_OK;
}

/* ---- API v3 ------------------------------------------------------------
 * New payments use v3 when [wechat] api_version = v3; a payment is queried,
 * closed and refunded with the version it was made with (payments.api_version,
 * through app->api_version), so one in flight at the switch keeps its own. */

/* PG_OK with *v3; the database's error when it could not say. */
static pg_err payment_is_v3(pg_app_t *app, arena_t *a, const char *payment_no, bool *v3)
{
    const char *v = NULL;
    pg_err rc = app->api_version ? app->api_version(app, a, payment_no, &v) : PG_ERR_NOT_FOUND;
    *v3 = app->cfg->wechat.api_v3;   /* not recorded here: the configured version */
    if (rc == PG_ERR_NOT_FOUND)
        return PG_OK;
    if (rc == PG_OK)
        *v3 = v && !strcmp(v, "v3");
    return rc;
}

static wxv3_client_t *v3_client(pg_app_t *app, arena_t *a, buf_t *err)
{
    wxv3_client_t *c = app_wechat_v3(app, a, time(NULL));
    if (!c)
        buf_puts(err, "wechat: the payment was made with API v3, whose keys are not configured");
    return c;
}

static pg_err wechat_start_v3(pg_app_t *app, arena_t *a, const char *method, const channel_payment_t *p,
                              channel_instruction_t *out, buf_t *err)
{
    wxv3_client_t *c = v3_client(app, a, err);
    wxv3_order_t o;
    wxv3_prepay_t prepay;
    char code[WXV3_CODE_MAX] = "";
    pg_err rc;
    if (!c)
        return PG_ERR_CONFIG;
    memset(&o, 0, sizeof o);
    o.kind = !strcmp(method, "jsapi") ? WXV3_JSAPI : !strcmp(method, "mweb") ? WXV3_H5 : WXV3_NATIVE;
    o.out_trade_no = p->payment_no;
    o.description = p->subject;
    o.total_fen = p->amount_fen;
    o.expires_at = p->expires_at;
    o.openid = p->openid;
    o.payer_client_ip = p->client_ip;
    o.h5_app_name = "shop";
    o.h5_app_url = app->cfg->server.base_url;
    rc = wxv3_prepay(a, c, &o, time(NULL), &prepay, code, err);
    if (rc != PG_OK) {
        if (*code)
            buf_printf(err, " (%s)", code);
        return rc;
    }
    out->api_version = "v3";
    if (o.kind == WXV3_JSAPI) {
        kv_list_t params;
        rc = wxv3_jsapi_params(a, c, prepay.prepay_id, time(NULL), NULL, &params);
        out->field = "jsapi";
        out->value = rc == PG_OK ? jsapi_object(a, &params) : NULL;
        out->is_json = true;
        return rc;
    }
    if (o.kind == WXV3_H5) {
        out->field = "mweb_url";
        out->value = prepay.h5_url;
        return PG_OK;
    }
    out->field = "code_url";
    out->value = prepay.code_url;
    out->scan = true;
    return PG_OK;
}

static channel_trade_state_t v3_trade_state(const char *s)
{
    if (!strcmp(s, "SUCCESS") || !strcmp(s, "REFUND"))
        return TRADE_PAID;
    if (!strcmp(s, "CLOSED") || !strcmp(s, "REVOKED") || !strcmp(s, "PAYERROR"))
        return TRADE_CLOSED;
    return TRADE_WAITING;
}

static pg_err wechat_query_v3(pg_app_t *app, arena_t *a, const char *payment_no, channel_trade_t *out, buf_t *err)
{
    wxv3_client_t *c = v3_client(app, a, err);
    wxv3_transaction_t t;
    char code[WXV3_CODE_MAX] = "";
    pg_err rc;
    memset(out, 0, sizeof *out);
    if (!c)
        return PG_ERR_CONFIG;
    rc = wxv3_query(a, c, payment_no, time(NULL), &t, code, err);
    if (rc == PG_ERR_NOT_FOUND) {
        out->state = TRADE_UNKNOWN;
        return PG_OK;
    }
    if (rc != PG_OK)
        return rc;
    out->state = v3_trade_state(t.trade_state);
    out->provider_trade_no = t.transaction_id;
    out->buyer_ref = t.openid;
    out->paid_time = wxv3_beijing_time(a, t.success_time);
    out->amount_fen = t.total_fen;
    return PG_OK;
}

static pg_err wechat_close_v3(pg_app_t *app, arena_t *a, const char *payment_no, buf_t *err)
{
    wxv3_client_t *c = v3_client(app, a, err);
    char code[WXV3_CODE_MAX] = "";
    pg_err rc;
    if (!c)
        return PG_ERR_CONFIG;
    rc = wxv3_close(a, c, payment_no, time(NULL), code, err);
    if (rc != PG_OK && !strcmp(code, "ORDER_NOT_EXIST"))
        return PG_OK;   /* never ordered there: nothing to close */
    if (rc != PG_OK && !strcmp(code, "ORDER_CLOSED"))
        return PG_ERR_CONFLICT;   /* already closed: the caller queries */
    return rc;
}

/* A refund request's answer (v2 or v3): sent (completed by the
 * notification or a query) or refused; anything else stays as it is. */
static pg_err refund_sent(pg_err rc, const char *refund_id, channel_refund_outcome_t *out)
{
    if (rc == PG_OK) {
        out->state = REFUND_PROCESSING;
        out->provider_refund_no = refund_id;
    } else if (rc == PG_ERR_CONFLICT) {
        out->state = REFUND_REFUSED;
    }
    return rc;
}

static pg_err wechat_refund_start_v3(pg_app_t *app, arena_t *a, const channel_refund_t *r,
                                     channel_refund_outcome_t *out, buf_t *err)
{
    wxv3_client_t *c = v3_client(app, a, err);
    wxv3_refund_req_t req;
    wxv3_refund_t res;
    char code[WXV3_CODE_MAX] = "";
    pg_err rc;
    memset(out, 0, sizeof *out);
    if (!c)
        return PG_ERR_CONFIG;
    memset(&req, 0, sizeof req);
    req.out_trade_no = r->payment_no;
    req.out_refund_no = r->refund_no;
    req.total_fen = r->payment_amount_fen;
    req.refund_fen = r->amount_fen;
    req.reason = r->reason;
    rc = wxv3_refund(a, c, &req, time(NULL), &res, code, err);
    return refund_sent(rc, res.refund_id, out);
}

static pg_err wechat_refund_state_v3(pg_app_t *app, arena_t *a, const channel_refund_t *r,
                                     channel_refund_outcome_t *out, buf_t *err)
{
    wxv3_client_t *c = v3_client(app, a, err);
    wxv3_refund_t q;
    char code[WXV3_CODE_MAX] = "";
    pg_err rc;
    memset(out, 0, sizeof *out);
    if (!c)
        return PG_ERR_CONFIG;
    rc = wxv3_refund_query(a, c, r->refund_no, time(NULL), &q, code, err);
    if (rc == PG_ERR_NOT_FOUND) {
        out->state = REFUND_UNKNOWN;
        return PG_OK;
    }
    if (rc != PG_OK)
        return rc;
    out->provider_refund_no = q.refund_id;
    if (!strcmp(q.status, "SUCCESS"))
        out->state = q.refund_fen == r->amount_fen ? REFUND_DONE : REFUND_PROCESSING;
    else if (!strcmp(q.status, "PROCESSING"))
        out->state = REFUND_PROCESSING;
    else if (!strcmp(q.status, "ABNORMAL"))
        out->state = REFUND_ABNORMAL;
    else
        out->state = REFUND_REFUSED;   /* CLOSED: the money did not go back */
    if (out->state == REFUND_PROCESSING && !strcmp(q.status, "SUCCESS"))
        return PG_ERR_MISMATCH;
    return PG_OK;
}

static pg_err wechat_start(pg_app_t *app, arena_t *a, const char *method, const channel_payment_t *p,
                           channel_instruction_t *out, buf_t *err)
{
    if (!strcmp(method, "jsapi") && !p->openid) {
        buf_puts(err, "wechat jsapi needs the buyer's openid");
        return PG_ERR_UNSUPPORTED;
    }
    if (app->cfg->wechat.api_v3)
        return wechat_start_v3(app, a, method, p, out, err);
    return wechat_start_v2(app, a, method, p, out, err);
}

/* Inside WeChat: jsapi when the shop knows the openid, else a code to scan;
 * other mobile browsers: H5 (mweb); desktop: a code to scan (native). */
static const char *wechat_default_method(const char *ua, bool has_openid)
{
    if (channel_ua_is_wechat(ua))
        return has_openid ? "jsapi" : "native";
    return channel_ua_is_mobile(ua) ? "mweb" : "native";
}

static int64_t wechat_fee_rate_bp(const pg_app_t *app)
{
    return app->cfg->fees.wechat_rate_bp;
}

static pg_err wechat_query_v2(pg_app_t *app, arena_t *a, const char *payment_no, channel_trade_t *out, buf_t *err)
{
    wechat_trade_state_t q;
    char err_code[64] = "";
    pg_err rc = wechat_orderquery(a, &app->wechat, payment_no, &q, err_code, err);
    memset(out, 0, sizeof *out);
    if (rc != PG_OK && !strcmp(err_code, "ORDERNOTEXIST")) {
        out->state = TRADE_UNKNOWN;
        return PG_OK;
    }
    if (rc != PG_OK)
        return rc;
    out->provider_trade_no = q.transaction_id;
    out->paid_time = q.time_end;
    out->amount_fen = q.total_fee;
    if (!strcmp(q.trade_state, "SUCCESS") || !strcmp(q.trade_state, "REFUND"))
        out->state = TRADE_PAID;
    else if (!strcmp(q.trade_state, "CLOSED") || !strcmp(q.trade_state, "REVOKED") ||
             !strcmp(q.trade_state, "PAYERROR"))
        out->state = TRADE_CLOSED;
    else
        out->state = TRADE_WAITING;
    return PG_OK;
}

/* prepay_id and code_url live 2 hours; an mweb_url 5 minutes (the trade
 * behind it lives on with its prepay_id). */
static int64_t wechat_trade_max_s(const char *method)
{
    (void)method;
    return 7200;
}

static int64_t wechat_pay_data_ttl_s(const char *method)
{
    return !strcmp(method, "mweb") ? 300 : 7200;
}

static pg_err wechat_close_v2(pg_app_t *app, arena_t *a, const char *payment_no, buf_t *err)
{
    char err_code[64] = "";
    pg_err rc = wechat_closeorder(a, &app->wechat, payment_no, err_code, err);
    if (rc != PG_OK && !strcmp(err_code, "ORDERNOTEXIST"))
        return PG_OK;   /* never ordered there: nothing to close */
    return rc;
}

/* WeChat accepts a refund and completes it later (notification or query). */
static pg_err wechat_refund_start_v2(pg_app_t *app, arena_t *a, const channel_refund_t *r,
                                  channel_refund_outcome_t *out, buf_t *err)
{
    wechat_refund_req_t req;
    wechat_refund_result_t res;
    char err_code[64] = "";
    pg_err rc;
    memset(&req, 0, sizeof req);
    memset(out, 0, sizeof *out);
    req.out_trade_no = r->payment_no;
    req.out_refund_no = r->refund_no;
    req.total_fee = r->payment_amount_fen;
    req.refund_fee = r->amount_fen;
    req.refund_desc = r->reason;
    req.notify_url = app->wechat_refund_notify_url;
    rc = wechat_refund(a, &app->wechat, &req, &res, err_code, err);
    return refund_sent(rc, res.refund_id, out);
}

static pg_err wechat_refund_state_v2(pg_app_t *app, arena_t *a, const channel_refund_t *r,
                                  channel_refund_outcome_t *out, buf_t *err)
{
    wechat_refund_state_t q;
    char err_code[64] = "";
    pg_err rc = wechat_refundquery(a, &app->wechat, r->refund_no, &q, err_code, err);
    memset(out, 0, sizeof *out);
    if (rc != PG_OK)
        return rc;
    out->provider_refund_no = q.refund_id;
    if (!q.found)
        out->state = REFUND_UNKNOWN;
    else if (!strcmp(q.refund_status, "SUCCESS"))
        out->state = q.refund_fee == r->amount_fen ? REFUND_DONE : REFUND_PROCESSING;
    else if (!strcmp(q.refund_status, "PROCESSING"))
        out->state = REFUND_PROCESSING;
    else if (!strcmp(q.refund_status, "CHANGE"))
        out->state = REFUND_ABNORMAL;  /* handled by hand in the merchant platform */
    else
        out->state = REFUND_REFUSED;   /* REFUNDCLOSE: the money did not go back */
    if (out->state == REFUND_PROCESSING && !strcmp(q.refund_status, "SUCCESS"))
        return PG_ERR_MISMATCH;
    return PG_OK;
}

static pg_err wechat_query(pg_app_t *app, arena_t *a, const char *payment_no, channel_trade_t *out, buf_t *err)
{
    bool v3;
    pg_err rc = payment_is_v3(app, a, payment_no, &v3);
    memset(out, 0, sizeof *out);
    if (rc != PG_OK)
        return rc;
    return v3 ? wechat_query_v3(app, a, payment_no, out, err) : wechat_query_v2(app, a, payment_no, out, err);
}

static pg_err wechat_close(pg_app_t *app, arena_t *a, const char *payment_no, buf_t *err)
{
    bool v3;
    pg_err rc = payment_is_v3(app, a, payment_no, &v3);
    if (rc != PG_OK)
        return rc;
    return v3 ? wechat_close_v3(app, a, payment_no, err) : wechat_close_v2(app, a, payment_no, err);
}

/* A refund whose version cannot be told is not sent (PG_ERR_DB: nothing happened). */
static pg_err wechat_refund_start(pg_app_t *app, arena_t *a, const channel_refund_t *r,
                                  channel_refund_outcome_t *out, buf_t *err)
{
    bool v3;
    pg_err rc = payment_is_v3(app, a, r->payment_no, &v3);
    memset(out, 0, sizeof *out);
    if (rc != PG_OK)
        return rc;
    return v3 ? wechat_refund_start_v3(app, a, r, out, err) : wechat_refund_start_v2(app, a, r, out, err);
}

static pg_err wechat_refund_state(pg_app_t *app, arena_t *a, const channel_refund_t *r,
                                  channel_refund_outcome_t *out, buf_t *err)
{
    bool v3;
    pg_err rc = payment_is_v3(app, a, r->payment_no, &v3);
    memset(out, 0, sizeof *out);
    if (rc != PG_OK)
        return rc;
    return v3 ? wechat_refund_state_v3(app, a, r, out, err) : wechat_refund_state_v2(app, a, r, out, err);
}

const pay_channel_t CHANNEL_WECHAT = {
    .name = "wechat",
    .methods = WECHAT_METHODS,
    .enabled = wechat_enabled,
    .start = wechat_start,
    .default_method = wechat_default_method,
    .fee_rate_bp = wechat_fee_rate_bp,
    .query = wechat_query,
    .close = wechat_close,
    .min_close_age_s = WECHAT_MIN_CLOSE_AGE_S,
    .trade_max_s = wechat_trade_max_s,
    .pay_data_ttl_s = wechat_pay_data_ttl_s,
    .refund = wechat_refund_start,
    .refund_query = wechat_refund_state,
};
