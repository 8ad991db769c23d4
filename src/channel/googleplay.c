/* googleplay: see include/googleplay.h. */
#include "googleplay.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "text.h"

#define ANDROIDPUBLISHER_SCOPE "https://www.googleapis.com/auth/androidpublisher"
#define JWKS_DEFAULT_TTL 3600
#define MAX_JWT (16 * 1024)

/* ---- base64url ---------------------------------------------------------- */

static pg_err b64url_decode(const char *s, size_t n, buf_t *out)
{
    buf_t std;
    buf_init(&std, NULL);
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_')) {
            buf_free(&std);
            return PG_ERR_BAD_INPUT;
        }
        buf_putc(&std, c == '-' ? '+' : c == '_' ? '/' : c);
    }
    while (std.len % 4)
        buf_putc(&std, '=');
    pg_err rc = std.failed ? PG_ERR_NOMEM : n % 4 == 1 ? PG_ERR_BAD_INPUT : crypto_base64_decode(std.data, std.len, out);
    buf_free(&std);
    return rc;
}

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

static json_t *json_obj(const char *s, size_t n)
{
    json_t *j = json_loadb(s, n, JSON_REJECT_DUPLICATES, NULL);
    if (j && !json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    return j;
}

/* ---- service account ---------------------------------------------------- */

pg_err googleplay_load_service_account(googleplay_client_t *c, const char *path, buf_t *err)
{
    json_error_t je;
    json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    const char *email = j ? json_string_value(json_object_get(j, "client_email")) : NULL;
    const char *key = j ? json_string_value(json_object_get(j, "private_key")) : NULL;
    const char *uri = j ? json_string_value(json_object_get(j, "token_uri")) : NULL;
    pg_err rc = PG_ERR_CONFIG;
    if (!email || !key || !uri) {
        buf_set_error(err, "%s: not a service account JSON (client_email, private_key, token_uri)", path);
        goto done;
    }
    if (strncmp(uri, "https://", 8) && strncmp(uri, "http://", 7)) {
        buf_set_error(err, "%s: token_uri is not an http(s) URL", path);
        goto done;
    }
    if (crypto_key_parse_private(key, strlen(key), &c->sa_key, err) != PG_OK)
        goto done;
    c->client_email = strdup(email);
    c->token_uri = strdup(uri);
    rc = c->client_email && c->token_uri ? PG_OK : PG_ERR_NOMEM;
done:
    if (j) {
        json_t *k = json_object_get(j, "private_key");
        if (json_is_string(k))
            crypto_wipe((void *)(uintptr_t)json_string_value(k), json_string_length(k));
    }
    json_decref(j);
    return rc;
}

static void free_keys(googleplay_client_t *c)
{
    for (size_t i = 0; i < c->n_keys; i++) {
        free(c->kids[i]);
        crypto_key_free(c->keys[i]);
        c->kids[i] = NULL;
        c->keys[i] = NULL;
    }
    c->n_keys = 0;
}

void googleplay_client_free(googleplay_client_t *c)
{
    free_keys(c);
    crypto_key_free(c->sa_key);
    c->sa_key = NULL;
    free(c->client_email);
    free(c->token_uri);
    if (c->access_token)
        crypto_wipe(c->access_token, strlen(c->access_token));
    free(c->access_token);
    c->client_email = c->token_uri = c->access_token = NULL;
}

/* ---- JWKS: RSA n, e -> SubjectPublicKeyInfo DER ------------------------- */

static void der_len(buf_t *b, size_t n)
{
    if (n < 128) {
        buf_putc(b, (char)n);
    } else if (n < 256) {
        buf_putc(b, (char)0x81);
        buf_putc(b, (char)n);
    } else {
        buf_putc(b, (char)0x82);
        buf_putc(b, (char)(n >> 8));
        buf_putc(b, (char)(n & 0xff));
    }
}

static void der_int(buf_t *b, const buf_t *mag)
{
    size_t skip = 0;
    while (skip + 1 < mag->len && mag->data[skip] == 0)
        skip++;
    bool pad = (unsigned char)mag->data[skip] & 0x80;
    buf_putc(b, 0x02);
    der_len(b, mag->len - skip + pad);
    if (pad)
        buf_putc(b, 0);
    buf_append(b, mag->data + skip, mag->len - skip);
}

static pg_err rsa_from_jwk(const char *n_b64, const char *e_b64, crypto_key_t **out, buf_t *err)
{
    static const unsigned char ALG[] = { 0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7,
                                         0x0d, 0x01, 0x01, 0x01, 0x05, 0x00 };
    buf_t n, e, rsa, bits, spki, b64;
    buf_init(&n, NULL);
    buf_init(&e, NULL);
    buf_init(&rsa, NULL);
    buf_init(&bits, NULL);
    buf_init(&spki, NULL);
    buf_init(&b64, NULL);
    pg_err rc = PG_ERR_BAD_INPUT;
    if (b64url_decode(n_b64, strlen(n_b64), &n) != PG_OK || b64url_decode(e_b64, strlen(e_b64), &e) != PG_OK ||
        n.len < 128 || n.len > 1024 || e.len == 0 || e.len > 8)
        goto done;
    der_int(&bits, &n);
    der_int(&bits, &e);
    buf_putc(&rsa, 0x30);
    der_len(&rsa, bits.len);
    buf_append(&rsa, bits.data, bits.len);
    buf_clear(&bits);
    buf_append(&bits, ALG, sizeof ALG);
    buf_putc(&bits, 0x03);
    der_len(&bits, rsa.len + 1);
    buf_putc(&bits, 0);
    buf_append(&bits, rsa.data, rsa.len);
    buf_putc(&spki, 0x30);
    der_len(&spki, bits.len);
    buf_append(&spki, bits.data, bits.len);
    if (spki.failed || crypto_base64_encode(spki.data, spki.len, &b64) != PG_OK) {
        rc = PG_ERR_NOMEM;
        goto done;
    }
    rc = crypto_key_parse_public(b64.data, b64.len, out, err);
done:
    buf_free(&n);
    buf_free(&e);
    buf_free(&rsa);
    buf_free(&bits);
    buf_free(&spki);
    buf_free(&b64);
    return rc;
}

pg_err googleplay_set_jwks(googleplay_client_t *c, const char *json, size_t len, time_t until, buf_t *err)
{
    json_t *j = json_obj(json, len), *keys = j ? json_object_get(j, "keys") : NULL;
    size_t i;
    json_t *k;
    if (!json_is_array(keys)) {
        json_decref(j);
        buf_set_error(err, "JWKS without keys");
        return PG_ERR_BAD_INPUT;
    }
    free_keys(c);
    json_array_foreach(keys, i, k) {
        const char *kty = json_string_value(json_object_get(k, "kty"));
        const char *kid = json_string_value(json_object_get(k, "kid"));
        const char *n = json_string_value(json_object_get(k, "n"));
        const char *e = json_string_value(json_object_get(k, "e"));
        crypto_key_t *key = NULL;
        if (c->n_keys == GOOGLEPLAY_MAX_KEYS || !kty || strcmp(kty, "RSA") || !kid || !n || !e)
            continue;
        if (rsa_from_jwk(n, e, &key, NULL) != PG_OK)
            continue;
        c->kids[c->n_keys] = strdup(kid);
        c->keys[c->n_keys++] = key;
    }
    json_decref(j);
    c->keys_until = until;
    if (c->n_keys == 0) {
        buf_set_error(err, "JWKS holds no usable RSA key");
        return PG_ERR_BAD_INPUT;
    }
    return PG_OK;
}

static pg_err fetch_jwks(googleplay_client_t *c, arena_t *a, time_t now, buf_t *err)
{
    httpc_response_t r;
    if (now - c->keys_fetched_at < 60) {   /* an unknown kid does not make us hammer Google */
        buf_set_error(err, "push token key unknown (keys fetched less than a minute ago)");
        return PG_ERR_UNAUTHORIZED;
    }
    c->keys_fetched_at = now;
    pg_err rc = httpc_get(a, c->push_certs_url, &c->http, &r, err);
    if (rc != PG_OK)
        return rc;
    if (r.status != 200) {
        buf_set_error(err, "push_certs_url answered HTTP %ld", r.status);
        return PG_ERR_UPSTREAM;
    }
    return googleplay_set_jwks(c, r.body.data, r.body.len, now + JWKS_DEFAULT_TTL, err);
}

static crypto_key_t *key_of(googleplay_client_t *c, const char *kid, time_t now)
{
    if (!kid || now >= c->keys_until)
        return NULL;
    for (size_t i = 0; i < c->n_keys; i++)
        if (!strcmp(c->kids[i], kid))
            return c->keys[i];
    return NULL;
}

/* ---- the push's OIDC token ---------------------------------------------- */

static bool claims_ok(const googleplay_client_t *c, json_t *cl, time_t now, buf_t *err)
{
    const char *iss = json_string_value(json_object_get(cl, "iss"));
    const char *aud = json_string_value(json_object_get(cl, "aud"));
    const char *email = json_string_value(json_object_get(cl, "email"));
    json_t *exp = json_object_get(cl, "exp"), *iat = json_object_get(cl, "iat");
    if (!iss || (strcmp(iss, "https://accounts.google.com") && strcmp(iss, "accounts.google.com"))) {
        buf_set_error(err, "push token issuer is not Google");
        return false;
    }
    if (!aud || !crypto_ct_streq(aud, c->push_audience)) {
        buf_set_error(err, "push token for another audience");
        return false;
    }
    if (!email || strcmp(email, c->push_email) || !json_is_true(json_object_get(cl, "email_verified"))) {
        buf_set_error(err, "push token from another (or unverified) account");
        return false;
    }
    if (!json_is_integer(exp) || json_integer_value(exp) + 60 < (json_int_t)now ||
        (json_is_integer(iat) && json_integer_value(iat) > (json_int_t)now + 300)) {
        buf_set_error(err, "push token expired or not yet valid");
        return false;
    }
    return true;
}

pg_err googleplay_verify_oidc(googleplay_client_t *c, arena_t *a, const char *jwt, time_t now, bool may_fetch,
                              buf_t *err)
{
    buf_t hdr, body, sig, sig_std;
    buf_init(&hdr, NULL);
    buf_init(&body, NULL);
    buf_init(&sig, NULL);
    buf_init(&sig_std, NULL);
    json_t *h = NULL, *cl = NULL;
    pg_err rc = PG_ERR_UNAUTHORIZED;
    size_t len = jwt ? strlen(jwt) : 0;
    const char *d1 = jwt ? memchr(jwt, '.', len) : NULL;
    const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - jwt)) : NULL;
    if (!d2 || len > MAX_JWT || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - jwt))) {
        buf_set_error(err, "no push token (Authorization: Bearer <OIDC JWT>)");
        goto done;
    }
    if (b64url_decode(jwt, (size_t)(d1 - jwt), &hdr) != PG_OK || !(h = json_obj(hdr.data, hdr.len)) ||
        b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), &body) != PG_OK || !(cl = json_obj(body.data, body.len)) ||
        b64url_decode(d2 + 1, len - (size_t)(d2 + 1 - jwt), &sig) != PG_OK || sig.len == 0) {
        buf_set_error(err, "push token is not a JWT");
        goto done;
    }
    const char *alg = json_string_value(json_object_get(h, "alg"));
    const char *kid = json_string_value(json_object_get(h, "kid"));
    if (!alg || strcmp(alg, "RS256")) {
        buf_set_error(err, "push token alg is not RS256");
        goto done;
    }
    crypto_key_t *key = key_of(c, kid, now);
    if (!key && may_fetch && c->push_certs_url) {
        if ((rc = fetch_jwks(c, a, now, err)) != PG_OK)
            goto done;
        rc = PG_ERR_UNAUTHORIZED;
        key = key_of(c, kid, now);
    }
    if (!key) {
        buf_set_error(err, "push token signed with an unknown key");
        goto done;
    }
    if (crypto_base64_encode(sig.data, sig.len, &sig_std) != PG_OK ||
        crypto_rsa_sha256_verify_b64(key, jwt, (size_t)(d2 - jwt), sig_std.data) != PG_OK) {
        buf_set_error(err, "push token signature does not verify");
        goto done;
    }
    if (claims_ok(c, cl, now, err))
        rc = PG_OK;
done:
    json_decref(h);
    json_decref(cl);
    buf_free(&hdr);
    buf_free(&body);
    buf_free(&sig);
    buf_free(&sig_std);
    return rc;
}

/* ---- the RTDN ------------------------------------------------------------- */

static const char *dup_token(arena_t *a, json_t *o, const char *name, size_t max)
{
    const char *s = json_string_value(json_object_get(o, name));
    return s && text_is_token(s, max, "._-:") ? arena_strdup(a, s) : NULL;
}

pg_err googleplay_parse_rtdn(const googleplay_client_t *c, arena_t *a, const char *body, size_t len,
                             googleplay_rtdn_t *out, buf_t *err)
{
    json_t *push = json_obj(body, len), *msg = push ? json_object_get(push, "message") : NULL, *n = NULL;
    const char *data = json_string_value(json_object_get(msg, "data"));
    buf_t raw;
    buf_init(&raw, NULL);
    pg_err rc = PG_ERR_BAD_INPUT;
    memset(out, 0, sizeof *out);
    if (!data || crypto_base64_decode(data, strlen(data), &raw) != PG_OK || !(n = json_obj(raw.data, raw.len))) {
        buf_set_error(err, "push without a base64 JSON message.data");
        goto done;
    }
    out->message_id = dup_token(a, msg, "messageId", 128);
    out->data_json = arena_strndup(a, raw.data, raw.len);
    const char *pkg = json_string_value(json_object_get(n, "packageName"));
    if (!pkg || strcmp(pkg, c->package_name)) {
        buf_set_error(err, "notification for another package");
        rc = PG_ERR_MISMATCH;
        goto done;
    }
    json_t *otp = json_object_get(n, "oneTimeProductNotification");
    json_t *vp = json_object_get(n, "voidedPurchaseNotification");
    out->kind = GP_RTDN_OTHER;
    if (json_is_object(otp)) {
        json_t *t = json_object_get(otp, "notificationType");
        out->purchase_token = dup_token(a, otp, "purchaseToken", 4096);
        out->product_id = dup_token(a, otp, "sku", 255);
        if (!json_is_integer(t) || !out->purchase_token || !out->product_id) {
            buf_set_error(err, "oneTimeProductNotification without type, token or sku");
            goto done;
        }
        out->kind = json_integer_value(t) == 1 ? GP_RTDN_PURCHASED
                  : json_integer_value(t) == 2 ? GP_RTDN_CANCELED : GP_RTDN_OTHER;
    } else if (json_is_object(vp)) {
        out->purchase_token = dup_token(a, vp, "purchaseToken", 4096);
        out->order_id = dup_token(a, vp, "orderId", 128);
        if (!out->purchase_token) {
            buf_set_error(err, "voidedPurchaseNotification without purchaseToken");
            goto done;
        }
        out->kind = GP_RTDN_VOIDED;
    } else if (json_object_get(n, "testNotification")) {
        out->kind = GP_RTDN_TEST;
    }
    rc = PG_OK;
done:
    json_decref(n);
    json_decref(push);
    buf_free(&raw);
    return rc;
}

pg_err googleplay_verify_push(googleplay_client_t *c, arena_t *a, const char *bearer, const char *body, size_t len,
                              time_t now, googleplay_rtdn_t *out, buf_t *err)
{
    memset(out, 0, sizeof *out);
    pg_err rc = googleplay_verify_oidc(c, a, bearer, now, true, err);
    if (rc == PG_ERR_UNAUTHORIZED || rc == PG_OK)   /* an unreachable JWKS is our fault: retry */
        return rc == PG_OK ? googleplay_parse_rtdn(c, a, body, len, out, err) : rc;
    return rc;
}

/* ---- OAuth and the Play Developer API ------------------------------------ */

pg_err googleplay_sa_assertion(const googleplay_client_t *c, time_t now, buf_t *out)
{
    json_t *h = json_pack("{s:s, s:s}", "alg", "RS256", "typ", "JWT");
    json_t *cl = json_pack("{s:s, s:s, s:s, s:I, s:I}", "iss", c->client_email, "scope", ANDROIDPUBLISHER_SCOPE,
                           "aud", c->token_uri, "iat", (json_int_t)now, "exp", (json_int_t)(now + 3600));
    char *hs = h ? json_dumps(h, JSON_COMPACT) : NULL, *cs = cl ? json_dumps(cl, JSON_COMPACT) : NULL;
    buf_t input, sig, raw;
    buf_init(&input, NULL);
    buf_init(&sig, NULL);
    buf_init(&raw, NULL);
    pg_err rc = PG_ERR_NOMEM;
    if (hs && cs && b64url_append(&input, hs, strlen(hs)) == PG_OK && buf_putc(&input, '.') == PG_OK &&
        b64url_append(&input, cs, strlen(cs)) == PG_OK)
        rc = crypto_rsa_sha256_sign_b64(c->sa_key, input.data, input.len, &sig);
    if (rc == PG_OK)
        rc = crypto_base64_decode(sig.data, sig.len, &raw);
    if (rc == PG_OK && (rc = buf_append(out, input.data, input.len)) == PG_OK && (rc = buf_putc(out, '.')) == PG_OK)
        rc = b64url_append(out, raw.data, raw.len);
    free(hs);
    free(cs);
    json_decref(h);
    json_decref(cl);
    buf_free(&input);
    buf_free(&sig);
    buf_free(&raw);
    return rc;
}

static pg_err access_token(googleplay_client_t *c, arena_t *a, time_t now, buf_t *err)
{
    if (c->access_token && now < c->access_token_until)
        return PG_OK;
    buf_t form;
    buf_init(&form, a);
    buf_puts(&form, "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=");
    pg_err rc = googleplay_sa_assertion(c, now, &form);
    httpc_response_t r;
    if (rc == PG_OK)
        rc = httpc_post(a, c->token_uri, "application/x-www-form-urlencoded", form.data, form.len, &c->http, &r, err);
    if (rc != PG_OK)
        return rc;
    json_t *j = json_obj(r.body.data, r.body.len);
    const char *tok = j ? json_string_value(json_object_get(j, "access_token")) : NULL;
    json_t *exp = j ? json_object_get(j, "expires_in") : NULL;
    if (r.status != 200 || !tok || !json_is_integer(exp)) {
        buf_set_error(err, "token_uri answered HTTP %ld without an access_token", r.status);
        json_decref(j);
        return PG_ERR_UPSTREAM;
    }
    free(c->access_token);
    c->access_token = strdup(tok);
    c->access_token_until = now + (time_t)json_integer_value(exp) - 60;
    json_decref(j);
    return c->access_token ? PG_OK : PG_ERR_NOMEM;
}

static const char *purchase_url(const googleplay_client_t *c, arena_t *a, const char *product_id, const char *token,
                                const char *suffix)
{
    buf_t u;
    buf_init(&u, a);
    buf_puts(&u, c->api_base);
    buf_puts(&u, "/androidpublisher/v3/applications/");
    buf_append_urlencoded(&u, c->package_name);
    buf_puts(&u, "/purchases/products/");
    buf_append_urlencoded(&u, product_id);
    buf_puts(&u, "/tokens/");
    buf_append_urlencoded(&u, token);
    buf_puts(&u, suffix);
    return u.failed ? NULL : u.data;
}

pg_err googleplay_get_purchase(googleplay_client_t *c, arena_t *a, const char *product_id, const char *token,
                               time_t now, googleplay_purchase_t *out, buf_t *err)
{
    httpc_response_t r;
    memset(out, 0, sizeof *out);
    pg_err rc = access_token(c, a, now, err);
    if (rc != PG_OK)
        return rc;
    const char *url = purchase_url(c, a, product_id, token, "");
    const char *hdr[] = { arena_printf(a, "Authorization: Bearer %s", c->access_token), NULL };
    if (!url || !hdr[0])
        return PG_ERR_NOMEM;
    if ((rc = httpc_get_headers(a, url, hdr, &c->http, &r, err)) != PG_OK)
        return rc;
    if (r.status == 404 || r.status == 400 || r.status == 410) {
        buf_set_error(err, "Google Play knows no such purchase (HTTP %ld)", r.status);
        return PG_ERR_NOT_FOUND;
    }
    if (r.status == 401)
        c->access_token_until = 0;
    json_t *j = r.status == 200 ? json_obj(r.body.data, r.body.len) : NULL;
    json_t *ps = j ? json_object_get(j, "purchaseState") : NULL;
    if (!j || !json_is_integer(ps)) {
        buf_set_error(err, "purchases.products.get answered HTTP %ld", r.status);
        json_decref(j);
        return PG_ERR_UPSTREAM;
    }
    out->purchase_state = (int)json_integer_value(ps);
    out->acknowledgement_state = (int)json_integer_value(json_object_get(j, "acknowledgementState"));
    out->order_id = dup_token(a, j, "orderId", 128);
    out->account_id = dup_token(a, j, "obfuscatedExternalAccountId", 64);
    const char *ptm = json_string_value(json_object_get(j, "purchaseTimeMillis"));
    out->purchase_time_ms = ptm ? strtoll(ptm, NULL, 10) : 0;
    json_t *q = json_object_get(j, "quantity");
    out->quantity = json_is_integer(q) ? json_integer_value(q) : 1;
    out->json = arena_strndup(a, r.body.data, r.body.len);
    json_decref(j);
    return PG_OK;
}

pg_err googleplay_acknowledge(googleplay_client_t *c, arena_t *a, const char *product_id, const char *token,
                              time_t now, buf_t *err)
{
    httpc_response_t r;
    pg_err rc = access_token(c, a, now, err);
    if (rc != PG_OK)
        return rc;
    const char *url = purchase_url(c, a, product_id, token, ":acknowledge");
    const char *hdr[] = { arena_printf(a, "Authorization: Bearer %s", c->access_token), NULL };
    if (!url || !hdr[0])
        return PG_ERR_NOMEM;
    if ((rc = httpc_post_headers(a, url, "application/json", hdr, "{}", 2, &c->http, &r, err)) != PG_OK)
        return rc;
    if (r.status == 200 || r.status == 204)
        return PG_OK;
    buf_set_error(err, "acknowledge answered HTTP %ld", r.status);
    return PG_ERR_UPSTREAM;
}
