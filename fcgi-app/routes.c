/* routes: the endpoints of SPEC §4. Handlers parse, call a use case and
 * shape the reply; the rules live in src/. */
#include "routes.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "checkout.h"
#include "lifecycle.h"
#include "refund.h"
#include "store_lifecycle.h"
#include "text.h"
#include "crypto.h"
#include "log.h"
#include "metrics.h"
#include "money.h"
#include "notify.h"
#include "qr.h"
#include "router.h"
#include "store.h"

enum {
    R_HEALTHZ, R_CHECKOUT, R_NOTIFY_ALIPAY, R_NOTIFY_WECHAT, R_NOTIFY_WECHAT_REFUND, R_RETURN_ALIPAY, R_ORDER,
    R_ORDER_REFUND, R_ORDER_CLOSE, R_ENTITLEMENTS, R_SHOP, R_PAY_PAGE,
    R_METRICS
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
};

static bool bearer_ok(const pg_app_t *app, const http_request_t *req)
{
    const char *token = http_bearer_token(req);
    return token && crypto_ct_streq(token, app->cfg->server.api_key);
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

/* A browser's error page: the message for people, the stable code for
 * scripts (in the page and in X-Paygate-Error). */
static void checkout_error_page_code(http_response_t *res, int status, const char *code, const char *message)
{
    http_html_begin(res, status, "Payment could not start");
    buf_puts(&res->body, "<p>");
    buf_append_html(&res->body, message);
    buf_puts(&res->body, "</p>\n<p class=\"code\">Error code: <code id=\"error-code\">");
    buf_append_html(&res->body, code);
    buf_puts(&res->body, "</code></p>\n");
    http_html_end(res);
    buf_printf(&res->headers, "X-Paygate-Error: %s\r\n", code);
}

static void checkout_error_page(http_response_t *res, int status, const char *message)
{
    http_html_begin(res, status, "Payment could not start");
    buf_puts(&res->body, "<p>");
    buf_append_html(&res->body, message);
    buf_puts(&res->body, "</p>\n");
    http_html_end(res);
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
static void browser_pay_object_page(pg_app_t *app, const checkout_result_t *r, http_response_t *res)
{
    http_html_begin(res, 200, "Confirm the payment");
    buf_puts(&res->body, "<div id=\"pay\" data-order-url=\"");
    buf_append_html(&res->body, app->cfg->server.base_url);
    buf_puts(&res->body, "/orders/");
    buf_append_html(&res->body, r->order.order_no);
    buf_puts(&res->body, "\" data-return-url=\"");
    buf_append_html(&res->body, app->cfg->merchant.return_url ? app->cfg->merchant.return_url : "");
    buf_puts(&res->body, "\" data-pay-object=\"");
    buf_append_html(&res->body, r->pay_value);
    buf_puts(&res->body, "\"><p>Confirm the payment in WeChat.</p></div>\n"
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
            checkout_error_page_code(res, 403, code, msg.data);
            return;
        }
    } else {
        http_reply_json_error(res, 401, "unauthorized", "send Authorization: Bearer <api_key> or a signed link");
        return;
    }
    rc = checkout_request_from_fields(&fields, &creq, &code, &msg);
    creq.user_agent = req->user_agent;
    creq.client_ip = req->remote_addr;
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
        if (browser) {
            checkout_error_page_code(res, status, ecode, msg.len ? msg.data : ecode);
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
            browser_pay_object_page(app, &cres, res);
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
    notify_alipay(app, a, req->body, req->body_len, &nr);
    metrics_notification("alipay", "payment", nr.outcome);
    res->log_order_no = nr.order_no;
    res->log_payment_no = nr.payment_no;
    /* Exactly "success" once committed; anything else makes Alipay retry. */
    http_reply_text(res, 200, nr.ack ? "success" : "failure");
}

static void handle_notify_wechat(pg_app_t *app, arena_t *a, http_request_t *req, http_response_t *res)
{
    notify_result_t nr;
    notify_wechat(app, a, req->body, req->body_len, &nr);
    metrics_notification("wechat", "payment", nr.outcome);
    res->log_order_no = nr.order_no;
    res->log_payment_no = nr.payment_no;
    res->content_type = "text/xml; charset=utf-8";
    /* SUCCESS only once committed; FAIL with a reason makes WeChat retry. */
    wechat_reply(nr.ack, nr.ack ? "OK" : (nr.outcome ? nr.outcome : "not recorded"), &res->body);
}

static void handle_notify_wechat_refund(pg_app_t *app, arena_t *a, http_request_t *req, http_response_t *res)
{
    notify_result_t nr;
    notify_wechat_refund(app, a, req->body, req->body_len, &nr);
    metrics_notification("wechat", "refund", nr.outcome);
    res->log_order_no = nr.order_no;
    res->log_payment_no = nr.payment_no;
    res->content_type = "text/xml; charset=utf-8";
    wechat_reply(nr.ack, nr.ack ? "OK" : (nr.outcome ? nr.outcome : "not recorded"), &res->body);
}

static void status_page(pg_app_t *app, const order_view_t *o, http_response_t *res)
{
    char yuan[MONEY_YUAN_BUFSZ];
    money_format_yuan(o->amount_fen, yuan);
    http_html_begin(res, 200, !strcmp(o->status, "PAID") ? "Payment received" : "Payment status");
    buf_puts(&res->body, "<p>Order <code id=\"order-no\">");
    buf_append_html(&res->body, o->order_no);
    buf_puts(&res->body, "</code>: ");
    buf_append_html(&res->body, o->product_title);
    buf_printf(&res->body, ", &yen;%s.</p>\n<p>Status: <span class=\"status\" id=\"order-status\">", yuan);
    buf_append_html(&res->body, o->status);
    buf_puts(&res->body, "</span></p>\n");
    if (strcmp(o->status, "PAID"))
        buf_puts(&res->body, "<p>If you have just paid, the confirmation may take a moment: reload this page.</p>\n");
    if (app->cfg->merchant.return_url && *app->cfg->merchant.return_url) {
        buf_puts(&res->body, "<p><a class=\"button\" href=\"");
        buf_append_html(&res->body, app->cfg->merchant.return_url);
        buf_puts(&res->body, "\">Back to the shop</a></p>\n");
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
    pg_err rc;
    buf_init(&reason, a);
    if (!app->cfg->alipay.enabled) {
        checkout_error_page(res, 404, "Alipay is not enabled here.");
        return;
    }
    rc = alipay_verify_return(&app->alipay, &req->query, &payment_no, &reason);
    if (rc != PG_OK) {
        log_msg(LOG_WARN, "alipay return rejected: %s", reason.data);
        http_html_begin(res, 403, "Unverified return");
        buf_puts(&res->body, "<p>This return link could not be verified.</p>\n");
        http_html_end(res);
        return;
    }
    rc = store_order_by_payment_no(app->db, a, payment_no, &o);
    if (rc != PG_OK) {
        checkout_error_page(res, rc == PG_ERR_NOT_FOUND ? 404 : 503,
                            rc == PG_ERR_NOT_FOUND ? "No such payment." : "Please try again in a moment.");
        return;
    }
    res->log_order_no = o.order_no;
    res->log_payment_no = o.payment_no;
    status_page(app, &o, res);
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
    rc = store_order_by_no(app->db, a, order_no, &o);
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

/* The demo storefront: what a shop's own page would render. */
static void handle_shop(pg_app_t *app, arena_t *a, http_request_t *req, http_response_t *res)
{
    const char *user = kv_get(&req->query, "user");
    char expires[24];
    db_result_t products;
    pg_err rc;
    if (!app->cfg->demo.storefront) {
        http_reply_json_error(res, 404, "not_found", "no such page");
        return;
    }
    if (!text_is_token(user, 64, "_.@-"))
        user = "demo-buyer";
    rc = store_product_list(app->db, a, true, &products);
    if (rc != PG_OK) {
        checkout_error_page(res, 503, "The catalogue is not available right now.");
        return;
    }
    snprintf(expires, sizeof expires, "%lld", (long long)time(NULL) + 3600);
    http_html_begin(res, 200, "Demo shop");
    buf_puts(&res->body, "<p>Buying as <code>");
    buf_append_html(&res->body, user);
    buf_puts(&res->body, "</code>. Payments go to the provider sandbox: no real money moves.</p>\n<table>\n"
                         "<tr><th>Course</th><th>Price</th><th>Pay with Alipay</th><th>Pay with WeChat</th></tr>\n");
    for (size_t i = 0; i < products.rows; i++) {
        char yuan[MONEY_YUAN_BUFSZ];
        const char *sku = db_cell(&products, i, "sku");
        money_format_yuan(db_cell_i64(&products, i, "price_fen"), yuan);
        buf_puts(&res->body, "<tr><td>");
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
        buf_puts(&res->body, "</td></tr>\n");
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

static void pay_page_qr(pg_app_t *app, arena_t *a, const order_view_t *o, http_response_t *res)
{
    checkout_result_t pd;
    const char *code;
    const char *ret = app->cfg->merchant.return_url ? app->cfg->merchant.return_url : "";
    char yuan[MONEY_YUAN_BUFSZ];
    bool wechat = !strcmp(o->channel, "wechat");
    money_format_yuan(o->amount_fen, yuan);
    if (checkout_pay_data_read(a, o->pay_data, &pd) != PG_OK)
        pd.pay_scan = false;
    code = pd.pay_scan ? pd.pay_value : NULL;
    http_html_begin(res, 200, wechat ? "Pay with WeChat" : "Pay with Alipay");
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
    buf_printf(&res->body, " &mdash; <strong id=\"amount\">&yen;%s</strong></p>\n", yuan);
    if (code) {
        buf_puts(&res->body, "<div id=\"qr\" data-code=\"");
        buf_append_html(&res->body, code);
        buf_puts(&res->body, "\">");
        if (qr_svg(code, 240, &res->body) != PG_OK)
            buf_puts(&res->body, "<p>The code could not be drawn.</p>");
        buf_printf(&res->body, "<p>Scan with the %s app to pay. Payable until %s UTC.</p></div>\n",
                   wechat ? "WeChat" : "Alipay", o->expires_at);
    } else {
        buf_puts(&res->body, "<div id=\"qr\"><p>Waiting for the payment to be confirmed&hellip;</p></div>\n");
    }
    buf_puts(&res->body, "<p>Order <code id=\"order-no\">");
    buf_append_html(&res->body, o->order_no);
    buf_puts(&res->body, "</code>: <span class=\"status\" id=\"order-status\">");
    buf_append_html(&res->body, o->status);
    buf_puts(&res->body, "</span></p>\n<p id=\"paid\" hidden>Paid. Thank you!");
    if (*ret) {
        buf_puts(&res->body, " <a class=\"button\" href=\"");
        buf_append_html(&res->body, ret);
        buf_puts(&res->body, "\">Continue</a>");
    }
    buf_puts(&res->body, "</p>\n<p id=\"expired\" hidden>This payment has expired. Go back to the shop to start again.</p>\n"
                         "<noscript><p>After paying, <a href=\"\">reload this page</a>.</p></noscript>\n</div>\n");
    buf_puts(&res->body, PAY_PAGE_SCRIPT);
    http_html_end(res);
}

/* GET /pay/{payment_no}: the page a buyer scans from (Alipay qr, WeChat
 * native). It polls the order and moves on to the shop once paid. */
static void handle_pay_page(pg_app_t *app, arena_t *a, const char *param, size_t param_len,
                            http_response_t *res)
{
    order_view_t o;
    bool expired = false;
    pg_err rc = PG_ERR_NOT_FOUND;
    if (text_is_token_n(param, param_len, 32, ""))
        rc = store_payment_view(app->db, a, arena_strndup(a, param, param_len), &o, &expired);
    if (rc != PG_OK) {
        checkout_error_page(res, rc == PG_ERR_NOT_FOUND ? 404 : 503,
                            rc == PG_ERR_NOT_FOUND ? "No such payment." : "Please try again in a moment.");
        return;
    }
    res->log_order_no = o.order_no;
    res->log_payment_no = o.payment_no;
    if (strcmp(o.status, "CREATED")) {
        status_page(app, &o, res);
        return;
    }
    if (expired || strcmp(o.payment_status, "CREATED")) {
        http_html_begin(res, 200, "Payment expired");
        buf_puts(&res->body, "<p id=\"expired\">This payment has expired. Go back to the shop to start again.</p>\n");
        http_html_end(res);
        return;
    }
    pay_page_qr(app, a, &o, res);
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
    rc = lifecycle_close_order(app, a, order_no, &code, &msg);
    if (rc != PG_OK) {
        const char *ecode = code ? code : app_error_code(rc);
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
    case R_PAY_PAGE: handle_pay_page(app, a, m.param, m.param_len, res); break;
    case R_METRICS: handle_metrics(app, a, req, res); break;
    default: http_reply_json_error(res, 404, "not_found", "no such endpoint"); break;
    }
}
