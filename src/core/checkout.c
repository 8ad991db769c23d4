/* checkout: see include/checkout.h. */
#include "checkout.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "channel.h"
#include "crypto.h"
#include "log.h"
#include "money.h"
#include "netaddr.h"
#include "store_lifecycle.h"
#include "text.h"

#define ORDER_NO_LEN 24

static const char *const CHECKOUT_FIELDS[] = { "product", "user", "channel", "method", "openid",
                                              "request_id", "expires", "sig", "order_no", "buyer_ip" };

pg_err checkout_request_from_fields(const kv_list_t *fields, checkout_request_t *req,
                                    const char **error_code, buf_t *msg)
{
    for (size_t i = 0; i < sizeof CHECKOUT_FIELDS / sizeof CHECKOUT_FIELDS[0]; i++) {
        if (kv_count_key(fields, CHECKOUT_FIELDS[i]) > 1) {
            *error_code = "invalid_field";
            buf_printf(msg, "field '%s' given more than once", CHECKOUT_FIELDS[i]);
            return PG_ERR_BAD_INPUT;
        }
    }
    req->product = kv_get(fields, "product");
    req->user = kv_get(fields, "user");
    req->channel = kv_get(fields, "channel");
    req->method = kv_get(fields, "method");
    req->openid = kv_get(fields, "openid");
    req->request_id = kv_get(fields, "request_id");
    req->order_no = kv_get(fields, "order_no");
    req->buyer_ip = kv_get(fields, "buyer_ip");
    if (req->buyer_ip && !*req->buyer_ip)
        req->buyer_ip = NULL;
    if (req->order_no && !*req->order_no)
        req->order_no = NULL;
    if (req->channel && !*req->channel)
        req->channel = NULL;
    if (req->method && !*req->method)
        req->method = NULL;
    if (req->openid && !*req->openid)
        req->openid = NULL;
    if (req->request_id && !*req->request_id)
        req->request_id = NULL;
    return PG_OK;
}

static pg_err fail(checkout_result_t *res, buf_t *msg, pg_err rc, const char *code, const char *text)
{
    res->error_code = code;
    buf_puts(msg, text);
    return rc;
}

static pg_err validate(const checkout_request_t *req, checkout_result_t *res, buf_t *msg)
{
    if (!req->product || !*req->product)
        return fail(res, msg, PG_ERR_BAD_INPUT, "missing_field", "'product' is required");
    if (!req->user || !*req->user)
        return fail(res, msg, PG_ERR_BAD_INPUT, "missing_field", "'user' is required");
    if (!text_is_token(req->product, 64, "_.-"))
        return fail(res, msg, PG_ERR_BAD_INPUT, "invalid_field", "'product' must be a SKU of 1-64 of [A-Za-z0-9_.-]");
    if (!text_is_token(req->user, 64, "_.@-"))
        return fail(res, msg, PG_ERR_BAD_INPUT, "invalid_field", "'user' must be 1-64 of [A-Za-z0-9_.@-]");
    if (req->request_id && !text_is_token(req->request_id, 64, "_.:-"))
        return fail(res, msg, PG_ERR_BAD_INPUT, "invalid_field", "'request_id' must be 1-64 of [A-Za-z0-9_.:-]");
    if (req->buyer_ip && !netaddr_is_ip(req->buyer_ip))
        return fail(res, msg, PG_ERR_BAD_INPUT, "invalid_field", "'buyer_ip' must be an IPv4 or IPv6 address");
    if (req->openid && !text_is_token(req->openid, 128, "_-"))
        return fail(res, msg, PG_ERR_BAD_INPUT, "invalid_field", "'openid' must be 1-128 of [A-Za-z0-9_-]");
    if (req->channel && strcmp(req->channel, "auto") && !channel_find(req->channel))
        return fail(res, msg, PG_ERR_BAD_INPUT, "invalid_field", "'channel' must be alipay, wechat, stripe or auto");
    return PG_OK;
}

/* The channel named by the request, or for channel=auto: the one offering
 * the requested method, else WeChat inside WeChat, else the first enabled. */
static const pay_channel_t *pick_channel(const pg_app_t *app, const checkout_request_t *req)
{
    const pay_channel_t *ch;
    if (req->channel && strcmp(req->channel, "auto"))
        return channel_find(req->channel);
    if (req->method) {
        for (size_t i = 0; (ch = channel_at(i)) != NULL; i++) {
            if (!ch->explicit_only && channel_offers(ch, req->method))
                return ch;
        }
        return NULL;
    }
    ch = channel_find("wechat");
    if (ch && ch->enabled(app) && channel_ua_is_wechat(req->user_agent))
        return ch;
    for (size_t i = 0; (ch = channel_at(i)) != NULL; i++) {
        if (!ch->explicit_only && ch->enabled(app))
            return ch;
    }
    return channel_at(0);
}

static pg_err choose_channel(pg_app_t *app, const checkout_request_t *req, const pay_channel_t **out,
                             const char **method, checkout_result_t *res, buf_t *msg)
{
    const pay_channel_t *ch = pick_channel(app, req);
    if (!ch && req->channel && strcmp(req->channel, "auto")) {
        buf_printf(msg, "the %s channel is not available in this build", req->channel);
        res->error_code = "channel_disabled";
        return PG_ERR_UNSUPPORTED;
    }
    if (!ch)
        return fail(res, msg, PG_ERR_UNSUPPORTED, "unsupported_method",
                    "'method' must be page, wap or qr (alipay) or native, jsapi or mweb (wechat)");
    if (!ch->enabled(app)) {
        buf_printf(msg, "the %s channel is not enabled", ch->name);
        res->error_code = "channel_disabled";
        return PG_ERR_UNSUPPORTED;
    }
    *method = req->method ? req->method : ch->default_method(req->user_agent, req->openid != NULL);
    if (!channel_offers(ch, *method)) {
        buf_printf(msg, "method '%s' is not offered by channel %s", *method, ch->name);
        res->error_code = "unsupported_method";
        return PG_ERR_UNSUPPORTED;
    }
    *out = ch;
    return PG_OK;
}

/* Identifies the request's meaning for idempotency: same key, same fields. */
static void request_hash(const checkout_request_t *req, const char *channel, const char *method,
                         char out[65])
{
    buf_t b;
    buf_init(&b, NULL);
    buf_printf(&b, "product=%s\nuser=%s\nchannel=%s\nmethod=%s\nopenid=%s", req->product, req->user,
               channel, method, req->openid ? req->openid : "");
    crypto_sha256_hex(b.data, b.len, out);
    buf_free(&b);
}

pg_err checkout_pay_data_read(arena_t *a, const char *pay_data, checkout_result_t *res)
{
    json_error_t jerr;
    json_t *root = pay_data ? json_loads(pay_data, 0, &jerr) : NULL;
    const char *key;
    json_t *val;
    res->pay_field = res->pay_value = NULL;
    res->pay_is_json = res->pay_scan = false;
    if (!root)
        return PG_ERR_INTERNAL;
    json_object_foreach(root, key, val) {
        if (!strcmp(key, "scan")) {
            res->pay_scan = json_is_true(val);
        } else if (json_is_string(val)) {
            res->pay_field = arena_strdup(a, key);
            res->pay_value = arena_strdup(a, json_string_value(val));
        } else if (json_is_object(val)) {
            char *text = json_dumps(val, JSON_COMPACT | JSON_SORT_KEYS);
            res->pay_field = arena_strdup(a, key);
            res->pay_value = text ? arena_strdup(a, text) : NULL;
            res->pay_is_json = true;
            free(text);
        }
    }
    json_decref(root);
    return res->pay_value ? PG_OK : PG_ERR_INTERNAL;
}

static pg_err pay_data_read(arena_t *a, const char *pay_data, checkout_result_t *res)
{
    return checkout_pay_data_read(a, pay_data, res);
}

static pg_err pay_order_again(pg_app_t *app, arena_t *a, const order_view_t *o_in, const checkout_request_t *req,
                              const pay_channel_t *channel, const char *method, checkout_result_t *res, buf_t *msg);

/* Stored pay data with less than this left is not handed out again. */
#define PAY_DATA_MARGIN_S 60

/* The open order's open payment carries a code that has expired (or is
 * about to): an mweb_url after 5 minutes, a QR code / prepay_id near 2 hours. */
static bool pay_data_stale(const order_view_t *o)
{
    const pay_channel_t *ch = o->channel ? channel_find(o->channel) : NULL;
    int64_t ttl = ch && ch->pay_data_ttl_s && o->method ? ch->pay_data_ttl_s(o->method) : 0;
    if (!o->status || strcmp(o->status, "CREATED") || !o->payment_status || strcmp(o->payment_status, "CREATED"))
        return false;
    return ttl > 0 && o->payment_age_s >= ttl - PAY_DATA_MARGIN_S;
}

/* A fresh payment of the same order, same channel and method; the stale one
 * expires now (cron closes it at the provider, WeChat once it may). */
static pg_err refresh_payment(pg_app_t *app, arena_t *a, const checkout_request_t *req, checkout_result_t *res,
                              buf_t *msg)
{
    order_view_t old = res->order;
    const pay_channel_t *ch = channel_find(old.channel);
    pg_err rc;
    if (!ch || !ch->enabled(app))
        return fail(res, msg, PG_ERR_UNSUPPORTED, "channel_disabled", "the order's channel is not enabled");
    rc = pay_order_again(app, a, &old, req, ch, old.method, res, msg);
    if (rc == PG_OK)
        rc = store_payment_expire_now(app->db, old.payment_id);
    if (rc == PG_OK)
        log_msg(LOG_INFO, "order %s: %s pay data of payment %s stale after %lld s, new payment %s", old.order_no,
                old.method, old.payment_no, (long long)old.payment_age_s, res->order.payment_no);
    return rc;
}

static pg_err repeat_from_request_id(pg_app_t *app, arena_t *a, const checkout_request_t *req,
                                     const char *hash, checkout_result_t *res, buf_t *msg)
{
    const char *request_id = req->request_id;
    pg_err rc = store_order_by_request_id(app->db, a, request_id, &res->order);
    if (rc != PG_OK)
        return rc;
    if (!res->order.request_hash || !crypto_ct_streq(res->order.request_hash, hash))
        return fail(res, msg, PG_ERR_CONFLICT, "idempotency_conflict",
                    "request_id was already used for a checkout with other fields");
    res->repeated = true;
    if (pay_data_stale(&res->order))
        return refresh_payment(app, a, req, res, msg);
    return pay_data_read(a, res->order.pay_data, res);
}

/* A provider's failure is the operator's business: the whole detail
 * (provider, method, the curl/TLS error or the provider's sub-code) goes to
 * the log; buyers and the API get a plain message with the error code (no
 * host names, no provider texts). A combination the channel cannot do
 * (UNSUPPORTED) is the caller's: its message stays. */
static void provider_failed(const pay_channel_t *ch, const char *method, const channel_payment_t *p,
                            pg_err rc, const char *code, buf_t *msg)
{
    if (rc == PG_ERR_UNSUPPORTED)
        return;
    log_msg(LOG_ERROR, "checkout: %s %s for payment %s failed at the provider (%s, %s): %s", ch->name, method,
            p->payment_no, code, pg_err_name(rc), msg->len ? msg->data : "(no detail)");
    buf_clear(msg);
    buf_puts(msg, rc == PG_ERR_TIMEOUT ? "the payment provider did not answer in time; please try again in a moment"
                                       : "the payment provider could not start this payment; please try again later");
}

static pg_err start_at_provider(pg_app_t *app, arena_t *a, const pay_channel_t *ch, const char *method,
                                const channel_payment_t *p, checkout_result_t *res, buf_t *msg)
{
    channel_instruction_t ins;
    pg_err rc;
    memset(&ins, 0, sizeof ins);
    rc = ch->start(app, a, method, p, &ins, msg);
    res->pay_field = ins.field;
    res->pay_value = ins.value;
    res->pay_is_json = ins.is_json;
    res->pay_scan = ins.scan;
    res->pay_ref = ins.provider_ref;
    res->pay_api_version = ins.api_version;
    if (rc == PG_OK && !ins.value)
        rc = PG_ERR_INTERNAL;
    if (rc != PG_OK && !res->error_code)
        res->error_code = rc == PG_ERR_TIMEOUT       ? "upstream_timeout"
                          : rc == PG_ERR_UNSUPPORTED ? "unsupported_method"
                                                     : "upstream_error";
    if (rc != PG_OK)
        provider_failed(ch, method, p, rc, res->error_code, msg);
    return rc;
}

static void pay_field_json(buf_t *b, const char *field, const char *value, bool is_json)
{
    buf_append_json_string(b, field);
    buf_putc(b, ':');
    if (is_json)
        buf_puts(b, value);
    else
        buf_append_json_string(b, value);
}

/* Stored with the payment: {"pay_url":"..."}, plus "scan":true for codes. */
static char *pay_data_json(arena_t *a, const checkout_result_t *res)
{
    buf_t b;
    buf_init(&b, a);
    buf_putc(&b, '{');
    pay_field_json(&b, res->pay_field, res->pay_value, res->pay_is_json);
    if (res->pay_scan)
        buf_puts(&b, ",\"scan\":true");
    buf_putc(&b, '}');
    return b.failed ? NULL : b.data;
}

static pg_err new_numbers(char order_no[ORDER_NO_LEN + 1], char payment_no[ORDER_NO_LEN + 1])
{
    pg_err rc = crypto_random_alnum(order_no, ORDER_NO_LEN);
    if (rc == PG_OK)
        rc = crypto_random_alnum(payment_no, ORDER_NO_LEN);
    return rc;
}

/* A payment lives order_ttl, but never longer than what the buyer is given
 * for it (a QR code, a prepay_id: 2 hours), so no code outlives its trade. */
static time_t payment_expiry(const pg_app_t *app, const pay_channel_t *ch, const char *method)
{
    int64_t ttl = app->cfg->server.order_ttl, cap = ch->trade_max_s ? ch->trade_max_s(method) : 0;
    return time(NULL) + (time_t)(cap > 0 && cap < ttl ? cap : ttl);
}

/* The buyer switched channel: a new payment of the same open order. The
 * order's amount stands (a surcharge was fixed when the order was made). */
static pg_err add_payment(pg_app_t *app, arena_t *a, const checkout_request_t *req, const pay_channel_t *channel,
                          const char *method, checkout_result_t *res, buf_t *msg)
{
    order_view_t o;
    pg_err rc = text_is_token(req->order_no, 32, "") ? store_order_by_no(app->db, a, req->order_no, &o) : PG_ERR_NOT_FOUND;
    if (rc == PG_ERR_NOT_FOUND)
        return fail(res, msg, PG_ERR_NOT_FOUND, "not_found", "no such order");
    if (rc != PG_OK)
        return rc;
    if (strcmp(o.status, "CREATED"))
        return fail(res, msg, PG_ERR_CONFLICT, "order_not_open", "the order is not open for payment");
    if (strcmp(o.product_sku, req->product) || strcmp(o.user_ref, req->user))
        return fail(res, msg, PG_ERR_CONFLICT, "order_mismatch", "product or user differ from the order's");
    return pay_order_again(app, a, &o, req, channel, method, res, msg);
}

/* A new payment of the open order o at channel/method; res->order is then
 * the order seen through it. */
static pg_err pay_order_again(pg_app_t *app, arena_t *a, const order_view_t *o_in, const checkout_request_t *req,
                              const pay_channel_t *channel, const char *method, checkout_result_t *res, buf_t *msg)
{
    order_view_t o = *o_in;
    channel_payment_t pay;
    char payment_no[ORDER_NO_LEN + 1];
    const char *pay_data;
    bool expired = false;
    pg_err rc = crypto_random_alnum(payment_no, ORDER_NO_LEN);
    if (rc != PG_OK)
        return rc;
    memset(&pay, 0, sizeof pay);
    pay.payment_no = payment_no;
    pay.amount_fen = o.amount_fen;
    pay.subject = o.product_title;
    pay.product_sku = o.product_sku;
    pay.expires_at = payment_expiry(app, channel, method);
    pay.quit_url = app->cfg->merchant.return_url;
    pay.openid = req->openid;
    pay.client_ip = req->buyer_ip ? req->buyer_ip : req->client_ip;
    rc = start_at_provider(app, a, channel, method, &pay, res, msg);
    if (rc != PG_OK)
        return rc;
    pay_data = pay_data_json(a, res);
    if (!pay_data)
        return PG_ERR_NOMEM;
    rc = store_payment_insert_ref(app->db, payment_no, o.id, channel->name, method, o.amount_fen, pay_data,
                                  pay.expires_at, res->pay_ref, res->pay_api_version);
    if (rc == PG_OK)
        rc = store_payment_view(app->db, a, payment_no, &res->order, &expired);
    return rc;
}

/* The reply of a new order comes from what was just inserted: no re-read. */
static void fill_new_order(arena_t *a, const new_checkout_t *nc, const product_t *product, checkout_result_t *res)
{
    order_view_t *o = &res->order;
    char iso[24];
    struct tm tm;
    gmtime_r(&nc->expires_at, &tm);
    strftime(iso, sizeof iso, "%Y-%m-%dT%H:%M:%SZ", &tm);
    memset(o, 0, sizeof *o);
    o->order_no = arena_strdup(a, nc->order_no);
    o->payment_no = arena_strdup(a, nc->payment_no);
    o->status = "CREATED";
    o->payment_status = "CREATED";
    o->user_ref = nc->user_ref;
    o->product_id = product->id;
    o->product_sku = product->sku;
    o->product_title = product->title;
    o->amount_fen = nc->amount_fen;
    o->channel = nc->channel;
    o->method = nc->method;
    o->pay_data = nc->pay_data;
    o->expires_at = arena_strdup(a, iso);
}

pg_err checkout_create(pg_app_t *app, arena_t *a, const checkout_request_t *req,
                       checkout_result_t *res, buf_t *msg)
{
    const pay_channel_t *channel = NULL;
    const char *method = NULL;
    char hash[65], order_no[ORDER_NO_LEN + 1], payment_no[ORDER_NO_LEN + 1];
    product_t product;
    new_checkout_t nc;
    channel_payment_t pay;
    pg_err rc;
    memset(res, 0, sizeof *res);
    rc = validate(req, res, msg);
    if (rc == PG_OK)
        rc = choose_channel(app, req, &channel, &method, res, msg);
    if (rc != PG_OK)
        return rc;
    if (req->order_no)
        return add_payment(app, a, req, channel, method, res, msg);
    request_hash(req, channel->name, method, hash);
    if (req->request_id) {
        rc = repeat_from_request_id(app, a, req, hash, res, msg);
        if (rc != PG_ERR_NOT_FOUND)
            return rc;
    }
    rc = store_product_by_sku(app->db, a, req->product, &product);
    if (rc == PG_ERR_NOT_FOUND || (rc == PG_OK && !product.active))
        return fail(res, msg, PG_ERR_BAD_INPUT, "unknown_product", "no such product");
    if (rc != PG_OK)
        return rc;
    rc = new_numbers(order_no, payment_no);
    if (rc != PG_OK)
        return rc;
    memset(&nc, 0, sizeof nc);
    nc.amount_fen = product.price_fen;
    if (app->cfg->fees.surcharge)
        nc.amount_fen += money_fee_fen(product.price_fen, channel->fee_rate_bp(app));
    nc.expires_at = payment_expiry(app, channel, method);
    memset(&pay, 0, sizeof pay);
    pay.payment_no = payment_no;
    pay.amount_fen = nc.amount_fen;
    pay.subject = product.title;
    pay.product_sku = product.sku;
    pay.expires_at = nc.expires_at;
    pay.quit_url = app->cfg->merchant.return_url;
    pay.openid = req->openid;
    pay.client_ip = req->buyer_ip ? req->buyer_ip : req->client_ip;
    /* Ask the provider first: a failure there leaves nothing behind here. */
    rc = start_at_provider(app, a, channel, method, &pay, res, msg);
    if (rc != PG_OK)
        return rc;
    nc.order_no = order_no;
    nc.payment_no = payment_no;
    nc.product_id = product.id;
    nc.user_ref = req->user;
    nc.request_id = req->request_id;
    nc.request_hash = hash;
    nc.channel = channel->name;
    nc.method = method;
    nc.provider_ref = res->pay_ref;
    nc.api_version = res->pay_api_version;
    nc.pay_data = pay_data_json(a, res);
    if (!nc.pay_data)
        return PG_ERR_NOMEM;
    /* A lost COMMIT reply is resolved inside by order_no (chosen above, with the
     * payment_no); PG_ERR_COMMIT_UNKNOWN left = 503, the shop repeats with its request_id. */
    rc = store_checkout_insert(app->db, &nc);
    if (rc == PG_ERR_CONFLICT && req->request_id) {   /* a concurrent twin won the race */
        res->pay_field = res->pay_value = NULL;
        return repeat_from_request_id(app, a, req, hash, res, msg);
    }
    if (rc != PG_OK)
        return rc;
    fill_new_order(a, &nc, &product, res);
    return PG_OK;
}

void checkout_reply_json(const checkout_result_t *res, buf_t *out)
{
    char yuan[MONEY_YUAN_BUFSZ];
    const order_view_t *o = &res->order;
    money_format_yuan(o->amount_fen, yuan);
    buf_puts(out, "{\"order_no\":");
    buf_append_json_string(out, o->order_no);
    buf_puts(out, ",\"payment_no\":");
    buf_append_json_string(out, o->payment_no);
    buf_puts(out, ",\"status\":");
    buf_append_json_string(out, o->status);
    buf_printf(out, ",\"amount_fen\":%lld,\"amount\":\"%s\",\"channel\":", (long long)o->amount_fen, yuan);
    buf_append_json_string(out, o->channel);
    buf_puts(out, ",\"method\":");
    buf_append_json_string(out, o->method);
    buf_puts(out, ",\"expires_at\":");
    buf_append_json_string(out, o->expires_at);
    buf_putc(out, ',');
    pay_field_json(out, res->pay_field, res->pay_value, res->pay_is_json);
    buf_puts(out, "}\n");
}

void checkout_link_sig(const char *secret, const char *product, const char *user,
                       const char *expires, char out[65])
{
    buf_t b;
    buf_init(&b, NULL);
    buf_printf(&b, "product=%s&user=%s&expires=%s", product, user, expires);
    crypto_hmac_sha256_hex(secret, strlen(secret), b.data, b.len, false, out);
    buf_free(&b);
}

static bool parse_unix_time(const char *s, time_t *out)
{
    long long v = 0;
    if (!s || !*s || strlen(s) > 12)
        return false;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        v = v * 10 + (*p - '0');
    }
    *out = (time_t)v;
    return true;
}

pg_err checkout_verify_link(const char *secret, const kv_list_t *fields, time_t now,
                            const char **error_code, buf_t *msg)
{
    const char *product = kv_get(fields, "product"), *user = kv_get(fields, "user");
    const char *expires = kv_get(fields, "expires"), *sig = kv_get(fields, "sig");
    static const char *const server_only[] = { "request_id", "buyer_ip" };
    char want[65];
    time_t exp;
    *error_code = "bad_signature";
    if (!product || !user || !expires || !sig) {
        buf_puts(msg, "a signed link needs product, user, expires and sig");
        return PG_ERR_BAD_SIGNATURE;
    }
    /* Not covered by the signature: a link holder must not choose them
     * (take the shop's idempotency key, probe which exist, name an IP). */
    for (size_t i = 0; i < sizeof server_only / sizeof server_only[0]; i++) {
        if (kv_count_key(fields, server_only[i]) > 0) {
            *error_code = "invalid_field";
            buf_printf(msg, "'%s' is a server-to-server field: a signed checkout link cannot carry it",
                       server_only[i]);
            return PG_ERR_BAD_INPUT;
        }
    }
    checkout_link_sig(secret, product, user, expires, want);
    if (!crypto_ct_streq(want, sig)) {
        buf_puts(msg, "the link's signature does not match its fields");
        return PG_ERR_BAD_SIGNATURE;
    }
    if (!parse_unix_time(expires, &exp) || exp < now) {
        *error_code = "link_expired";
        buf_puts(msg, "this payment link has expired; go back to the shop for a new one");
        return PG_ERR_BAD_SIGNATURE;
    }
    return PG_OK;
}
