/* appstore: verification of Apple's JWS and the facts inside (appstore.h). */
#include "appstore.h"

#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "crypto.h"

typedef struct chain_slot {
    unsigned char fp[32];       /* SHA-256(leaf DER || intermediate DER) */
    pki_pubkey_t *key;          /* the verified leaf's key */
    time_t until;
} chain_slot_t;

struct appstore_verifier {
    pki_cert_t *root;
    chain_slot_t cache[APPSTORE_CACHE_SLOTS];
};

pg_err appstore_verifier_new(pki_cert_t *root, appstore_verifier_t **out)
{
    *out = calloc(1, sizeof(**out));
    if (!*out) {
        pki_cert_free(root);
        return PG_ERR_NOMEM;
    }
    (*out)->root = root;
    return PG_OK;
}

pg_err appstore_verifier_load(const char *root_path, appstore_verifier_t **out, buf_t *err)
{
    pki_cert_t *root = NULL;
    *out = NULL;
    pg_err rc = pki_cert_load(root_path, &root, err);
    return rc == PG_OK ? appstore_verifier_new(root, out) : rc;
}

void appstore_verifier_clear_cache(appstore_verifier_t *v)
{
    for (size_t i = 0; i < APPSTORE_CACHE_SLOTS; i++) {
        pki_pubkey_free(v->cache[i].key);
        memset(&v->cache[i], 0, sizeof(v->cache[i]));
    }
}

void appstore_verifier_free(appstore_verifier_t *v)
{
    if (!v)
        return;
    appstore_verifier_clear_cache(v);
    pki_cert_free(v->root);
    free(v);
}

size_t appstore_verifier_cached(const appstore_verifier_t *v, time_t now)
{
    size_t n = 0;
    for (size_t i = 0; i < APPSTORE_CACHE_SLOTS; i++)
        n += v->cache[i].key && v->cache[i].until > now;
    return n;
}

static pki_pubkey_t *cache_find(appstore_verifier_t *v, const unsigned char fp[32], time_t now)
{
    for (size_t i = 0; i < APPSTORE_CACHE_SLOTS; i++) {
        chain_slot_t *s = &v->cache[i];
        if (s->key && s->until > now && crypto_ct_equal(s->fp, 32, fp, 32))
            return pki_pubkey_ref(s->key);
    }
    return NULL;
}

/* Only called with a chain that verified: an empty or expired slot, else the oldest. */
static void cache_put(appstore_verifier_t *v, const unsigned char fp[32], pki_pubkey_t *key, time_t now)
{
    chain_slot_t *pick = &v->cache[0];
    for (size_t i = 0; i < APPSTORE_CACHE_SLOTS; i++) {
        chain_slot_t *s = &v->cache[i];
        if (!s->key || s->until <= now) {
            pick = s;
            break;
        }
        if (s->until < pick->until)
            pick = s;
    }
    pki_pubkey_t *ref = pki_pubkey_ref(key);
    if (!ref)
        return;
    pki_pubkey_free(pick->key);
    memcpy(pick->fp, fp, 32);
    pick->key = ref;
    pick->until = now + APPSTORE_CACHE_SECONDS;
}

/* ---- compact JWS ------------------------------------------------------ */

static bool is_b64url(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return false;
    }
    return n % 4 != 1;
}

static pg_err b64url_decode(const char *s, size_t n, buf_t *out)
{
    if (!is_b64url(s, n))
        return PG_ERR_BAD_INPUT;
    buf_t std;
    buf_init(&std, NULL);
    for (size_t i = 0; i < n; i++)
        buf_putc(&std, s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i]);
    while (std.len % 4)
        buf_putc(&std, '=');
    pg_err rc = std.failed ? PG_ERR_NOMEM : crypto_base64_decode(std.data, std.len, out);
    buf_free(&std);
    return rc;
}

static json_t *json_from(const char *s, size_t n)
{
    json_t *j = json_loadb(s, n, JSON_REJECT_DUPLICATES, NULL);
    if (j && !json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    return j;
}

typedef struct jws_parts {
    const char *signing_input;  /* header "." payload, not NUL-terminated */
    size_t signing_len;
    const char *payload;
    size_t payload_len;
    const char *sig;
    size_t sig_len;
} jws_parts_t;

static pg_err jws_split(const char *jws, size_t len, jws_parts_t *p)
{
    const char *d1 = memchr(jws, '.', len);
    const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - jws)) : NULL;
    if (!d1 || !d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - jws)))
        return PG_ERR_BAD_INPUT;
    p->signing_input = jws;
    p->signing_len = (size_t)(d2 - jws);
    p->payload = d1 + 1;
    p->payload_len = (size_t)(d2 - d1 - 1);
    p->sig = d2 + 1;
    p->sig_len = len - (size_t)(d2 + 1 - jws);
    return d1 == jws ? PG_ERR_BAD_INPUT : PG_OK;
}

/* The header: alg exactly ES256, no crit, x5c three standard-base64 DERs. */
static pg_err jws_header(const char *h, size_t n, buf_t *leaf, buf_t *inter, buf_t *err)
{
    buf_t raw;
    buf_init(&raw, NULL);
    json_t *hdr = NULL;
    pg_err rc = b64url_decode(h, n, &raw);
    if (rc != PG_OK || !(hdr = json_from(raw.data, raw.len))) {
        buf_set_error(err, "JWS header is not base64url JSON");
        rc = rc == PG_ERR_NOMEM ? rc : PG_ERR_BAD_INPUT;
        goto done;
    }
    const char *alg = json_string_value(json_object_get(hdr, "alg"));
    json_t *x5c = json_object_get(hdr, "x5c");
    rc = PG_ERR_BAD_SIGNATURE;
    if (!alg || strcmp(alg, "ES256") != 0 || json_object_get(hdr, "crit")) {
        buf_set_error(err, "JWS alg is not ES256");
        goto done;
    }
    if (!json_is_array(x5c) || json_array_size(x5c) != 3) {
        buf_set_error(err, "JWS x5c is not a chain of three certificates");
        goto done;
    }
    const char *c0 = json_string_value(json_array_get(x5c, 0));
    const char *c1 = json_string_value(json_array_get(x5c, 1));
    if (!c0 || !c1 || !json_is_string(json_array_get(x5c, 2)) ||
        crypto_base64_decode(c0, strlen(c0), leaf) != PG_OK ||
        crypto_base64_decode(c1, strlen(c1), inter) != PG_OK) {
        buf_set_error(err, "JWS x5c entries are not base64 certificates");
        goto done;
    }
    rc = PG_OK;
done:
    json_decref(hdr);
    buf_free(&raw);
    return rc;
}

static pg_err leaf_key(appstore_verifier_t *v, const buf_t *leaf, const buf_t *inter, time_t now,
                       pki_pubkey_t **key, buf_t *err)
{
    buf_t both;
    buf_init(&both, NULL);
    buf_append(&both, leaf->data, leaf->len);
    buf_append(&both, inter->data, inter->len);
    if (both.failed) {
        buf_free(&both);
        return PG_ERR_NOMEM;
    }
    unsigned char fp[32];
    pki_sha256(both.data, both.len, fp);
    buf_free(&both);
    if ((*key = cache_find(v, fp, now)) != NULL)
        return PG_OK;
    pki_chain_rules_t rules = { APPSTORE_OID_LEAF, APPSTORE_OID_INTERMEDIATE, now };
    pg_err rc = pki_chain_verify(v->root, leaf->data, leaf->len, inter->data, inter->len, &rules, key, err);
    if (rc == PG_OK)
        cache_put(v, fp, *key, now);
    return rc == PG_ERR_BAD_INPUT ? PG_ERR_BAD_SIGNATURE : rc;
}

/* Verifies a compact JWS; on PG_OK *payload is the decoded JSON object and
 * *text its bytes in the arena. */
static pg_err jws_verify(appstore_verifier_t *v, arena_t *a, const char *jws, size_t len, time_t now,
                         json_t **payload, const char **text, buf_t *err)
{
    jws_parts_t p;
    buf_t leaf, inter, sig, body;
    buf_init(&leaf, NULL);
    buf_init(&inter, NULL);
    buf_init(&sig, NULL);
    buf_init(&body, NULL);
    pki_pubkey_t *key = NULL;
    *payload = NULL;
    pg_err rc = PG_ERR_TOO_LARGE;
    if (len > APPSTORE_MAX_JWS) {
        buf_set_error(err, "JWS too large");
        goto done;
    }
    if ((rc = jws_split(jws, len, &p)) != PG_OK) {
        buf_set_error(err, "not a compact JWS");
        goto done;
    }
    const char *dot = memchr(jws, '.', len);
    if ((rc = jws_header(jws, (size_t)(dot - jws), &leaf, &inter, err)) != PG_OK)
        goto done;
    if (b64url_decode(p.sig, p.sig_len, &sig) != PG_OK || sig.len != 64) {
        buf_set_error(err, "JWS signature is not 64 bytes r||s");
        rc = PG_ERR_BAD_SIGNATURE;
        goto done;
    }
    if ((rc = leaf_key(v, &leaf, &inter, now, &key, err)) != PG_OK)
        goto done;
    if ((rc = pki_es256_verify(key, p.signing_input, p.signing_len, sig.data, sig.len)) != PG_OK) {
        buf_set_error(err, "JWS signature does not verify");
        goto done;
    }
    rc = PG_ERR_BAD_INPUT;
    if (b64url_decode(p.payload, p.payload_len, &body) != PG_OK || !(*payload = json_from(body.data, body.len))) {
        buf_set_error(err, "JWS payload is not JSON");
        goto done;
    }
    rc = (*text = arena_strndup(a, body.data, body.len)) ? PG_OK : PG_ERR_NOMEM;
done:
    pki_pubkey_free(key);
    buf_free(&leaf);
    buf_free(&inter);
    buf_free(&sig);
    buf_free(&body);
    if (rc != PG_OK && *payload) {
        json_decref(*payload);
        *payload = NULL;
    }
    return rc;
}

/* ---- facts ------------------------------------------------------------ */

/* A string member of at most max bytes of [A-Za-z0-9._-] (plus extra), copied
 * to the arena; NULL when absent, *bad when present but wrong. */
static char *get_str(arena_t *a, json_t *o, const char *name, size_t max, bool *bad)
{
    json_t *j = json_object_get(o, name);
    if (!j)
        return NULL;
    const char *s = json_string_value(j);
    size_t n = s ? json_string_length(j) : 0;
    bool ok = s && n > 0 && n <= max && strlen(s) == n;
    for (size_t i = 0; ok && i < n; i++) {
        char c = s[i];
        ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
             c == '.' || c == '_' || c == '-';
    }
    if (!ok) {
        *bad = true;
        return NULL;
    }
    return arena_strndup(a, s, n);
}

static int64_t get_int(json_t *o, const char *name, int64_t absent, bool *bad)
{
    json_t *j = json_object_get(o, name);
    if (!j)
        return absent;
    if (!json_is_integer(j) || json_integer_value(j) < 0) {
        *bad = true;
        return absent;
    }
    return (int64_t)json_integer_value(j);
}

/* appAccountToken: a UUID, kept lowercase. */
static const char *get_uuid(arena_t *a, json_t *o, const char *name, bool *bad)
{
    char *u = get_str(a, o, name, 36, bad);
    if (!u)
        return NULL;
    bool ok = strlen(u) == 36;
    for (size_t i = 0; ok && i < 36; i++) {
        char c = u[i];
        if (i == 8 || i == 13 || i == 18 || i == 23)
            ok = c == '-';
        else if (c >= 'A' && c <= 'F')
            u[i] = (char)(c - 'A' + 'a');
        else
            ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
    }
    if (!ok)
        *bad = true;
    return ok ? u : NULL;
}

static bool str_is(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

static pg_err tx_facts(arena_t *a, json_t *o, appstore_transaction_t *t, buf_t *err)
{
    bool bad = false;
    t->transaction_id = get_str(a, o, "transactionId", 64, &bad);
    t->original_transaction_id = get_str(a, o, "originalTransactionId", 64, &bad);
    t->bundle_id = get_str(a, o, "bundleId", 255, &bad);
    t->product_id = get_str(a, o, "productId", 255, &bad);
    t->environment = get_str(a, o, "environment", 32, &bad);
    t->currency = get_str(a, o, "currency", 3, &bad);
    t->app_account_token = get_uuid(a, o, "appAccountToken", &bad);
    t->price_milli = get_int(o, "price", -1, &bad);
    t->purchase_date_ms = get_int(o, "purchaseDate", 0, &bad);
    t->signed_date_ms = get_int(o, "signedDate", 0, &bad);
    t->revocation_date_ms = get_int(o, "revocationDate", 0, &bad);
    t->revocation_reason = get_int(o, "revocationReason", -1, &bad);
    t->quantity = get_int(o, "quantity", 1, &bad);
    json_t *type = json_object_get(o, "type");
    t->type = json_is_string(type) && json_string_length(type) <= 64 ? arena_strdup(a, json_string_value(type)) : NULL;
    if (bad || !t->transaction_id || !t->bundle_id || !t->product_id || !t->environment || !t->purchase_date_ms) {
        buf_set_error(err, "transaction lacks or garbles transactionId, bundleId, productId, environment or purchaseDate");
        return PG_ERR_BAD_INPUT;
    }
    if (!t->original_transaction_id)
        t->original_transaction_id = t->transaction_id;
    return PG_OK;
}

pg_err appstore_verify_transaction(appstore_verifier_t *v, const appstore_expect_t *e, arena_t *a,
                                   const char *jws, size_t len, time_t now,
                                   appstore_transaction_t *out, buf_t *err)
{
    json_t *o = NULL;
    memset(out, 0, sizeof(*out));
    pg_err rc = jws_verify(v, a, jws, len, now, &o, &out->payload_json, err);
    if (rc == PG_OK)
        rc = tx_facts(a, o, out, err);
    if (rc == PG_OK && !str_is(out->bundle_id, e->bundle_id)) {
        buf_set_error(err, "transaction for another bundle");
        rc = PG_ERR_MISMATCH;
    }
    if (rc == PG_OK && !str_is(out->environment, e->environment)) {
        buf_set_error(err, "transaction from environment %s", out->environment);
        rc = PG_ERR_MISMATCH;
    }
    json_decref(o);
    return rc;
}

static pg_err notification_facts(arena_t *a, json_t *o, appstore_notification_t *n, json_t **data, buf_t *err)
{
    bool bad = false;
    n->type = get_str(a, o, "notificationType", 64, &bad);
    n->subtype = get_str(a, o, "subtype", 64, &bad);
    n->uuid = get_str(a, o, "notificationUUID", 64, &bad);
    n->signed_date_ms = get_int(o, "signedDate", 0, &bad);
    json_t *version = json_object_get(o, "version");
    *data = json_object_get(o, "data");
    if (json_is_object(*data)) {
        n->bundle_id = get_str(a, *data, "bundleId", 255, &bad);
        n->environment = get_str(a, *data, "environment", 32, &bad);
        n->app_apple_id = get_int(*data, "appAppleId", 0, &bad);
    }
    if (bad || !n->type || !n->uuid || !json_is_object(*data) || !str_is(json_string_value(version), "2.0")) {
        buf_set_error(err, "notification lacks or garbles notificationType, notificationUUID, version 2.0 or data");
        return PG_ERR_BAD_INPUT;
    }
    return PG_OK;
}

static pg_err notification_matches(const appstore_expect_t *e, const appstore_notification_t *n, buf_t *err)
{
    if (!str_is(n->bundle_id, e->bundle_id)) {
        buf_set_error(err, "notification for another bundle");
        return PG_ERR_MISMATCH;
    }
    if (!str_is(n->environment, e->environment)) {
        buf_set_error(err, "notification from another environment");
        return PG_ERR_MISMATCH;
    }
    if (str_is(e->environment, "Production") && n->app_apple_id != e->app_apple_id) {
        buf_set_error(err, "notification for another app");
        return PG_ERR_MISMATCH;
    }
    return PG_OK;
}

static pg_err signed_payload(const char *body, size_t len, json_t **outer, const char **jws, size_t *jws_len,
                             buf_t *err)
{
    if (len > APPSTORE_MAX_JWS + 64) {
        buf_set_error(err, "notification too large");
        return PG_ERR_TOO_LARGE;
    }
    *outer = json_from(body, len);
    json_t *sp = *outer ? json_object_get(*outer, "signedPayload") : NULL;
    if (!json_is_string(sp)) {
        buf_set_error(err, "body is not {\"signedPayload\": JWS}");
        return PG_ERR_BAD_INPUT;
    }
    *jws = json_string_value(sp);
    *jws_len = json_string_length(sp);
    return PG_OK;
}

pg_err appstore_verify_notification(appstore_verifier_t *v, const appstore_expect_t *e, arena_t *a,
                                    const char *body, size_t len, time_t now,
                                    appstore_notification_t *out, buf_t *err)
{
    json_t *outer = NULL, *o = NULL, *data = NULL;
    const char *jws = NULL;
    size_t jws_len = 0;
    memset(out, 0, sizeof(*out));
    pg_err rc = signed_payload(body, len, &outer, &jws, &jws_len, err);
    if (rc == PG_OK)
        rc = jws_verify(v, a, jws, jws_len, now, &o, &out->payload_json, err);
    if (rc == PG_OK)
        rc = notification_facts(a, o, out, &data, err);
    if (rc == PG_OK)
        rc = notification_matches(e, out, err);
    json_t *sti = rc == PG_OK ? json_object_get(data, "signedTransactionInfo") : NULL;
    if (sti && !json_is_string(sti)) {
        buf_set_error(err, "signedTransactionInfo is not a string");
        rc = PG_ERR_BAD_INPUT;
    } else if (sti) {
        rc = appstore_verify_transaction(v, e, a, json_string_value(sti), json_string_length(sti), now, &out->tx, err);
        out->has_transaction = rc == PG_OK;
    }
    json_decref(o);
    json_decref(outer);
    return rc;
}

pg_err appstore_parse_lookup_reply(appstore_verifier_t *v, const appstore_expect_t *e, arena_t *a,
                                   const char *body, size_t len, time_t now,
                                   appstore_transaction_t *out, buf_t *err)
{
    json_t *o = json_from(body, len);
    json_t *sti = o ? json_object_get(o, "signedTransactionInfo") : NULL;
    pg_err rc = PG_ERR_UPSTREAM;
    memset(out, 0, sizeof(*out));
    if (!json_is_string(sti))
        buf_set_error(err, "App Store Server API reply without signedTransactionInfo");
    else
        rc = appstore_verify_transaction(v, e, a, json_string_value(sti), json_string_length(sti), now, out, err);
    json_decref(o);
    return rc;
}

/* ---- App Store Server API token ---------------------------------------- */

static pg_err b64url_append(buf_t *out, const void *data, size_t n)
{
    buf_t std;
    buf_init(&std, NULL);
    pg_err rc = crypto_base64_encode(data, n, &std);
    for (size_t i = 0; rc == PG_OK && i < std.len && std.data[i] != '='; i++)
        rc = buf_putc(out, std.data[i] == '+' ? '-' : std.data[i] == '/' ? '_' : std.data[i]);
    buf_free(&std);
    return rc;
}

pg_err appstore_api_token(const pki_privkey_t *key, const char *key_id, const char *issuer_id,
                          const char *bundle_id, time_t now, buf_t *out)
{
    json_t *h = json_pack("{s:s, s:s, s:s}", "alg", "ES256", "kid", key_id, "typ", "JWT");
    json_t *c = json_pack("{s:s, s:I, s:I, s:s, s:s}", "iss", issuer_id, "iat", (json_int_t)now,
                          "exp", (json_int_t)(now + 1800), "aud", "appstoreconnect-v1", "bid", bundle_id);
    char *hs = h ? json_dumps(h, JSON_COMPACT) : NULL;
    char *cs = c ? json_dumps(c, JSON_COMPACT) : NULL;
    buf_t input, sig;
    buf_init(&input, NULL);
    buf_init(&sig, NULL);
    pg_err rc = PG_ERR_NOMEM;
    if (!hs || !cs)
        goto done;
    if ((rc = b64url_append(&input, hs, strlen(hs))) != PG_OK || (rc = buf_putc(&input, '.')) != PG_OK ||
        (rc = b64url_append(&input, cs, strlen(cs))) != PG_OK)
        goto done;
    if ((rc = pki_es256_sign(key, input.data, input.len, &sig)) != PG_OK)
        goto done;
    if ((rc = buf_append(out, input.data, input.len)) == PG_OK && (rc = buf_putc(out, '.')) == PG_OK)
        rc = b64url_append(out, sig.data, sig.len);
done:
    free(hs);
    free(cs);
    json_decref(h);
    json_decref(c);
    buf_free(&input);
    buf_free(&sig);
    return rc;
}

pg_err appstore_lookup_transaction(const appstore_api_t *api, appstore_verifier_t *v, const appstore_expect_t *e,
                                   arena_t *a, const char *transaction_id, time_t now,
                                   appstore_transaction_t *out, buf_t *err)
{
    buf_t tok, url;
    httpc_response_t r;
    memset(out, 0, sizeof(*out));
    if (!api->key) {
        buf_set_error(err, "no App Store Server API key ([appstore] issuer_id, key_id, private_key)");
        return PG_ERR_UNSUPPORTED;
    }
    buf_init(&tok, a);
    buf_init(&url, a);
    buf_puts(&tok, "Authorization: Bearer ");
    pg_err rc = appstore_api_token(api->key, api->key_id, api->issuer_id, api->bundle_id, now, &tok);
    buf_puts(&url, api->api_base);
    buf_puts(&url, "/inApps/v1/transactions/");
    buf_append_urlencoded(&url, transaction_id);
    if (rc != PG_OK || tok.failed || url.failed)
        return rc != PG_OK ? rc : PG_ERR_NOMEM;
    const char *hdr[] = { tok.data, NULL };
    if ((rc = httpc_get_headers(a, url.data, hdr, &api->http, &r, err)) != PG_OK)
        return rc;
    if (r.status == 404) {
        buf_set_error(err, "Apple knows no transaction %s", transaction_id);
        return PG_ERR_NOT_FOUND;
    }
    if (r.status != 200) {
        buf_set_error(err, "App Store Server API answered HTTP %ld", r.status);
        return PG_ERR_UPSTREAM;
    }
    rc = appstore_parse_lookup_reply(v, e, a, r.body.data, r.body.len, now, out, err);
    if (rc == PG_OK && strcmp(out->transaction_id, transaction_id)) {
        buf_set_error(err, "App Store Server API answered with another transaction");
        rc = PG_ERR_MISMATCH;
    }
    return rc;
}
