/* wechat: the WeChat Pay API v2 protocol adapter (see include/wechat.h).
 *
 * Owns the wire rules: the v2 sign (MD5 / HMAC-SHA256 over sorted k=v plus
 * &key=), the XML envelope of calls and replies (through xml.h, the only
 * libxml2 user), the order of reply checks (communication, signature,
 * identity, business result), the JSAPI client object, notification
 * verification and the refund notification's AES-encrypted req_info. Bytes
 * in, facts out: no database, no FastCGI, no policy about orders. */
#include "wechat.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "metrics.h"
#include "money.h"
#include "xml.h"

#define WECHAT_NONCE_LEN 32
#define WECHAT_BODY_MAX 128
#define WECHAT_OUT_TRADE_NO_MAX 32
#define WECHAT_XML_CT "text/xml"
#define WECHAT_SUCCESS "SUCCESS"
#define WECHAT_FAIL "FAIL"
#define WECHAT_ERR_CODE_LEN 64

static int is_empty(const char *s)
{
    return s == NULL || s[0] == '\0';
}

static int str_is(const char *s, const char *want)
{
    return s != NULL && strcmp(s, want) == 0;
}

static const char *opt_field(const kv_list_t *l, const char *key)
{
    const char *v = kv_get(l, key);
    return is_empty(v) ? NULL : v;
}

static void copy_err_code(char err_code[WECHAT_ERR_CODE_LEN], const char *s)
{
    if (err_code != NULL)
        snprintf(err_code, WECHAT_ERR_CODE_LEN, "%s", s != NULL ? s : "");
}

static const char *sign_type_name(wechat_sign_type_t t)
{
    return t == WECHAT_SIGN_HMAC_SHA256 ? "HMAC-SHA256" : "MD5";
}

/* ------------------------------------------------------------------ */
/* Time                                                                */

void wechat_format_time(time_t t, char out[15])
{
    /* Beijing is UTC+8 all year: shift and use gmtime_r, TZ never matters. */
    struct tm tm;
    time_t shifted = t + 8 * 3600;

    out[0] = '\0';
    if (gmtime_r(&shifted, &tm) == NULL)
        return;
    if (strftime(out, 15, "%Y%m%d%H%M%S", &tm) == 0)
        out[0] = '\0';
}

/* ------------------------------------------------------------------ */
/* Signing                                                             */

static int cmp_pair_key(const void *a, const void *b)
{
    const kv_pair_t *const *pa = a;
    const kv_pair_t *const *pb = b;
    return strcmp((*pa)->key, (*pb)->key);   /* unsigned bytes: byte order */
}

/* "k=v&...&key=API_KEY" into s (malloc-backed; the caller wipes it). */
static pg_err sign_string(const kv_list_t *params, const char *api_key, buf_t *s)
{
    const kv_pair_t **sorted = NULL;
    size_t i, n = params->count;
    int first = 1;
    pg_err rc = PG_OK;

    if (n > 0) {
        sorted = malloc(n * sizeof *sorted);
        if (sorted == NULL)
            return PG_ERR_NOMEM;
    }
    for (i = 0; i < n; i++) {
        if (is_empty(params->items[i].key)) {
            rc = PG_ERR_BAD_INPUT;
            goto done;
        }
        sorted[i] = &params->items[i];
    }
    if (n > 1)
        qsort(sorted, n, sizeof *sorted, cmp_pair_key);
    for (i = 0; i < n; i++) {
        const kv_pair_t *p = sorted[i];
        /* A repeated key (even "sign") makes the signed meaning ambiguous. */
        if (i + 1 < n && strcmp(p->key, sorted[i + 1]->key) == 0) {
            rc = PG_ERR_BAD_INPUT;
            goto done;
        }
        if (strcmp(p->key, "sign") == 0 || is_empty(p->value))
            continue;
        if (!first)
            buf_putc(s, '&');
        first = 0;
        buf_puts(s, p->key);
        buf_putc(s, '=');
        buf_puts(s, p->value);
    }
    if (!first)
        buf_putc(s, '&');
    buf_puts(s, "key=");
    buf_puts(s, api_key);
    if (s->failed)
        rc = PG_ERR_NOMEM;
done:
    free(sorted);
    return rc;
}

pg_err wechat_sign(const kv_list_t *params, const char *api_key, wechat_sign_type_t t, char out[65])
{
    buf_t s;
    pg_err rc;

    out[0] = '\0';
    if (is_empty(api_key))
        return PG_ERR_CONFIG;
    buf_init(&s, NULL);
    rc = sign_string(params, api_key, &s);
    if (rc == PG_OK) {
        if (t == WECHAT_SIGN_HMAC_SHA256)
            crypto_hmac_sha256_hex(api_key, strlen(api_key), s.data, s.len, true, out);
        else
            crypto_md5_hex(s.data, s.len, true, out);
        if (out[0] == '\0')
            rc = PG_ERR_INTERNAL;
    }
    buf_wipe(&s);   /* holds the API key */
    return rc;
}

pg_err wechat_verify_sign(const kv_list_t *params, const char *api_key, wechat_sign_type_t configured)
{
    const char *given = kv_get(params, "sign");
    const char *named = kv_get(params, "sign_type");
    wechat_sign_type_t t = configured;
    char want[65];
    pg_err rc;

    if (is_empty(api_key))
        return PG_ERR_CONFIG;
    if (kv_count_key(params, "sign") > 1 || kv_count_key(params, "sign_type") > 1)
        return PG_ERR_BAD_INPUT;
    if (is_empty(given))
        return PG_ERR_BAD_SIGNATURE;
    /* The message's own sign_type is used (a merchant configured for MD5
     * may receive HMAC-SHA256 messages), but never to downgrade: with
     * HMAC-SHA256 configured, a message that says MD5 is refused, whatever
     * its sign - the sender does not choose the weaker algorithm. */
    if (!is_empty(named)) {
        if (strcmp(named, "MD5") == 0 && configured == WECHAT_SIGN_MD5)
            t = WECHAT_SIGN_MD5;
        else if (strcmp(named, "HMAC-SHA256") == 0)
            t = WECHAT_SIGN_HMAC_SHA256;
        else
            return PG_ERR_BAD_SIGNATURE;
    }
    rc = wechat_sign(params, api_key, t, want);
    if (rc != PG_OK)
        return rc;
    return crypto_ct_streq(want, given) ? PG_OK : PG_ERR_BAD_SIGNATURE;
}

/* ------------------------------------------------------------------ */
/* Calls                                                               */

pg_err wechat_check_reply(arena_t *a, const wechat_client_t *c, const char *body, size_t len,
                          kv_list_t *reply, char err_code[64], buf_t *err)
{
    const char *return_code, *result_code, *v;
    pg_err rc;

    copy_err_code(err_code, "");
    kv_init(reply, a);
    if (c == NULL || is_empty(c->api_key) || is_empty(c->appid) || is_empty(c->mch_id)) {
        buf_set_error(err, "wechat: appid, mch_id and api_key must be configured");
        return PG_ERR_CONFIG;
    }
    rc = xml_parse_flat(a, body, len, reply, err);
    if (rc == PG_ERR_NOMEM)
        return rc;
    if (rc != PG_OK) {
        /* keep xml's reason, prefixed */
        char reason[160];
        snprintf(reason, sizeof reason, "%s", err != NULL ? err->data : "");
        buf_set_error(err, "wechat: malformed reply (%zu bytes): %s", len, reason);
        return PG_ERR_UPSTREAM;
    }
    return_code = kv_get(reply, "return_code");
    if (!str_is(return_code, WECHAT_SUCCESS)) {
        v = kv_get(reply, "return_msg");
        buf_set_error(err, "wechat: return_code=%.16s return_msg=%.200s",
                return_code != NULL ? return_code : "(none)", v != NULL ? v : "");
        return PG_ERR_UPSTREAM;
    }
    rc = wechat_verify_sign(reply, c->api_key, c->sign_type);
    if (rc != PG_OK) {
        buf_set_error(err, "wechat: reply sign %s", kv_get(reply, "sign") == NULL ? "missing" : "does not verify");
        return rc == PG_ERR_CONFIG ? rc : PG_ERR_BAD_SIGNATURE;
    }
    v = kv_get(reply, "appid");
    if (v != NULL && strcmp(v, c->appid) != 0) {
        buf_set_error(err, "wechat: reply appid %.40s is not ours", v);
        return PG_ERR_MISMATCH;
    }
    v = kv_get(reply, "mch_id");
    if (v != NULL && strcmp(v, c->mch_id) != 0) {
        buf_set_error(err, "wechat: reply mch_id %.40s is not ours", v);
        return PG_ERR_MISMATCH;
    }
    result_code = kv_get(reply, "result_code");
    if (!str_is(result_code, WECHAT_SUCCESS)) {
        const char *code = kv_get(reply, "err_code");
        const char *des = kv_get(reply, "err_code_des");
        copy_err_code(err_code, code);
        buf_set_error(err, "wechat: result_code=%.16s err_code=%.64s err_code_des=%.200s",
                result_code != NULL ? result_code : "(none)", code != NULL ? code : "",
                des != NULL ? des : "");
        return PG_ERR_UPSTREAM;
    }
    return PG_OK;
}

static char *join_url(arena_t *a, const char *gateway, const char *path)
{
    size_t glen = strlen(gateway);
    if (glen > 0 && gateway[glen - 1] == '/' && path[0] == '/')
        glen--;
    return arena_printf(a, "%.*s%s", (int)glen, gateway, path);
}

/* How far a call got: refunds map failures by stage, since "nothing was
 * sent" and "sent, answer unknown" differ. */
typedef enum {
    CALL_NOT_SENT,      /* configuration, fields or signing */
    CALL_TRANSPORT,     /* httpc failed: timeout, connection, TLS */
    CALL_HTTP_STATUS,   /* HTTP status other than 200 */
    CALL_REPLY          /* wechat_check_reply ran */
} call_stage_t;

static pg_err call_staged_unmetered(arena_t *a, const wechat_client_t *c, const char *path, kv_list_t *params,
                                    bool with_client_cert, kv_list_t *reply, char err_code[64],
                                    call_stage_t *stage, buf_t *err)
{
    char nonce[WECHAT_NONCE_LEN + 1], sign[65];
    httpc_opts_t opts;
    httpc_response_t resp;
    buf_t xml;
    char *url;
    pg_err rc;

    *stage = CALL_NOT_SENT;
    copy_err_code(err_code, "");
    kv_init(reply, a);
    if (c == NULL || is_empty(c->gateway) || is_empty(c->appid) || is_empty(c->mch_id) ||
        is_empty(c->api_key)) {
        buf_set_error(err, "wechat: gateway, appid, mch_id and api_key must be configured");
        return PG_ERR_CONFIG;
    }
    if (is_empty(path) || path[0] != '/') {
        buf_set_error(err, "wechat: bad call path");
        return PG_ERR_BAD_INPUT;
    }
    opts = c->http;
    opts.client_cert = NULL;
    opts.client_key = NULL;
    if (with_client_cert) {
        if (is_empty(c->client_cert) || is_empty(c->client_key)) {
            buf_set_error(err, "wechat: %s needs the merchant client certificate and key", path);
            return PG_ERR_CONFIG;
        }
        opts.client_cert = c->client_cert;
        opts.client_key = c->client_key;
    }

    if ((rc = crypto_random_alnum(nonce, WECHAT_NONCE_LEN)) != PG_OK)
        return rc;
    if ((rc = kv_add(params, "appid", c->appid)) != PG_OK ||
        (rc = kv_add(params, "mch_id", c->mch_id)) != PG_OK ||
        (rc = kv_add(params, "nonce_str", nonce)) != PG_OK)
        return rc;
    if (c->sign_type == WECHAT_SIGN_HMAC_SHA256 &&
        (rc = kv_add(params, "sign_type", "HMAC-SHA256")) != PG_OK)
        return rc;
    if ((rc = wechat_sign(params, c->api_key, c->sign_type, sign)) != PG_OK) {
        buf_set_error(err, "wechat: cannot sign %s request: %s", path, pg_err_name(rc));
        return rc;
    }
    if ((rc = kv_add(params, "sign", sign)) != PG_OK)
        return rc;
    buf_init(&xml, a);
    if ((rc = xml_build_flat(params, &xml)) != PG_OK) {
        buf_set_error(err, "wechat: request for %s cannot be written as XML (bad field)", path);
        return rc;
    }
    if ((url = join_url(a, c->gateway, path)) == NULL)
        return PG_ERR_NOMEM;

    *stage = CALL_TRANSPORT;
    rc = httpc_post(a, url, WECHAT_XML_CT, xml.data, xml.len, &opts, &resp, err);
    if (rc == PG_ERR_UPSTREAM && resp.status >= 500)
        *stage = CALL_HTTP_STATUS;   /* httpc refuses 5xx itself */
    if (rc != PG_OK)
        return rc;
    if (resp.status != 200) {
        *stage = CALL_HTTP_STATUS;
        buf_set_error(err, "wechat: HTTP %ld from gateway for %s", resp.status, path);
        return PG_ERR_UPSTREAM;
    }
    *stage = CALL_REPLY;
    return wechat_check_reply(a, c, resp.body.data, resp.body.len, reply, err_code, err);
}

/* Every call that went out is counted, with its duration, for GET /metrics. */
static pg_err call_staged(arena_t *a, const wechat_client_t *c, const char *path, kv_list_t *params,
                          bool with_client_cert, kv_list_t *reply, char err_code[64],
                          call_stage_t *stage, buf_t *err)
{
    long long t0 = metrics_now_us();
    pg_err rc = call_staged_unmetered(a, c, path, params, with_client_cert, reply, err_code, stage, err);
    if (*stage != CALL_NOT_SENT)
        metrics_provider_call("wechat", path, metrics_call_outcome(*stage == CALL_REPLY, *stage == CALL_HTTP_STATUS, rc),
                              metrics_now_us() - t0);
    return rc;
}

pg_err wechat_call(arena_t *a, const wechat_client_t *c, const char *path, kv_list_t *params,
                   bool with_client_cert, kv_list_t *reply, char err_code[64], buf_t *err)
{
    call_stage_t stage;
    return call_staged(a, c, path, params, with_client_cert, reply, err_code, &stage, err);
}

/* ------------------------------------------------------------------ */
/* unifiedorder                                                        */

static int valid_out_trade_no(const char *s)
{
    size_t n = 0;
    if (s == NULL)
        return 0;
    for (; s[n] != '\0'; n++) {
        char ch = s[n];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '-' || ch == '|' || ch == '*' || ch == '@'))
            return 0;
    }
    return n >= 1 && n <= WECHAT_OUT_TRADE_NO_MAX;
}

/* At most WECHAT_BODY_MAX bytes, cut before a character that would not fit
 * whole (never inside a UTF-8 sequence). */
static char *cut_body(arena_t *a, const char *body)
{
    size_t len = strlen(body), cut;
    if (len <= WECHAT_BODY_MAX)
        return arena_strdup(a, body);
    cut = WECHAT_BODY_MAX;
    while (cut > 0 && ((unsigned char)body[cut] & 0xC0) == 0x80)
        cut--;
    return arena_strndup(a, body, cut);
}

static pg_err order_params(arena_t *a, const wechat_client_t *c, const wechat_order_t *o,
                           kv_list_t *p, buf_t *err)
{
    const char *tt = o->trade_type, *ip = o->spbill_create_ip;
    char fee[24], expire[15];
    char *body;
    pg_err rc;

    if (is_empty(c->notify_url)) {
        buf_set_error(err, "wechat: notify_url must be configured");
        return PG_ERR_CONFIG;
    }
    if (!str_is(tt, "NATIVE") && !str_is(tt, "JSAPI") && !str_is(tt, "MWEB")) {
        buf_set_error(err, "wechat: trade_type %.16s not supported", tt != NULL ? tt : "(none)");
        return PG_ERR_UNSUPPORTED;
    }
    if (!valid_out_trade_no(o->out_trade_no) || is_empty(o->body) || o->total_fee <= 0 ||
        o->total_fee > MONEY_MAX_FEN) {
        buf_set_error(err, "wechat: bad order (out_trade_no, body or total_fee)");
        return PG_ERR_BAD_INPUT;
    }
    if (str_is(tt, "JSAPI") && is_empty(o->openid)) {
        buf_set_error(err, "wechat: JSAPI needs the buyer's openid");
        return PG_ERR_BAD_INPUT;
    }
    if (is_empty(ip)) {
        if (!str_is(tt, "NATIVE")) {
            buf_set_error(err, "wechat: %s needs the buyer's IP (spbill_create_ip)", tt);
            return PG_ERR_BAD_INPUT;
        }
        ip = "127.0.0.1";
    }
    if ((body = cut_body(a, o->body)) == NULL)
        return PG_ERR_NOMEM;
    snprintf(fee, sizeof fee, "%lld", (long long)o->total_fee);

    kv_init(p, a);
    if ((rc = kv_add(p, "body", body)) != PG_OK ||
        (rc = kv_add(p, "out_trade_no", o->out_trade_no)) != PG_OK ||
        (rc = kv_add(p, "total_fee", fee)) != PG_OK ||
        (rc = kv_add(p, "spbill_create_ip", ip)) != PG_OK ||
        (rc = kv_add(p, "notify_url", c->notify_url)) != PG_OK ||
        (rc = kv_add(p, "trade_type", tt)) != PG_OK)
        return rc;
    if (o->expires_at != 0) {
        wechat_format_time(o->expires_at, expire);
        if (expire[0] == '\0')
            return PG_ERR_BAD_INPUT;
        if ((rc = kv_add(p, "time_expire", expire)) != PG_OK)
            return rc;
    }
    if (str_is(tt, "NATIVE") &&
        (rc = kv_add(p, "product_id", is_empty(o->product_id) ? o->out_trade_no : o->product_id)) != PG_OK)
        return rc;
    if (str_is(tt, "JSAPI") && (rc = kv_add(p, "openid", o->openid)) != PG_OK)
        return rc;
    if (str_is(tt, "MWEB") && !is_empty(o->scene_info) &&
        (rc = kv_add(p, "scene_info", o->scene_info)) != PG_OK)
        return rc;
    return PG_OK;
}

pg_err wechat_unifiedorder(arena_t *a, const wechat_client_t *c, const wechat_order_t *o,
                           wechat_prepay_t *out, char err_code[64], buf_t *err)
{
    kv_list_t params, reply;
    pg_err rc;

    memset(out, 0, sizeof *out);
    copy_err_code(err_code, "");
    if (c == NULL || o == NULL) {
        buf_set_error(err, "wechat: no client or order");
        return PG_ERR_CONFIG;
    }
    if ((rc = order_params(a, c, o, &params, err)) != PG_OK)
        return rc;
    rc = wechat_call(a, c, "/pay/unifiedorder", &params, false, &reply, err_code, err);
    if (rc != PG_OK)
        return rc;

    out->prepay_id = opt_field(&reply, "prepay_id");
    out->code_url = opt_field(&reply, "code_url");
    out->mweb_url = opt_field(&reply, "mweb_url");
    if (out->prepay_id == NULL || (str_is(o->trade_type, "NATIVE") && out->code_url == NULL) ||
        (str_is(o->trade_type, "MWEB") && out->mweb_url == NULL)) {
        buf_set_error(err, "wechat: unifiedorder reply lacks %s",
                out->prepay_id == NULL ? "prepay_id" : str_is(o->trade_type, "NATIVE") ? "code_url" : "mweb_url");
        memset(out, 0, sizeof *out);
        return PG_ERR_UPSTREAM;
    }
    return PG_OK;
}

pg_err wechat_jsapi_params(arena_t *a, const wechat_client_t *c, const char *prepay_id, time_t now,
                           const char *nonce, kv_list_t *out)
{
    char nonce_buf[WECHAT_NONCE_LEN + 1], ts[24], sign[65];
    char *package;
    pg_err rc;

    kv_init(out, a);
    if (c == NULL || is_empty(c->appid) || is_empty(c->api_key))
        return PG_ERR_CONFIG;
    if (is_empty(prepay_id) || now < 0)
        return PG_ERR_BAD_INPUT;
    if (nonce == NULL) {
        if ((rc = crypto_random_alnum(nonce_buf, WECHAT_NONCE_LEN)) != PG_OK)
            return rc;
        nonce = nonce_buf;
    } else if (nonce[0] == '\0' || strlen(nonce) > WECHAT_NONCE_LEN) {
        return PG_ERR_BAD_INPUT;
    }
    snprintf(ts, sizeof ts, "%lld", (long long)now);
    if ((package = arena_printf(a, "prepay_id=%s", prepay_id)) == NULL)
        return PG_ERR_NOMEM;
    if ((rc = kv_add(out, "appId", c->appid)) != PG_OK ||
        (rc = kv_add(out, "timeStamp", ts)) != PG_OK ||
        (rc = kv_add(out, "nonceStr", nonce)) != PG_OK ||
        (rc = kv_add(out, "package", package)) != PG_OK ||
        (rc = kv_add(out, "signType", sign_type_name(c->sign_type))) != PG_OK)
        goto fail;
    if ((rc = wechat_sign(out, c->api_key, c->sign_type, sign)) != PG_OK ||
        (rc = kv_add(out, "paySign", sign)) != PG_OK)
        goto fail;
    return PG_OK;
fail:
    kv_init(out, a);
    return rc;
}

/* ------------------------------------------------------------------ */
/* orderquery, closeorder                                              */

static pg_err out_trade_no_params(arena_t *a, const char *out_trade_no, kv_list_t *p, buf_t *err)
{
    kv_init(p, a);
    if (!valid_out_trade_no(out_trade_no)) {
        buf_set_error(err, "wechat: bad out_trade_no");
        return PG_ERR_BAD_INPUT;
    }
    return kv_add(p, "out_trade_no", out_trade_no);
}

pg_err wechat_orderquery(arena_t *a, const wechat_client_t *c, const char *out_trade_no,
                         wechat_trade_state_t *out, char err_code[64], buf_t *err)
{
    kv_list_t params, reply;
    const char *v;
    pg_err rc;

    memset(out, 0, sizeof *out);
    copy_err_code(err_code, "");
    if ((rc = out_trade_no_params(a, out_trade_no, &params, err)) != PG_OK)
        return rc;
    rc = wechat_call(a, c, "/pay/orderquery", &params, false, &reply, err_code, err);
    if (rc != PG_OK)
        return rc;

    v = kv_get(&reply, "out_trade_no");
    if (v != NULL && strcmp(v, out_trade_no) != 0) {
        buf_set_error(err, "wechat: orderquery reply is for %.40s, not %s", v, out_trade_no);
        return PG_ERR_MISMATCH;
    }
    out->trade_state = opt_field(&reply, "trade_state");
    if (out->trade_state == NULL) {
        buf_set_error(err, "wechat: orderquery reply lacks trade_state");
        return PG_ERR_UPSTREAM;
    }
    v = opt_field(&reply, "total_fee");
    if (v != NULL && money_parse_fen(v, MONEY_MAX_FEN, &out->total_fee) != PG_OK) {
        buf_set_error(err, "wechat: orderquery reply has a bad total_fee %.40s", v);
        memset(out, 0, sizeof *out);
        return PG_ERR_UPSTREAM;
    }
    out->transaction_id = opt_field(&reply, "transaction_id");
    out->time_end = opt_field(&reply, "time_end");
    return PG_OK;
}

pg_err wechat_closeorder(arena_t *a, const wechat_client_t *c, const char *out_trade_no,
                         char err_code[64], buf_t *err)
{
    char code[WECHAT_ERR_CODE_LEN];
    kv_list_t params, reply;
    pg_err rc;

    copy_err_code(err_code, "");
    if ((rc = out_trade_no_params(a, out_trade_no, &params, err)) != PG_OK)
        return rc;
    rc = wechat_call(a, c, "/pay/closeorder", &params, false, &reply, code, err);
    copy_err_code(err_code, code);
    if (rc == PG_ERR_UPSTREAM && strcmp(code, "ORDERPAID") == 0)
        return PG_ERR_CONFLICT;
    if (rc == PG_ERR_UPSTREAM && strcmp(code, "ORDERCLOSED") == 0)
        return PG_OK;   /* closed already: the goal is reached */
    return rc;
}

/* ------------------------------------------------------------------ */
/* refund, refundquery                                                 */

#define WECHAT_OUT_REFUND_NO_MAX 64
#define WECHAT_REFUND_DESC_MAX 80
/* Numbered refund entries: WeChat allows at most 50 refunds per order. */
#define WECHAT_REFUND_ENTRIES_MAX 100

static int valid_out_refund_no(const char *s)
{
    size_t n = 0;
    if (s == NULL)
        return 0;
    for (; s[n] != '\0'; n++) {
        char ch = s[n];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '-' || ch == '|' || ch == '*' || ch == '@'))
            return 0;
    }
    return n >= 1 && n <= WECHAT_OUT_REFUND_NO_MAX;
}

/* err_codes after which the outcome of a refund is not known (WeChat: call
 * again with the same out_refund_no, or query). */
static int refund_err_is_retry(const char *code)
{
    return str_is(code, "SYSTEMERROR") || str_is(code, "BIZERR_NEED_RETRY") ||
           str_is(code, "FREQUENCY_LIMITED");
}

/* return_code FAIL normally means the request was refused before any
 * processing (bad sign, bad parameter, bad certificate): nothing happened.
 * When the message says the system was busy or failing we do not know. */
static int return_msg_is_system(const char *msg)
{
    return msg != NULL && (strstr(msg, "SYSTEMERROR") != NULL ||
                           strstr(msg, "\xe7\xb3\xbb\xe7\xbb\x9f\xe7\xb9\x81\xe5\xbf\x99") != NULL ||  /* 系统繁忙 */
                           strstr(msg, "\xe7\xb3\xbb\xe7\xbb\x9f\xe9\x94\x99\xe8\xaf\xaf") != NULL ||  /* 系统错误 */
                           strstr(msg, "\xe7\xb3\xbb\xe7\xbb\x9f\xe8\xb6\x85\xe6\x97\xb6") != NULL);   /* 系统超时 */
}

static pg_err map_refund(pg_err rc, call_stage_t stage, const kv_list_t *reply, const char *code,
                         buf_t *err)
{
    const char *return_code;

    if (rc == PG_OK || stage == CALL_NOT_SENT)
        return rc;
    if (stage != CALL_REPLY || rc != PG_ERR_UPSTREAM)
        return PG_ERR_TIMEOUT;   /* transport, HTTP status, bad sign, other merchant */
    return_code = kv_get(reply, "return_code");
    if (return_code == NULL)
        return PG_ERR_TIMEOUT;   /* not XML, or not WeChat's */
    if (!str_is(return_code, WECHAT_SUCCESS)) {
        if (return_msg_is_system(kv_get(reply, "return_msg")))
            return PG_ERR_TIMEOUT;
        return PG_ERR_CONFLICT;
    }
    /* signed result_code FAIL */
    if (is_empty(code) || refund_err_is_retry(code)) {
        if (is_empty(code))
            buf_set_error(err, "wechat: refund result_code FAIL without err_code: outcome unknown");
        return PG_ERR_TIMEOUT;
    }
    return PG_ERR_CONFLICT;
}

pg_err wechat_refund(arena_t *a, const wechat_client_t *c, const wechat_refund_req_t *r,
                     wechat_refund_result_t *out, char err_code[64], buf_t *err)
{
    char code[WECHAT_ERR_CODE_LEN], total[24], fee[24];
    kv_list_t params, reply;
    call_stage_t stage;
    const char *v;
    char *desc = NULL;
    pg_err rc;

    memset(out, 0, sizeof *out);
    copy_err_code(err_code, "");
    if (c == NULL || r == NULL) {
        buf_set_error(err, "wechat: no client or refund");
        return PG_ERR_CONFIG;
    }
    if (is_empty(c->client_cert) || is_empty(c->client_key)) {
        buf_set_error(err, "wechat: refunds need the merchant client certificate and key");
        return PG_ERR_CONFIG;
    }
    if (!valid_out_trade_no(r->out_trade_no) || !valid_out_refund_no(r->out_refund_no) ||
        r->total_fee <= 0 || r->total_fee > MONEY_MAX_FEN || r->refund_fee <= 0 ||
        r->refund_fee > r->total_fee) {
        buf_set_error(err, "wechat: bad refund (out_trade_no, out_refund_no or amounts)");
        return PG_ERR_BAD_INPUT;
    }
    if (!is_empty(r->refund_desc) &&
        (desc = arena_strndup(a, r->refund_desc, strlen(r->refund_desc))) == NULL)
        return PG_ERR_NOMEM;
    if (desc != NULL && strlen(desc) > WECHAT_REFUND_DESC_MAX) {
        /* cut at a UTF-8 boundary, like the order body */
        size_t cut = WECHAT_REFUND_DESC_MAX;
        while (cut > 0 && ((unsigned char)desc[cut] & 0xC0) == 0x80)
            cut--;
        desc[cut] = '\0';
    }
    snprintf(total, sizeof total, "%lld", (long long)r->total_fee);
    snprintf(fee, sizeof fee, "%lld", (long long)r->refund_fee);
    kv_init(&params, a);
    if ((rc = kv_add(&params, "out_trade_no", r->out_trade_no)) != PG_OK ||
        (rc = kv_add(&params, "out_refund_no", r->out_refund_no)) != PG_OK ||
        (rc = kv_add(&params, "total_fee", total)) != PG_OK ||
        (rc = kv_add(&params, "refund_fee", fee)) != PG_OK)
        return rc;
    if (desc != NULL && (rc = kv_add(&params, "refund_desc", desc)) != PG_OK)
        return rc;
    if (!is_empty(r->notify_url) && (rc = kv_add(&params, "notify_url", r->notify_url)) != PG_OK)
        return rc;

    rc = call_staged(a, c, "/secapi/pay/refund", &params, true, &reply, code, &stage, err);
    copy_err_code(err_code, code);
    rc = map_refund(rc, stage, &reply, code, err);
    if (rc != PG_OK)
        return rc;

    /* Signed SUCCESS: accepted. A reply we cannot read is "unknown". */
    v = kv_get(&reply, "out_refund_no");
    if (v != NULL && strcmp(v, r->out_refund_no) != 0) {
        buf_set_error(err, "wechat: refund reply is for out_refund_no %.64s, not ours", v);
        return PG_ERR_TIMEOUT;
    }
    out->refund_id = opt_field(&reply, "refund_id");
    v = opt_field(&reply, "refund_fee");
    if (out->refund_id == NULL || v == NULL || money_parse_fen(v, MONEY_MAX_FEN, &out->refund_fee) != PG_OK) {
        buf_set_error(err, "wechat: refund reply lacks refund_id or has a bad refund_fee");
        memset(out, 0, sizeof *out);
        return PG_ERR_TIMEOUT;
    }
    return PG_OK;
}

static int known_refund_status(const char *s)
{
    return str_is(s, "SUCCESS") || str_is(s, "PROCESSING") || str_is(s, "REFUNDCLOSE") ||
           str_is(s, "CHANGE");
}

pg_err wechat_refundquery(arena_t *a, const wechat_client_t *c, const char *out_refund_no,
                          wechat_refund_state_t *out, char err_code[64], buf_t *err)
{
    char code[WECHAT_ERR_CODE_LEN], key[40];
    kv_list_t params, reply;
    call_stage_t stage;
    const char *v, *fee;
    int n, hit = -1;
    pg_err rc;

    memset(out, 0, sizeof *out);
    copy_err_code(err_code, "");
    if (!valid_out_refund_no(out_refund_no)) {
        buf_set_error(err, "wechat: bad out_refund_no");
        return PG_ERR_BAD_INPUT;
    }
    kv_init(&params, a);
    if ((rc = kv_add(&params, "out_refund_no", out_refund_no)) != PG_OK)
        return rc;
    rc = call_staged(a, c, "/pay/refundquery", &params, false, &reply, code, &stage, err);
    copy_err_code(err_code, code);
    if (rc == PG_ERR_UPSTREAM && strcmp(code, "REFUNDNOTEXIST") == 0)
        return PG_OK;   /* signed: WeChat has no such refund */
    if (rc == PG_ERR_UPSTREAM && strcmp(code, "SYSTEMERROR") == 0)
        return PG_ERR_TIMEOUT;
    if (rc != PG_OK)
        return stage == CALL_HTTP_STATUS ? PG_ERR_TIMEOUT : rc;

    /* The reply lists the order's refunds as out_refund_no_0, _1, ...; ours
     * is the one whose number we sent. */
    for (n = 0; n < WECHAT_REFUND_ENTRIES_MAX; n++) {
        snprintf(key, sizeof key, "out_refund_no_%d", n);
        v = kv_get(&reply, key);
        if (v == NULL)
            break;
        if (strcmp(v, out_refund_no) == 0) {
            hit = n;
            break;
        }
    }
    if (hit < 0) {
        buf_set_error(err, "wechat: refundquery reply does not list out_refund_no %s", out_refund_no);
        return PG_ERR_MISMATCH;
    }
    snprintf(key, sizeof key, "refund_status_%d", hit);
    v = opt_field(&reply, key);
    if (!known_refund_status(v)) {
        buf_set_error(err, "wechat: refundquery reply has %s=%.32s", key, v != NULL ? v : "(none)");
        return PG_ERR_UPSTREAM;
    }
    snprintf(key, sizeof key, "refund_fee_%d", hit);
    fee = opt_field(&reply, key);
    if (fee == NULL || money_parse_fen(fee, MONEY_MAX_FEN, &out->refund_fee) != PG_OK) {
        buf_set_error(err, "wechat: refundquery reply has a bad %s", key);
        out->refund_fee = 0;
        return PG_ERR_UPSTREAM;
    }
    out->refund_status = v;
    snprintf(key, sizeof key, "refund_id_%d", hit);
    out->refund_id = opt_field(&reply, key);
    out->found = true;
    return PG_OK;
}

/* ------------------------------------------------------------------ */
/* Notifications                                                       */

pg_err wechat_verify_notify(arena_t *a, const wechat_client_t *c, const char *body, size_t len,
                            wechat_notify_t *out, buf_t *reason)
{
    kv_list_t f;
    const char *v, *result_code, *total;
    pg_err rc;

    memset(out, 0, sizeof *out);
    if (c == NULL || is_empty(c->api_key) || is_empty(c->appid) || is_empty(c->mch_id)) {
        buf_set_error(reason, "appid, mch_id and api_key must be configured");
        return PG_ERR_CONFIG;
    }
    rc = xml_parse_flat(a, body, len, &f, reason);
    if (rc != PG_OK)
        return rc;
    v = kv_get(&f, "return_code");
    if (!str_is(v, WECHAT_SUCCESS)) {
        buf_set_error(reason, "return_code %.16s", v != NULL ? v : "(none)");
        return PG_ERR_BAD_INPUT;
    }
    rc = wechat_verify_sign(&f, c->api_key, c->sign_type);
    if (rc != PG_OK) {
        buf_set_error(reason, "%s", kv_get(&f, "sign") == NULL ? "sign missing" : "bad signature");
        return rc == PG_ERR_CONFIG ? rc : PG_ERR_BAD_SIGNATURE;
    }
    v = kv_get(&f, "appid");
    if (v == NULL || strcmp(v, c->appid) != 0) {
        buf_set_error(reason, "appid mismatch: %.40s", v != NULL ? v : "(none)");
        return PG_ERR_MISMATCH;
    }
    v = kv_get(&f, "mch_id");
    if (v == NULL || strcmp(v, c->mch_id) != 0) {
        buf_set_error(reason, "mch_id mismatch: %.40s", v != NULL ? v : "(none)");
        return PG_ERR_MISMATCH;
    }

    out->out_trade_no = opt_field(&f, "out_trade_no");
    total = opt_field(&f, "total_fee");
    result_code = kv_get(&f, "result_code");
    if (out->out_trade_no == NULL || total == NULL) {
        buf_set_error(reason, "missing %s", out->out_trade_no == NULL ? "out_trade_no" : "total_fee");
        goto bad;
    }
    if (money_parse_fen(total, MONEY_MAX_FEN, &out->total_fee) != PG_OK) {
        buf_set_error(reason, "bad total_fee %.40s", total);
        goto bad;
    }
    out->transaction_id = opt_field(&f, "transaction_id");
    out->openid = opt_field(&f, "openid");
    out->time_end = opt_field(&f, "time_end");
    out->trade_type = opt_field(&f, "trade_type");
    if (str_is(result_code, WECHAT_SUCCESS)) {
        if (out->transaction_id == NULL) {
            buf_set_error(reason, "paid without transaction_id");
            goto bad;
        }
        out->paid = true;
        buf_set_error(reason, "ok");
    } else if (str_is(result_code, WECHAT_FAIL)) {
        out->paid = false;
        v = kv_get(&f, "err_code");
        buf_set_error(reason, "result_code FAIL err_code=%.64s", v != NULL ? v : "");
    } else {
        buf_set_error(reason, "result_code %.16s", result_code != NULL ? result_code : "(none)");
        goto bad;
    }
    return PG_OK;
bad:
    memset(out, 0, sizeof *out);
    return PG_ERR_BAD_INPUT;
}

void wechat_reply(bool ok, const char *msg, buf_t *out)
{
    kv_pair_t items[2];
    kv_list_t l;
    size_t mark = out->len;

    items[0].key = "return_code";
    items[0].value = ok ? WECHAT_SUCCESS : WECHAT_FAIL;
    items[1].key = "return_msg";
    items[1].value = ok ? "OK" : (is_empty(msg) ? WECHAT_FAIL : msg);
    l.items = items;
    l.count = 2;
    l.cap = 2;
    l.arena = NULL;
    if (xml_build_flat(&l, out) == PG_OK)
        return;
    /* msg was not XML-safe: fall back to a fixed message. */
    out->len = mark;
    if (out->cap > 0)
        out->data[mark] = '\0';
    items[1].value = WECHAT_FAIL;
    (void)xml_build_flat(&l, out);
}

/* ------------------------------------------------------------------ */
/* Refund notification                                                 */

static const char *const req_info_roots[] = { "root", "xml", NULL };

pg_err wechat_decrypt_req_info(arena_t *a, const char *api_key, const char *req_info_b64,
                               kv_list_t *out, buf_t *err)
{
    char key_hex[33];
    buf_t compact, cipher, plain;
    size_t i;
    pg_err rc;

    kv_init(out, a);
    if (is_empty(api_key)) {
        buf_set_error(err, "wechat: api_key must be configured");
        return PG_ERR_CONFIG;
    }
    if (is_empty(req_info_b64)) {
        buf_set_error(err, "wechat: req_info missing");
        return PG_ERR_BAD_INPUT;
    }
    buf_init(&compact, NULL);
    buf_init(&cipher, NULL);
    buf_init(&plain, NULL);
    /* Tolerate line-wrapped base64; the decoder itself is strict. */
    for (i = 0; req_info_b64[i] != '\0'; i++) {
        char ch = req_info_b64[i];
        if (ch != ' ' && ch != '\t' && ch != '\r' && ch != '\n')
            buf_putc(&compact, ch);
    }
    if (compact.failed) {
        rc = PG_ERR_NOMEM;
        goto done;
    }
    if (compact.len > 2 * XML_MAX_BYTES) {
        buf_set_error(err, "wechat: req_info too large");
        rc = PG_ERR_TOO_LARGE;
        goto done;
    }
    rc = crypto_base64_decode(compact.data, compact.len, &cipher);
    if (rc != PG_OK) {
        buf_set_error(err, "wechat: req_info is not base64");
        goto done;
    }
    /* The key is the lowercase hex MD5 of the API key, used as 32 ASCII
     * bytes (not the 16 raw digest bytes). */
    crypto_md5_hex(api_key, strlen(api_key), false, key_hex);
    if (strlen(key_hex) != 32) {
        rc = PG_ERR_INTERNAL;
        goto done;
    }
    rc = crypto_aes256_ecb_decrypt(key_hex, cipher.data, cipher.len, &plain);
    if (rc == PG_ERR_NOMEM || rc == PG_ERR_INTERNAL)
        goto done;
    if (rc != PG_OK) {
        buf_set_error(err, "wechat: req_info does not decrypt with our key");
        rc = PG_ERR_BAD_SIGNATURE;
        goto done;
    }
    rc = xml_parse_flat_root(a, plain.data, plain.len, req_info_roots, out, err);
    if (rc != PG_OK && rc != PG_ERR_NOMEM) {
        char reason[160];
        snprintf(reason, sizeof reason, "%s", err != NULL ? err->data : "");
        buf_set_error(err, "wechat: decrypted req_info is not our XML: %s", reason);
        rc = PG_ERR_BAD_SIGNATURE;
    }
done:
    crypto_wipe(key_hex, sizeof key_hex);
    buf_wipe(&compact);
    buf_wipe(&cipher);
    buf_wipe(&plain);
    return rc;
}

static int known_refund_notify_status(const char *s)
{
    return str_is(s, "SUCCESS") || str_is(s, "CHANGE") || str_is(s, "REFUNDCLOSE");
}

pg_err wechat_verify_refund_notify(arena_t *a, const wechat_client_t *c, const char *body,
                                   size_t len, wechat_refund_notify_t *out, buf_t *reason)
{
    kv_list_t f, info;
    const char *v, *req_info, *total, *fee;
    pg_err rc;

    memset(out, 0, sizeof *out);
    if (c == NULL || is_empty(c->api_key) || is_empty(c->appid) || is_empty(c->mch_id)) {
        buf_set_error(reason, "appid, mch_id and api_key must be configured");
        return PG_ERR_CONFIG;
    }
    rc = xml_parse_flat(a, body, len, &f, reason);
    if (rc != PG_OK)
        return rc;
    v = kv_get(&f, "return_code");
    if (!str_is(v, WECHAT_SUCCESS)) {
        buf_set_error(reason, "return_code %.16s", v != NULL ? v : "(none)");
        return PG_ERR_BAD_INPUT;
    }
    /* No sign on refund notifications: the identity fields are checked in
     * clear, and the encrypted req_info authenticates the content. */
    v = kv_get(&f, "appid");
    if (v == NULL || strcmp(v, c->appid) != 0) {
        buf_set_error(reason, "appid mismatch: %.40s", v != NULL ? v : "(none)");
        return PG_ERR_MISMATCH;
    }
    v = kv_get(&f, "mch_id");
    if (v == NULL || strcmp(v, c->mch_id) != 0) {
        buf_set_error(reason, "mch_id mismatch: %.40s", v != NULL ? v : "(none)");
        return PG_ERR_MISMATCH;
    }
    req_info = opt_field(&f, "req_info");
    if (req_info == NULL) {
        buf_set_error(reason, "req_info missing");
        return PG_ERR_BAD_INPUT;
    }
    rc = wechat_decrypt_req_info(a, c->api_key, req_info, &info, reason);
    if (rc == PG_ERR_NOMEM || rc == PG_ERR_CONFIG || rc == PG_ERR_INTERNAL)
        return rc;
    if (rc != PG_OK) {
        /* Being able to decrypt is the authentication: anything else
         * (not base64, wrong key, garbage, too large) is unauthenticated. */
        buf_set_error(reason, "req_info does not decrypt with our key");
        return PG_ERR_BAD_SIGNATURE;
    }

    out->out_trade_no = opt_field(&info, "out_trade_no");
    out->out_refund_no = opt_field(&info, "out_refund_no");
    out->refund_status = opt_field(&info, "refund_status");
    total = opt_field(&info, "total_fee");
    fee = opt_field(&info, "refund_fee");
    if (out->out_trade_no == NULL || out->out_refund_no == NULL || out->refund_status == NULL ||
        total == NULL || fee == NULL) {
        buf_set_error(reason, "req_info lacks %s",
                out->out_trade_no == NULL    ? "out_trade_no"
                : out->out_refund_no == NULL ? "out_refund_no"
                : out->refund_status == NULL ? "refund_status"
                : total == NULL              ? "total_fee"
                                             : "refund_fee");
        goto bad;
    }
    if (!known_refund_notify_status(out->refund_status)) {
        buf_set_error(reason, "req_info refund_status %.32s", out->refund_status);
        goto bad;
    }
    if (money_parse_fen(total, MONEY_MAX_FEN, &out->total_fee) != PG_OK ||
        money_parse_fen(fee, MONEY_MAX_FEN, &out->refund_fee) != PG_OK) {
        buf_set_error(reason, "req_info has a bad total_fee or refund_fee");
        goto bad;
    }
    out->transaction_id = opt_field(&info, "transaction_id");
    out->refund_id = opt_field(&info, "refund_id");
    out->success_time = opt_field(&info, "success_time");
    buf_set_error(reason, "ok");
    return PG_OK;
bad:
    memset(out, 0, sizeof *out);
    return PG_ERR_BAD_INPUT;
}
