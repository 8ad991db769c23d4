/* routes: the endpoints of SPEC §4. Handlers parse, call a use case and
 * shape the reply; the rules live in src/. */
#include "routes.h"
#include "admin_routes.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "checkout.h"
#include "iap.h"
#include "lifecycle.h"
#include "refund.h"
#include "store_lifecycle.h"
#include "text.h"
#include "crypto.h"
#include "i18n.h"
#include "log.h"
#include "metrics.h"
#include "metrics_report.h"
#include "money.h"
#include "netaddr.h"
#include "notify.h"
#include "qr.h"
#include "router.h"
#include "routes_iap.h"
#include "routes_payout.h"
#include "store.h"

enum {
    R_HEALTHZ, R_CHECKOUT, R_NOTIFY_ALIPAY, R_NOTIFY_WECHAT, R_NOTIFY_WECHAT_REFUND, R_RETURN_ALIPAY, R_ORDER,
    R_ORDER_REFUND, R_ORDER_CLOSE, R_ENTITLEMENTS, R_SHOP, R_PAY_PAGE,
    R_METRICS, R_NOTIFY_STRIPE, R_RETURN_STRIPE,
    R_NOTIFY_APPSTORE, R_IAP_APPSTORE, R_IAP_ACCOUNT_TOKEN, R_NOTIFY_GOOGLEPLAY, R_IAP_GOOGLEPLAY,
    R_NOTIFY_WECHAT_TRANSFER, R_PAYOUT_CONFIRM
};

static const route_t ROUTES[] = {
    { "GET", "/healthz", R_HEALTHZ },
    { "GET|POST", "/checkout", R_CHECKOUT },
    { "POST", "/notify/alipay", R_NOTIFY_ALIPAY },
    { "POST", "/notify/wechat", R_NOTIFY_WECHAT },
    { "POST", "/notify/wechat/refund", R_NOTIFY_WECHAT_REFUND },
    { "GET", "/return/alipay", R_RETURN_ALIPAY },
    { "GET", "/orders/*", R_ORDER },
    { "POST", "/orders/*/refund", R_ORDER_REFUND },
    { "POST", "/orders/*/close", R_ORDER_CLOSE },
    { "GET", "/entitlements", R_ENTITLEMENTS },
    { "GET", "/shop", R_SHOP },
    { "GET", "/pay/*", R_PAY_PAGE },
    { "GET", "/metrics", R_METRICS },
    { "POST", "/notify/stripe", R_NOTIFY_STRIPE },
    { "GET", "/return/stripe", R_RETURN_STRIPE },
    { "POST", "/notify/appstore", R_NOTIFY_APPSTORE },
    { "POST", "/iap/appstore", R_IAP_APPSTORE },
    { "GET", "/iap/account-token", R_IAP_ACCOUNT_TOKEN },
    { "POST", "/notify/googleplay", R_NOTIFY_GOOGLEPLAY },
    { "POST", "/iap/googleplay", R_IAP_GOOGLEPLAY },
    { "POST", "/notify/wechat/transfer", R_NOTIFY_WECHAT_TRANSFER },
    { "GET", "/payouts/*/confirm", R_PAYOUT_CONFIRM },
};

static bool bearer_ok(const pg_app_t *app, const http_request_t *req)
{
    const char *token = http_bearer_token(req);
    return token && crypto_ct_streq(token, app->cfg->server.api_key);
}

/* The client's address: REMOTE_ADDR, or behind [server] trusted_proxies
 * the rightmost X-Forwarded-For hop that is not one of them. */
static const char *client_addr(const pg_app_t *app, arena_t *a, const http_request_t *req)
{
    return netaddr_client(a, &app->cfg->server.trusted_proxies, req->remote_addr, req->forwarded_for);
}

static void handle_healthz(pg_app_t *app, http_response_t *res)
{
    if (db_ping(app->db) != PG_OK) {
        http_reply_json_error(res, 503, "database_unavailable", "the database does not answer");
        return;
    }
    res->content_type = "application/json";
    buf_puts(&res->body, "{\"status\":\"ok\"}\n");
}

static int checkout_status(const checkout_result_t *r, pg_err rc)
{
    if (rc == PG_OK)
        return r->repeated ? 200 : 201;
    if (r->error_code && !strcmp(r->error_code, "idempotency_conflict"))
        return 409;
    return app_http_status(rc);
}

/* The buyer's language: [server] locale, unless Accept-Language prefers
 * the other one. */
static i18n_locale_t buyer_locale(const pg_app_t *app, const http_request_t *req)
{
    return i18n_negotiate(app->cfg->server.locale_en ? I18N_EN : I18N_ZH_CN, req->accept_language);
}

static void page_begin(http_response_t *res, int status, i18n_locale_t loc, i18n_msg_t title)
{
    http_html_begin_lang(res, status, i18n_locale_name(loc), i18n_msg(loc, title));
    buf_puts(&res->headers, "Vary: Accept-Language\r\n");
}

static void page_para(http_response_t *res, i18n_locale_t loc, const char *id, i18n_msg_t msg)
{
    buf_puts(&res->body, id ? "<p id=\"" : "<p>");
    if (id) {
        buf_puts(&res->body, id);
        buf_puts(&res->body, "\">");
    }
    i18n_append_html(&res->body, loc, msg, NULL);
    buf_puts(&res->body, "</p>\n");
}

/* A browser's error page: the catalogue's message for the stable error
 * code, and the code itself for scripts and support (in the page and in
 * X-Paygate-Error). Details go to the log, never to the page. */
static void checkout_error_page_code(http_response_t *res, i18n_locale_t loc, int status, const char *code)
{
    page_begin(res, status, loc, MSG_TITLE_CHECKOUT_FAILED);
    buf_puts(&res->body, "<p id=\"error-message\">");
    buf_append_html(&res->body, i18n_error_msg(loc, code));
    buf_puts(&res->body, "</p>\n<p class=\"code\">");
    i18n_append_html(&res->body, loc, MSG_ERROR_CODE, NULL);
    buf_puts(&res->body, "<code id=\"error-code\">");
    buf_append_html(&res->body, code);
    buf_puts(&res->body, "</code></p>\n");
    http_html_end(res);
    buf_printf(&res->headers, "X-Paygate-Error: %s\r\n", code);
}

/* The way back to the shop: return_url with the order's number, so that
 * the shop can confirm the purchase ("" without a return_url). */
static const char *return_link(pg_app_t *app, arena_t *a, const char *order_no)
{
    const char *ret = app->cfg->merchant.return_url;
    buf_t b;
    if (!ret || !*ret)
        return "";
    buf_init(&b, a);
    buf_puts(&b, ret);
    buf_puts(&b, strchr(ret, '?') ? "&order_no=" : "?order_no=");
    buf_append_urlencoded(&b, order_no);
    return b.data;
}

static const char *mweb_with_redirect(pg_app_t *app, arena_t *a, const checkout_result_t *r)
{
    buf_t url, back;
    buf_init(&url, a);
    buf_init(&back, a);
    buf_printf(&back, "%s/pay/%s", app->cfg->server.base_url, r->order.payment_no);
    buf_puts(&url, r->pay_value);
    buf_puts(&url, strchr(r->pay_value, '?') ? "&redirect_url=" : "?redirect_url=");
    buf_append_urlencoded(&url, back.data);
    return url.data;
}

/* A pay object for a client-side API (WeChat JSAPI): the page hands it to
 * the provider's in-app bridge, then follows the order like the QR page. */
static void browser_pay_object_page(pg_app_t *app, arena_t *a, i18n_locale_t loc, const checkout_result_t *r,
                                    http_response_t *res)
{
    page_begin(res, 200, loc, MSG_TITLE_CONFIRM_PAYMENT);
    buf_puts(&res->body, "<div id=\"pay\" data-order-url=\"");
    buf_append_html(&res->body, app->cfg->server.base_url);
    buf_puts(&res->body, "/orders/");
    buf_append_html(&res->body, r->order.order_no);
    buf_puts(&res->body, "\" data-return-url=\"");
    buf_append_html(&res->body, return_link(app, a, r->order.order_no));
    buf_puts(&res->body, "\" data-pay-object=\"");
    buf_append_html(&res->body, r->pay_value);
    buf_puts(&res->body, "\"><p>");
    i18n_append_html(&res->body, loc, MSG_CONFIRM_IN_WECHAT, NULL);
    buf_puts(&res->body, "</p></div>\n"
                         "<script>(function(){var el=document.getElementById('pay');"
                         "var obj=JSON.parse(el.dataset.payObject);function go(){if(el.dataset.returnUrl)location.href=el.dataset.returnUrl;}"
                         "function pay(){WeixinJSBridge.invoke('getBrandWCPayRequest',obj,function(r){"
                         "if(r.err_msg==='get_brand_wcpay_request:ok')go();});}"
                         "if(typeof WeixinJSBridge==='undefined'){document.addEventListener('WeixinJSBridgeReady',pay,false);}"
                         "else{pay();}})();</script>\n");
    http_html_end(res);
}

static void handle_checkout(pg_app_t *app, arena_t *a, http_request_t *req, http_response_t *res)
{
    kv_list_t fields;
    checkout_request_t creq;
    checkout_result_t cres;
    const char *code = NULL;
    buf_t msg;
    bool browser = false;
    i18n_locale_t loc = buyer_locale(app, req);
    pg_err rc;
    buf_init(&msg, a);
    memset(&creq, 0, sizeof creq);
    memset(&cres, 0, sizeof cres);
    rc = http_request_fields(req, a, &fields);
    if (rc != PG_OK) {
        http_reply_json_error(res, 400, "invalid_request",
                              rc == PG_ERR_UNSUPPORTED ? "send application/x-www-form-urlencoded or application/json"
                                                       : "the request body or query is malformed");
        return;
    }
    if (http_bearer_token(req)) {
        if (!bearer_ok(app, req)) {
            http_reply_json_error(res, 401, "unauthorized", "wrong API key");
            return;
        }
    } else if (kv_get(&fields, "sig")) {
        browser = true;
        rc = checkout_verify_link(app->cfg->server.checkout_secret, &fields, time(NULL), &code, &msg);
        if (rc != PG_OK) {
            log_msg(LOG_INFO, "checkout link refused: %s %s", code, msg.data);
            checkout_error_page_code(res, loc, rc == PG_ERR_BAD_INPUT ? 400 : 403, code);
            return;
        }
    } else {
        http_reply_json_error(res, 401, "unauthorized", "send Authorization: Bearer <api_key> or a signed link");
        return;
    }
    rc = checkout_request_from_fields(&fields, &creq, &code, &msg);
    creq.user_agent = req->user_agent;
    creq.client_ip = client_addr(app, a, req);
    if (rc == PG_OK)
        rc = checkout_create(app, a, &creq, &cres, &msg);
    else
        cres.error_code = code;
    metrics_checkout(rc == PG_OK ? cres.order.channel : creq.channel, rc == PG_OK ? cres.order.method : creq.method,
                     rc, cres.repeated);
    if (rc != PG_OK) {
        int status = checkout_status(&cres, rc);
        const char *ecode = cres.error_code ? cres.error_code : app_error_code(rc);
        if (!cres.error_code)
            log_msg(LOG_ERROR, "checkout failed: %s %s", pg_err_name(rc), msg.data);
        if (!cres.error_code && status >= 500) {   /* logged above: the buyer gets a plain word */
            buf_clear(&msg);
            buf_puts(&msg, "the payment could not be started; please try again in a moment");
        }
        if (browser) {
            if (cres.error_code)
                log_msg(LOG_INFO, "checkout refused: %s %s", ecode, msg.data);
            checkout_error_page_code(res, loc, status, ecode);
        } else {
            http_reply_json_error(res, status, ecode, msg.len ? msg.data : ecode);
        }
        return;
    }
    res->log_order_no = cres.order.order_no;
    res->log_payment_no = cres.order.payment_no;
    if (browser) {
        if (cres.pay_scan)   /* a code to scan: our QR page */
            http_reply_redirect(res, arena_printf(a, "%s/pay/%s", app->cfg->server.base_url, cres.order.payment_no));
        else if (cres.pay_is_json)
            browser_pay_object_page(app, a, loc, &cres, res);
        else if (!strcmp(cres.pay_field, "mweb_url"))   /* WeChat H5 comes back to our status page */
            http_reply_redirect(res, mweb_with_redirect(app, a, &cres));
        else
            http_reply_redirect(res, cres.pay_value);
        return;
    }
    res->status = checkout_status(&cres, PG_OK);
    res->content_type = "application/json";
    checkout_reply_json(&cres, &res->body);
}

static void handle_notify_alipay(pg_app_t *app, arena_t *a, http_request_t *req, http_response_t *res)
{
    notify_result_t nr;
    notify_alipay(app, a, client_addr(app, a, req), req->body, req->body_len, &nr);
    metrics_notification("alipay", "payment", nr.outcome);
    res->log_order_no = nr.order_no;
    res->log_payment_no = nr.payment_no;
    /* Exactly "success" once committed; anything else makes Alipay retry. */
    http_reply_text(res, 200, nr.ack ? "success" : "failure");
}

static wxv3_sig_headers_t wechatpay_headers(const http_request_t *req)
{
    wxv3_sig_headers_t h = { req->wechatpay_timestamp, req->wechatpay_nonce, req->wechatpay_signature,
                             req->wechatpay_serial };
    return h;
}

/* v2: XML SUCCESS only once committed, FAIL with a reason makes WeChat retry.
 * v3: 204 with no body once committed; else 4xx (will never be recorded as
 * sent) or 5xx (our fault: send it again) with {"code":"FAIL","message":...}. */
static void wechat_notify_reply(const notify_result_t *nr, http_response_t *res)
{
    const char *why = nr->outcome ? nr->outcome : "not recorded";
    res->log_order_no = nr->order_no;
    res->log_payment_no = nr->payment_no;
    if (!nr->v3) {
        res->content_type = "text/xml; charset=utf-8";
        wechat_reply(nr->ack, nr->ack ? "OK" : why, &res->body);
        return;
    }
    if (nr->ack) {
        res->status = 204;
        return;
    }
    res->status = nr->retry_later || !nr->outcome ? 500
                  : !strcmp(nr->outcome, "bad_signature") ? 401 : 400;
    res->content_type = "application/json";
    wxv3_ack_fail(why, &res->body);
}

static void handle_notify_wechat(pg_app_t *app, arena_t *a, http_request_t *req, http_response_t *res)
{
    notify_result_t nr;
    wxv3_sig_headers_t h = wechatpay_headers(req);
    notify_wechat(app, a, client_addr(app, a, req), &h, req->body, req->body_len, &nr);
    metrics_notification("wechat", "payment", nr.outcome);
    wechat_notify_reply(&nr, res);
}

static void handle_notify_wechat_refund(pg_app_t *app, arena_t *a, http_request_t *req, http_response_t *res)
{
    notify_result_t nr;
    wxv3_sig_headers_t h = wechatpay_headers(req);
    notify_wechat_refund(app, a, client_addr(app, a, req), &h, req->body, req->body_len, &nr);
    metrics_notification("wechat", "refund", nr.outcome);
    wechat_notify_reply(&nr, res);
}

static void handle_notify_wechat_transfer(pg_app_t *app, arena_t *a, http_request_t *req, http_response_t *res)
{
    notify_result_t nr;
    wxv3_sig_headers_t h = wechatpay_headers(req);
    notify_wechat_transfer(app, a, client_addr(app, a, req), &h, req->body, req->body_len, &nr);
    metrics_notification("wechat", "payout", nr.outcome);
    wechat_notify_reply(&nr, res);
}

/* Stripe retries anything but 2xx for days: 200 once recorded (or ignored),
 * 400 for what will never verify, 503 when our database failed. */
static void handle_notify_stripe(pg_app_t *app, arena_t *a, http_request_t *req, http_response_t *res)
{
    notify_result_t nr;
    int status;
    notify_stripe(app, a, client_addr(app, a, req), req->stripe_signature, req->body, req->body_len, &nr);
    metrics_notification("stripe", "payment", nr.outcome);
    res->log_order_no = nr.order_no;
    res->log_payment_no = nr.payment_no;
    if (nr.ack) {
        res->status = 200;
        res->content_type = "application/json";
        buf_puts(&res->body, "{\"received\":true}");
        return;
    }
    status = !nr.outcome ? 503 : !strcmp(nr.outcome, "commit_unknown") ? 503 : 400;
    http_reply_json_error(res, status, nr.outcome ? nr.outcome : "not_recorded",
                          nr.detail ? nr.detail : "not recorded");
}

/* "Order <no>: <title>, ¥99.00" -- the order line of the buyer's pages. */
/* The currency an order's amount is in: a card payment's is Stripe's
 * configured currency (the shop's prices are its minor unit), else yuan. */
static const char *order_currency(const pg_app_t *app, const order_view_t *o)
{
    return o->channel && !strcmp(o->channel, "stripe") ? app->cfg->stripe.currency : NULL;
}

static void order_line(http_response_t *res, i18n_locale_t loc, const order_view_t *o, const char *currency,
                       bool amount)
{
    buf_puts(&res->body, "<p>");
    i18n_append_html(&res->body, loc, MSG_ORDER, NULL);
    buf_puts(&res->body, "<code id=\"order-no\">");
    buf_append_html(&res->body, o->order_no);
    buf_puts(&res->body, "</code>: ");
    buf_append_html(&res->body, o->product_title);
    if (amount) {
        buf_puts(&res->body, ", <strong id=\"amount\">");
        i18n_append_amount_in(&res->body, o->amount_fen, currency);
        buf_puts(&res->body, "</strong>");
    }
    buf_puts(&res->body, "</p>\n");
}

/* The status as a code (#order-status, for scripts) and in words. */
static void status_line(http_response_t *res, i18n_locale_t loc, const char *status)
{
    const char *words = i18n_status_msg(loc, status);
    buf_puts(&res->body, "<p>");
    i18n_append_html(&res->body, loc, MSG_STATUS, NULL);
    buf_puts(&res->body, "<span id=\"status-text\">");
    buf_append_html(&res->body, words ? words : status);
    buf_puts(&res->body, "</span> <span class=\"status\" id=\"order-status\">");
    buf_append_html(&res->body, status);
    buf_puts(&res->body, "</span></p>\n");
}

static void status_page(pg_app_t *app, arena_t *a, i18n_locale_t loc, const order_view_t *o, http_response_t *res)
{
    const char *ret = return_link(app, a, o->order_no);
    page_begin(res, 200, loc, !strcmp(o->status, "PAID") ? MSG_TITLE_PAYMENT_RECEIVED : MSG_TITLE_PAYMENT_STATUS);
    order_line(res, loc, o, order_currency(app, o), true);
    status_line(res, loc, o->status);
    if (strcmp(o->status, "PAID"))
        page_para(res, loc, NULL, MSG_MAY_TAKE_A_MOMENT);
    if (*ret) {
        buf_puts(&res->body, "<p><a class=\"button\" id=\"back-to-shop\" href=\"");
        buf_append_html(&res->body, ret);
        buf_puts(&res->body, "\">");
        i18n_append_html(&res->body, loc, MSG_BACK_TO_SHOP, NULL);
        buf_puts(&res->body, "</a></p>\n");
    }
    http_html_end(res);
}

/* The browser's way back from Alipay: verified, but only the database says
 * whether the order is paid. */
static void handle_return_alipay(pg_app_t *app, arena_t *a, http_request_t *req, http_response_t *res)
{
    const char *payment_no = NULL;
    order_view_t o;
    buf_t reason;
    i18n_locale_t loc = buyer_locale(app, req);
    pg_err rc;
    buf_init(&reason, a);
    if (!app->cfg->alipay.enabled) {
        checkout_error_page_code(res, loc, 404, "alipay_disabled");
        return;
    }
    rc = alipay_verify_return(&app->alipay, &req->query, &payment_no, &reason);
    if (rc != PG_OK) {
        log_msg(LOG_WARN, "alipay return rejected: %s", reason.data);
        page_begin(res, 403, loc, MSG_TITLE_UNVERIFIED_RETURN);
        page_para(res, loc, NULL, MSG_RETURN_NOT_VERIFIED);
        http_html_end(res);
        return;
    }
    (void)db_causal_reads(app->db, true);   /* the notification may have committed on another node */
    rc = store_order_by_payment_no(app->db, a, payment_no, &o);
    (void)db_causal_reads(app->db, false);
    if (rc != PG_OK) {
        checkout_error_page_code(res, loc, rc == PG_ERR_NOT_FOUND ? 404 : 503,
                                 rc == PG_ERR_NOT_FOUND ? "not_found" : "database_unavailable");
        return;
    }
    res->log_order_no = o.order_no;
    res->log_payment_no = o.payment_no;
    status_page(app, a, loc, &o, res);
}

/* Stripe Checkout's success and cancel URL: the payment number is
 * unguessable (as on GET /pay/{no}); the page shows our state, never
 * Stripe's word, and polls until the event has arrived. */
static void handle_return_stripe(pg_app_t *app, arena_t *a, http_request_t *req, http_response_t *res)
{
    const char *payment_no = kv_get(&req->query, "payment_no");
    i18n_locale_t loc = buyer_locale(app, req);
    order_view_t o;
    pg_err rc;
    if (!app->cfg->stripe.enabled) {
        checkout_error_page_code(res, loc, 404, "channel_disabled");
        return;
    }
    if (!payment_no || !text_is_token(payment_no, 32, "")) {
        checkout_error_page_code(res, loc, 404, "not_found");
        return;
    }
    rc = store_order_by_payment_no(app->db, a, payment_no, &o);
    if (rc != PG_OK) {
        checkout_error_page_code(res, loc, rc == PG_ERR_NOT_FOUND ? 404 : 503,
                                 rc == PG_ERR_NOT_FOUND ? "not_found" : "database_unavailable");
        return;
    }
    res->log_order_no = o.order_no;
    res->log_payment_no = o.payment_no;
    status_page(app, a, loc, &o, res);
}

static void json_field_str(buf_t *b, const char *name, const char *value)
{
    buf_printf(b, ",\"%s\":", name);
    if (value)
        buf_append_json_string(b, value);
    else
        buf_puts(b, "null");
}

/* A buyer's page polls while the provider's notification is late: after
 * ORDER_POLL_QUERY_AFTER_S, ask the provider, at most once per interval
 * per payment across all processes. */
#define ORDER_POLL_QUERY_AFTER_S 30
#define ORDER_POLL_QUERY_EVERY_S 15

static bool maybe_ask_provider(pg_app_t *app, arena_t *a, const order_view_t *o)
{
    lifecycle_stats_t st;
    if (strcmp(o->status, "CREATED") || strcmp(o->payment_status, "CREATED") ||
        o->payment_age_s < ORDER_POLL_QUERY_AFTER_S)
        return false;
    memset(&st, 0, sizeof st);
    (void)lifecycle_sync_payment(app, a, o->payment_id, o->payment_no, o->channel, ORDER_POLL_QUERY_EVERY_S, &st);
    return st.paid > 0 || st.closed > 0;
}

static void handle_order(pg_app_t *app, arena_t *a, http_request_t *req, const char *param,
                         size_t param_len, http_response_t *res)
{
    order_view_t o;
    char *order_no;
    pg_err rc;
    if (!text_is_token_n(param, param_len, 32, "")) {
        http_reply_json_error(res, 404, "not_found", "no such order");
        return;
    }
    order_no = arena_strndup(a, param, param_len);
    (void)db_causal_reads(app->db, true);   /* read-your-writes across Galera nodes */
    rc = store_order_by_no(app->db, a, order_no, &o);
    (void)db_causal_reads(app->db, false);
    if (rc == PG_OK && maybe_ask_provider(app, a, &o))
        rc = store_order_by_no(app->db, a, order_no, &o);
    if (rc != PG_OK) {
        http_reply_json_error(res, app_http_status(rc), rc == PG_ERR_NOT_FOUND ? "not_found" : app_error_code(rc),
                              rc == PG_ERR_NOT_FOUND ? "no such order" : "try again later");
        return;
    }
    res->log_order_no = o.order_no;
    res->content_type = "application/json";
    buf_puts(&res->body, "{\"order_no\":");
    buf_append_json_string(&res->body, o.order_no);
    json_field_str(&res->body, "status", o.status);
    buf_printf(&res->body, ",\"amount_fen\":%lld,\"refunded_fen\":%lld", (long long)o.amount_fen,
               (long long)o.refunded_fen);
    json_field_str(&res->body, "channel", o.channel);
    json_field_str(&res->body, "paid_at", o.paid_at);
    if (bearer_ok(app, req)) {   /* the shop sees more than a polling browser */
        json_field_str(&res->body, "user", o.user_ref);
        json_field_str(&res->body, "product", o.product_sku);
        json_field_str(&res->body, "payment_no", o.payment_no);
        json_field_str(&res->body, "method", o.method);
        json_field_str(&res->body, "payment_status", o.payment_status);
        json_field_str(&res->body, "provider_trade_no", o.provider_trade_no);
        json_field_str(&res->body, "created_at", o.created_at);
    }
    buf_puts(&res->body, "}\n");
}

static void shop_link(pg_app_t *app, buf_t *b, const char *sku, const char *user, const char *expires,
                      const char *channel, const char *method, const char *label)
{
    char sig[65];
    checkout_link_sig(app->cfg->server.checkout_secret, sku, user, expires, sig);
    buf_puts(b, "<a class=\"button\" href=\"");
    buf_append_html(b, app->cfg->server.base_url);
    buf_puts(b, "/checkout?product=");
    buf_append_urlencoded(b, sku);
    buf_puts(b, "&amp;user=");
    buf_append_urlencoded(b, user);
    buf_printf(b, "&amp;expires=%s&amp;sig=%s&amp;channel=%s&amp;method=%s\">%s</a>", expires, sig,
               channel, method, label);
}

/* The demo shop's answer to a buyer coming back (return_url?order_no=):
 * the purchase confirmed, or still waiting (the page reloads itself). The
 * buyer is the order's. */
static const char *shop_returning_buyer(pg_app_t *app, arena_t *a, http_request_t *req, http_response_t *res)
{
    const char *order_no = kv_get(&req->query, "order_no");
    order_view_t o;
    pg_err rc = PG_ERR_NOT_FOUND;
    if (text_is_token(order_no, 32, "")) {
        (void)db_causal_reads(app->db, true);
        rc = store_order_by_no(app->db, a, order_no, &o);
        (void)db_causal_reads(app->db, false);
    }
    if (rc != PG_OK)
        return NULL;
    if (!strcmp(o.status, "PAID")) {
        buf_puts(&res->body, "<p id=\"purchase-confirmed\" class=\"status\">Purchase confirmed: ");
        buf_append_html(&res->body, o.product_title);
        buf_puts(&res->body, " (order <code>");
        buf_append_html(&res->body, o.order_no);
        buf_puts(&res->body, "</code>). Thank you!</p>\n");
    } else if (!strcmp(o.status, "CREATED")) {
        buf_puts(&res->body, "<p id=\"purchase-pending\">Waiting for the payment of order <code>");
        buf_append_html(&res->body, o.order_no);
        buf_puts(&res->body, "</code> to be confirmed&hellip;</p>\n"
                             "<script>setTimeout(function(){location.reload();},2000);</script>\n");
    }
    return o.user_ref;
}

/* A link to the sandbox's "phone" of an app store (PHONE): the app buys
 * STORE_ID for the buyer; the store notifies paygate and the buyer comes
 * back to the shop. ACCOUNT names the buyer (App Store appAccountToken,
 * Google Play obfuscatedAccountId). */
static void shop_app_link(buf_t *b, const char *phone, const char *store_id, const char *account_key,
                          const char *account, int64_t price_fen, const char *title, const char *back,
                          const char *id, const char *label)
{
    buf_printf(b, "<a class=\"button\" id=\"%s\" href=\"", id);
    buf_append_html(b, phone);
    buf_puts(b, "?product_id=");
    buf_append_urlencoded(b, store_id);
    buf_printf(b, "&amp;%s=", account_key);
    buf_append_urlencoded(b, account);
    buf_printf(b, "&amp;price_milli=%lld&amp;title=", (long long)price_fen * 10);
    buf_append_urlencoded(b, title);
    buf_puts(b, "&amp;return_url=");
    buf_append_urlencoded(b, back);
    buf_printf(b, "\">%s</a>", label);
}

/* The demo shop's "In the app" cell: buying in the iOS/Android app through
 * the sandbox's stores ([demo] appstore_phone / googleplay_phone). */
static void shop_app_cell(pg_app_t *app, arena_t *a, buf_t *b, const db_result_t *products, size_t i,
                          const char *user)
{
    const char *title = db_cell(products, i, "title");
    const char *as_id = db_cell(products, i, "appstore_id"), *gp_id = db_cell(products, i, "googleplay_id");
    const char *as_phone = app->cfg->demo.appstore_phone, *gp_phone = app->cfg->demo.googleplay_phone;
    const char *token = NULL;
    buf_t back;
    buf_init(&back, a);
    buf_puts(&back, app->cfg->server.base_url);
    buf_puts(&back, "/shop?user=");
    buf_append_urlencoded(&back, user);
    if (app->cfg->appstore.enabled && as_phone && *as_phone && as_id && *as_id &&
        iap_account_token(app, a, user, &token) == PG_OK)
        shop_app_link(b, as_phone, as_id, "app_account_token", token, db_cell_i64(products, i, "price_fen"),
                      title, back.data, "appstore-buy", "App Store");
    if (app->cfg->googleplay.enabled && gp_phone && *gp_phone && gp_id && *gp_id &&
        (token || iap_account_token(app, a, user, &token) == PG_OK))
        shop_app_link(b, gp_phone, gp_id, "account_id", token, db_cell_i64(products, i, "price_fen"),
                      title, back.data, "googleplay-buy", "Google Play");
}

/* Whether the buyer owns SKU: an active entitlement (what GET
 * /entitlements lists). */
static bool shop_owned(const db_result_t *ent, const char *sku)
{
    for (size_t i = 0; i < ent->rows; i++)
        if (!strcmp(db_cell(ent, i, "product"), sku))
            return true;
    return false;
}

/* The demo storefront: what a shop's own page would render. */
static void handle_shop(pg_app_t *app, arena_t *a, http_request_t *req, http_response_t *res)
{
    const char *user = kv_get(&req->query, "user");
    const char *returning;
    char expires[24];
    db_result_t products, owned;
    pg_err rc;
    bool app_cells = (app->cfg->appstore.enabled && app->cfg->demo.appstore_phone && *app->cfg->demo.appstore_phone) ||
                     (app->cfg->googleplay.enabled && app->cfg->demo.googleplay_phone &&
                      *app->cfg->demo.googleplay_phone);
    if (!app->cfg->demo.storefront) {
        http_reply_json_error(res, 404, "not_found", "no such page");
        return;
    }
    if (!text_is_token(user, 64, "_.@-"))
        user = "demo-buyer";
    http_html_begin(res, 200, "Demo shop");
    returning = shop_returning_buyer(app, a, req, res);
    if (returning && text_is_token(returning, 64, "_.@-"))
        user = returning;
    rc = store_product_list(app->db, a, true, &products);
    if (rc == PG_OK)
        rc = store_entitlements_of(app->db, a, user, &owned);
    if (rc != PG_OK) {
        checkout_error_page_code(res, buyer_locale(app, req), 503, "database_unavailable");
        return;
    }
    snprintf(expires, sizeof expires, "%lld", (long long)time(NULL) + 3600);
    buf_puts(&res->body, "<p>Buying as <code id=\"buyer\">");
    buf_append_html(&res->body, user);
    buf_puts(&res->body, "</code>. Payments go to the provider sandbox: no real money moves.</p>\n<table>\n"
                         "<tr><th>Course</th><th>Price</th><th>Pay with Alipay</th><th>Pay with WeChat</th>");
    if (app->cfg->stripe.enabled)
        buf_puts(&res->body, "<th>Pay by card</th>");
    if (app_cells)
        buf_puts(&res->body, "<th>In the app</th>");
    buf_puts(&res->body, "<th>Yours</th></tr>\n");
    for (size_t i = 0; i < products.rows; i++) {
        char yuan[MONEY_YUAN_BUFSZ];
        const char *sku = db_cell(&products, i, "sku");
        money_format_yuan(db_cell_i64(&products, i, "price_fen"), yuan);
        buf_puts(&res->body, "<tr data-sku=\"");
        buf_append_html(&res->body, sku);
        buf_puts(&res->body, "\"><td>");
        buf_append_html(&res->body, db_cell(&products, i, "title"));
        buf_printf(&res->body, "</td><td>&yen;%s</td><td>", yuan);
        if (app->cfg->alipay.enabled) {
            shop_link(app, &res->body, sku, user, expires, "alipay", "page", "PC");
            shop_link(app, &res->body, sku, user, expires, "alipay", "wap", "Mobile");
            shop_link(app, &res->body, sku, user, expires, "alipay", "qr", "QR code");
        }
        buf_puts(&res->body, "</td><td>");
        if (app->cfg->wechat.enabled) {
            shop_link(app, &res->body, sku, user, expires, "wechat", "native", "QR code");
            shop_link(app, &res->body, sku, user, expires, "wechat", "mweb", "Mobile");
        }
        if (app->cfg->stripe.enabled) {   /* Stripe Checkout: cards, Apple Pay, Google Pay */
            buf_puts(&res->body, "</td><td>");
            shop_link(app, &res->body, sku, user, expires, "stripe", "checkout", "Card");
        }
        if (app_cells) {
            buf_puts(&res->body, "</td><td>");
            shop_app_cell(app, a, &res->body, &products, i, user);
        }
        buf_puts(&res->body, shop_owned(&owned, sku) ? "</td><td class=\"owned\">&#10003; Owned</td></tr>\n"
                                                     : "</td><td></td></tr>\n");
    }
    buf_puts(&res->body, "</table>\n");
    http_html_end(res);
}

static const char PAY_PAGE_SCRIPT[] =
    "<script>\n"
    "(function(){var el=document.getElementById('pay');if(!el)return;\n"
    "var statusUrl=el.dataset.statusUrl,next=el.dataset.returnUrl,expires=Date.parse(el.dataset.expiresAt);\n"
    "function show(id){document.getElementById(id).hidden=false;}\n"
    "function done(){show('paid');document.getElementById('qr').hidden=true;if(next)location.href=next;}\n"
    "function expired(){document.getElementById('qr').hidden=true;show('expired');}\n"
    "function poll(){if(Date.now()>expires){expired();return;}\n"
    "fetch(statusUrl,{cache:'no-store'}).then(function(r){return r.json();}).then(function(o){\n"
    "document.getElementById('order-status').textContent=o.status;\n"
    "if(o.status==='PAID'){done();return;}if(o.status==='CLOSED'){expired();return;}\n"
    "setTimeout(poll,2000);}).catch(function(){setTimeout(poll,4000);});}\n"
    "setTimeout(poll,1500);})();\n"
    "</script>\n";

static void pay_page_qr(pg_app_t *app, arena_t *a, i18n_locale_t loc, const order_view_t *o,
                        http_response_t *res)
{
    checkout_result_t pd;
    const char *code;
    const char *ret = return_link(app, a, o->order_no);
    bool wechat = !strcmp(o->channel, "wechat");
    if (checkout_pay_data_read(a, o->pay_data, &pd) != PG_OK)
        pd.pay_scan = false;
    code = pd.pay_scan ? pd.pay_value : NULL;
    page_begin(res, 200, loc, wechat ? MSG_TITLE_PAY_WECHAT : MSG_TITLE_PAY_ALIPAY);
    buf_puts(&res->body, "<div id=\"pay\" data-status-url=\"");
    buf_append_html(&res->body, app->cfg->server.base_url);
    buf_puts(&res->body, "/orders/");
    buf_append_html(&res->body, o->order_no);
    buf_puts(&res->body, "\" data-return-url=\"");
    buf_append_html(&res->body, ret);
    buf_puts(&res->body, "\" data-expires-at=\"");
    buf_append_html(&res->body, o->expires_at);
    buf_puts(&res->body, "\">\n<p>");
    buf_append_html(&res->body, o->product_title);
    buf_puts(&res->body, " &mdash; <strong id=\"amount\">");
    i18n_append_amount_in(&res->body, o->amount_fen, order_currency(app, o));
    buf_puts(&res->body, "</strong></p>\n");
    if (code) {
        buf_t until;
        buf_init(&until, a);
        if (i18n_append_time(&until, loc, o->expires_at) != PG_OK)
            buf_puts(&until, o->expires_at);
        buf_puts(&res->body, "<div id=\"qr\" data-code=\"");
        buf_append_html(&res->body, code);
        buf_puts(&res->body, "\">");
        if (qr_svg(code, 240, &res->body) != PG_OK)
            page_para(res, loc, NULL, MSG_QR_NOT_DRAWN);
        buf_puts(&res->body, "<p>");
        i18n_append_html(&res->body, loc, wechat ? MSG_SCAN_WECHAT : MSG_SCAN_ALIPAY, NULL);
        buf_puts(&res->body, " <span id=\"payable-until\">");
        i18n_append_html(&res->body, loc, MSG_PAYABLE_UNTIL, until.data);
        buf_puts(&res->body, "</span></p></div>\n");
    } else {
        buf_puts(&res->body, "<div id=\"qr\">");
        page_para(res, loc, NULL, MSG_WAITING_CONFIRMATION);
        buf_puts(&res->body, "</div>\n");
    }
    order_line(res, loc, o, NULL, false);
    status_line(res, loc, o->status);
    buf_puts(&res->body, "<p id=\"paid\" hidden>");
    i18n_append_html(&res->body, loc, MSG_PAID_THANKS, NULL);
    if (*ret) {
        buf_puts(&res->body, " <a class=\"button\" href=\"");
        buf_append_html(&res->body, ret);
        buf_puts(&res->body, "\">");
        i18n_append_html(&res->body, loc, MSG_CONTINUE, NULL);
        buf_puts(&res->body, "</a>");
    }
    buf_puts(&res->body, "</p>\n");
    buf_puts(&res->body, "<p id=\"expired\" hidden>");
    i18n_append_html(&res->body, loc, MSG_EXPIRED_START_AGAIN, NULL);
    buf_puts(&res->body, "</p>\n<noscript><p>");
    i18n_append_html(&res->body, loc, MSG_AFTER_PAYING, NULL);
    buf_puts(&res->body, "<a href=\"\">");
    i18n_append_html(&res->body, loc, MSG_RELOAD_PAGE, NULL);
    buf_puts(&res->body, "</a></p></noscript>\n</div>\n");
    buf_puts(&res->body, PAY_PAGE_SCRIPT);
    http_html_end(res);
}

/* GET /pay/{payment_no}: the page a buyer scans from (Alipay qr, WeChat
 * native). It polls the order and moves on to the shop once paid. */
static void handle_pay_page(pg_app_t *app, arena_t *a, http_request_t *req, const char *param, size_t param_len,
                            http_response_t *res)
{
    order_view_t o;
    bool expired = false;
    i18n_locale_t loc = buyer_locale(app, req);
    pg_err rc = PG_ERR_NOT_FOUND;
    if (text_is_token_n(param, param_len, 32, ""))
        rc = store_payment_view(app->db, a, arena_strndup(a, param, param_len), &o, &expired);
    if (rc != PG_OK) {
        checkout_error_page_code(res, loc, rc == PG_ERR_NOT_FOUND ? 404 : 503,
                                 rc == PG_ERR_NOT_FOUND ? "not_found" : "database_unavailable");
        return;
    }
    res->log_order_no = o.order_no;
    res->log_payment_no = o.payment_no;
    if (strcmp(o.status, "CREATED")) {
        status_page(app, a, loc, &o, res);
        return;
    }
    if (expired || strcmp(o.payment_status, "CREATED")) {
        page_begin(res, 200, loc, MSG_TITLE_PAYMENT_EXPIRED);
        page_para(res, loc, "expired", MSG_EXPIRED_START_AGAIN);
        http_html_end(res);
        return;
    }
    pay_page_qr(app, a, loc, &o, res);
}

static void reply_refund(http_response_t *res, int status, const refund_result_t *r)
{
    res->status = status;
    res->content_type = "application/json";
    buf_puts(&res->body, "{\"refund_no\":");
    buf_append_json_string(&res->body, r->refund_no);
    buf_puts(&res->body, ",\"status\":");
    buf_append_json_string(&res->body, r->status);
    buf_printf(&res->body, ",\"amount_fen\":%lld}\n", (long long)r->amount_fen);
}

static void handle_order_refund(pg_app_t *app, arena_t *a, http_request_t *req, const char *param, size_t param_len,
                                http_response_t *res)
{
    kv_list_t fields;
    refund_request_t rq;
    refund_result_t rr;
    buf_t msg;
    pg_err rc;
    if (!bearer_ok(app, req)) {
        http_reply_json_error(res, 401, "unauthorized", "send Authorization: Bearer <api_key>");
        return;
    }
    if (http_request_fields(req, a, &fields) != PG_OK || kv_count_key(&fields, "amount_fen") > 1 ||
        kv_count_key(&fields, "request_id") > 1 || kv_count_key(&fields, "reason") > 1) {
        http_reply_json_error(res, 400, "invalid_request", "the request body is malformed");
        return;
    }
    buf_init(&msg, a);
    memset(&rq, 0, sizeof rq);
    rq.order_no = arena_strndup(a, param, param_len);
    rq.amount_fen = kv_get(&fields, "amount_fen");
    rq.reason = kv_get(&fields, "reason");
    rq.request_id = kv_get(&fields, "request_id");
    if (rq.amount_fen && !*rq.amount_fen)
        rq.amount_fen = NULL;
    if (rq.request_id && !*rq.request_id)
        rq.request_id = NULL;
    res->log_order_no = rq.order_no;
    rc = refund_create(app, a, &rq, &rr, &msg);
    if (rc != PG_OK) {
        const char *code = rr.error_code ? rr.error_code : app_error_code(rc);
        int status = rc == PG_ERR_CONFLICT ? 409 : app_http_status(rc);
        http_reply_json_error(res, status, code, msg.len ? msg.data : code);
        return;
    }
    reply_refund(res, rr.repeated ? 200 : 201, &rr);
}

static void handle_order_close(pg_app_t *app, arena_t *a, http_request_t *req, const char *param, size_t param_len,
                               http_response_t *res)
{
    const char *code = NULL;
    int retry_after_s = 0;
    char *order_no;
    buf_t msg;
    order_view_t o;
    pg_err rc;
    if (!bearer_ok(app, req)) {
        http_reply_json_error(res, 401, "unauthorized", "send Authorization: Bearer <api_key>");
        return;
    }
    if (!text_is_token_n(param, param_len, 32, "")) {
        http_reply_json_error(res, 404, "not_found", "no such order");
        return;
    }
    buf_init(&msg, a);
    order_no = arena_strndup(a, param, param_len);
    res->log_order_no = order_no;
    rc = lifecycle_close_order(app, a, order_no, &code, &retry_after_s, &msg);
    if (rc != PG_OK) {
        const char *ecode = code ? code : app_error_code(rc);
        if (retry_after_s > 0)
            buf_printf(&res->headers, "Retry-After: %d\r\n", retry_after_s);
        http_reply_json_error(res, app_http_status(rc), ecode, msg.len ? msg.data : ecode);
        return;
    }
    if (store_order_by_no(app->db, a, order_no, &o) != PG_OK) {
        http_reply_json_error(res, 503, "database_unavailable", "try again later");
        return;
    }
    res->content_type = "application/json";
    buf_puts(&res->body, "{\"order_no\":");
    buf_append_json_string(&res->body, o.order_no);
    buf_puts(&res->body, ",\"status\":");
    buf_append_json_string(&res->body, o.status);
    buf_puts(&res->body, "}\n");
}

static void handle_entitlements(pg_app_t *app, arena_t *a, http_request_t *req, http_response_t *res)
{
    const char *user = kv_get(&req->query, "user");
    db_result_t r;
    pg_err rc;
    if (!bearer_ok(app, req)) {
        http_reply_json_error(res, 401, "unauthorized", "send Authorization: Bearer <api_key>");
        return;
    }
    if (!user || !*user || strlen(user) > 64) {
        http_reply_json_error(res, 400, "missing_field", "'user' is required");
        return;
    }
    rc = store_entitlements_of(app->db, a, user, &r);
    if (rc != PG_OK) {
        http_reply_json_error(res, 503, "database_unavailable", "try again later");
        return;
    }
    res->content_type = "application/json";
    buf_puts(&res->body, "{\"user\":");
    buf_append_json_string(&res->body, user);
    buf_puts(&res->body, ",\"entitlements\":[");
    for (size_t i = 0; i < r.rows; i++) {
        buf_puts(&res->body, i ? ",{\"product\":" : "{\"product\":");
        buf_append_json_string(&res->body, db_cell(&r, i, "product"));
        buf_puts(&res->body, ",\"title\":");
        buf_append_json_string(&res->body, db_cell(&r, i, "title"));
        buf_puts(&res->body, ",\"order_no\":");
        buf_append_json_string(&res->body, db_cell(&r, i, "order_no"));
        buf_puts(&res->body, ",\"granted_at\":");
        buf_append_json_string(&res->body, db_cell(&r, i, "granted_at"));
        buf_putc(&res->body, '}');
    }
    buf_puts(&res->body, "]}\n");
}

/* GET /metrics: Prometheus text format, for the allowed addresses or the
 * bearer token of [metrics] only. */
static void handle_metrics(pg_app_t *app, arena_t *a, http_request_t *req, http_response_t *res)
{
    if (!app->cfg->metrics.enabled) {
        http_reply_json_error(res, 404, "not_found", "no such endpoint");
        return;
    }
    if (!metrics_access_ok(app->cfg->metrics.allow, app->cfg->metrics.token, req->remote_addr,
                           http_bearer_token(req))) {
        http_reply_json_error(res, 403, "forbidden", "the metrics are not public: see [metrics] allow and token");
        return;
    }
    res->content_type = "text/plain; version=0.0.4; charset=utf-8";
    metrics_write_all(app->db, a, &res->body);
}

void routes_handle(pg_app_t *app, arena_t *a, http_request_t *req, http_response_t *res)
{
    route_match_t m;
    pg_err rc = http_request_route_path(req, a, app->cfg->server.base_path);
    if (rc == PG_ERR_NOT_FOUND) {
        http_reply_json_error(res, 404, "not_found", "no such endpoint");
        return;
    }
    if (rc != PG_OK) {
        http_reply_json_error(res, 400, "invalid_request", "the query string is malformed");
        return;
    }
    if (admin_routes_match(req->path)) {   /* the operator's console: fcgi-app/admin_routes.c */
        admin_routes_handle(app, a, req, res);
        return;
    }
    router_match(ROUTES, sizeof ROUTES / sizeof ROUTES[0], req->method, req->path, &m);
    res->route = m.pattern;
    if (m.id < 0) {
        http_reply_json_error(res, 404, "not_found", "no such endpoint");
        return;
    }
    if (!m.method_allowed) {
        http_reply_json_error(res, 405, "method_not_allowed", "method not allowed here");
        return;
    }
    switch (m.id) {
    case R_HEALTHZ: handle_healthz(app, res); break;
    case R_CHECKOUT: handle_checkout(app, a, req, res); break;
    case R_NOTIFY_ALIPAY: handle_notify_alipay(app, a, req, res); break;
    case R_NOTIFY_WECHAT: handle_notify_wechat(app, a, req, res); break;
    case R_NOTIFY_WECHAT_REFUND: handle_notify_wechat_refund(app, a, req, res); break;
    case R_ORDER_REFUND: handle_order_refund(app, a, req, m.param, m.param_len, res); break;
    case R_ORDER_CLOSE: handle_order_close(app, a, req, m.param, m.param_len, res); break;
    case R_ENTITLEMENTS: handle_entitlements(app, a, req, res); break;
    case R_RETURN_ALIPAY: handle_return_alipay(app, a, req, res); break;
    case R_ORDER: handle_order(app, a, req, m.param, m.param_len, res); break;
    case R_SHOP: handle_shop(app, a, req, res); break;
    case R_PAY_PAGE: handle_pay_page(app, a, req, m.param, m.param_len, res); break;
    case R_METRICS: handle_metrics(app, a, req, res); break;
    case R_NOTIFY_STRIPE: handle_notify_stripe(app, a, req, res); break;
    case R_RETURN_STRIPE: handle_return_stripe(app, a, req, res); break;
    case R_NOTIFY_APPSTORE: routes_iap_notify_appstore(app, a, client_addr(app, a, req), req, res); break;
    case R_IAP_APPSTORE: routes_iap_post_appstore(app, a, req, res); break;
    case R_IAP_ACCOUNT_TOKEN: routes_iap_account_token(app, a, req, res); break;
    case R_NOTIFY_GOOGLEPLAY: routes_iap_notify_googleplay(app, a, client_addr(app, a, req), req, res); break;
    case R_IAP_GOOGLEPLAY: routes_iap_post_googleplay(app, a, req, res); break;
    case R_NOTIFY_WECHAT_TRANSFER: handle_notify_wechat_transfer(app, a, req, res); break;
    case R_PAYOUT_CONFIRM: routes_payout_confirm(app, a, req, m.param, m.param_len, res); break;
    default: http_reply_json_error(res, 404, "not_found", "no such endpoint"); break;
    }
}
