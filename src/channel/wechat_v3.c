/* wechat_v3: the WeChat Pay API v3 protocol adapter (see include/wechat_v3.h).
 *
 * Owns the v3 wire rules: what a request signature covers and how the
 * Authorization header reads, which key verifies a reply or notification
 * (named by Wechatpay-Serial, never found by trying), the clock window, the
 * SIGNTEST probes, AEAD_AES_256_GCM resources, and the JSON of each call and
 * resource with strict bounds (jansson, duplicate keys refused, amounts as
 * JSON integers in fen). No transport, no database, no policy about orders. */
#include "wechat_v3.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "metrics.h"
#include "money.h"

#define WXV3_OUT_TRADE_NO_MIN 6
#define WXV3_OUT_TRADE_NO_MAX 32
#define WXV3_OUT_REFUND_NO_MAX 64
#define WXV3_DESCRIPTION_MAX 127
#define WXV3_REASON_MAX 80
#define WXV3_PATH_MAX 2048
#define WXV3_STR_MAX 512                 /* any other string field */
#define WXV3_RANDOM_NONCE_LEN 32
#define WXV3_API_V3_KEY_LEN 32
#define WXV3_CERTS_MAX 16
#define WXV3_BEIJING_OFFSET (8 * 3600)

/* ------------------------------------------------------------------ */
/* small checks                                                        */

static bool is_empty(const char *s)
{
    return s == NULL || s[0] == '\0';
}

static bool str_is(const char *s, const char *want)
{
    return s != NULL && strcmp(s, want) == 0;
}

static bool all_chars(const char *s, size_t min, size_t max, const char *extra)
{
    size_t n;
    if (s == NULL)
        return false;
    n = strlen(s);
    if (n < min || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                  (extra != NULL && ch != '\0' && strchr(extra, ch) != NULL);
        if (!ok)
            return false;
    }
    return true;
}

static bool is_digits(const char *s, size_t min, size_t max)
{
    size_t n = s != NULL ? strlen(s) : 0;
    if (n < min || n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

static bool is_upper_hex(const char *s, size_t max)
{
    size_t n = s != NULL ? strlen(s) : 0;
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'F')))
            return false;
    return true;
}

static bool printable_ascii(const char *s, size_t max)
{
    size_t n = s != NULL ? strlen(s) : 0;
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
            return false;
    return true;
}

/* Length of s cut to at most max bytes without splitting a UTF-8 sequence. */
static size_t utf8_cut(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n <= max)
        return n;
    n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    return n;
}

static bool valid_out_trade_no(const char *s)
{
    return all_chars(s, WXV3_OUT_TRADE_NO_MIN, WXV3_OUT_TRADE_NO_MAX, "_-|*");
}

static bool valid_out_refund_no(const char *s)
{
    return all_chars(s, 1, WXV3_OUT_REFUND_NO_MAX, "_-|*@");
}

void wxv3_format_time(time_t t, char out[26])
{
    struct tm tm;
    time_t shifted = t + WXV3_BEIJING_OFFSET;
    if (gmtime_r(&shifted, &tm) == NULL) {
        memset(&tm, 0, sizeof tm);
        tm.tm_mday = 1;
        tm.tm_year = 70;
    }
    snprintf(out, 26, "%04u-%02u-%02uT%02u:%02u:%02u+08:00", (unsigned)(tm.tm_year + 1900) % 10000u,
             (unsigned)(tm.tm_mon + 1) % 100u, (unsigned)tm.tm_mday % 100u, (unsigned)tm.tm_hour % 100u,
             (unsigned)tm.tm_min % 100u, (unsigned)tm.tm_sec % 100u);
}

/* ------------------------------------------------------------------ */
/* signing and verification                                            */

pg_err wxv3_sign_request(const wxv3_client_t *c, const char *method, const char *path_query,
                         time_t timestamp, const char *nonce, const char *body, size_t body_len,
                         buf_t *authorization)
{
    buf_t msg, sig;
    pg_err rc;

    if (c == NULL || c->mch_key == NULL || !is_digits(c->mchid, 1, 32) ||
        !is_upper_hex(c->mch_serial_no, WXV3_SERIAL_MAX))
        return PG_ERR_CONFIG;
    if (!all_chars(method, 3, 7, NULL) || path_query == NULL || path_query[0] != '/' ||
        !printable_ascii(path_query, WXV3_PATH_MAX) || !all_chars(nonce, 1, WXV3_NONCE_MAX, NULL) ||
        timestamp < 0 || (body == NULL && body_len > 0) || body_len > WXV3_BODY_MAX)
        return PG_ERR_BAD_INPUT;
    for (const char *p = method; *p; p++)
        if (*p < 'A' || *p > 'Z')
            return PG_ERR_BAD_INPUT;
    buf_init(&msg, NULL);
    buf_init(&sig, NULL);
    buf_printf(&msg, "%s\n%s\n%lld\n%s\n", method, path_query, (long long)timestamp, nonce);
    if (body_len > 0)
        buf_append(&msg, body, body_len);
    buf_putc(&msg, '\n');
    rc = msg.failed ? PG_ERR_NOMEM : crypto_rsa_sha256_sign_b64(c->mch_key, msg.data, msg.len, &sig);
    if (rc == PG_OK) {
        rc = buf_printf(authorization,
                        WXV3_AUTH_SCHEMA " mchid=\"%s\",nonce_str=\"%s\",signature=\"%s\","
                        "timestamp=\"%lld\",serial_no=\"%s\"",
                        c->mchid, nonce, sig.data, (long long)timestamp, c->mch_serial_no);
    }
    buf_free(&msg);
    buf_free(&sig);
    return rc;
}

/* The key the serial names, or NULL: exactly one candidate, never a search
 * by trial. */
static const crypto_key_t *key_for_serial(const wxv3_client_t *c, const char *serial)
{
    if (!is_empty(c->pubkey_id) && c->pubkey != NULL && strcmp(serial, c->pubkey_id) == 0)
        return c->pubkey;
    for (size_t i = 0; i < c->platform_count; i++) {
        const wxv3_platform_key_t *p = &c->platform[i];
        if (!is_empty(p->serial) && p->key != NULL && strcmp(serial, p->serial) == 0)
            return p->key;
    }
    return NULL;
}

static pg_err check_sig_headers(const wxv3_sig_headers_t *h, time_t now, buf_t *reason)
{
    long long ts = 0;

    if (h == NULL || is_empty(h->timestamp) || is_empty(h->nonce) || is_empty(h->signature) ||
        is_empty(h->serial)) {
        buf_set_error(reason, "Wechatpay signature headers missing");
        return PG_ERR_BAD_SIGNATURE;
    }
    if (strncmp(h->signature, WXV3_SIGNTEST_PREFIX, strlen(WXV3_SIGNTEST_PREFIX)) == 0) {
        buf_set_error(reason, "signature test probe");
        return PG_ERR_BAD_SIGNATURE;
    }
    if (strlen(h->signature) > WXV3_SIGNATURE_MAX || !printable_ascii(h->nonce, WXV3_NONCE_MAX) ||
        !printable_ascii(h->serial, WXV3_SERIAL_MAX) || !is_digits(h->timestamp, 1, 12)) {
        buf_set_error(reason, "Wechatpay signature headers malformed");
        return PG_ERR_BAD_SIGNATURE;
    }
    for (const char *p = h->timestamp; *p; p++)
        ts = ts * 10 + (*p - '0');
    if (ts > (long long)now + WXV3_CLOCK_SKEW_MAX || ts < (long long)now - WXV3_CLOCK_SKEW_MAX) {
        buf_set_error(reason, "Wechatpay-Timestamp more than %d s off", WXV3_CLOCK_SKEW_MAX);
        return PG_ERR_BAD_SIGNATURE;
    }
    return PG_OK;
}

pg_err wxv3_verify(const wxv3_client_t *c, const wxv3_sig_headers_t *h, const char *body,
                   size_t body_len, time_t now, buf_t *reason)
{
    const crypto_key_t *key;
    buf_t msg;
    pg_err rc;

    if (c == NULL || (body == NULL && body_len > 0))
        return PG_ERR_BAD_SIGNATURE;
    if ((rc = check_sig_headers(h, now, reason)) != PG_OK)
        return rc;
    key = key_for_serial(c, h->serial);
    if (key == NULL) {
        buf_set_error(reason, "no key for Wechatpay-Serial");
        return PG_ERR_NOT_FOUND;
    }
    buf_init(&msg, NULL);
    buf_printf(&msg, "%s\n%s\n", h->timestamp, h->nonce);
    if (body_len > 0)
        buf_append(&msg, body, body_len);
    buf_putc(&msg, '\n');
    rc = msg.failed ? PG_ERR_NOMEM : crypto_rsa_sha256_verify_b64(key, msg.data, msg.len, h->signature);
    if (rc != PG_OK && rc != PG_ERR_NOMEM) {
        buf_set_error(reason, "Wechatpay-Signature does not verify");
        rc = PG_ERR_BAD_SIGNATURE;
    }
    buf_free(&msg);
    return rc;
}

/* ------------------------------------------------------------------ */
/* AEAD_AES_256_GCM                                                    */

pg_err wxv3_decrypt(const char *api_v3_key, const char *ciphertext_b64, const char *nonce,
                    const char *aad, buf_t *out)
{
    buf_t raw;
    size_t b64_len;
    pg_err rc;

    if (api_v3_key == NULL || strlen(api_v3_key) != WXV3_API_V3_KEY_LEN)
        return PG_ERR_CONFIG;
    if (is_empty(ciphertext_b64) || is_empty(nonce))
        return PG_ERR_BAD_INPUT;
    b64_len = strlen(ciphertext_b64);
    if (b64_len > (CRYPTO_GCM_CIPHER_MAX / 3 + 1) * 4)
        return PG_ERR_TOO_LARGE;
    if (aad == NULL)
        aad = "";
    buf_init(&raw, NULL);
    rc = crypto_base64_decode(ciphertext_b64, b64_len, &raw);
    if (rc == PG_OK)
        rc = crypto_aes256_gcm_decrypt(api_v3_key, nonce, strlen(nonce), aad, strlen(aad), raw.data,
                                       raw.len, out);
    buf_free(&raw);
    return rc;
}

/* ------------------------------------------------------------------ */
/* JSON reading                                                        */

static pg_err json_load_object(const char *text, size_t len, size_t max, json_t **out)
{
    json_error_t jerr;
    json_t *root;

    *out = NULL;
    if (text == NULL)
        return PG_ERR_BAD_INPUT;
    if (len > max)
        return PG_ERR_TOO_LARGE;
    root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        return PG_ERR_BAD_INPUT;
    if (!json_is_object(root)) {
        json_decref(root);
        return PG_ERR_BAD_INPUT;
    }
    *out = root;
    return PG_OK;
}

/* A string member: absent (or JSON null) -> NULL unless required; present
 * -> a string of 1..max bytes (an empty optional string reads as absent). */
static pg_err json_str(arena_t *a, const json_t *obj, const char *key, size_t max, bool required,
                       const char **out)
{
    const json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
    size_t n;

    *out = NULL;
    if (v == NULL || json_is_null(v))
        return required ? PG_ERR_BAD_INPUT : PG_OK;
    if (!json_is_string(v))
        return PG_ERR_BAD_INPUT;
    n = json_string_length(v);
    if (n > max || strlen(json_string_value(v)) != n)
        return PG_ERR_BAD_INPUT;
    if (n == 0)
        return required ? PG_ERR_BAD_INPUT : PG_OK;
    *out = arena_strndup(a, json_string_value(v), n);
    return *out != NULL ? PG_OK : PG_ERR_NOMEM;
}

/* An integer member in [min, max] (a JSON real such as 1.0 is refused);
 * absent -> -1 unless required. */
static pg_err json_fen(const json_t *obj, const char *key, int64_t min, int64_t max, bool required,
                       int64_t *out)
{
    const json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
    json_int_t n;

    *out = -1;
    if (v == NULL)
        return required ? PG_ERR_BAD_INPUT : PG_OK;
    if (!json_is_integer(v))
        return PG_ERR_BAD_INPUT;
    n = json_integer_value(v);
    if (n < min || n > max)
        return PG_ERR_BAD_INPUT;
    *out = (int64_t)n;
    return PG_OK;
}

/* An object member, absent -> NULL unless required. */
static pg_err json_obj(const json_t *obj, const char *key, bool required, const json_t **out)
{
    const json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (v == NULL)
        return required ? PG_ERR_BAD_INPUT : PG_OK;
    if (!json_is_object(v))
        return PG_ERR_BAD_INPUT;
    *out = v;
    return PG_OK;
}

static bool one_of(const char *s, const char *const *set)
{
    for (size_t i = 0; set[i] != NULL; i++)
        if (str_is(s, set[i]))
            return true;
    return false;
}

/* ------------------------------------------------------------------ */
/* JSON writing                                                        */

static pg_err json_put_str(json_t *obj, const char *key, const char *value)
{
    /* json_string refuses invalid UTF-8: the caller's text was bad. */
    json_t *v = json_string(value);
    if (v == NULL)
        return PG_ERR_BAD_INPUT;
    return json_object_set_new(obj, key, v) == 0 ? PG_OK : PG_ERR_NOMEM;
}

static pg_err json_put_strn(json_t *obj, const char *key, const char *value, size_t n)
{
    json_t *v = json_stringn(value, n);
    if (v == NULL)
        return PG_ERR_BAD_INPUT;
    return json_object_set_new(obj, key, v) == 0 ? PG_OK : PG_ERR_NOMEM;
}

static pg_err json_put_int(json_t *obj, const char *key, int64_t value)
{
    json_t *v = json_integer((json_int_t)value);
    if (v == NULL)
        return PG_ERR_NOMEM;
    return json_object_set_new(obj, key, v) == 0 ? PG_OK : PG_ERR_NOMEM;
}

static pg_err json_put_obj(json_t *obj, const char *key, json_t **child)
{
    *child = json_object();
    if (*child == NULL)
        return PG_ERR_NOMEM;
    return json_object_set_new(obj, key, *child) == 0 ? PG_OK : PG_ERR_NOMEM;
}

/* Dumps obj compactly, members in insertion order, UTF-8 kept as is. */
static pg_err json_dump_to(const json_t *obj, buf_t *out)
{
    char *text = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
    pg_err rc;
    if (text == NULL)
        return PG_ERR_NOMEM;
    rc = buf_puts(out, text);
    free(text);
    return rc;
}

static pg_err amount_obj(json_t *root, const char *first_key, int64_t first, const char *second_key,
                         int64_t second)
{
    json_t *amount;
    pg_err rc = json_put_obj(root, "amount", &amount);
    if (rc == PG_OK)
        rc = json_put_int(amount, first_key, first);
    if (rc == PG_OK && second_key != NULL)
        rc = json_put_int(amount, second_key, second);
    if (rc == PG_OK)
        rc = json_put_str(amount, "currency", "CNY");
    return rc;
}

/* ------------------------------------------------------------------ */
/* prepay                                                              */

static const char *kind_path(wxv3_kind_t k)
{
    switch (k) {
    case WXV3_NATIVE: return "native";
    case WXV3_JSAPI: return "jsapi";
    case WXV3_H5: return "h5";
    }
    return NULL;
}

static bool valid_ip(const char *s)
{
    unsigned char tmp[16];
    return s != NULL && (inet_pton(AF_INET, s, tmp) == 1 || inet_pton(AF_INET6, s, tmp) == 1);
}

static pg_err check_order(const wxv3_client_t *c, const wxv3_order_t *o)
{
    if (c == NULL || is_empty(c->appid) || !is_digits(c->mchid, 1, 32) || is_empty(c->notify_url))
        return PG_ERR_CONFIG;
    if (o == NULL || kind_path(o->kind) == NULL || !valid_out_trade_no(o->out_trade_no) ||
        is_empty(o->description) || o->total_fen < 1 || o->total_fen > MONEY_MAX_FEN ||
        o->expires_at < 0)
        return PG_ERR_BAD_INPUT;
    if (o->kind == WXV3_JSAPI && !all_chars(o->openid, 1, 128, "_-"))
        return PG_ERR_BAD_INPUT;
    if (o->kind == WXV3_H5 && !valid_ip(o->payer_client_ip))
        return PG_ERR_BAD_INPUT;
    return PG_OK;
}

static pg_err prepay_extras(json_t *root, const wxv3_order_t *o)
{
    json_t *payer, *scene, *h5;
    pg_err rc = PG_OK;

    if (o->kind == WXV3_JSAPI) {
        rc = json_put_obj(root, "payer", &payer);
        if (rc == PG_OK)
            rc = json_put_str(payer, "openid", o->openid);
    } else if (o->kind == WXV3_H5) {
        rc = json_put_obj(root, "scene_info", &scene);
        if (rc == PG_OK)
            rc = json_put_str(scene, "payer_client_ip", o->payer_client_ip);
        if (rc == PG_OK)
            rc = json_put_obj(scene, "h5_info", &h5);
        if (rc == PG_OK)
            rc = json_put_str(h5, "type", "Wap");
        if (rc == PG_OK && !is_empty(o->h5_app_name))
            rc = json_put_str(h5, "app_name", o->h5_app_name);
        if (rc == PG_OK && !is_empty(o->h5_app_url))
            rc = json_put_str(h5, "app_url", o->h5_app_url);
    }
    return rc;
}

pg_err wxv3_build_prepay(const wxv3_client_t *c, const wxv3_order_t *o, buf_t *path, buf_t *body)
{
    char expire[26];
    json_t *root = NULL;
    pg_err rc;

    if ((rc = check_order(c, o)) != PG_OK)
        return rc;
    root = json_object();
    if (root == NULL)
        return PG_ERR_NOMEM;
    rc = json_put_str(root, "appid", c->appid);
    if (rc == PG_OK)
        rc = json_put_str(root, "mchid", c->mchid);
    if (rc == PG_OK)
        rc = json_put_strn(root, "description", o->description,
                           utf8_cut(o->description, WXV3_DESCRIPTION_MAX));
    if (rc == PG_OK)
        rc = json_put_str(root, "out_trade_no", o->out_trade_no);
    if (rc == PG_OK && o->expires_at > 0) {
        wxv3_format_time(o->expires_at, expire);
        rc = json_put_str(root, "time_expire", expire);
    }
    if (rc == PG_OK)
        rc = json_put_str(root, "notify_url", c->notify_url);
    if (rc == PG_OK)
        rc = amount_obj(root, "total", o->total_fen, NULL, 0);
    if (rc == PG_OK)
        rc = prepay_extras(root, o);
    if (rc == PG_OK)
        rc = json_dump_to(root, body);
    if (rc == PG_OK)
        rc = buf_printf(path, "/v3/pay/transactions/%s", kind_path(o->kind));
    json_decref(root);
    return rc;
}

pg_err wxv3_parse_prepay(arena_t *a, wxv3_kind_t kind, const char *body, size_t len,
                         wxv3_prepay_t *out)
{
    const char *field = kind == WXV3_NATIVE ? "code_url" : kind == WXV3_JSAPI ? "prepay_id" : "h5_url";
    const char *value = NULL;
    json_t *root;
    pg_err rc;

    memset(out, 0, sizeof *out);
    if (kind_path(kind) == NULL)
        return PG_ERR_BAD_INPUT;
    if ((rc = json_load_object(body, len, WXV3_BODY_MAX, &root)) != PG_OK)
        return rc;
    rc = json_str(a, root, field, WXV3_STR_MAX, true, &value);
    if (rc == PG_OK && !printable_ascii(value, WXV3_STR_MAX))
        rc = PG_ERR_BAD_INPUT;
    json_decref(root);
    if (rc != PG_OK)
        return rc;
    if (kind == WXV3_NATIVE)
        out->code_url = value;
    else if (kind == WXV3_JSAPI)
        out->prepay_id = value;
    else
        out->h5_url = value;
    return PG_OK;
}

pg_err wxv3_jsapi_params(arena_t *a, const wxv3_client_t *c, const char *prepay_id, time_t now,
                         const char *nonce, kv_list_t *out)
{
    char random_nonce[WXV3_RANDOM_NONCE_LEN + 1];
    char ts[24];
    buf_t msg, sig, package;
    pg_err rc;

    kv_init(out, a);
    if (c == NULL || is_empty(c->appid) || c->mch_key == NULL)
        return PG_ERR_CONFIG;
    if (!all_chars(prepay_id, 1, 128, "_-") || now < 0)
        return PG_ERR_BAD_INPUT;
    if (nonce == NULL) {
        if ((rc = crypto_random_alnum(random_nonce, WXV3_RANDOM_NONCE_LEN)) != PG_OK)
            return rc;
        nonce = random_nonce;
    } else if (!all_chars(nonce, 1, WXV3_NONCE_MAX, NULL)) {
        return PG_ERR_BAD_INPUT;
    }
    snprintf(ts, sizeof ts, "%lld", (long long)now);
    buf_init(&package, a);
    buf_init(&msg, a);
    buf_init(&sig, a);
    buf_printf(&package, "prepay_id=%s", prepay_id);
    buf_printf(&msg, "%s\n%s\n%s\n%s\n", c->appid, ts, nonce, package.data);
    if (package.failed || msg.failed)
        return PG_ERR_NOMEM;
    if ((rc = crypto_rsa_sha256_sign_b64(c->mch_key, msg.data, msg.len, &sig)) != PG_OK)
        return rc;
    if ((rc = kv_add(out, "appId", c->appid)) != PG_OK || (rc = kv_add(out, "timeStamp", ts)) != PG_OK ||
        (rc = kv_add(out, "nonceStr", nonce)) != PG_OK ||
        (rc = kv_add(out, "package", package.data)) != PG_OK ||
        (rc = kv_add(out, "signType", "RSA")) != PG_OK || (rc = kv_add(out, "paySign", sig.data)) != PG_OK)
        return rc;
    return PG_OK;
}

/* ------------------------------------------------------------------ */
/* query and close                                                     */

pg_err wxv3_build_query(const wxv3_client_t *c, const char *out_trade_no, buf_t *path)
{
    if (c == NULL || !is_digits(c->mchid, 1, 32))
        return PG_ERR_CONFIG;
    if (!valid_out_trade_no(out_trade_no))
        return PG_ERR_BAD_INPUT;
    buf_puts(path, "/v3/pay/transactions/out-trade-no/");
    buf_append_urlencoded(path, out_trade_no);
    buf_printf(path, "?mchid=%s", c->mchid);
    return path->failed ? PG_ERR_NOMEM : PG_OK;
}

pg_err wxv3_build_close(const wxv3_client_t *c, const char *out_trade_no, buf_t *path, buf_t *body)
{
    if (c == NULL || !is_digits(c->mchid, 1, 32))
        return PG_ERR_CONFIG;
    if (!valid_out_trade_no(out_trade_no))
        return PG_ERR_BAD_INPUT;
    buf_puts(path, "/v3/pay/transactions/out-trade-no/");
    buf_append_urlencoded(path, out_trade_no);
    buf_puts(path, "/close");
    /* mchid is digits: nothing to escape. */
    buf_printf(body, "{\"mchid\":\"%s\"}", c->mchid);
    return path->failed || body->failed ? PG_ERR_NOMEM : PG_OK;
}

static const char *const trade_states[] = { "SUCCESS", "REFUND", "NOTPAY", "CLOSED", "REVOKED",
                                            "USERPAYING", "PAYERROR", NULL };

static pg_err transaction_amount(arena_t *a, const json_t *root, wxv3_transaction_t *t)
{
    const json_t *amount;
    const char *currency = NULL;
    pg_err rc = json_obj(root, "amount", false, &amount);

    if (rc == PG_OK && amount != NULL) {
        if ((rc = json_fen(amount, "total", 0, MONEY_MAX_FEN, true, &t->total_fen)) != PG_OK ||
            (rc = json_fen(amount, "payer_total", 0, MONEY_MAX_FEN, false, &t->payer_total_fen)) != PG_OK ||
            (rc = json_str(a, amount, "currency", 16, false, &currency)) != PG_OK)
            return rc;
        if (currency != NULL && !str_is(currency, "CNY"))
            return PG_ERR_BAD_INPUT;
    }
    return rc;
}

static pg_err transaction_fields(arena_t *a, const json_t *root, wxv3_transaction_t *t)
{
    const json_t *payer = NULL;
    pg_err rc;

    if ((rc = json_str(a, root, "appid", 64, true, &t->appid)) != PG_OK ||
        (rc = json_str(a, root, "mchid", 32, true, &t->mchid)) != PG_OK ||
        (rc = json_str(a, root, "out_trade_no", WXV3_OUT_TRADE_NO_MAX, true, &t->out_trade_no)) != PG_OK ||
        (rc = json_str(a, root, "transaction_id", 64, false, &t->transaction_id)) != PG_OK ||
        (rc = json_str(a, root, "trade_type", 32, false, &t->trade_type)) != PG_OK ||
        (rc = json_str(a, root, "trade_state", 32, true, &t->trade_state)) != PG_OK ||
        (rc = json_str(a, root, "success_time", 64, false, &t->success_time)) != PG_OK)
        return rc;
    if ((rc = transaction_amount(a, root, t)) != PG_OK)
        return rc;
    if ((rc = json_obj(root, "payer", false, &payer)) != PG_OK)
        return rc;
    return payer != NULL ? json_str(a, payer, "openid", 128, false, &t->openid) : PG_OK;
}

pg_err wxv3_parse_transaction(arena_t *a, const wxv3_client_t *c, const char *json, size_t len,
                              wxv3_transaction_t *out, buf_t *reason)
{
    json_t *root = NULL;
    pg_err rc;

    memset(out, 0, sizeof *out);
    out->total_fen = out->payer_total_fen = -1;
    if ((rc = json_load_object(json, len, WXV3_BODY_MAX, &root)) != PG_OK) {
        buf_set_error(reason, "transaction: not a JSON object");
        goto done;
    }
    if ((rc = transaction_fields(a, root, out)) != PG_OK) {
        buf_set_error(reason, "transaction: a field is missing or malformed");
        goto done;
    }
    if (c == NULL || !str_is(out->mchid, c->mchid) || !str_is(out->appid, c->appid)) {
        buf_set_error(reason, "transaction: mchid/appid not ours");
        rc = PG_ERR_MISMATCH;
        goto done;
    }
    rc = PG_ERR_BAD_INPUT;
    if (!one_of(out->trade_state, trade_states)) {
        buf_set_error(reason, "transaction: unknown trade_state");
        goto done;
    }
    if ((str_is(out->trade_state, "SUCCESS") || str_is(out->trade_state, "REFUND")) &&
        (out->transaction_id == NULL || out->total_fen < 1)) {
        buf_set_error(reason, "transaction: paid without transaction_id or amount");
        goto done;
    }
    rc = PG_OK;
done:
    json_decref(root);
    if (rc != PG_OK) {
        memset(out, 0, sizeof *out);
        out->total_fen = out->payer_total_fen = -1;
    }
    return rc;
}

/* ------------------------------------------------------------------ */
/* refunds                                                             */

pg_err wxv3_build_refund(const wxv3_client_t *c, const wxv3_refund_req_t *r, buf_t *path, buf_t *body)
{
    json_t *root;
    pg_err rc;

    if (c == NULL)
        return PG_ERR_CONFIG;
    if (r == NULL || !valid_out_trade_no(r->out_trade_no) || !valid_out_refund_no(r->out_refund_no) ||
        r->total_fen < 1 || r->total_fen > MONEY_MAX_FEN || r->refund_fen < 1 || r->refund_fen > r->total_fen)
        return PG_ERR_BAD_INPUT;
    root = json_object();
    if (root == NULL)
        return PG_ERR_NOMEM;
    rc = json_put_str(root, "out_trade_no", r->out_trade_no);
    if (rc == PG_OK)
        rc = json_put_str(root, "out_refund_no", r->out_refund_no);
    if (rc == PG_OK && !is_empty(r->reason))
        rc = json_put_strn(root, "reason", r->reason, utf8_cut(r->reason, WXV3_REASON_MAX));
    if (rc == PG_OK && !is_empty(c->refund_notify_url))
        rc = json_put_str(root, "notify_url", c->refund_notify_url);
    if (rc == PG_OK)
        rc = amount_obj(root, "refund", r->refund_fen, "total", r->total_fen);
    if (rc == PG_OK)
        rc = json_dump_to(root, body);
    if (rc == PG_OK)
        rc = buf_puts(path, "/v3/refund/domestic/refunds");
    json_decref(root);
    return rc;
}

pg_err wxv3_build_refund_query(const char *out_refund_no, buf_t *path)
{
    if (!valid_out_refund_no(out_refund_no))
        return PG_ERR_BAD_INPUT;
    buf_puts(path, "/v3/refund/domestic/refunds/");
    buf_append_urlencoded(path, out_refund_no);
    return path->failed ? PG_ERR_NOMEM : PG_OK;
}

static const char *const refund_states[] = { "SUCCESS", "CLOSED", "PROCESSING", "ABNORMAL", NULL };

static pg_err refund_fields(arena_t *a, const json_t *root, bool notification, wxv3_refund_t *r)
{
    const json_t *amount;
    pg_err rc;

    if ((rc = json_str(a, root, "refund_id", 64, true, &r->refund_id)) != PG_OK ||
        (rc = json_str(a, root, "out_refund_no", WXV3_OUT_REFUND_NO_MAX, true, &r->out_refund_no)) != PG_OK ||
        (rc = json_str(a, root, "transaction_id", 64, false, &r->transaction_id)) != PG_OK ||
        (rc = json_str(a, root, "out_trade_no", WXV3_OUT_TRADE_NO_MAX, false, &r->out_trade_no)) != PG_OK ||
        (rc = json_str(a, root, notification ? "refund_status" : "status", 32, true, &r->status)) != PG_OK ||
        (rc = json_str(a, root, "success_time", 64, false, &r->success_time)) != PG_OK ||
        (rc = json_str(a, root, "mchid", 32, notification, &r->mchid)) != PG_OK ||
        (rc = json_obj(root, "amount", true, &amount)) != PG_OK ||
        (rc = json_fen(amount, "refund", 1, MONEY_MAX_FEN, true, &r->refund_fen)) != PG_OK ||
        (rc = json_fen(amount, "total", 1, MONEY_MAX_FEN, true, &r->total_fen)) != PG_OK)
        return rc;
    return r->refund_fen <= r->total_fen && one_of(r->status, refund_states) ? PG_OK : PG_ERR_BAD_INPUT;
}

pg_err wxv3_parse_refund(arena_t *a, const wxv3_client_t *c, bool notification, const char *json,
                         size_t len, wxv3_refund_t *out, buf_t *reason)
{
    json_t *root = NULL;
    pg_err rc;

    memset(out, 0, sizeof *out);
    if ((rc = json_load_object(json, len, WXV3_BODY_MAX, &root)) != PG_OK) {
        buf_set_error(reason, "refund: not a JSON object");
        goto done;
    }
    if ((rc = refund_fields(a, root, notification, out)) != PG_OK) {
        buf_set_error(reason, "refund: a field is missing or malformed");
        goto done;
    }
    if (out->mchid != NULL && (c == NULL || !str_is(out->mchid, c->mchid))) {
        buf_set_error(reason, "refund: mchid not ours");
        rc = PG_ERR_MISMATCH;
    }
done:
    json_decref(root);
    if (rc != PG_OK)
        memset(out, 0, sizeof *out);
    return rc;
}

/* ------------------------------------------------------------------ */
/* notifications                                                       */

typedef struct wxv3_resource {
    const char *algorithm, *ciphertext, *nonce, *associated_data, *original_type;
} wxv3_resource_t;

static pg_err envelope_fields(arena_t *a, const json_t *root, wxv3_event_t *ev, wxv3_resource_t *res)
{
    const char *resource_type = NULL, *create_time = NULL;
    const json_t *r;
    pg_err rc;

    if ((rc = json_str(a, root, "id", 128, true, &ev->id)) != PG_OK ||
        (rc = json_str(a, root, "create_time", 64, false, &create_time)) != PG_OK ||
        (rc = json_str(a, root, "event_type", 64, true, &ev->event_type)) != PG_OK ||
        (rc = json_str(a, root, "resource_type", 64, true, &resource_type)) != PG_OK ||
        (rc = json_obj(root, "resource", true, &r)) != PG_OK ||
        (rc = json_str(a, r, "algorithm", 64, true, &res->algorithm)) != PG_OK ||
        (rc = json_str(a, r, "ciphertext", WXV3_BODY_MAX, true, &res->ciphertext)) != PG_OK ||
        (rc = json_str(a, r, "nonce", CRYPTO_GCM_NONCE_MAX, true, &res->nonce)) != PG_OK ||
        (rc = json_str(a, r, "associated_data", CRYPTO_GCM_AAD_MAX, false, &res->associated_data)) != PG_OK ||
        (rc = json_str(a, r, "original_type", 64, true, &res->original_type)) != PG_OK)
        return rc;
    if (!str_is(resource_type, "encrypt-resource") || !str_is(res->algorithm, "AEAD_AES_256_GCM"))
        return PG_ERR_BAD_INPUT;
    ev->original_type = res->original_type;
    return PG_OK;
}

pg_err wxv3_open_notification(arena_t *a, const wxv3_client_t *c, const wxv3_sig_headers_t *h,
                              const char *body, size_t len, time_t now, wxv3_event_t *out,
                              buf_t *reason)
{
    wxv3_resource_t res;
    json_t *root = NULL;
    buf_t plain;
    pg_err rc;

    memset(out, 0, sizeof *out);
    memset(&res, 0, sizeof res);
    if (body == NULL || len > WXV3_BODY_MAX) {
        buf_set_error(reason, "notification too large");
        return body == NULL ? PG_ERR_BAD_INPUT : PG_ERR_TOO_LARGE;
    }
    if ((rc = wxv3_verify(c, h, body, len, now, reason)) != PG_OK)
        return rc;
    if ((rc = json_load_object(body, len, WXV3_BODY_MAX, &root)) != PG_OK ||
        (rc = envelope_fields(a, root, out, &res)) != PG_OK) {
        buf_set_error(reason, "notification envelope malformed");
        goto done;
    }
    buf_init(&plain, a);
    rc = wxv3_decrypt(c->api_v3_key, res.ciphertext, res.nonce, res.associated_data, &plain);
    if (rc != PG_OK) {
        buf_set_error(reason, "notification resource does not decrypt");
        if (rc == PG_ERR_BAD_INPUT)
            rc = PG_ERR_BAD_SIGNATURE;   /* signed but undecodable: not ours to trust */
        goto done;
    }
    out->plaintext = plain.data;
    out->plaintext_len = plain.len;
done:
    json_decref(root);
    if (rc != PG_OK)
        memset(out, 0, sizeof *out);
    return rc;
}

/* ------------------------------------------------------------------ */
/* replies                                                             */

static void copy_code(char code[WXV3_CODE_MAX], const char *s)
{
    if (code != NULL)
        snprintf(code, WXV3_CODE_MAX, "%s", s != NULL ? s : "");
}

static void read_error_body(const char *body, size_t len, char code[WXV3_CODE_MAX], buf_t *err)
{
    arena_t a;
    json_t *root = NULL;
    const char *c = NULL, *m = NULL;

    arena_init(&a, 0);
    if (json_load_object(body, len, WXV3_BODY_MAX, &root) == PG_OK) {
        (void)json_str(&a, root, "code", WXV3_CODE_MAX - 1, false, &c);
        (void)json_str(&a, root, "message", WXV3_STR_MAX, false, &m);
    }
    if (c != NULL && all_chars(c, 1, WXV3_CODE_MAX - 1, "_"))
        copy_code(code, c);
    buf_set_error(err, "%s", m != NULL ? m : "error reply without message");
    json_decref(root);
    arena_free(&a);
}

pg_err wxv3_check_reply(const wxv3_client_t *c, long status, const wxv3_sig_headers_t *h,
                        const char *body, size_t len, time_t now, char code[WXV3_CODE_MAX],
                        buf_t *err)
{
    copy_code(code, "");
    if (len > WXV3_CERTS_BODY_MAX) {
        buf_set_error(err, "reply too large");
        return PG_ERR_TOO_LARGE;
    }
    if (status != 200 && status != 204) {
        /* Not trusted as a fact: shown, never acted on as a success. */
        read_error_body(body, len, code, err);
        return PG_ERR_UPSTREAM;
    }
    return wxv3_verify(c, h, body, len, now, err);
}

/* ------------------------------------------------------------------ */
/* platform certificates                                               */

static pg_err cert_entry(arena_t *a, const wxv3_client_t *c, const json_t *item, wxv3_cert_entry_t *e)
{
    wxv3_resource_t res;
    const json_t *enc;
    char serial[CRYPTO_X509_SERIAL_MAX + 1];
    buf_t plain;
    pg_err rc;

    memset(&res, 0, sizeof res);
    if (!json_is_object(item))
        return PG_ERR_BAD_INPUT;
    if ((rc = json_str(a, item, "serial_no", WXV3_SERIAL_MAX, true, &e->serial_no)) != PG_OK ||
        (rc = json_str(a, item, "effective_time", 64, true, &e->effective_time)) != PG_OK ||
        (rc = json_str(a, item, "expire_time", 64, true, &e->expire_time)) != PG_OK ||
        (rc = json_obj(item, "encrypt_certificate", true, &enc)) != PG_OK ||
        (rc = json_str(a, enc, "algorithm", 64, true, &res.algorithm)) != PG_OK ||
        (rc = json_str(a, enc, "ciphertext", WXV3_CERTS_BODY_MAX, true, &res.ciphertext)) != PG_OK ||
        (rc = json_str(a, enc, "nonce", CRYPTO_GCM_NONCE_MAX, true, &res.nonce)) != PG_OK ||
        (rc = json_str(a, enc, "associated_data", CRYPTO_GCM_AAD_MAX, false, &res.associated_data)) != PG_OK)
        return rc;
    if (!str_is(res.algorithm, "AEAD_AES_256_GCM") || !is_upper_hex(e->serial_no, WXV3_SERIAL_MAX))
        return PG_ERR_BAD_INPUT;
    buf_init(&plain, a);
    rc = wxv3_decrypt(c->api_v3_key, res.ciphertext, res.nonce, res.associated_data, &plain);
    if (rc != PG_OK)
        return rc == PG_ERR_BAD_INPUT ? PG_ERR_BAD_SIGNATURE : rc;
    if (crypto_x509_serial_hex(plain.data, plain.len, serial, NULL) != PG_OK)
        return PG_ERR_BAD_INPUT;
    if (strcmp(serial, e->serial_no) != 0)
        return PG_ERR_MISMATCH;
    e->pem = plain.data;
    e->pem_len = plain.len;
    return PG_OK;
}

pg_err wxv3_parse_certificates(arena_t *a, const wxv3_client_t *c, const char *json, size_t len,
                               wxv3_cert_entry_t **out, size_t *count, buf_t *reason)
{
    json_t *root = NULL;
    const json_t *data;
    wxv3_cert_entry_t *entries = NULL;
    size_t n = 0;
    pg_err rc;

    *out = NULL;
    *count = 0;
    if (c == NULL)
        return PG_ERR_CONFIG;
    if ((rc = json_load_object(json, len, WXV3_CERTS_BODY_MAX, &root)) != PG_OK)
        goto done;
    data = json_object_get(root, "data");
    rc = PG_ERR_BAD_INPUT;
    if (!json_is_array(data) || json_array_size(data) == 0 || json_array_size(data) > WXV3_CERTS_MAX)
        goto done;
    n = json_array_size(data);
    entries = arena_calloc(a, n * sizeof *entries);
    if (entries == NULL) {
        rc = PG_ERR_NOMEM;
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        if ((rc = cert_entry(a, c, json_array_get(data, i), &entries[i])) != PG_OK)
            goto done;
    *out = entries;
    *count = n;
done:
    if (rc != PG_OK)
        buf_set_error(reason, "certificates: %s", pg_err_name(rc));
    json_decref(root);
    return rc;
}

pg_err wxv3_encrypt_field(const wxv3_client_t *c, const char *plaintext, buf_t *ciphertext_b64,
                          const char **serial)
{
    const crypto_key_t *key = NULL;
    *serial = NULL;
    if (c == NULL || is_empty(plaintext))
        return PG_ERR_BAD_INPUT;
    if (!is_empty(c->pubkey_id) && c->pubkey != NULL) {
        key = c->pubkey;
        *serial = c->pubkey_id;
    } else if (c->platform_count > 0 && c->platform != NULL) {
        key = c->platform[0].key;
        *serial = c->platform[0].serial;
    }
    if (key == NULL || is_empty(*serial)) {
        *serial = NULL;
        return PG_ERR_CONFIG;
    }
    return crypto_rsa_oaep_sha1_encrypt_b64(key, plaintext, strlen(plaintext), ciphertext_b64);
}

void wxv3_ack_fail(const char *msg, buf_t *out)
{
    buf_puts(out, "{\"code\":\"FAIL\",\"message\":");
    buf_append_json_string(out, is_empty(msg) ? "FAIL" : msg);
    buf_putc(out, '}');
}

/* ------------------------------------------------------------------ */
/* calls                                                               */

static const char *const wxv3_reply_headers[] = { "Wechatpay-Timestamp", "Wechatpay-Nonce",
                                                  "Wechatpay-Signature", "Wechatpay-Serial", NULL };

static pg_err call_headers(arena_t *a, const wxv3_client_t *c, const char *method, const char *path,
                           const char *body, size_t body_len, time_t now, const char *serial,
                           const char **headers)
{
    char nonce[WXV3_RANDOM_NONCE_LEN + 1];
    buf_t auth;
    pg_err rc;

    if ((rc = crypto_random_alnum(nonce, WXV3_RANDOM_NONCE_LEN)) != PG_OK)
        return rc;
    buf_init(&auth, a);
    buf_puts(&auth, "Authorization: ");
    if ((rc = wxv3_sign_request(c, method, path, now, nonce, body, body_len, &auth)) != PG_OK)
        return rc;
    if (auth.failed)
        return PG_ERR_NOMEM;
    headers[0] = auth.data;
    headers[1] = "Accept: application/json";
    headers[2] = NULL;
    headers[3] = NULL;
    if (serial != NULL) {
        /* a request with an encrypted field names the key it used */
        if (!printable_ascii(serial, WXV3_SERIAL_MAX))
            return PG_ERR_CONFIG;
        if ((headers[2] = arena_printf(a, "Wechatpay-Serial: %s", serial)) == NULL)
            return PG_ERR_NOMEM;
    }
    return PG_OK;
}

/* The call's name for GET /metrics (src/util/metrics.c OPERATION_CALLS):
 * the path without the trade's or refund's number. */
static const char *metrics_call_name(const char *method, const char *path)
{
    static const char *const fixed[] = { "/v3/pay/transactions/native", "/v3/pay/transactions/jsapi",
                                         "/v3/pay/transactions/h5", "/v3/certificates",
                                         "/v3/bill/tradebill" };
    const char *q = strchr(path, '?');
    size_t n = q ? (size_t)(q - path) : strlen(path);
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        if (strlen(fixed[i]) == n && !strncmp(path, fixed[i], n))
            return fixed[i];
    }
    if (!strncmp(path, "/v3/pay/transactions/out-trade-no/", 34))
        return n > 6 && !strncmp(path + n - 6, "/close", 6) ? "/v3/pay/transactions/out-trade-no/close"
                                                             : "/v3/pay/transactions/out-trade-no";
    if (!strncmp(path, "/v3/refund/domestic/refunds", 27))
        return !strcmp(method, "GET") ? "/v3/refund/domestic/refunds/query" : "/v3/refund/domestic/refunds";
    if (!strncmp(path, "/v3/fund-app/mch-transfer/transfer-bills", 40))
        return !strcmp(method, "GET") ? "/v3/fund-app/mch-transfer/transfer-bills/query"
                                      : "/v3/fund-app/mch-transfer/transfer-bills";
    return "other";
}

static pg_err wxv3_call_unmetered(arena_t *a, const wxv3_client_t *c, const char *method, const char *path,
                                  const char *body, size_t body_len, const char *serial, time_t now,
                                  wxv3_reply_t *out, char code[WXV3_CODE_MAX], bool *sent, buf_t *err);

pg_err wxv3_call(arena_t *a, const wxv3_client_t *c, const char *method, const char *path,
                 const char *body, size_t body_len, time_t now, wxv3_reply_t *out,
                 char code[WXV3_CODE_MAX], buf_t *err)
{
    return wxv3_call_serial(a, c, method, path, body, body_len, NULL, now, out, code, err);
}

/* Every call that went out is counted, with its duration, for GET /metrics. */
pg_err wxv3_call_serial(arena_t *a, const wxv3_client_t *c, const char *method, const char *path,
                        const char *body, size_t body_len, const char *wechatpay_serial, time_t now,
                        wxv3_reply_t *out, char code[WXV3_CODE_MAX], buf_t *err)
{
    long long t0 = metrics_now_us();
    bool sent = false;
    pg_err rc = wxv3_call_unmetered(a, c, method, path, body, body_len, wechatpay_serial, now, out, code, &sent,
                                    err);
    if (sent)
        metrics_provider_call("wechat", metrics_call_name(method, path),
                              metrics_call_outcome(out->status >= 200 && out->status < 500, out->status >= 500, rc),
                              metrics_now_us() - t0);
    return rc;
}

static pg_err wxv3_call_unmetered(arena_t *a, const wxv3_client_t *c, const char *method, const char *path,
                                  const char *body, size_t body_len, const char *serial, time_t now,
                                  wxv3_reply_t *out, char code[WXV3_CODE_MAX], bool *sent, buf_t *err)
{
    const char *headers[4];
    httpc_request_t req;
    httpc_response_t resp;
    kv_list_t got;
    wxv3_sig_headers_t h;
    pg_err rc;

    memset(out, 0, sizeof *out);
    copy_code(code, "");
    if (c == NULL || is_empty(c->gateway))
        return PG_ERR_CONFIG;
    if ((rc = call_headers(a, c, method, path, body, body_len, now, serial, headers)) != PG_OK)
        return rc;
    memset(&req, 0, sizeof req);
    req.method = method;
    req.url = arena_printf(a, "%s%s", c->gateway, path);
    req.content_type = "application/json";
    req.headers = headers;
    req.body = body;
    req.body_len = body_len;
    req.capture = wxv3_reply_headers;
    if (req.url == NULL)
        return PG_ERR_NOMEM;
    *sent = true;
    rc = httpc_send(a, &req, &c->http, &resp, &got, err);
    out->status = resp.status;
    out->body = resp.body.data;
    out->len = resp.body.len;
    if (rc != PG_OK)
        return rc;
    h.timestamp = kv_get(&got, "Wechatpay-Timestamp");
    h.nonce = kv_get(&got, "Wechatpay-Nonce");
    h.signature = kv_get(&got, "Wechatpay-Signature");
    h.serial = kv_get(&got, "Wechatpay-Serial");
    out->headers = h;
    return wxv3_check_reply(c, resp.status, &h, resp.body.data, resp.body.len, now, code, err);
}

pg_err wxv3_prepay(arena_t *a, const wxv3_client_t *c, const wxv3_order_t *o, time_t now,
                   wxv3_prepay_t *out, char code[WXV3_CODE_MAX], buf_t *err)
{
    wxv3_reply_t reply;
    buf_t path, body;
    pg_err rc;

    memset(out, 0, sizeof *out);
    copy_code(code, "");
    buf_init(&path, a);
    buf_init(&body, a);
    if ((rc = wxv3_build_prepay(c, o, &path, &body)) != PG_OK)
        return rc;
    if ((rc = wxv3_call(a, c, "POST", path.data, body.data, body.len, now, &reply, code, err)) != PG_OK)
        return rc;
    if (reply.status != 200 || wxv3_parse_prepay(a, o->kind, reply.body, reply.len, out) != PG_OK) {
        buf_set_error(err, "prepay: the reply carries no %s", o->kind == WXV3_NATIVE ? "code_url"
                      : o->kind == WXV3_JSAPI ? "prepay_id" : "h5_url");
        return PG_ERR_UPSTREAM;
    }
    return PG_OK;
}

pg_err wxv3_query(arena_t *a, const wxv3_client_t *c, const char *out_trade_no, time_t now,
                  wxv3_transaction_t *out, char code[WXV3_CODE_MAX], buf_t *err)
{
    wxv3_reply_t reply;
    buf_t path;
    pg_err rc;

    memset(out, 0, sizeof *out);
    out->total_fen = out->payer_total_fen = -1;
    copy_code(code, "");
    buf_init(&path, a);
    if ((rc = wxv3_build_query(c, out_trade_no, &path)) != PG_OK)
        return rc;
    rc = wxv3_call(a, c, "GET", path.data, NULL, 0, now, &reply, code, err);
    if (rc == PG_ERR_UPSTREAM && reply.status == 404 && code != NULL && strcmp(code, "ORDER_NOT_EXIST") == 0)
        return PG_ERR_NOT_FOUND;
    if (rc != PG_OK)
        return rc;
    if (reply.status != 200)
        return PG_ERR_UPSTREAM;
    if ((rc = wxv3_parse_transaction(a, c, reply.body, reply.len, out, err)) != PG_OK)
        return rc == PG_ERR_MISMATCH ? rc : PG_ERR_UPSTREAM;
    if (strcmp(out->out_trade_no, out_trade_no) != 0) {
        buf_set_error(err, "query: the reply is for another out_trade_no");
        memset(out, 0, sizeof *out);
        out->total_fen = out->payer_total_fen = -1;
        return PG_ERR_MISMATCH;
    }
    return PG_OK;
}

pg_err wxv3_close(arena_t *a, const wxv3_client_t *c, const char *out_trade_no, time_t now,
                  char code[WXV3_CODE_MAX], buf_t *err)
{
    wxv3_reply_t reply;
    buf_t path, body;
    pg_err rc;

    copy_code(code, "");
    buf_init(&path, a);
    buf_init(&body, a);
    if ((rc = wxv3_build_close(c, out_trade_no, &path, &body)) != PG_OK)
        return rc;
    rc = wxv3_call(a, c, "POST", path.data, body.data, body.len, now, &reply, code, err);
    if (rc == PG_ERR_UPSTREAM && code != NULL && strcmp(code, "ORDERPAID") == 0)
        return PG_ERR_CONFLICT;
    if (rc == PG_OK && reply.status != 204)
        return PG_ERR_UPSTREAM;
    return rc;
}

/* The refund reply for our out_refund_no, else an unknown outcome. */
static pg_err refund_reply(arena_t *a, const wxv3_client_t *c, const wxv3_reply_t *reply,
                           const char *out_refund_no, wxv3_refund_t *out, buf_t *err)
{
    if (reply->status != 200 ||
        wxv3_parse_refund(a, c, false, reply->body, reply->len, out, err) != PG_OK ||
        strcmp(out->out_refund_no, out_refund_no) != 0) {
        memset(out, 0, sizeof *out);
        buf_set_error(err, "refund: the reply cannot be read as our refund: outcome unknown");
        return PG_ERR_TIMEOUT;
    }
    return PG_OK;
}

pg_err wxv3_refund(arena_t *a, const wxv3_client_t *c, const wxv3_refund_req_t *r, time_t now,
                   wxv3_refund_t *out, char code[WXV3_CODE_MAX], buf_t *err)
{
    wxv3_reply_t reply;
    buf_t path, body;
    pg_err rc;

    memset(out, 0, sizeof *out);
    copy_code(code, "");
    buf_init(&path, a);
    buf_init(&body, a);
    if ((rc = wxv3_build_refund(c, r, &path, &body)) != PG_OK)
        return rc;
    rc = wxv3_call(a, c, "POST", path.data, body.data, body.len, now, &reply, code, err);
    if (rc == PG_OK)
        return refund_reply(a, c, &reply, r->out_refund_no, out, err);
    if (rc == PG_ERR_CONFIG || rc == PG_ERR_BAD_INPUT)
        return rc;
    return wxv3_unsent_or_unknown(rc, &reply);
}

pg_err wxv3_unsent_or_unknown(pg_err rc, const wxv3_reply_t *reply)
{
    if (rc == PG_ERR_UPSTREAM && reply->status >= 400 && reply->status < 500 && reply->status != 429)
        return PG_ERR_CONFLICT;
    return PG_ERR_TIMEOUT;
}

pg_err wxv3_refund_query(arena_t *a, const wxv3_client_t *c, const char *out_refund_no, time_t now,
                         wxv3_refund_t *out, char code[WXV3_CODE_MAX], buf_t *err)
{
    wxv3_reply_t reply;
    buf_t path;
    pg_err rc;

    memset(out, 0, sizeof *out);
    copy_code(code, "");
    buf_init(&path, a);
    if ((rc = wxv3_build_refund_query(out_refund_no, &path)) != PG_OK)
        return rc;
    rc = wxv3_call(a, c, "GET", path.data, NULL, 0, now, &reply, code, err);
    if (rc == PG_ERR_UPSTREAM && reply.status == 404)
        return PG_ERR_NOT_FOUND;
    if (rc == PG_ERR_UPSTREAM && (reply.status == 0 || reply.status >= 500 || reply.status == 429))
        return PG_ERR_TIMEOUT;
    if (rc != PG_OK)
        return rc;
    if (reply.status != 200 || wxv3_parse_refund(a, c, false, reply.body, reply.len, out, err) != PG_OK)
        return PG_ERR_UPSTREAM;
    if (strcmp(out->out_refund_no, out_refund_no) != 0) {
        memset(out, 0, sizeof *out);
        return PG_ERR_MISMATCH;
    }
    return PG_OK;
}

pg_err wxv3_fetch_certificates(arena_t *a, const wxv3_client_t *c, time_t now,
                               wxv3_cert_entry_t **out, size_t *count, buf_t *err)
{
    wxv3_reply_t reply;
    char code[WXV3_CODE_MAX];
    pg_err rc;

    *out = NULL;
    *count = 0;
    if ((rc = wxv3_call(a, c, "GET", "/v3/certificates", NULL, 0, now, &reply, code, err)) != PG_OK)
        return rc;
    if (reply.status != 200)
        return PG_ERR_UPSTREAM;
    return wxv3_parse_certificates(a, c, reply.body, reply.len, out, count, err);
}

/* v3 writes times as RFC 3339 ("2026-11-24T20:15:00+08:00"); the use cases
 * take Beijing time as v2 writes it ("2026-11-24 20:15:00"). Anything else
 * is dropped (then the time of recording counts). */
const char *wxv3_beijing_time(arena_t *a, const char *rfc3339)
{
    char *out;
    if (!rfc3339 || strlen(rfc3339) != 25 || rfc3339[10] != 'T' || strcmp(rfc3339 + 19, "+08:00"))
        return NULL;
    out = arena_strdup(a, rfc3339);
    if (!out)
        return NULL;
    out[10] = ' ';
    out[19] = '\0';
    return out;
}
