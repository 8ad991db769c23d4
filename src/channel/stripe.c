/* stripe: the Stripe API protocol adapter. See include/channel/stripe.h. */
#include "stripe.h"
#include "money.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "bill.h"
#include "crypto.h"
#include "metrics.h"

/* ---------------------------------------------------------------------- */
/* form encoding */

static bool key_char_raw(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
           c == '.' || c == '~' || c == '[' || c == ']';
}

static pg_err append_key(buf_t *out, const char *key)
{
    for (const char *p = key; *p; p++) {
        if (key_char_raw(*p))
            buf_putc(out, *p);
        else
            buf_printf(out, "%%%02X", (unsigned)(unsigned char)*p);
    }
    return out->failed ? PG_ERR_NOMEM : PG_OK;
}

pg_err stripe_form_encode(const kv_list_t *form, buf_t *out)
{
    for (size_t i = 0; form && i < form->count; i++) {
        if (i)
            buf_putc(out, '&');
        append_key(out, form->items[i].key);
        buf_putc(out, '=');
        buf_append_urlencoded(out, form->items[i].value);
    }
    return out->failed ? PG_ERR_NOMEM : PG_OK;
}

/* ---------------------------------------------------------------------- */
/* money */

/* Stripe's published minimum charge amounts (minor units). */
static const struct { const char *currency; int64_t min; } MINIMUMS[] = {
    { "usd", 50 }, { "aed", 200 }, { "aud", 50 }, { "bgn", 100 }, { "brl", 50 }, { "cad", 50 },
    { "chf", 50 }, { "cny", 400 }, { "czk", 1500 }, { "dkk", 250 }, { "eur", 50 }, { "gbp", 30 },
    { "hkd", 400 }, { "huf", 17500 }, { "inr", 50 }, { "jpy", 50 }, { "mxn", 1000 }, { "myr", 200 },
    { "nok", 300 }, { "nzd", 50 }, { "pln", 200 }, { "ron", 200 }, { "sek", 300 }, { "sgd", 50 },
    { "thb", 1000 },
};

bool stripe_currency_valid(const char *currency)
{
    if (!currency || strlen(currency) != 3)
        return false;
    for (const char *p = currency; *p; p++) {
        if (*p < 'a' || *p > 'z')
            return false;
    }
    return true;
}

bool stripe_currency_zero_decimal(const char *currency)
{
    return money_zero_decimal(currency);
}

int64_t stripe_currency_min_amount(const char *currency)
{
    for (size_t i = 0; currency && i < sizeof MINIMUMS / sizeof MINIMUMS[0]; i++) {
        if (!strcmp(MINIMUMS[i].currency, currency))
            return MINIMUMS[i].min;
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* JSON helpers */

static const char *jstr(arena_t *a, json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? arena_strdup(a, json_string_value(v)) : NULL;
}

static int64_t jint(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_integer(v) && json_integer_value(v) >= 0 ? (int64_t)json_integer_value(v) : -1;
}

/* A non-negative decimal integer written by us into metadata; -1 otherwise. */
static int64_t meta_int(json_t *meta, const char *key)
{
    json_t *v = json_object_get(meta, key);
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;
    int64_t n = 0;
    if (!s || !*s || strlen(s) > 18)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        n = n * 10 + (*s - '0');
    }
    return n;
}

/* A string field or, when Stripe expanded it, the id of the object. */
static const char *jid(arena_t *a, json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (json_is_object(v))
        return jstr(a, v, "id");
    return json_is_string(v) ? arena_strdup(a, json_string_value(v)) : NULL;
}

static bool is_object_of(json_t *obj, const char *type)
{
    json_t *o = json_object_get(obj, "object");
    return json_is_object(obj) && json_is_string(o) && !strcmp(json_string_value(o), type);
}

static pg_err session_from_json(arena_t *a, json_t *obj, stripe_session_t *out)
{
    json_t *meta = json_object_get(obj, "metadata");
    memset(out, 0, sizeof *out);
    if (!is_object_of(obj, "checkout.session"))
        return PG_ERR_BAD_INPUT;
    out->id = jstr(a, obj, "id");
    out->url = jstr(a, obj, "url");
    out->status = jstr(a, obj, "status");
    out->payment_status = jstr(a, obj, "payment_status");
    out->payment_intent = jid(a, obj, "payment_intent");
    out->client_reference_id = jstr(a, obj, "client_reference_id");
    out->payment_no = json_is_object(meta) ? jstr(a, meta, "payment_no") : NULL;
    out->currency = jstr(a, obj, "currency");
    out->amount_total = jint(obj, "amount_total");
    out->livemode = json_is_true(json_object_get(obj, "livemode"));
    return out->id ? PG_OK : PG_ERR_BAD_INPUT;
}

static pg_err refund_from_json(arena_t *a, json_t *obj, stripe_refund_t *out)
{
    json_t *meta = json_object_get(obj, "metadata");
    memset(out, 0, sizeof *out);
    if (!is_object_of(obj, "refund"))
        return PG_ERR_BAD_INPUT;
    out->id = jstr(a, obj, "id");
    out->status = jstr(a, obj, "status");
    out->payment_intent = jid(a, obj, "payment_intent");
    out->currency = jstr(a, obj, "currency");
    out->amount = jint(obj, "amount");
    out->refund_no = json_is_object(meta) ? jstr(a, meta, "refund_no") : NULL;
    out->payment_no = json_is_object(meta) ? jstr(a, meta, "payment_no") : NULL;
    out->payment_amount = json_is_object(meta) ? meta_int(meta, "payment_amount") : -1;
    return out->id && out->status ? PG_OK : PG_ERR_BAD_INPUT;
}

static json_t *load_object(const char *text, size_t len)
{
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root && !json_is_object(root)) {
        json_decref(root);
        return NULL;
    }
    return root;
}

/* ---------------------------------------------------------------------- */
/* calls */

static void copy_field(char *dst, size_t cap, json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    const char *s = json_is_string(v) ? json_string_value(v) : "";
    size_t n = strlen(s);
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, s, n);
    dst[n] = '\0';
}

/* Stripe's {"error":{"type","code","message","param"}}: kept for the caller. */
static pg_err map_error(long status, const buf_t *body, stripe_error_t *e, buf_t *err)
{
    json_t *root = body->len ? load_object(body->data, body->len) : NULL;
    json_t *eo = root ? json_object_get(root, "error") : NULL;
    json_t *msg = eo ? json_object_get(eo, "message") : NULL;
    e->status = status;
    if (json_is_object(eo)) {
        copy_field(e->type, sizeof e->type, eo, "type");
        copy_field(e->code, sizeof e->code, eo, "code");
    }
    buf_set_error(err, "stripe: HTTP %ld %s%s%s", status, e->code[0] ? e->code : e->type,
                  json_is_string(msg) ? ": " : "", json_is_string(msg) ? json_string_value(msg) : "");
    json_decref(root);
    if (status == 401 || status == 403)
        return PG_ERR_CONFIG;
    if (status == 404)
        return PG_ERR_NOT_FOUND;
    if (status == 409)
        return PG_ERR_CONFLICT;
    if (status == 402 || !strcmp(e->type, "card_error"))
        return PG_ERR_CONFLICT;
    if (status == 400)
        return PG_ERR_BAD_INPUT;
    return PG_ERR_UPSTREAM;
}

static bool retryable(pg_err rc, long status)
{
    return rc == PG_ERR_TIMEOUT || (rc == PG_ERR_UPSTREAM && status == 0) || status == 429 || status >= 500;
}

static void backoff(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* The metrics label of a call (GET /metrics: provider calls by operation). */
static const char *operation_of(bool post, const char *path)
{
    size_t n = strlen(path);
    if (!strncmp(path, "/v1/checkout/sessions", 21)) {
        if (post)
            return n > 7 && !strcmp(path + n - 7, "/expire") ? "stripe.session.expire" : "stripe.session.create";
        return "stripe.session.retrieve";
    }
    if (!strncmp(path, "/v1/refunds", 11))
        return post ? "stripe.refund.create" : "stripe.refund.list";
    if (!strncmp(path, "/v1/payment_intents", 19))
        return "stripe.intent.retrieve";
    return "other";
}

static pg_err attempt_unmetered(const stripe_client_t *c, arena_t *a, bool post, const char *url, const buf_t *form,
                      const char *idem_key, httpc_response_t *resp, buf_t *err)
{
    const char *headers[5];
    size_t n = 0;
    headers[n++] = arena_printf(a, "Authorization: Bearer %s", c->secret_key ? c->secret_key : "");
    headers[n++] = "Stripe-Version: " STRIPE_API_VERSION;
    if (post)
        headers[n++] = arena_printf(a, "Idempotency-Key: %s", idem_key);
    headers[n] = NULL;
    for (size_t i = 0; i < n; i++) {
        if (!headers[i])
            return PG_ERR_NOMEM;
    }
    if (post)
        return httpc_post_headers(a, url, "application/x-www-form-urlencoded", headers, form->data ? form->data : "",
                                  form->len, &c->http, resp, err);
    return httpc_get_headers(a, url, headers, &c->http, resp, err);
}

static pg_err attempt(const stripe_client_t *c, arena_t *a, bool post, const char *path, const char *url,
                      const buf_t *form, const char *idem_key, httpc_response_t *resp, buf_t *err)
{
    long long t0 = metrics_now_us();
    pg_err rc = attempt_unmetered(c, a, post, url, form, idem_key, resp, err);
    bool replied = rc == PG_OK || resp->status >= 500;
    if (rc != PG_ERR_NOMEM)
        metrics_provider_call("stripe", operation_of(post, path),
                              metrics_call_outcome(replied && resp->status < 300, replied, rc), metrics_now_us() - t0);
    return rc;
}

pg_err stripe_call(const stripe_client_t *c, arena_t *a, const char *method, const char *path,
                   const kv_list_t *form, const char *idem_key, const char **out, stripe_error_t *e,
                   buf_t *err)
{
    bool post = !strcmp(method, "POST");
    int tries = c->max_attempts > 0 ? c->max_attempts : 3;
    long wait_ms = c->retry_base_ms > 0 ? c->retry_base_ms : 250;
    const char *base = c->api_base && *c->api_base ? c->api_base : "https://api.stripe.com";
    size_t blen = strlen(base);
    buf_t body, url;
    httpc_response_t resp;
    pg_err rc = PG_ERR_INTERNAL;
    memset(e, 0, sizeof *e);
    *out = NULL;
    if (post && (!idem_key || !*idem_key)) {
        buf_set_error(err, "stripe: a POST needs an Idempotency-Key");
        return PG_ERR_INTERNAL;
    }
    buf_init(&body, a);
    buf_init(&url, a);
    if (stripe_form_encode(form, &body) != PG_OK)
        return PG_ERR_NOMEM;
    buf_append(&url, base, blen && base[blen - 1] == '/' ? blen - 1 : blen);
    buf_puts(&url, path);
    if (!post && body.len) {
        buf_putc(&url, '?');
        buf_append(&url, body.data, body.len);
    }
    if (url.failed)
        return PG_ERR_NOMEM;
    for (int i = 0; i < tries; i++) {
        if (i) {   /* the same Idempotency-Key: Stripe answers a repeat with the first result */
            backoff(wait_ms);
            wait_ms *= 2;
            buf_clear(err);
        }
        memset(&resp, 0, sizeof resp);
        rc = attempt(c, a, post, path, url.data, &body, idem_key, &resp, err);
        if (rc == PG_OK && resp.status >= 200 && resp.status < 300)
            break;
        if (rc == PG_OK || resp.status >= 500)
            rc = map_error(resp.status, &resp.body, e, err);
        if (!retryable(rc, resp.status))
            break;
    }
    if (rc == PG_OK)
        *out = resp.body.data ? resp.body.data : "";
    else if (resp.status == 429)
        rc = PG_ERR_UPSTREAM;
    return rc;
}

/* A call whose reply is one object: parsed with the given reader. */
static pg_err call_object(const stripe_client_t *c, arena_t *a, const char *method, const char *path,
                          const kv_list_t *form, const char *idem_key, json_t **root, stripe_error_t *e, buf_t *err)
{
    const char *text = NULL;
    pg_err rc = stripe_call(c, a, method, path, form, idem_key, &text, e, err);
    if (rc != PG_OK)
        return rc;
    *root = load_object(text, strlen(text));
    if (!*root) {
        buf_set_error(err, "stripe: reply to %s %s is not a JSON object", method, path);
        return PG_ERR_UPSTREAM;
    }
    return PG_OK;
}

static pg_err session_reply(const stripe_client_t *c, arena_t *a, const char *method, const char *path,
                            const kv_list_t *form, const char *idem_key, stripe_session_t *out, stripe_error_t *e,
                            buf_t *err)
{
    json_t *root = NULL;
    pg_err rc = call_object(c, a, method, path, form, idem_key, &root, e, err);
    if (rc == PG_OK && session_from_json(a, root, out) != PG_OK) {
        buf_set_error(err, "stripe: %s %s did not answer with a checkout session", method, path);
        rc = PG_ERR_UPSTREAM;
    }
    json_decref(root);
    return rc;
}

static bool safe_id(const char *id)
{
    if (!id || !*id || strlen(id) > 255)
        return false;
    for (const char *p = id; *p; p++) {
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
            return false;
    }
    return true;
}

pg_err stripe_session_create(const stripe_client_t *c, arena_t *a, const stripe_session_req_t *r,
                             stripe_session_t *out, stripe_error_t *e, buf_t *err)
{
    kv_list_t f;
    char amount[24], expires[24];
    snprintf(amount, sizeof amount, "%lld", (long long)r->amount);
    snprintf(expires, sizeof expires, "%lld", (long long)r->expires_at);
    kv_init(&f, a);
    kv_add(&f, "mode", "payment");
    kv_add(&f, "line_items[0][price_data][currency]", c->currency);
    kv_add(&f, "line_items[0][price_data][unit_amount]", amount);
    kv_add(&f, "line_items[0][price_data][product_data][name]", r->product_name);
    if (r->product_sku)
        kv_add(&f, "line_items[0][price_data][product_data][metadata][sku]", r->product_sku);
    kv_add(&f, "line_items[0][quantity]", "1");
    kv_add(&f, "client_reference_id", r->payment_no);
    kv_add(&f, "metadata[payment_no]", r->payment_no);
    kv_add(&f, "payment_intent_data[metadata][payment_no]", r->payment_no);
    kv_add(&f, "expires_at", expires);
    kv_add(&f, "success_url", r->success_url);
    if (kv_add(&f, "cancel_url", r->cancel_url) != PG_OK)
        return PG_ERR_NOMEM;
    return session_reply(c, a, "POST", "/v1/checkout/sessions", &f,
                         arena_printf(a, "paygate-checkout-%s", r->payment_no), out, e, err);
}

pg_err stripe_session_retrieve(const stripe_client_t *c, arena_t *a, const char *session_id,
                               stripe_session_t *out, stripe_error_t *e, buf_t *err)
{
    if (!safe_id(session_id)) {
        memset(e, 0, sizeof *e);
        buf_set_error(err, "stripe: not a session id");
        return PG_ERR_BAD_INPUT;
    }
    return session_reply(c, a, "GET", arena_printf(a, "/v1/checkout/sessions/%s", session_id), NULL, NULL, out, e,
                         err);
}

pg_err stripe_session_expire(const stripe_client_t *c, arena_t *a, const char *session_id,
                             stripe_session_t *out, stripe_error_t *e, buf_t *err)
{
    if (!safe_id(session_id)) {
        memset(e, 0, sizeof *e);
        buf_set_error(err, "stripe: not a session id");
        return PG_ERR_BAD_INPUT;
    }
    return session_reply(c, a, "POST", arena_printf(a, "/v1/checkout/sessions/%s/expire", session_id), NULL,
                         arena_printf(a, "paygate-expire-%s", session_id), out, e, err);
}

pg_err stripe_refund_create(const stripe_client_t *c, arena_t *a, const stripe_refund_req_t *r,
                            stripe_refund_t *out, stripe_error_t *e, buf_t *err)
{
    kv_list_t f;
    json_t *root = NULL;
    char amount[24], total[24];
    pg_err rc;
    snprintf(amount, sizeof amount, "%lld", (long long)r->amount);
    snprintf(total, sizeof total, "%lld", (long long)r->payment_amount);
    kv_init(&f, a);
    kv_add(&f, "payment_intent", r->payment_intent);
    kv_add(&f, "amount", amount);
    kv_add(&f, "metadata[refund_no]", r->refund_no);
    kv_add(&f, "metadata[payment_no]", r->payment_no);
    kv_add(&f, "metadata[payment_amount]", total);
    if (r->reason && *r->reason)
        kv_add(&f, "metadata[reason]", r->reason);
    if (f.count < 5)
        return PG_ERR_NOMEM;
    rc = call_object(c, a, "POST", "/v1/refunds", &f, r->refund_no, &root, e, err);
    if (rc == PG_OK && refund_from_json(a, root, out) != PG_OK) {
        buf_set_error(err, "stripe: POST /v1/refunds did not answer with a refund");
        rc = PG_ERR_UPSTREAM;
    }
    json_decref(root);
    return rc;
}

/* What a walk through a payment intent's refunds is after: one refund by
 * our number (refund_no set), or all of them (list, up to cap). */
typedef struct refund_walk {
    const char *refund_no;
    stripe_refund_t *out;
    bool *found;
    stripe_refund_t *list;
    size_t cap, n;
} refund_walk_t;

static void refund_take(refund_walk_t *w, const stripe_refund_t *r)
{
    if (!w->refund_no) {
        if (w->n < w->cap)
            w->list[w->n++] = *r;
        return;
    }
    if (r->refund_no && !strcmp(r->refund_no, w->refund_no) && !*w->found) {
        *w->out = *r;
        *w->found = true;
    }
}

/* One page of the payment intent's refunds; *last is the page's last id. */
static pg_err refund_page(const stripe_client_t *c, arena_t *a, const char *payment_intent, const char *after,
                          refund_walk_t *w, const char **last, bool *more, stripe_error_t *e, buf_t *err)
{
    kv_list_t q;
    json_t *root = NULL, *data, *item;
    size_t i;
    bool listed;
    pg_err rc;
    kv_init(&q, a);
    kv_add(&q, "payment_intent", payment_intent);
    kv_add(&q, "limit", "100");
    if (after)
        kv_add(&q, "starting_after", after);
    rc = call_object(c, a, "GET", "/v1/refunds", &q, NULL, &root, e, err);
    if (rc != PG_OK)
        return rc;
    data = json_object_get(root, "data");
    listed = json_is_array(data);
    *more = json_is_true(json_object_get(root, "has_more"));
    *last = NULL;
    json_array_foreach(data, i, item) {
        stripe_refund_t r;
        if (refund_from_json(a, item, &r) != PG_OK)
            continue;
        *last = r.id;
        refund_take(w, &r);
    }
    json_decref(root);   /* data is gone with it */
    if (!listed) {
        buf_set_error(err, "stripe: refund list without data");
        return PG_ERR_UPSTREAM;
    }
    return PG_OK;
}

static pg_err refund_walk(const stripe_client_t *c, arena_t *a, const char *payment_intent, refund_walk_t *w,
                          stripe_error_t *e, buf_t *err)
{
    const char *after = NULL;
    bool more = true, none = false;
    pg_err rc = PG_OK;
    bool *found = w->found ? w->found : &none;
    for (int page = 0; page < 50 && more && !*found && rc == PG_OK; page++) {
        const char *last = NULL;
        rc = refund_page(c, a, payment_intent, after, w, &last, &more, e, err);
        if (!last)
            break;
        after = last;
    }
    return rc;
}

pg_err stripe_refund_find(const stripe_client_t *c, arena_t *a, const char *payment_intent,
                          const char *refund_no, stripe_refund_t *out, bool *found, stripe_error_t *e,
                          buf_t *err)
{
    refund_walk_t w = { refund_no, out, found, NULL, 0, 0 };
    *found = false;
    memset(out, 0, sizeof *out);
    return refund_walk(c, a, payment_intent, &w, e, err);
}

pg_err stripe_refund_list(const stripe_client_t *c, arena_t *a, const char *payment_intent, stripe_refund_t *out,
                          size_t cap, size_t *n, stripe_error_t *e, buf_t *err)
{
    refund_walk_t w = { NULL, NULL, NULL, out, cap, 0 };
    pg_err rc = refund_walk(c, a, payment_intent, &w, e, err);
    *n = w.n;
    return rc;
}

pg_err stripe_intent_retrieve(const stripe_client_t *c, arena_t *a, const char *payment_intent,
                              stripe_intent_t *out, stripe_error_t *e, buf_t *err)
{
    json_t *root = NULL, *meta;
    pg_err rc;
    memset(out, 0, sizeof *out);
    if (!safe_id(payment_intent)) {
        buf_set_error(err, "stripe: not a payment intent id");
        return PG_ERR_BAD_INPUT;
    }
    rc = call_object(c, a, "GET", arena_printf(a, "/v1/payment_intents/%s", payment_intent), NULL, NULL, &root, e,
                     err);
    if (rc != PG_OK)
        return rc;
    meta = json_object_get(root, "metadata");
    out->id = jstr(a, root, "id");
    out->status = jstr(a, root, "status");
    out->currency = jstr(a, root, "currency");
    out->amount = jint(root, "amount");
    out->payment_no = json_is_object(meta) ? jstr(a, meta, "payment_no") : NULL;
    json_decref(root);
    if (!out->id || strcmp(out->id, payment_intent)) {
        buf_set_error(err, "stripe: GET /v1/payment_intents did not answer with the payment intent");
        return PG_ERR_UPSTREAM;
    }
    return PG_OK;
}

/* ---------------------------------------------------------------------- */
/* webhooks */

static bool parse_unix(const char *s, size_t n, time_t *out)
{
    long long v = 0;
    if (n == 0 || n > 12)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = (time_t)v;
    return true;
}

static bool is_hex64(const char *s, size_t n)
{
    if (n != 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    }
    return true;
}

pg_err stripe_signature_header(const char *secret, time_t t, const char *body, size_t len, buf_t *out)
{
    buf_t signed_text;
    char hex[65];
    buf_init(&signed_text, NULL);
    buf_printf(&signed_text, "%lld.", (long long)t);
    buf_append(&signed_text, body, len);
    if (signed_text.failed) {
        buf_free(&signed_text);
        return PG_ERR_NOMEM;
    }
    crypto_hmac_sha256_hex(secret, strlen(secret), signed_text.data, signed_text.len, false, hex);
    buf_free(&signed_text);
    buf_printf(out, "t=%lld,v1=%s", (long long)t, hex);
    return out->failed ? PG_ERR_NOMEM : PG_OK;
}

/* Every v1 of the header is compared (no early exit on a match), each in constant time. */
static bool any_v1_matches(const char *header, const char *expected)
{
    bool match = false;
    const char *p = header;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n > 3 && !strncmp(p, "v1=", 3) && is_hex64(p + 3, n - 3))
            match |= crypto_ct_equal(p + 3, 64, expected, 64);
        p += n;
        if (*p == ',')
            p++;
    }
    return match;
}

static bool header_timestamp(const char *header, time_t *t)
{
    bool seen = false;
    const char *p = header;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n > 2 && !strncmp(p, "t=", 2)) {
            if (seen || !parse_unix(p + 2, n - 2, t))
                return false;   /* two timestamps: which one was signed? */
            seen = true;
        }
        p += n;
        if (*p == ',')
            p++;
    }
    return seen;
}

pg_err stripe_verify_signature(const char *secret, const char *header, const char *body, size_t len,
                               time_t now, long tolerance_s, buf_t *why)
{
    time_t t = 0;
    buf_t signed_text;
    char expected[65];
    bool ok;
    if (!secret || !*secret) {
        buf_set_error(why, "no webhook secret configured");
        return PG_ERR_BAD_SIGNATURE;
    }
    if (!header || !*header || strlen(header) > 4096) {
        buf_set_error(why, "no Stripe-Signature header");
        return PG_ERR_BAD_SIGNATURE;
    }
    if (!header_timestamp(header, &t)) {
        buf_set_error(why, "Stripe-Signature has no single valid timestamp");
        return PG_ERR_BAD_SIGNATURE;
    }
    if (t < now - tolerance_s || t > now + tolerance_s) {
        buf_set_error(why, "Stripe-Signature timestamp outside the tolerance (%ld s)", tolerance_s);
        return PG_ERR_BAD_SIGNATURE;
    }
    buf_init(&signed_text, NULL);
    buf_printf(&signed_text, "%lld.", (long long)t);
    buf_append(&signed_text, body ? body : "", len);
    if (signed_text.failed) {
        buf_free(&signed_text);
        return PG_ERR_NOMEM;
    }
    crypto_hmac_sha256_hex(secret, strlen(secret), signed_text.data, signed_text.len, false, expected);
    buf_free(&signed_text);
    ok = any_v1_matches(header, expected);
    crypto_wipe(expected, sizeof expected);
    if (!ok) {
        buf_set_error(why, "no v1 signature of Stripe-Signature matches");
        return PG_ERR_BAD_SIGNATURE;
    }
    return PG_OK;
}

static const struct { const char *type; stripe_event_kind_t kind; } EVENT_KINDS[] = {
    { "checkout.session.completed", STRIPE_EVENT_SESSION_COMPLETED },
    { "checkout.session.async_payment_succeeded", STRIPE_EVENT_SESSION_ASYNC_PAID },
    { "checkout.session.async_payment_failed", STRIPE_EVENT_SESSION_ASYNC_FAILED },
    { "checkout.session.expired", STRIPE_EVENT_SESSION_EXPIRED },
    { "charge.refunded", STRIPE_EVENT_CHARGE_REFUNDED },
    { "refund.created", STRIPE_EVENT_REFUND },
    { "refund.updated", STRIPE_EVENT_REFUND },
};

static stripe_event_kind_t kind_of(const char *type)
{
    for (size_t i = 0; type && i < sizeof EVENT_KINDS / sizeof EVENT_KINDS[0]; i++) {
        if (!strcmp(EVENT_KINDS[i].type, type))
            return EVENT_KINDS[i].kind;
    }
    return STRIPE_EVENT_OTHER;
}

static pg_err event_object(arena_t *a, json_t *obj, stripe_event_t *out, buf_t *why)
{
    switch (out->kind) {
    case STRIPE_EVENT_OTHER:
        return PG_OK;
    case STRIPE_EVENT_CHARGE_REFUNDED:
        if (!is_object_of(obj, "charge")) {
            buf_set_error(why, "charge.refunded without a charge");
            return PG_ERR_BAD_INPUT;
        }
        out->charge_payment_intent = jid(a, obj, "payment_intent");
        out->charge_currency = jstr(a, obj, "currency");
        out->charge_amount = jint(obj, "amount");
        out->charge_amount_refunded = jint(obj, "amount_refunded");
        return PG_OK;
    case STRIPE_EVENT_REFUND:
        if (refund_from_json(a, obj, &out->refund) != PG_OK) {
            buf_set_error(why, "%s without a refund", out->type);
            return PG_ERR_BAD_INPUT;
        }
        return PG_OK;
    default:
        if (session_from_json(a, obj, &out->session) != PG_OK) {
            buf_set_error(why, "%s without a checkout session", out->type);
            return PG_ERR_BAD_INPUT;
        }
        return PG_OK;
    }
}

pg_err stripe_event_parse(arena_t *a, const char *body, size_t len, stripe_event_t *out, buf_t *why)
{
    json_t *root = load_object(body, len), *data, *created;
    pg_err rc;
    memset(out, 0, sizeof *out);
    if (!root || !is_object_of(root, "event")) {
        buf_set_error(why, "body is not a Stripe event object");
        json_decref(root);
        return PG_ERR_BAD_INPUT;
    }
    out->id = jstr(a, root, "id");
    out->type = jstr(a, root, "type");
    out->account = jstr(a, root, "account");
    out->livemode = json_is_true(json_object_get(root, "livemode"));
    created = json_object_get(root, "created");
    out->created = json_is_integer(created) ? (time_t)json_integer_value(created) : 0;
    data = json_object_get(root, "data");
    if (!out->id || !out->type || !json_is_object(data)) {
        buf_set_error(why, "event without id, type or data");
        json_decref(root);
        return PG_ERR_BAD_INPUT;
    }
    out->kind = kind_of(out->type);
    rc = event_object(a, json_object_get(data, "object"), out, why);
    json_decref(root);
    return rc;
}

/* ---------------------------------------------------------------------- */
/* balance transactions as a bill */

static const char *beijing_time(arena_t *a, time_t t)
{
    struct tm tm;
    char out[20];
    time_t bj = t + 8 * 3600;
    if (!gmtime_r(&bj, &tm) || strftime(out, sizeof out, "%Y-%m-%d %H:%M:%S", &tm) == 0)
        return NULL;
    return arena_strdup(a, out);
}

/* One balance transaction as a row; false when it is not a movement of ours. */
static bool balance_row(arena_t *a, json_t *txn, bill_row_t *row)
{
    json_t *src = json_object_get(txn, "source"), *meta, *pi;
    const char *type = json_string_value(json_object_get(txn, "type"));
    int64_t amount = json_is_integer(json_object_get(txn, "amount")) ? json_integer_value(json_object_get(txn, "amount")) : 0;
    json_t *created = json_object_get(txn, "created");
    memset(row, 0, sizeof *row);
    if (!type || !json_is_object(src) || !json_is_integer(json_object_get(txn, "fee")))
        return false;
    row->fee_fen = json_integer_value(json_object_get(txn, "fee"));
    row->finished_at = json_is_integer(created) ? beijing_time(a, (time_t)json_integer_value(created)) : NULL;
    row->status = arena_strdup(a, type);
    if (!strcmp(type, "charge") || !strcmp(type, "payment")) {
        pi = json_object_get(src, "payment_intent");
        meta = json_is_object(pi) ? json_object_get(pi, "metadata") : NULL;
        row->kind = BILL_PAYMENT;
        row->provider_trade_no = jstr(a, src, "id");
        row->out_trade_no = json_is_object(meta) ? jstr(a, meta, "payment_no") : NULL;
        row->amount_fen = amount;
    } else if (!strcmp(type, "refund") || !strcmp(type, "payment_refund")) {
        meta = json_object_get(src, "metadata");
        row->kind = BILL_REFUND;
        row->provider_trade_no = jid(a, src, "payment_intent");
        row->provider_refund_no = jstr(a, src, "id");
        row->out_trade_no = json_is_object(meta) ? jstr(a, meta, "payment_no") : NULL;
        row->out_refund_no = json_is_object(meta) ? jstr(a, meta, "refund_no") : NULL;
        row->amount_fen = -amount;
        row->fee_fen = -row->fee_fen;
    } else {
        return false;
    }
    if (!row->provider_trade_no)
        row->provider_trade_no = row->provider_refund_no ? row->provider_refund_no : "-";
    if (!row->out_trade_no)
        row->out_trade_no = "";
    return row->amount_fen > 0;
}

static pg_err balance_page(const stripe_client_t *c, arena_t *a, const char *from, const char *to, const char *after,
                           json_t **root, stripe_error_t *e, buf_t *err)
{
    kv_list_t q;
    kv_init(&q, a);
    kv_add(&q, "created[gte]", from);
    kv_add(&q, "created[lt]", to);
    kv_add(&q, "limit", "100");
    kv_add(&q, "expand[]", "data.source.payment_intent");
    if (after && kv_add(&q, "starting_after", after) != PG_OK)
        return PG_ERR_NOMEM;
    return call_object(c, a, "GET", "/v1/balance_transactions", &q, NULL, root, e, err);
}

static pg_err bill_add(arena_t *a, bill_t *out, size_t *cap, const bill_row_t *row)
{
    if (out->count == *cap) {
        size_t ncap = *cap ? *cap * 2 : 64;
        bill_row_t *rows = arena_alloc(a, ncap * sizeof *rows);
        if (!rows)
            return PG_ERR_NOMEM;
        if (out->count)
            memcpy(rows, out->rows, out->count * sizeof *rows);
        out->rows = rows;
        *cap = ncap;
    }
    out->rows[out->count] = *row;
    out->rows[out->count].line = out->count + 1;
    out->count++;
    if (row->kind == BILL_PAYMENT)
        out->total_amount_fen += row->amount_fen;
    else
        out->total_refund_fen += row->amount_fen;
    out->total_fee_fen += row->fee_fen;
    return out->count > BILL_MAX_ROWS ? PG_ERR_TOO_LARGE : PG_OK;
}

pg_err stripe_balance_bill(const stripe_client_t *c, arena_t *a, time_t from, time_t to, bill_t *out,
                           stripe_error_t *e, buf_t *err)
{
    char gte[24], lt[24];
    const char *after = NULL;
    size_t cap = 0;
    bool more = true;
    pg_err rc = PG_OK;
    memset(out, 0, sizeof *out);
    snprintf(gte, sizeof gte, "%lld", (long long)from);
    snprintf(lt, sizeof lt, "%lld", (long long)to);
    for (int page = 0; more && rc == PG_OK && page < 10000; page++) {
        json_t *root = NULL, *data, *txn;
        size_t i;
        rc = balance_page(c, a, gte, lt, after, &root, e, err);
        if (rc != PG_OK)
            break;
        data = json_object_get(root, "data");
        more = json_is_true(json_object_get(root, "has_more"));
        if (!json_is_array(data) || (more && json_array_size(data) == 0)) {
            buf_set_error(err, "stripe: balance transaction list without data");
            rc = PG_ERR_UPSTREAM;
        }
        json_array_foreach(data, i, txn) {
            bill_row_t row;
            after = jstr(a, txn, "id");
            if (rc == PG_OK && balance_row(a, txn, &row))
                rc = bill_add(a, out, &cap, &row);
        }
        json_decref(root);
    }
    out->has_totals = out->has_fee_total = rc == PG_OK;
    return rc;
}
