/* alipay: the Alipay open-API protocol adapter (see include/alipay.h).
 *
 * Owns the wire rules: the string to sign, RSA2 request signing, pay URLs,
 * the gateway reply check (signature over the raw response text, located by
 * a string-aware scanner, never over a re-serialised object) and
 * notification/return verification. Bytes in, facts out: no database, no
 * FastCGI, no policy about what a verified fact means for an order. */
#include "alipay.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "metrics.h"
#include "money.h"
#include "text.h"

#define ALIPAY_SUCCESS_CODE "10000"
/* Nesting bound for the reply scanner; Alipay replies are a few levels deep. */
#define ALIPAY_MAX_DEPTH 64
#define ALIPAY_FORM_CT "application/x-www-form-urlencoded;charset=utf-8"

static int is_empty(const char *s)
{
    return s == NULL || s[0] == '\0';
}

static int map_trade_status(const char *s, alipay_trade_status_t *out);

/* ------------------------------------------------------------------ */
/* Time                                                                */

void alipay_format_time(time_t t, char out[20])
{
    /* Beijing time is UTC+8 all year (no DST since 1991): shift and use
     * gmtime_r, so the process TZ never matters. */
    struct tm tm;
    time_t shifted = t + 8 * 3600;

    out[0] = '\0';
    if (gmtime_r(&shifted, &tm) == NULL)
        return;
    if (strftime(out, 20, "%Y-%m-%d %H:%M:%S", &tm) == 0)
        out[0] = '\0';
}

/* ------------------------------------------------------------------ */
/* String to sign                                                      */

static int cmp_pair_key(const void *a, const void *b)
{
    const kv_pair_t *const *pa = a;
    const kv_pair_t *const *pb = b;
    /* strcmp compares as unsigned char: byte order, as Alipay sorts. */
    return strcmp((*pa)->key, (*pb)->key);
}

pg_err alipay_sign_content(const kv_list_t *params, bool drop_sign_type, buf_t *out)
{
    const kv_pair_t **sorted = NULL;
    size_t i, n = params->count;
    int first = 1;
    pg_err rc = PG_OK;

    if (n == 0)
        return PG_OK;
    sorted = malloc(n * sizeof *sorted);
    if (sorted == NULL)
        return PG_ERR_NOMEM;
    for (i = 0; i < n; i++) {
        if (params->items[i].key == NULL || params->items[i].key[0] == '\0') {
            rc = PG_ERR_BAD_INPUT;
            goto done;
        }
        sorted[i] = &params->items[i];
    }
    qsort(sorted, n, sizeof *sorted, cmp_pair_key);

    for (i = 0; i < n; i++) {
        const kv_pair_t *p = sorted[i];
        /* A repeated key (even "sign" or an empty one) makes the signed
         * meaning ambiguous: refuse rather than pick one. */
        if (i + 1 < n && strcmp(p->key, sorted[i + 1]->key) == 0) {
            rc = PG_ERR_BAD_INPUT;
            goto done;
        }
        if (strcmp(p->key, "sign") == 0)
            continue;
        if (drop_sign_type && strcmp(p->key, "sign_type") == 0)
            continue;
        if (is_empty(p->value))
            continue;
        if (!first)
            buf_putc(out, '&');
        first = 0;
        buf_puts(out, p->key);
        buf_putc(out, '=');
        buf_puts(out, p->value);
    }
    if (out->failed)
        rc = PG_ERR_NOMEM;
done:
    free(sorted);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Requests                                                            */

pg_err alipay_sign_request(const alipay_client_t *c, const char *method,
                           const char *biz_content, bool with_return_url,
                           time_t fixed_now, kv_list_t *params_out)
{
    char ts[20];
    buf_t content, sig;
    pg_err rc;

    if (c == NULL || is_empty(c->app_id) || c->app_private_key == NULL)
        return PG_ERR_CONFIG;
    if (is_empty(method))
        return PG_ERR_BAD_INPUT;

    alipay_format_time(fixed_now != 0 ? fixed_now : time(NULL), ts);
    if (ts[0] == '\0')
        return PG_ERR_INTERNAL;

    if ((rc = kv_add(params_out, "app_id", c->app_id)) != PG_OK ||
        (rc = kv_add(params_out, "method", method)) != PG_OK ||
        (rc = kv_add(params_out, "format", "JSON")) != PG_OK ||
        (rc = kv_add(params_out, "charset", "utf-8")) != PG_OK ||
        (rc = kv_add(params_out, "sign_type", "RSA2")) != PG_OK ||
        (rc = kv_add(params_out, "timestamp", ts)) != PG_OK ||
        (rc = kv_add(params_out, "version", "1.0")) != PG_OK)
        return rc;
    if (!is_empty(c->app_cert_sn) &&
        ((rc = kv_add(params_out, "app_cert_sn", c->app_cert_sn)) != PG_OK ||
         (rc = kv_add(params_out, "alipay_root_cert_sn",
                      c->alipay_root_cert_sn != NULL ? c->alipay_root_cert_sn : "")) != PG_OK))
        return rc;
    if (!is_empty(c->notify_url) && (rc = kv_add(params_out, "notify_url", c->notify_url)) != PG_OK)
        return rc;
    if (with_return_url && !is_empty(c->return_url) &&
        (rc = kv_add(params_out, "return_url", c->return_url)) != PG_OK)
        return rc;
    if (!is_empty(biz_content) && (rc = kv_add(params_out, "biz_content", biz_content)) != PG_OK)
        return rc;

    buf_init(&content, params_out->arena);
    buf_init(&sig, params_out->arena);
    rc = alipay_sign_content(params_out, false, &content);
    if (rc == PG_OK)
        rc = crypto_rsa_sha256_sign_b64(c->app_private_key, content.data, content.len, &sig);
    if (rc == PG_OK)
        rc = kv_add(params_out, "sign", sig.data);
    buf_free(&content);
    buf_free(&sig);
    return rc;
}

/* k=v&k=v with both sides URL-encoded (RFC 3986). */
static pg_err append_form(buf_t *b, const kv_list_t *params)
{
    size_t i;
    for (i = 0; i < params->count; i++) {
        if (i > 0)
            buf_putc(b, '&');
        buf_append_urlencoded(b, params->items[i].key);
        buf_putc(b, '=');
        buf_append_urlencoded(b, params->items[i].value);
    }
    return b->failed ? PG_ERR_NOMEM : PG_OK;
}

static pg_err json_set_str(json_t *obj, const char *key, const char *value)
{
    /* json_string refuses invalid UTF-8: the caller's text was bad. */
    json_t *v = json_string(value);
    if (v == NULL)
        return PG_ERR_BAD_INPUT;
    if (json_object_set_new(obj, key, v) != 0)
        return PG_ERR_NOMEM;
    return PG_OK;
}

/* biz_content for a trade, fields in a fixed order (jansson keeps insertion
 * order), escaped by jansson. quit_url and product_code may be NULL. */
static pg_err trade_biz_content(arena_t *a, const alipay_trade_t *t, const char *product_code,
                                const char *quit_url, char **out)
{
    char yuan[MONEY_YUAN_BUFSZ], expire[20];
    json_t *obj = NULL;
    char *text = NULL;
    buf_t subject;
    pg_err rc;

    if (t == NULL || is_empty(t->out_trade_no) || is_empty(t->subject) ||
        t->amount_fen <= 0 || t->amount_fen > MONEY_MAX_FEN)
        return PG_ERR_BAD_INPUT;
    money_format_yuan(t->amount_fen, yuan);
    /* the product's title, without what Alipay's subject must not carry */
    buf_init(&subject, a);
    if (!text_alipay_subject(t->subject, TEXT_ALIPAY_SUBJECT_MAX, &subject))
        return PG_ERR_BAD_INPUT;
    if (subject.failed)
        return PG_ERR_NOMEM;

    obj = json_object();
    if (obj == NULL)
        return PG_ERR_NOMEM;
    if ((rc = json_set_str(obj, "out_trade_no", t->out_trade_no)) != PG_OK ||
        (rc = json_set_str(obj, "total_amount", yuan)) != PG_OK ||
        (rc = json_set_str(obj, "subject", subject.data)) != PG_OK)
        goto done;
    if (product_code != NULL && (rc = json_set_str(obj, "product_code", product_code)) != PG_OK)
        goto done;
    if (t->expires_at != 0) {
        alipay_format_time(t->expires_at, expire);
        if (expire[0] == '\0') {
            rc = PG_ERR_BAD_INPUT;
            goto done;
        }
        if ((rc = json_set_str(obj, "time_expire", expire)) != PG_OK)
            goto done;
    }
    if (!is_empty(quit_url) && (rc = json_set_str(obj, "quit_url", quit_url)) != PG_OK)
        goto done;

    text = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (text == NULL) {
        rc = PG_ERR_NOMEM;
        goto done;
    }
    *out = arena_strdup(a, text);
    rc = *out != NULL ? PG_OK : PG_ERR_NOMEM;
done:
    free(text);
    json_decref(obj);
    return rc;
}

pg_err alipay_build_pay_url(arena_t *a, const alipay_client_t *c, alipay_web_method_t m,
                            const alipay_trade_t *t, time_t fixed_now, buf_t *url_out)
{
    const char *method, *product_code, *quit_url = NULL;
    char *biz = NULL;
    kv_list_t params;
    size_t glen;
    pg_err rc;

    if (c == NULL || is_empty(c->gateway))
        return PG_ERR_CONFIG;
    if (m == ALIPAY_WAP) {
        method = "alipay.trade.wap.pay";
        product_code = "QUICK_WAP_WAY";
        quit_url = t != NULL ? t->quit_url : NULL;
    } else {
        method = "alipay.trade.page.pay";
        product_code = "FAST_INSTANT_TRADE_PAY";
    }
    if ((rc = trade_biz_content(a, t, product_code, quit_url, &biz)) != PG_OK)
        return rc;

    kv_init(&params, a);
    if ((rc = alipay_sign_request(c, method, biz, true, fixed_now, &params)) != PG_OK)
        return rc;

    buf_puts(url_out, c->gateway);
    glen = strlen(c->gateway);
    if (c->gateway[glen - 1] != '?' && c->gateway[glen - 1] != '&')
        buf_putc(url_out, strchr(c->gateway, '?') != NULL ? '&' : '?');
    return append_form(url_out, &params);
}

/* ------------------------------------------------------------------ */
/* Reply scanner                                                       */

static void skip_ws(const char **pp, const char *end)
{
    const char *p = *pp;
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    *pp = p;
}

/* *pp at '"': moves past the closing quote. 0 on truncation or a raw
 * control byte. *has_escape set when a backslash was seen. */
static int skip_string(const char **pp, const char *end, int *has_escape)
{
    const char *p = *pp + 1;
    while (p < end) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '"') {
            *pp = p + 1;
            return 1;
        }
        if (ch == '\\') {
            *has_escape = 1;
            p += 2;
            continue;
        }
        if (ch < 0x20)
            return 0;
        p++;
    }
    return 0;
}

/* Skips one JSON value starting at *pp. Objects and arrays are matched
 * bracket by bracket with string awareness; their inner syntax is left to
 * jansson (the span is parsed again once its signature holds). */
static int skip_value(const char **pp, const char *end)
{
    const char *p = *pp;
    int esc = 0;

    if (p >= end)
        return 0;
    if (*p == '"') {
        if (!skip_string(&p, end, &esc))
            return 0;
    } else if (*p == '{' || *p == '[') {
        char stack[ALIPAY_MAX_DEPTH];
        size_t depth = 0;
        while (p < end) {
            char ch = *p;
            if (ch == '"') {
                if (!skip_string(&p, end, &esc))
                    return 0;
                continue;
            }
            if (ch == '{' || ch == '[') {
                if (depth == ALIPAY_MAX_DEPTH)
                    return 0;
                stack[depth++] = ch == '{' ? '}' : ']';
            } else if (ch == '}' || ch == ']') {
                if (depth == 0 || stack[depth - 1] != ch)
                    return 0;
                depth--;
                if (depth == 0) {
                    p++;
                    break;
                }
            }
            p++;
        }
        if (depth != 0)
            return 0;
    } else {
        const char *start = p;
        while (p < end && ((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
                           (*p >= 'A' && *p <= 'Z') || *p == '.' || *p == '+' || *p == '-'))
            p++;
        if (p == start)
            return 0;
    }
    *pp = p;
    return 1;
}

/* Decodes a raw JSON string token (with its quotes) through jansson, which
 * handles every escape ("\/" in base64 signatures included). */
static char *decode_json_string(arena_t *a, const char *raw, size_t n)
{
    json_t *v = json_loadb(raw, n, JSON_DECODE_ANY, NULL);
    char *s = NULL;
    if (v != NULL && json_is_string(v))
        s = arena_strndup(a, json_string_value(v), json_string_length(v));
    json_decref(v);
    return s;
}

static int key_is(const char *raw, size_t n, int has_escape, const char *want)
{
    size_t wlen = strlen(want);
    int eq = 0;
    json_t *v;

    if (!has_escape)
        return n - 2 == wlen && memcmp(raw + 1, want, wlen) == 0;
    v = json_loadb(raw, n, JSON_DECODE_ANY, NULL);
    if (v != NULL && json_is_string(v))
        eq = json_string_length(v) == wlen && memcmp(json_string_value(v), want, wlen) == 0;
    json_decref(v);
    return eq;
}

/* Walks the top-level object completely (so truncation anywhere is seen).
 * PG_ERR_NOT_FOUND when well formed but `key` is absent; PG_ERR_BAD_INPUT
 * when malformed, when `key` is not an object, or when `key` or "sign"
 * repeats. *sign_out is NULL when there is no "sign". */
static pg_err scan_reply(arena_t *a, const char *body, size_t len, const char *key,
                         const char **span, size_t *span_len, char **sign_out, char **cert_sn_out)
{
    const char *p = body, *end = body + len;
    const char *found = NULL, *sign_raw = NULL, *sn_raw = NULL;
    size_t found_len = 0, sign_raw_len = 0, sn_raw_len = 0;

    if (body == NULL || key == NULL)
        return PG_ERR_BAD_INPUT;
    skip_ws(&p, end);
    if (p >= end || *p != '{')
        return PG_ERR_BAD_INPUT;
    p++;
    skip_ws(&p, end);
    if (p < end && *p == '}') {
        p++;
    } else {
        for (;;) {
            const char *kstart = p, *vstart;
            size_t klen;
            int esc = 0;

            if (p >= end || *p != '"' || !skip_string(&p, end, &esc))
                return PG_ERR_BAD_INPUT;
            klen = (size_t)(p - kstart);
            skip_ws(&p, end);
            if (p >= end || *p != ':')
                return PG_ERR_BAD_INPUT;
            p++;
            skip_ws(&p, end);
            vstart = p;
            if (!skip_value(&p, end))
                return PG_ERR_BAD_INPUT;

            if (key_is(kstart, klen, esc, key)) {
                if (found != NULL || *vstart != '{')
                    return PG_ERR_BAD_INPUT;
                found = vstart;
                found_len = (size_t)(p - vstart);
            } else if (key_is(kstart, klen, esc, "sign")) {
                if (sign_raw != NULL || *vstart != '"')
                    return PG_ERR_BAD_INPUT;
                sign_raw = vstart;
                sign_raw_len = (size_t)(p - vstart);
            } else if (key_is(kstart, klen, esc, "alipay_cert_sn")) {
                if (sn_raw != NULL || *vstart != '"')
                    return PG_ERR_BAD_INPUT;
                sn_raw = vstart;
                sn_raw_len = (size_t)(p - vstart);
            }

            skip_ws(&p, end);
            if (p >= end)
                return PG_ERR_BAD_INPUT;
            if (*p == ',') {
                p++;
                skip_ws(&p, end);
                continue;
            }
            if (*p != '}')
                return PG_ERR_BAD_INPUT;
            p++;
            break;
        }
    }
    skip_ws(&p, end);
    if (p != end)
        return PG_ERR_BAD_INPUT;
    if (found == NULL)
        return PG_ERR_NOT_FOUND;

    if (sign_out != NULL) {
        *sign_out = NULL;
        if (sign_raw != NULL) {
            *sign_out = decode_json_string(a, sign_raw, sign_raw_len);
            if (*sign_out == NULL)
                return PG_ERR_BAD_INPUT;
        }
    }
    if (cert_sn_out != NULL) {
        *cert_sn_out = NULL;
        if (sn_raw != NULL && (*cert_sn_out = decode_json_string(a, sn_raw, sn_raw_len)) == NULL)
            return PG_ERR_BAD_INPUT;
    }
    *span = found;
    *span_len = found_len;
    return PG_OK;
}

pg_err alipay_extract_response(arena_t *a, const char *body, size_t len, const char *key,
                               const char **span, size_t *span_len, char **sign_out)
{
    pg_err rc = scan_reply(a, body, len, key, span, span_len, sign_out, NULL);
    return rc == PG_ERR_NOT_FOUND ? PG_ERR_BAD_INPUT : rc;
}

/* ------------------------------------------------------------------ */
/* Server calls                                                        */

/* Copies s into a fixed field, cutting at a UTF-8 character boundary. */
static void copy_field(char *dst, size_t cap, const char *s)
{
    size_t n = strlen(s);
    if (n >= cap) {
        n = cap - 1;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    memcpy(dst, s, n);
    dst[n] = '\0';
}

static const char *obj_str(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Fills code/sub_code/sub_msg from the response object; msg goes to *msg_out. */
static pg_err parse_codes(arena_t *a, const char *span, size_t len, alipay_reply_t *reply,
                          char **msg_out)
{
    json_t *obj = json_loadb(span, len, 0, NULL);
    const char *s;

    *msg_out = NULL;
    if (obj == NULL || !json_is_object(obj)) {
        json_decref(obj);
        return PG_ERR_BAD_INPUT;
    }
    if ((s = obj_str(obj, "code")) != NULL)
        copy_field(reply->code, sizeof reply->code, s);
    if ((s = obj_str(obj, "sub_code")) != NULL)
        copy_field(reply->sub_code, sizeof reply->sub_code, s);
    if ((s = obj_str(obj, "sub_msg")) != NULL)
        copy_field(reply->sub_msg, sizeof reply->sub_msg, s);
    if ((s = obj_str(obj, "msg")) != NULL)
        *msg_out = arena_strdup(a, s);
    json_decref(obj);
    return PG_OK;
}

static void set_code_err(buf_t *err, const alipay_reply_t *reply, const char *msg)
{
    buf_set_error(err, "alipay: code=%s msg=%s sub_code=%s sub_msg=%s",
            reply->code[0] ? reply->code : "(none)", msg != NULL ? msg : "",
            reply->sub_code, reply->sub_msg);
}

pg_err alipay_check_response(arena_t *a, const alipay_client_t *c, const char *method,
                             const char *body, size_t len, alipay_reply_t *reply, buf_t *err)
{
    const char *span = NULL;
    size_t span_len = 0, i;
    char *key, *sign = NULL, *msg = NULL, *cert_sn = NULL;
    int is_error = 0;
    pg_err rc;

    memset(reply, 0, sizeof *reply);
    if (c == NULL || c->alipay_public_key == NULL || is_empty(method)) {
        buf_set_error(err, "alipay: no Alipay public key configured");
        return PG_ERR_CONFIG;
    }
    key = arena_printf(a, "%s_response", method);
    if (key == NULL)
        return PG_ERR_NOMEM;
    for (i = 0; key[i] != '\0'; i++)
        if (key[i] == '.')
            key[i] = '_';

    rc = scan_reply(a, body, len, key, &span, &span_len, &sign, &cert_sn);
    if (rc == PG_ERR_NOT_FOUND) {
        rc = scan_reply(a, body, len, "error_response", &span, &span_len, &sign, &cert_sn);
        is_error = 1;
    }
    if (rc == PG_ERR_NOMEM)
        return rc;
    if (rc != PG_OK) {
        buf_set_error(err, "alipay: malformed reply to %s (%zu bytes)", method, len);
        return PG_ERR_UPSTREAM;
    }

    if (is_empty(sign)) {
        /* Unsigned replies happen for errors (e.g. our own bad signature);
         * an unsigned success is never believed. */
        if (parse_codes(a, span, span_len, reply, &msg) != PG_OK) {
            memset(reply, 0, sizeof *reply);
            buf_set_error(err, "alipay: malformed reply object for %s", method);
            return PG_ERR_UPSTREAM;
        }
        if (is_error || strcmp(reply->code, ALIPAY_SUCCESS_CODE) != 0) {
            set_code_err(err, reply, msg);
            return PG_ERR_UPSTREAM;
        }
        memset(reply, 0, sizeof *reply);
        buf_set_error(err, "alipay: unsigned success reply to %s", method);
        return PG_ERR_BAD_SIGNATURE;
    }

    if (!is_empty(c->alipay_cert_sn) &&
        (cert_sn == NULL || !crypto_ct_streq(cert_sn, c->alipay_cert_sn))) {
        /* Certificate mode: a signed reply names the certificate it was
         * signed under; another one (Alipay rotated it, or not Alipay) is
         * not checked against a key we did not configure. */
        buf_set_error(err, "alipay: reply to %s is signed under alipay_cert_sn %.40s, configured %s: "
                "download Alipay's current certificate (alipay_cert)", method,
                cert_sn != NULL ? cert_sn : "(none)", c->alipay_cert_sn);
        return PG_ERR_BAD_SIGNATURE;
    }
    if (crypto_rsa_sha256_verify_b64(c->alipay_public_key, span, span_len, sign) != PG_OK) {
        buf_set_error(err, "alipay: reply signature does not verify (%s)", method);
        return PG_ERR_BAD_SIGNATURE;
    }
    if (parse_codes(a, span, span_len, reply, &msg) != PG_OK) {
        memset(reply, 0, sizeof *reply);
        buf_set_error(err, "alipay: malformed reply object for %s", method);
        return PG_ERR_UPSTREAM;
    }
    reply->json = span;
    reply->json_len = span_len;
    if (is_error || strcmp(reply->code, ALIPAY_SUCCESS_CODE) != 0) {
        set_code_err(err, reply, msg);
        return PG_ERR_UPSTREAM;
    }
    return PG_OK;
}

/* How far a call got: the server-call wrappers map failures by stage, since
 * "nothing was sent" and "sent, answer unknown" differ for refunds. */
typedef enum {
    CALL_NOT_SENT,      /* configuration or signing failed */
    CALL_TRANSPORT,     /* httpc failed: timeout, connection, TLS */
    CALL_HTTP_STATUS,   /* an HTTP status other than 200 (in *http_status) */
    CALL_REPLY          /* alipay_check_response ran */
} call_stage_t;

static pg_err call_staged_unmetered(arena_t *a, const alipay_client_t *c, const char *method,
                                    const char *biz_content, alipay_reply_t *reply, call_stage_t *stage,
                                    long *http_status, buf_t *err)
{
    kv_list_t params;
    buf_t form;
    httpc_response_t resp;
    pg_err rc;

    memset(reply, 0, sizeof *reply);
    *stage = CALL_NOT_SENT;
    *http_status = 0;
    if (c == NULL || is_empty(c->gateway)) {
        buf_set_error(err, "alipay: no gateway configured");
        return PG_ERR_CONFIG;
    }
    kv_init(&params, a);
    rc = alipay_sign_request(c, method, biz_content, false, 0, &params);
    if (rc != PG_OK) {
        buf_set_error(err, "alipay: cannot sign %s request: %s", method != NULL ? method : "",
                pg_err_name(rc));
        return rc;
    }
    buf_init(&form, a);
    if ((rc = append_form(&form, &params)) != PG_OK)
        return rc;

    *stage = CALL_TRANSPORT;
    rc = httpc_post(a, c->gateway, ALIPAY_FORM_CT, form.data, form.len, &c->http, &resp, err);
    if (rc == PG_ERR_UPSTREAM && resp.status >= 500) {
        *stage = CALL_HTTP_STATUS;   /* httpc refuses 5xx itself */
        *http_status = resp.status;
    }
    if (rc != PG_OK)
        return rc;
    if (resp.status != 200) {
        *stage = CALL_HTTP_STATUS;
        *http_status = resp.status;
        buf_set_error(err, "alipay: HTTP %ld from gateway for %s", resp.status, method);
        return PG_ERR_UPSTREAM;
    }
    *stage = CALL_REPLY;
    return alipay_check_response(a, c, method, resp.body.data, resp.body.len, reply, err);
}

/* Every call that went out is counted, with its duration, for GET /metrics. */
static pg_err call_staged(arena_t *a, const alipay_client_t *c, const char *method,
                          const char *biz_content, alipay_reply_t *reply, call_stage_t *stage,
                          long *http_status, buf_t *err)
{
    long long t0 = metrics_now_us();
    pg_err rc = call_staged_unmetered(a, c, method, biz_content, reply, stage, http_status, err);
    if (*stage != CALL_NOT_SENT)
        metrics_provider_call("alipay", method, metrics_call_outcome(*stage == CALL_REPLY, *stage == CALL_HTTP_STATUS, rc),
                              metrics_now_us() - t0);
    return rc;
}

pg_err alipay_call(arena_t *a, const alipay_client_t *c, const char *method,
                   const char *biz_content, alipay_reply_t *reply, buf_t *err)
{
    call_stage_t stage;
    long status;
    return call_staged(a, c, method, biz_content, reply, &stage, &status, err);
}

pg_err alipay_precreate(arena_t *a, const alipay_client_t *c, const alipay_trade_t *t,
                        char **qr_code, buf_t *err)
{
    alipay_reply_t reply;
    char *biz = NULL;
    json_t *obj;
    const char *qr;
    pg_err rc;

    *qr_code = NULL;
    rc = trade_biz_content(a, t, NULL, NULL, &biz);
    if (rc != PG_OK) {
        buf_set_error(err, "alipay: bad trade for precreate");
        return rc;
    }
    rc = alipay_call(a, c, "alipay.trade.precreate", biz, &reply, err);
    if (rc != PG_OK)
        return rc;

    obj = json_loadb(reply.json, reply.json_len, 0, NULL);
    qr = obj_str(obj, "qr_code");
    if (is_empty(qr)) {
        buf_set_error(err, "alipay: precreate reply without qr_code");
        rc = PG_ERR_UPSTREAM;
    } else {
        *qr_code = arena_strdup(a, qr);
        rc = *qr_code != NULL ? PG_OK : PG_ERR_NOMEM;
    }
    json_decref(obj);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Trade query, close, refund, refund query                            */

#define ALIPAY_CODE_UNAVAILABLE "20000"
#define ALIPAY_CODE_BUSINESS "40004"
#define ALIPAY_SUB_SYSTEM_ERROR "ACQ.SYSTEM_ERROR"
#define ALIPAY_SUB_NOT_EXIST "ACQ.TRADE_NOT_EXIST"
#define ALIPAY_SUB_STATUS_ERROR "ACQ.TRADE_STATUS_ERROR"
#define ALIPAY_OUT_NO_MAX 64

/* A reply counts as the gateway's word only when its signature verified:
 * alipay_check_response sets reply->json only then. */
static int reply_signed(const alipay_reply_t *r)
{
    return r->json != NULL;
}

/* "Ask again later": 20000 (service unavailable) or ACQ.SYSTEM_ERROR. */
static int reply_says_retry(const alipay_reply_t *r)
{
    return strcmp(r->code, ALIPAY_CODE_UNAVAILABLE) == 0 ||
           strcmp(r->sub_code, ALIPAY_SUB_SYSTEM_ERROR) == 0;
}

static int reply_sub_is(const alipay_reply_t *r, const char *sub_code)
{
    return reply_signed(r) && strcmp(r->code, ALIPAY_CODE_BUSINESS) == 0 &&
           strcmp(r->sub_code, sub_code) == 0;
}

/* The usual mapping for calls that change nothing by themselves (query,
 * close, refund query): timeouts, HTTP 5xx, 20000 and ACQ.SYSTEM_ERROR are
 * PG_ERR_TIMEOUT (ask again later); the rest is left as alipay_call said. */
static pg_err map_common(pg_err rc, call_stage_t stage, long http_status,
                         const alipay_reply_t *reply)
{
    if (rc == PG_OK)
        return rc;
    if (stage == CALL_HTTP_STATUS && http_status >= 500)
        return PG_ERR_TIMEOUT;
    if (stage == CALL_REPLY && rc == PG_ERR_UPSTREAM && reply_says_retry(reply))
        return PG_ERR_TIMEOUT;
    return rc;
}

static int valid_out_no(const char *s)
{
    size_t n;
    if (is_empty(s))
        return 0;
    n = strlen(s);
    return n <= ALIPAY_OUT_NO_MAX && strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                              "0123456789_-") == n;
}

/* biz_content from string pairs (NULL values skipped), in order. */
static pg_err biz_from_pairs(arena_t *a, const char *const *pairs, size_t npairs, json_t *extra_key_array,
                             const char *extra_key, char **out)
{
    json_t *obj = json_object();
    char *text = NULL;
    size_t i;
    pg_err rc = PG_OK;

    *out = NULL;
    if (obj == NULL) {
        json_decref(extra_key_array);
        return PG_ERR_NOMEM;
    }
    for (i = 0; i + 1 < npairs; i += 2) {
        if (pairs[i + 1] == NULL)
            continue;
        if ((rc = json_set_str(obj, pairs[i], pairs[i + 1])) != PG_OK)
            goto done;
    }
    if (extra_key != NULL) {
        if (extra_key_array == NULL || json_object_set_new(obj, extra_key, extra_key_array) != 0) {
            extra_key_array = NULL;
            rc = PG_ERR_NOMEM;
            goto done;
        }
        extra_key_array = NULL;
    }
    text = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (text == NULL) {
        rc = PG_ERR_NOMEM;
        goto done;
    }
    *out = arena_strdup(a, text);
    rc = *out != NULL ? PG_OK : PG_ERR_NOMEM;
done:
    free(text);
    json_decref(extra_key_array);
    json_decref(obj);
    return rc;
}

static pg_err out_trade_no_biz(arena_t *a, const char *out_trade_no, char **biz, buf_t *err)
{
    const char *pairs[] = { "out_trade_no", out_trade_no };
    if (!valid_out_no(out_trade_no)) {
        buf_set_error(err, "alipay: bad out_trade_no");
        return PG_ERR_BAD_INPUT;
    }
    return biz_from_pairs(a, pairs, 2, NULL, NULL, biz);
}

/* Arena copy of a string member, NULL when absent, empty or not a string. */
static const char *obj_dup(arena_t *a, json_t *obj, const char *key)
{
    const char *v = obj_str(obj, key);
    return is_empty(v) ? NULL : arena_strdup(a, v);
}

/* A reply naming another out_trade_no / out_request_no than ours. */
static int echo_differs(json_t *obj, const char *key, const char *ours)
{
    const char *v = obj_str(obj, key);
    return v != NULL && strcmp(v, ours) != 0;
}

static int known_trade_status(const char *s)
{
    alipay_trade_status_t st;
    return s != NULL && map_trade_status(s, &st);
}

pg_err alipay_trade_query(arena_t *a, const alipay_client_t *c, const char *out_trade_no,
                          alipay_query_result_t *out, buf_t *err)
{
    alipay_reply_t reply;
    call_stage_t stage;
    long status;
    char *biz;
    json_t *obj = NULL;
    const char *total;
    pg_err rc;

    memset(out, 0, sizeof *out);
    if ((rc = out_trade_no_biz(a, out_trade_no, &biz, err)) != PG_OK)
        return rc;
    rc = call_staged(a, c, "alipay.trade.query", biz, &reply, &stage, &status, err);
    if (rc == PG_ERR_UPSTREAM && reply_sub_is(&reply, ALIPAY_SUB_NOT_EXIST))
        return PG_OK;   /* never scanned: Alipay has no such trade */
    if (rc != PG_OK)
        return map_common(rc, stage, status, &reply);

    obj = json_loadb(reply.json, reply.json_len, 0, NULL);
    if (obj == NULL)
        return PG_ERR_NOMEM;   /* parsed once already in check_response */
    if (echo_differs(obj, "out_trade_no", out_trade_no)) {
        buf_set_error(err, "alipay: trade.query reply is for another out_trade_no");
        rc = PG_ERR_MISMATCH;
        goto done;
    }
    out->trade_status = obj_dup(a, obj, "trade_status");
    if (!known_trade_status(out->trade_status)) {
        buf_set_error(err, "alipay: trade.query reply has trade_status %.40s",
                out->trade_status != NULL ? out->trade_status : "(none)");
        rc = PG_ERR_UPSTREAM;
        goto done;
    }
    total = obj_str(obj, "total_amount");
    if (total == NULL || money_parse_yuan(total, MONEY_MAX_FEN, &out->total_fen) != PG_OK) {
        buf_set_error(err, "alipay: trade.query reply has a bad total_amount %.40s",
                total != NULL ? total : "(none)");
        rc = PG_ERR_UPSTREAM;
        goto done;
    }
    out->trade_no = obj_dup(a, obj, "trade_no");
    out->buyer_id = obj_dup(a, obj, "buyer_user_id");
    if (out->buyer_id == NULL)
        out->buyer_id = obj_dup(a, obj, "buyer_id");
    out->send_pay_date = obj_dup(a, obj, "send_pay_date");
    out->exists = true;
done:
    json_decref(obj);
    if (rc != PG_OK)
        memset(out, 0, sizeof *out);
    return rc;
}

pg_err alipay_trade_close(arena_t *a, const alipay_client_t *c, const char *out_trade_no,
                          buf_t *err)
{
    alipay_reply_t reply;
    call_stage_t stage;
    long status;
    char *biz;
    pg_err rc;

    if ((rc = out_trade_no_biz(a, out_trade_no, &biz, err)) != PG_OK)
        return rc;
    rc = call_staged(a, c, "alipay.trade.close", biz, &reply, &stage, &status, err);
    if (rc == PG_ERR_UPSTREAM && reply_sub_is(&reply, ALIPAY_SUB_NOT_EXIST))
        return PG_OK;   /* never scanned: there is nothing to close at Alipay */
    if (rc == PG_ERR_UPSTREAM && reply_sub_is(&reply, ALIPAY_SUB_STATUS_ERROR))
        return PG_ERR_CONFLICT;   /* refused: paid, finished or closed -- the caller queries */
    return map_common(rc, stage, status, &reply);
}

/* Gateway-level refusals: the request never reached the business layer. */
static int gateway_refused(const alipay_reply_t *r)
{
    return strcmp(r->code, "40001") == 0 || strcmp(r->code, "40002") == 0 ||
           strcmp(r->code, "40003") == 0 || strcmp(r->code, "40006") == 0;
}

/* Refund outcome classes (see alipay.h): anything that is not a clear yes or
 * a clear no is "unknown", so that the caller queries instead of refunding
 * twice. */
static pg_err map_refund(pg_err rc, call_stage_t stage, const alipay_reply_t *reply, buf_t *err)
{
    if (rc == PG_OK || stage == CALL_NOT_SENT)
        return rc;
    if (stage != CALL_REPLY)
        return PG_ERR_TIMEOUT;   /* transport, timeout, HTTP status: unknown */
    if (rc != PG_ERR_UPSTREAM)
        return PG_ERR_TIMEOUT;   /* bad or missing signature, malformed reply */
    if (gateway_refused(reply))
        return PG_ERR_CONFLICT;
    if (reply_says_retry(reply))
        return PG_ERR_TIMEOUT;
    if (strcmp(reply->code, ALIPAY_CODE_BUSINESS) == 0) {
        if (reply_signed(reply))
            return PG_ERR_CONFLICT;
        /* A business refusal is believed only when signed. */
        buf_set_error(err, "alipay: unsigned 40004 %s to a refund: outcome unknown", reply->sub_code);
        return PG_ERR_TIMEOUT;
    }
    return PG_ERR_TIMEOUT;
}

pg_err alipay_trade_refund(arena_t *a, const alipay_client_t *c, const char *out_trade_no,
                           const char *out_request_no, int64_t refund_fen, const char *reason,
                           alipay_refund_result_t *out, buf_t *err)
{
    char yuan[MONEY_YUAN_BUFSZ];
    alipay_reply_t reply;
    call_stage_t stage;
    long status;
    char *biz;
    json_t *obj = NULL;
    const char *fee, *fund_change;
    pg_err rc;

    memset(out, 0, sizeof *out);
    if (!valid_out_no(out_trade_no) || !valid_out_no(out_request_no) || refund_fen <= 0 ||
        refund_fen > MONEY_MAX_FEN) {
        buf_set_error(err, "alipay: bad refund request (out_trade_no, out_request_no or amount)");
        return PG_ERR_BAD_INPUT;
    }
    money_format_yuan(refund_fen, yuan);
    {
        const char *pairs[] = { "out_trade_no", out_trade_no, "refund_amount", yuan,
                                "out_request_no", out_request_no,
                                "refund_reason", is_empty(reason) ? NULL : reason };
        rc = biz_from_pairs(a, pairs, sizeof pairs / sizeof pairs[0], NULL, NULL, &biz);
    }
    if (rc != PG_OK) {
        buf_set_error(err, "alipay: refund request cannot be written (bad reason text?)");
        return rc;
    }
    rc = call_staged(a, c, "alipay.trade.refund", biz, &reply, &stage, &status, err);
    rc = map_refund(rc, stage, &reply, err);
    if (rc != PG_OK)
        return rc;

    /* Signed 10000: the refund happened. What follows only describes it;
     * a reply we cannot read is "unknown", settled by the refund query. */
    obj = json_loadb(reply.json, reply.json_len, 0, NULL);
    if (obj == NULL)
        return PG_ERR_NOMEM;
    if (echo_differs(obj, "out_trade_no", out_trade_no)) {
        buf_set_error(err, "alipay: refund reply is for another out_trade_no");
        rc = PG_ERR_TIMEOUT;
        goto done;
    }
    fee = obj_str(obj, "refund_fee");
    if (fee == NULL || money_parse_yuan(fee, MONEY_MAX_FEN, &out->refund_total_fen) != PG_OK) {
        buf_set_error(err, "alipay: refund reply has a bad refund_fee %.40s", fee != NULL ? fee : "(none)");
        rc = PG_ERR_TIMEOUT;
        goto done;
    }
    fund_change = obj_str(obj, "fund_change");
    out->fund_change = fund_change != NULL && strcmp(fund_change, "Y") == 0;
    out->trade_no = obj_dup(a, obj, "trade_no");
done:
    json_decref(obj);
    if (rc != PG_OK)
        memset(out, 0, sizeof *out);
    return rc;
}

pg_err alipay_refund_query(arena_t *a, const alipay_client_t *c, const char *out_trade_no,
                           const char *out_request_no, alipay_refund_query_result_t *out,
                           buf_t *err)
{
    alipay_reply_t reply;
    call_stage_t stage;
    long status;
    char *biz;
    json_t *obj = NULL, *options;
    const char *amount, *refund_status;
    pg_err rc;

    memset(out, 0, sizeof *out);
    if (!valid_out_no(out_trade_no) || !valid_out_no(out_request_no)) {
        buf_set_error(err, "alipay: bad out_trade_no or out_request_no");
        return PG_ERR_BAD_INPUT;
    }
    options = json_array();
    if (options == NULL || json_array_append_new(options, json_string("gmt_refund_pay")) != 0) {
        json_decref(options);
        return PG_ERR_NOMEM;
    }
    {
        const char *pairs[] = { "out_trade_no", out_trade_no, "out_request_no", out_request_no };
        rc = biz_from_pairs(a, pairs, 4, options, "query_options", &biz);
    }
    if (rc != PG_OK)
        return rc;
    rc = call_staged(a, c, "alipay.trade.fastpay.refund.query", biz, &reply, &stage, &status, err);
    if (rc != PG_OK)
        return map_common(rc, stage, status, &reply);

    obj = json_loadb(reply.json, reply.json_len, 0, NULL);
    if (obj == NULL)
        return PG_ERR_NOMEM;
    if (echo_differs(obj, "out_trade_no", out_trade_no) ||
        echo_differs(obj, "out_request_no", out_request_no)) {
        buf_set_error(err, "alipay: refund query reply is for another refund");
        rc = PG_ERR_MISMATCH;
        goto done;
    }
    /* 10000 only says the query worked; a refund Alipay does not know (or
     * has not processed yet) comes back without refund_amount. */
    amount = obj_str(obj, "refund_amount");
    refund_status = obj_str(obj, "refund_status");
    if (is_empty(amount)) {
        if (refund_status != NULL && strcmp(refund_status, "REFUND_SUCCESS") == 0) {
            buf_set_error(err, "alipay: refund query reply says REFUND_SUCCESS without refund_amount");
            rc = PG_ERR_UPSTREAM;
        }
        goto done;
    }
    if (money_parse_yuan(amount, MONEY_MAX_FEN, &out->refund_fen) != PG_OK) {
        buf_set_error(err, "alipay: refund query reply has a bad refund_amount %.40s", amount);
        rc = PG_ERR_UPSTREAM;
        goto done;
    }
    if (refund_status != NULL && strcmp(refund_status, "REFUND_SUCCESS") != 0) {
        buf_set_error(err, "alipay: refund query reply has refund_status %.40s", refund_status);
        rc = PG_ERR_UPSTREAM;
        goto done;
    }
    out->refund_status = refund_status != NULL ? "REFUND_SUCCESS" : NULL;
    out->found = true;
done:
    json_decref(obj);
    if (rc != PG_OK)
        memset(out, 0, sizeof *out);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Transfers to an Alipay account (certificate mode)                   */

#define ALIPAY_SUB_TRANS_SYSTEM_ERROR "SYSTEM_ERROR"
#define ALIPAY_SUB_ORDER_NOT_EXIST "ORDER_NOT_EXIST"

static pg_err transfer_biz(arena_t *a, const char *out_biz_no, int64_t amount_fen, const char *title,
                           const alipay_payee_t *payee, char **biz)
{
    char yuan[MONEY_YUAN_BUFSZ];
    json_t *pi = json_object();
    const char *pairs[] = { "out_biz_no", out_biz_no, "trans_amount", yuan,
                            "product_code", "TRANS_ACCOUNT_NO_PWD", "biz_scene", "DIRECT_TRANSFER",
                            "order_title", title };
    if (pi == NULL)
        return PG_ERR_NOMEM;
    money_format_yuan(amount_fen, yuan);
    if (json_set_str(pi, "identity", payee->identity) != PG_OK ||
        json_set_str(pi, "identity_type", payee->identity_type) != PG_OK ||
        (!is_empty(payee->name) && json_set_str(pi, "name", payee->name) != PG_OK)) {
        json_decref(pi);
        return PG_ERR_BAD_INPUT;
    }
    return biz_from_pairs(a, pairs, sizeof pairs / sizeof pairs[0], pi, "payee_info", biz);
}

static int transfer_sub_retry(const alipay_reply_t *r)
{
    return strcmp(r->code, ALIPAY_CODE_UNAVAILABLE) == 0 ||
           strcmp(r->sub_code, ALIPAY_SUB_TRANS_SYSTEM_ERROR) == 0 || reply_says_retry(r);
}

/* Reads status (SUCCESS | DEALING | FAIL | REFUND) and the order ids of a
 * signed 10000 for our out_biz_no; PG_ERR_TIMEOUT when it cannot be read. */
static pg_err transfer_read(arena_t *a, const alipay_reply_t *reply, const char *out_biz_no,
                            alipay_transfer_result_t *out, buf_t *err)
{
    json_t *obj = json_loadb(reply->json, reply->json_len, 0, NULL);
    const char *st, *echo, *reason;
    pg_err rc = PG_OK;

    if (obj == NULL)
        return PG_ERR_NOMEM;
    echo = obj_str(obj, "out_biz_no");
    st = obj_str(obj, "status");
    if (echo == NULL || strcmp(echo, out_biz_no) != 0) {
        buf_set_error(err, "alipay: transfer reply is for out_biz_no %.64s, not %s", echo ? echo : "(none)",
                out_biz_no);
        rc = PG_ERR_MISMATCH;
    } else if (st != NULL && strcmp(st, "SUCCESS") == 0) {
        out->status = ALIPAY_TRANSFER_SUCCESS;
    } else if (st != NULL && (strcmp(st, "DEALING") == 0 || strcmp(st, "WAIT_PAY") == 0 ||
                              strcmp(st, "INIT") == 0)) {
        out->status = ALIPAY_TRANSFER_DEALING;
    } else if (st != NULL && (strcmp(st, "FAIL") == 0 || strcmp(st, "REFUND") == 0 ||
                              strcmp(st, "CLOSED") == 0)) {
        out->status = ALIPAY_TRANSFER_FAIL;
        reason = obj_str(obj, "fail_reason");
        copy_field(out->sub_code, sizeof out->sub_code, st);
        copy_field(out->sub_msg, sizeof out->sub_msg, reason != NULL ? reason : "");
    } else {
        buf_set_error(err, "alipay: transfer reply has status %.40s", st != NULL ? st : "(none)");
        rc = PG_ERR_TIMEOUT;
    }
    if (rc == PG_OK) {
        out->order_id = obj_dup(a, obj, "order_id");
        out->pay_fund_order_id = obj_dup(a, obj, "pay_fund_order_id");
    }
    json_decref(obj);
    return rc;
}

static int valid_payee(const alipay_payee_t *p)
{
    if (p == NULL || is_empty(p->identity) || strlen(p->identity) > 100 || is_empty(p->identity_type))
        return 0;
    if (strcmp(p->identity_type, "ALIPAY_LOGON_ID") == 0)
        return !is_empty(p->name);
    return strcmp(p->identity_type, "ALIPAY_USER_ID") == 0 || strcmp(p->identity_type, "ALIPAY_OPEN_ID") == 0;
}

pg_err alipay_fund_transfer(arena_t *a, const alipay_client_t *c, const char *out_biz_no, int64_t amount_fen,
                            const char *order_title, const alipay_payee_t *payee,
                            alipay_transfer_result_t *out, buf_t *err)
{
    alipay_reply_t reply;
    call_stage_t stage;
    long status;
    char *biz = NULL;
    pg_err rc;

    memset(out, 0, sizeof *out);
    if (c == NULL || is_empty(c->app_cert_sn)) {
        buf_set_error(err, "alipay: transfers need certificate mode (app_cert, alipay_cert, alipay_root_cert)");
        return PG_ERR_CONFIG;
    }
    if (!valid_out_no(out_biz_no) || amount_fen <= 0 || amount_fen > MONEY_MAX_FEN || is_empty(order_title) ||
        !valid_payee(payee)) {
        buf_set_error(err, "alipay: bad transfer request (out_biz_no, amount, title or payee)");
        return PG_ERR_BAD_INPUT;
    }
    if ((rc = transfer_biz(a, out_biz_no, amount_fen, order_title, payee, &biz)) != PG_OK) {
        buf_set_error(err, "alipay: transfer request cannot be written");
        return rc;
    }
    rc = call_staged(a, c, "alipay.fund.trans.uni.transfer", biz, &reply, &stage, &status, err);
    if (rc == PG_OK) {
        rc = transfer_read(a, &reply, out_biz_no, out, err);
        return rc == PG_ERR_MISMATCH ? PG_ERR_TIMEOUT : rc;   /* whose money moved is unclear: query ours */
    }
    if (stage == CALL_NOT_SENT)
        return rc;
    if (stage != CALL_REPLY || rc != PG_ERR_UPSTREAM || !reply_signed(&reply) || transfer_sub_retry(&reply))
        return PG_ERR_TIMEOUT;
    if (gateway_refused(&reply) || strcmp(reply.code, ALIPAY_CODE_BUSINESS) == 0) {
        copy_field(out->sub_code, sizeof out->sub_code, reply.sub_code[0] ? reply.sub_code : reply.code);
        copy_field(out->sub_msg, sizeof out->sub_msg, reply.sub_msg);
        return PG_ERR_CONFLICT;
    }
    return PG_ERR_TIMEOUT;
}

pg_err alipay_fund_transfer_query(arena_t *a, const alipay_client_t *c, const char *out_biz_no,
                                  alipay_transfer_result_t *out, buf_t *err)
{
    const char *pairs[] = { "out_biz_no", out_biz_no, "product_code", "TRANS_ACCOUNT_NO_PWD",
                            "biz_scene", "DIRECT_TRANSFER" };
    alipay_reply_t reply;
    call_stage_t stage;
    long status;
    char *biz = NULL;
    pg_err rc;

    memset(out, 0, sizeof *out);
    if (c == NULL || is_empty(c->app_cert_sn)) {
        buf_set_error(err, "alipay: transfers need certificate mode");
        return PG_ERR_CONFIG;
    }
    if (!valid_out_no(out_biz_no)) {
        buf_set_error(err, "alipay: bad out_biz_no");
        return PG_ERR_BAD_INPUT;
    }
    if ((rc = biz_from_pairs(a, pairs, 6, NULL, NULL, &biz)) != PG_OK)
        return rc;
    rc = call_staged(a, c, "alipay.fund.trans.common.query", biz, &reply, &stage, &status, err);
    if (rc == PG_OK)
        return transfer_read(a, &reply, out_biz_no, out, err);
    if (rc == PG_ERR_UPSTREAM && reply_signed(&reply) && strcmp(reply.code, ALIPAY_CODE_BUSINESS) == 0 &&
        strcmp(reply.sub_code, ALIPAY_SUB_ORDER_NOT_EXIST) == 0) {
        out->status = ALIPAY_TRANSFER_NOT_FOUND;
        return PG_OK;
    }
    return stage == CALL_NOT_SENT ? rc : PG_ERR_TIMEOUT;
}

/* ------------------------------------------------------------------ */
/* Notifications and returns                                           */

/* sign present, fields unique, RSA2 over the rest minus sign/sign_type. */
static pg_err verify_form_signature(const alipay_client_t *c, const kv_list_t *form,
                                    buf_t *reason)
{
    const char *sign = kv_get(form, "sign");
    buf_t content;
    pg_err rc;

    if (c == NULL || c->alipay_public_key == NULL) {
        buf_set_error(reason, "no Alipay public key configured");
        return PG_ERR_CONFIG;
    }
    if (is_empty(sign)) {
        buf_set_error(reason, "sign missing");
        return PG_ERR_BAD_SIGNATURE;
    }
    buf_init(&content, form->arena);
    rc = alipay_sign_content(form, true, &content);
    if (rc == PG_ERR_BAD_INPUT) {
        buf_set_error(reason, "repeated or empty field name");
        goto done;
    }
    if (rc != PG_OK)
        goto done;
    rc = crypto_rsa_sha256_verify_b64(c->alipay_public_key, content.data, content.len, sign);
    if (rc != PG_OK) {
        buf_set_error(reason, "bad signature");
        rc = PG_ERR_BAD_SIGNATURE;
    }
done:
    buf_free(&content);
    return rc;
}

static pg_err check_app_id(const alipay_client_t *c, const kv_list_t *form, buf_t *reason)
{
    const char *app_id = kv_get(form, "app_id");
    if (is_empty(c->app_id) || app_id == NULL || strcmp(app_id, c->app_id) != 0) {
        buf_set_error(reason, "app_id mismatch: %s", app_id != NULL ? app_id : "(none)");
        return PG_ERR_MISMATCH;
    }
    return PG_OK;
}

static int map_trade_status(const char *s, alipay_trade_status_t *out)
{
    static const struct { const char *name; alipay_trade_status_t st; } map[] = {
        { "WAIT_BUYER_PAY", ALIPAY_WAIT_BUYER_PAY },
        { "TRADE_SUCCESS", ALIPAY_TRADE_SUCCESS },
        { "TRADE_FINISHED", ALIPAY_TRADE_FINISHED },
        { "TRADE_CLOSED", ALIPAY_TRADE_CLOSED },
    };
    size_t i;
    for (i = 0; i < sizeof map / sizeof map[0]; i++) {
        if (strcmp(s, map[i].name) == 0) {
            *out = map[i].st;
            return 1;
        }
    }
    return 0;
}

static const char *opt_field(const kv_list_t *form, const char *key)
{
    const char *v = kv_get(form, key);
    return is_empty(v) ? NULL : v;
}

pg_err alipay_verify_notify(const alipay_client_t *c, const kv_list_t *form,
                            alipay_notify_t *out, buf_t *reason)
{
    const char *seller, *status, *total, *refund;
    pg_err rc;

    memset(out, 0, sizeof *out);
    if ((rc = verify_form_signature(c, form, reason)) != PG_OK)
        return rc;
    if ((rc = check_app_id(c, form, reason)) != PG_OK)
        return rc;
    if (!is_empty(c->seller_id)) {
        seller = kv_get(form, "seller_id");
        if (seller == NULL || strcmp(seller, c->seller_id) != 0) {
            buf_set_error(reason, "seller_id mismatch: %s", seller != NULL ? seller : "(none)");
            return PG_ERR_MISMATCH;
        }
    }

    out->out_trade_no = opt_field(form, "out_trade_no");
    status = opt_field(form, "trade_status");
    total = opt_field(form, "total_amount");
    if (out->out_trade_no == NULL || status == NULL || total == NULL) {
        buf_set_error(reason, "missing %s", out->out_trade_no == NULL ? "out_trade_no"
                                      : status == NULL          ? "trade_status"
                                                                : "total_amount");
        return PG_ERR_BAD_INPUT;
    }
    if (!map_trade_status(status, &out->status)) {
        buf_set_error(reason, "unknown trade_status %.40s", status);
        return PG_ERR_BAD_INPUT;
    }
    if (money_parse_yuan(total, MONEY_MAX_FEN, &out->total_fen) != PG_OK) {
        buf_set_error(reason, "bad total_amount %.40s", total);
        return PG_ERR_BAD_INPUT;
    }
    refund = opt_field(form, "refund_fee");
    out->out_biz_no = opt_field(form, "out_biz_no");
    if (refund != NULL) {
        if (money_parse_yuan(refund, MONEY_MAX_FEN, &out->refund_fen) != PG_OK) {
            buf_set_error(reason, "bad refund_fee %.40s", refund);
            return PG_ERR_BAD_INPUT;
        }
        out->has_refund = true;
    } else if (out->out_biz_no != NULL) {
        out->has_refund = true;
    }
    out->notify_id = opt_field(form, "notify_id");
    out->trade_no = opt_field(form, "trade_no");
    out->buyer_id = opt_field(form, "buyer_id");
    out->gmt_payment = opt_field(form, "gmt_payment");
    buf_set_error(reason, "ok");
    return PG_OK;
}

pg_err alipay_verify_return(const alipay_client_t *c, const kv_list_t *query,
                            const char **out_trade_no, buf_t *reason)
{
    pg_err rc;

    *out_trade_no = NULL;
    if ((rc = verify_form_signature(c, query, reason)) != PG_OK)
        return rc;
    if ((rc = check_app_id(c, query, reason)) != PG_OK)
        return rc;
    *out_trade_no = opt_field(query, "out_trade_no");
    if (*out_trade_no == NULL) {
        buf_set_error(reason, "missing out_trade_no");
        return PG_ERR_BAD_INPUT;
    }
    buf_set_error(reason, "ok");
    return PG_OK;
}
