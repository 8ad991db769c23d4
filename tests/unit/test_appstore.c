/* App Store JWS verification (appstore.c, pki.c) against vectors signed by
 * `jose` and judged the same way by Apple's @apple/app-store-server-library
 * (sandbox/interop/appstore_vectors.js), over a test PKI made by
 * tests/fixtures/appstore/make_certs.py (Python cryptography). Nothing here
 * is signed by our own code except the API token round trip. Run with cwd
 * tests/unit. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "appstore.h"
#include "crypto.h"
#include "pki.h"

#define FIX "../fixtures/appstore/"
#define VEC FIX "vectors/"
#define NOW ((time_t)1767229200)          /* 2026-01-01 01:00:00 UTC: the vectors' signedDate */

static const appstore_expect_t EXPECT = { "com.example.shop", 1234567890, "Production" };

static void read_file(const char *path, buf_t *out)
{
    buf_init(out, NULL);
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open fixture %s (run from tests/unit)", path);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        assert_int_equal(buf_append(out, chunk, n), PG_OK);
    fclose(f);
}

static appstore_verifier_t *verifier(const char *root)
{
    appstore_verifier_t *v = NULL;
    buf_t err;
    buf_init(&err, NULL);
    if (appstore_verifier_load(root, &v, &err) != PG_OK)
        fail_msg("load %s: %s", root, err.data);
    buf_free(&err);
    return v;
}

static pg_err tx_at(appstore_verifier_t *v, const char *name, time_t now, appstore_transaction_t *t, arena_t *a)
{
    buf_t body, err;
    char path[256];
    snprintf(path, sizeof(path), VEC "%s", name);
    read_file(path, &body);
    buf_init(&err, NULL);
    pg_err rc = appstore_verify_transaction(v, &EXPECT, a, body.data, body.len, now, t, &err);
    if (rc != PG_OK)
        printf("  %s: %s (%s)\n", name, pg_err_name(rc), err.data);
    buf_free(&body);
    buf_free(&err);
    return rc;
}

static pg_err notify_at(appstore_verifier_t *v, const char *name, time_t now, appstore_notification_t *n,
                        arena_t *a)
{
    buf_t body, err;
    char path[256];
    snprintf(path, sizeof(path), VEC "%s", name);
    read_file(path, &body);
    buf_init(&err, NULL);
    pg_err rc = appstore_verify_notification(v, &EXPECT, a, body.data, body.len, now, n, &err);
    if (rc != PG_OK)
        printf("  %s: %s (%s)\n", name, pg_err_name(rc), err.data);
    buf_free(&body);
    buf_free(&err);
    return rc;
}

static void test_appstore_accepts_transaction_signed_by_jose(void **state)
{
    (void)state;
    arena_t a;
    arena_init(&a, 0);
    appstore_verifier_t *v = verifier(FIX "root.pem");
    appstore_transaction_t t;
    assert_int_equal(tx_at(v, "tx_good.jws", NOW, &t, &a), PG_OK);
    assert_string_equal(t.transaction_id, "2000000123456789");
    assert_string_equal(t.original_transaction_id, "2000000123456789");
    assert_string_equal(t.product_id, "com.example.shop.course1");
    assert_string_equal(t.app_account_token, "7f1c2a52-2c8e-4a4e-9d55-0f3c6f0b9a11");
    assert_string_equal(t.currency, "CNY");
    assert_string_equal(t.type, "Non-Consumable");
    assert_int_equal(t.price_milli, 98000);
    assert_int_equal(t.purchase_date_ms, 1767225000000LL);
    assert_int_equal(t.revocation_date_ms, 0);
    assert_non_null(strstr(t.payload_json, "\"transactionId\""));
    appstore_verifier_free(v);
    arena_free(&a);
}

static void test_appstore_root_der_and_pem_both_load(void **state)
{
    (void)state;
    arena_t a;
    arena_init(&a, 0);
    appstore_verifier_t *v = verifier(FIX "root.der");
    appstore_transaction_t t;
    assert_int_equal(tx_at(v, "tx_good.jws", NOW, &t, &a), PG_OK);
    appstore_verifier_free(v);
    arena_free(&a);
}

static void test_appstore_refuses_bad_chains_and_signatures(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "tx_other_root.jws", "tx_other_root_claims_ours.jws", "tx_leaf_nooid.jws", "tx_inter_nooid.jws",
        "tx_inter_notca.jws", "tx_expired.jws", "tx_short_chain.jws", "tx_tampered.jws",
        "tx_alg_none.jws", "tx_alg_hs256.jws", "tx_der_sig.jws",
    };
    arena_t a;
    arena_init(&a, 0);
    appstore_verifier_t *v = verifier(FIX "root.pem");
    appstore_transaction_t t;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (tx_at(v, bad[i], NOW, &t, &a) != PG_ERR_BAD_SIGNATURE)
            fail_msg("%s was not refused as a bad signature", bad[i]);
    }
    /* the good chain's signature is what failed for the tampered and DER
     * vectors: nothing but verified chains was cached (none before this) */
    appstore_verifier_clear_cache(v);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (strcmp(bad[i], "tx_tampered.jws") && strcmp(bad[i], "tx_der_sig.jws") &&
            strcmp(bad[i], "tx_alg_none.jws") && strcmp(bad[i], "tx_alg_hs256.jws"))
            tx_at(v, bad[i], NOW, &t, &a);
    }
    assert_int_equal(appstore_verifier_cached(v, NOW), 0);
    appstore_verifier_free(v);
    arena_free(&a);
}

static void test_appstore_refuses_other_bundle_and_environment(void **state)
{
    (void)state;
    arena_t a;
    arena_init(&a, 0);
    appstore_verifier_t *v = verifier(FIX "root.pem");
    appstore_transaction_t t;
    assert_int_equal(tx_at(v, "tx_other_bundle.jws", NOW, &t, &a), PG_ERR_MISMATCH);
    assert_int_equal(tx_at(v, "tx_sandbox_env.jws", NOW, &t, &a), PG_ERR_MISMATCH);
    appstore_verifier_free(v);
    arena_free(&a);
}

static void test_appstore_refuses_chain_outside_validity(void **state)
{
    (void)state;
    arena_t a;
    arena_init(&a, 0);
    appstore_verifier_t *v = verifier(FIX "root.pem");
    appstore_transaction_t t;
    /* the certificates run 2025-01-01 .. 2055-12-25 */
    assert_int_equal(tx_at(v, "tx_good.jws", (time_t)1704067200, &t, &a), PG_ERR_BAD_SIGNATURE);  /* 2024 */
    assert_int_equal(tx_at(v, "tx_good.jws", (time_t)2871763200LL, &t, &a), PG_ERR_BAD_SIGNATURE); /* 2061 */
    appstore_verifier_free(v);
    arena_free(&a);
}

static void test_appstore_trusts_only_the_configured_root(void **state)
{
    (void)state;
    arena_t a;
    arena_init(&a, 0);
    appstore_verifier_t *v = verifier(FIX "other_root.pem");
    appstore_transaction_t t;
    assert_int_equal(tx_at(v, "tx_good.jws", NOW, &t, &a), PG_ERR_BAD_SIGNATURE);
    assert_int_equal(tx_at(v, "tx_other_root.jws", NOW, &t, &a), PG_OK);
    appstore_verifier_free(v);
    arena_free(&a);
}

static void test_appstore_caches_verified_chain_for_15_minutes(void **state)
{
    (void)state;
    arena_t a;
    arena_init(&a, 0);
    appstore_verifier_t *v = verifier(FIX "root.pem");
    appstore_transaction_t t;
    assert_int_equal(appstore_verifier_cached(v, NOW), 0);
    assert_int_equal(tx_at(v, "tx_good.jws", NOW, &t, &a), PG_OK);
    assert_int_equal(appstore_verifier_cached(v, NOW), 1);
    /* same chain again: one entry; a cached chain still checks signatures */
    assert_int_equal(tx_at(v, "tx_refunded.jws", NOW + 10, &t, &a), PG_OK);
    assert_int_equal(appstore_verifier_cached(v, NOW + 10), 1);
    assert_int_equal(tx_at(v, "tx_tampered.jws", NOW + 20, &t, &a), PG_ERR_BAD_SIGNATURE);
    assert_int_equal(tx_at(v, "tx_der_sig.jws", NOW + 20, &t, &a), PG_ERR_BAD_SIGNATURE);
    assert_int_equal(tx_at(v, "tx_alg_none.jws", NOW + 20, &t, &a), PG_ERR_BAD_SIGNATURE);
    assert_int_equal(appstore_verifier_cached(v, NOW + APPSTORE_CACHE_SECONDS), 0);
    appstore_verifier_free(v);
    arena_free(&a);
}

static void test_appstore_notification_one_time_charge(void **state)
{
    (void)state;
    arena_t a;
    arena_init(&a, 0);
    appstore_verifier_t *v = verifier(FIX "root.pem");
    appstore_notification_t n;
    assert_int_equal(notify_at(v, "notify_one_time_charge.json", NOW, &n, &a), PG_OK);
    assert_string_equal(n.type, "ONE_TIME_CHARGE");
    assert_null(n.subtype);
    assert_string_equal(n.uuid, "6a2c4b5e-1f0d-4c1b-8b1e-3f2a9c7d5e01");
    assert_int_equal(n.app_apple_id, 1234567890);
    assert_true(n.has_transaction);
    assert_string_equal(n.tx.transaction_id, "2000000123456789");
    assert_int_equal(notify_at(v, "notify_refund.json", NOW, &n, &a), PG_OK);
    assert_string_equal(n.type, "REFUND");
    assert_int_equal(n.tx.revocation_date_ms, 1767300000000LL);
    assert_int_equal(n.tx.revocation_reason, 0);
    assert_int_equal(notify_at(v, "notify_test.json", NOW, &n, &a), PG_OK);
    assert_string_equal(n.type, "TEST");
    assert_false(n.has_transaction);
    appstore_verifier_free(v);
    arena_free(&a);
}

static void test_appstore_notification_refusals(void **state)
{
    (void)state;
    arena_t a;
    arena_init(&a, 0);
    appstore_verifier_t *v = verifier(FIX "root.pem");
    appstore_notification_t n;
    assert_int_equal(notify_at(v, "notify_other_bundle.json", NOW, &n, &a), PG_ERR_MISMATCH);
    assert_int_equal(notify_at(v, "notify_other_app.json", NOW, &n, &a), PG_ERR_MISMATCH);
    assert_int_equal(notify_at(v, "notify_outer_other_root.json", NOW, &n, &a), PG_ERR_BAD_SIGNATURE);
    assert_int_equal(notify_at(v, "notify_inner_other_root.json", NOW, &n, &a), PG_ERR_BAD_SIGNATURE);
    buf_t err;
    buf_init(&err, NULL);
    static const char *const junk[] = { "", "{}", "[]", "{\"signedPayload\":1}", "{\"signedPayload\":\"a.b\"}",
                                        "{\"signedPayload\":\"a.b.c.d\"}", "{\"signedPayload\":\"..\"}",
                                        "{\"signedPayload\":\"e30.e30.AAAA\"}", "not json" };
    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
        pg_err rc = appstore_verify_notification(v, &EXPECT, &a, junk[i], strlen(junk[i]), NOW, &n, &err);
        if (rc != PG_ERR_BAD_INPUT && rc != PG_ERR_BAD_SIGNATURE)
            fail_msg("junk %zu: %s", i, pg_err_name(rc));
    }
    buf_free(&err);
    appstore_verifier_free(v);
    arena_free(&a);
}

/* x5c[i] of the good vector, as DER. */
static void good_x5c(size_t i, buf_t *der)
{
    buf_t jws, std, hdr;
    read_file(VEC "tx_good.jws", &jws);
    buf_init(&std, NULL);
    buf_init(&hdr, NULL);
    for (size_t k = 0; k < jws.len && jws.data[k] != '.'; k++)
        buf_putc(&std, jws.data[k] == '-' ? '+' : jws.data[k] == '_' ? '/' : jws.data[k]);
    while (std.len % 4)
        buf_putc(&std, '=');
    assert_int_equal(crypto_base64_decode(std.data, std.len, &hdr), PG_OK);
    json_t *h = json_loadb(hdr.data, hdr.len, 0, NULL);
    const char *c = json_string_value(json_array_get(json_object_get(h, "x5c"), i));
    buf_init(der, NULL);
    assert_int_equal(crypto_base64_decode(c, strlen(c), der), PG_OK);
    json_decref(h);
    buf_free(&jws);
    buf_free(&std);
    buf_free(&hdr);
}

static void test_appstore_api_token_is_es256_jwt(void **state)
{
    (void)state;
    buf_t pem, err, tok, leaf, inter, sig, std;
    read_file(FIX "leaf.key.pem", &pem);
    buf_init(&err, NULL);
    buf_init(&tok, NULL);
    buf_init(&sig, NULL);
    buf_init(&std, NULL);
    pki_privkey_t *key = NULL;
    assert_int_equal(pki_privkey_parse(pem.data, pem.len, &key, &err), PG_OK);
    assert_int_equal(appstore_api_token(key, "KEY123", "issuer-uuid", "com.example.shop", NOW, &tok), PG_OK);
    /* header.claims.sig, the signature 64 bytes and verifying with the leaf's key */
    char *d1 = strchr(tok.data, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    assert_non_null(d2);
    for (char *p = d2 + 1; *p; p++)
        buf_putc(&std, *p == '-' ? '+' : *p == '_' ? '/' : *p);
    while (std.len % 4)
        buf_putc(&std, '=');
    assert_int_equal(crypto_base64_decode(std.data, std.len, &sig), PG_OK);
    assert_int_equal(sig.len, 64);
    good_x5c(0, &leaf);
    good_x5c(1, &inter);
    pki_cert_t *root = NULL;
    assert_int_equal(pki_cert_load(FIX "root.pem", &root, &err), PG_OK);
    pki_chain_rules_t rules = { APPSTORE_OID_LEAF, APPSTORE_OID_INTERMEDIATE, NOW };
    pki_pubkey_t *pub = NULL;
    assert_int_equal(pki_chain_verify(root, leaf.data, leaf.len, inter.data, inter.len, &rules, &pub, &err), PG_OK);
    assert_int_equal(pki_es256_verify(pub, tok.data, (size_t)(d2 - tok.data), sig.data, sig.len), PG_OK);
    sig.data[5] ^= 1;
    assert_int_equal(pki_es256_verify(pub, tok.data, (size_t)(d2 - tok.data), sig.data, sig.len), PG_ERR_BAD_SIGNATURE);
    pki_pubkey_free(pub);
    pki_cert_free(root);
    pki_privkey_free(key);
    buf_free(&pem);
    buf_free(&err);
    buf_free(&tok);
    buf_free(&leaf);
    buf_free(&inter);
    buf_free(&sig);
    buf_free(&std);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_appstore_accepts_transaction_signed_by_jose),
        cmocka_unit_test(test_appstore_root_der_and_pem_both_load),
        cmocka_unit_test(test_appstore_refuses_bad_chains_and_signatures),
        cmocka_unit_test(test_appstore_refuses_other_bundle_and_environment),
        cmocka_unit_test(test_appstore_refuses_chain_outside_validity),
        cmocka_unit_test(test_appstore_trusts_only_the_configured_root),
        cmocka_unit_test(test_appstore_caches_verified_chain_for_15_minutes),
        cmocka_unit_test(test_appstore_notification_one_time_charge),
        cmocka_unit_test(test_appstore_notification_refusals),
        cmocka_unit_test(test_appstore_api_token_is_es256_jwt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
