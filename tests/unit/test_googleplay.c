/* Google Play adapter (googleplay.c): the Pub/Sub push's OIDC token against
 * tokens and a JWKS made by `jose` (sandbox/interop/googleplay_vectors.js,
 * which also checks that jose judges them the same way), the RTDN parser,
 * and the service-account assertion. Run with cwd tests/unit. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "crypto.h"
#include "googleplay.h"

#define FIX "../fixtures/googleplay/"
#define NOW ((time_t)1767229200)

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

static void client_init(googleplay_client_t *c)
{
    buf_t jwks, err;
    memset(c, 0, sizeof *c);
    c->package_name = "com.example.shop";
    c->push_audience = "https://shop.example.com/pay/notify/googleplay";
    c->push_email = "play-rtdn@example-project.iam.gserviceaccount.com";
    read_file(FIX "jwks.json", &jwks);
    buf_init(&err, NULL);
    if (googleplay_set_jwks(c, jwks.data, jwks.len, NOW + 3600, &err) != PG_OK)
        fail_msg("jwks: %s", err.data);
    buf_free(&jwks);
    buf_free(&err);
}

static pg_err verify(googleplay_client_t *c, const char *name, time_t now)
{
    buf_t tok, err;
    char path[256];
    arena_t a;
    arena_init(&a, 0);
    snprintf(path, sizeof path, FIX "%s", name);
    read_file(path, &tok);
    buf_init(&err, NULL);
    pg_err rc = googleplay_verify_oidc(c, &a, tok.data, now, false, &err);
    if (rc != PG_OK)
        printf("  %s: %s (%s)\n", name, pg_err_name(rc), err.data);
    buf_free(&tok);
    buf_free(&err);
    arena_free(&a);
    return rc;
}

static void test_googleplay_accepts_google_push_token(void **state)
{
    (void)state;
    googleplay_client_t c;
    client_init(&c);
    assert_int_equal(c.n_keys, 1);
    assert_int_equal(verify(&c, "token_good.jwt", NOW), PG_OK);
    assert_int_equal(verify(&c, "token_iss_bare.jwt", NOW), PG_OK);
    googleplay_client_free(&c);
}

static void test_googleplay_refuses_forged_push_tokens(void **state)
{
    (void)state;
    static const char *const bad[] = { "token_other_key.jwt", "token_other_aud.jwt", "token_other_email.jwt",
                                       "token_unverified_email.jwt", "token_other_iss.jwt", "token_expired.jwt",
                                       "token_unknown_kid.jwt", "token_alg_none.jwt", "token_tampered.jwt" };
    googleplay_client_t c;
    client_init(&c);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (verify(&c, bad[i], NOW) != PG_ERR_UNAUTHORIZED)
            fail_msg("%s was accepted", bad[i]);
    /* the good token, an hour and two minutes on, has expired; keys past their time are not used */
    assert_int_equal(verify(&c, "token_good.jwt", NOW + 3600 + 120), PG_ERR_UNAUTHORIZED);
    googleplay_client_free(&c);
}

static pg_err rtdn(googleplay_client_t *c, arena_t *a, const char *json, googleplay_rtdn_t *out)
{
    buf_t b64, body, err;
    buf_init(&b64, NULL);
    buf_init(&body, NULL);
    buf_init(&err, NULL);
    assert_int_equal(crypto_base64_encode(json, strlen(json), &b64), PG_OK);
    buf_printf(&body, "{\"message\":{\"data\":\"%s\",\"messageId\":\"42\"},\"subscription\":\"s\"}", b64.data);
    pg_err rc = googleplay_parse_rtdn(c, a, body.data, body.len, out, &err);
    buf_free(&b64);
    buf_free(&body);
    buf_free(&err);
    return rc;
}

static void test_googleplay_parses_rtdn(void **state)
{
    (void)state;
    googleplay_client_t c;
    googleplay_rtdn_t n;
    arena_t a;
    arena_init(&a, 0);
    client_init(&c);
    assert_int_equal(rtdn(&c, &a, "{\"version\":\"1.0\",\"packageName\":\"com.example.shop\",\"eventTimeMillis\":\"1\","
                               "\"oneTimeProductNotification\":{\"version\":\"1.0\",\"notificationType\":1,"
                               "\"purchaseToken\":\"tok.A-b_c\",\"sku\":\"ebook_sql\"}}", &n), PG_OK);
    assert_int_equal(n.kind, GP_RTDN_PURCHASED);
    assert_string_equal(n.purchase_token, "tok.A-b_c");
    assert_string_equal(n.product_id, "ebook_sql");
    assert_string_equal(n.message_id, "42");
    assert_int_equal(rtdn(&c, &a, "{\"packageName\":\"com.example.shop\",\"voidedPurchaseNotification\":"
                               "{\"purchaseToken\":\"t1\",\"orderId\":\"GPA.1\",\"productType\":2}}", &n), PG_OK);
    assert_int_equal(n.kind, GP_RTDN_VOIDED);
    assert_int_equal(rtdn(&c, &a, "{\"packageName\":\"com.example.shop\",\"testNotification\":{}}", &n), PG_OK);
    assert_int_equal(n.kind, GP_RTDN_TEST);
    assert_int_equal(rtdn(&c, &a, "{\"packageName\":\"com.attacker.app\",\"testNotification\":{}}", &n),
                     PG_ERR_MISMATCH);
    assert_int_equal(rtdn(&c, &a, "{\"packageName\":\"com.example.shop\",\"oneTimeProductNotification\":"
                               "{\"notificationType\":1,\"purchaseToken\":\"a b\",\"sku\":\"x\"}}", &n),
                     PG_ERR_BAD_INPUT);
    assert_int_equal(rtdn(&c, &a, "[1]", &n), PG_ERR_BAD_INPUT);
    buf_t err;
    buf_init(&err, NULL);
    assert_int_equal(googleplay_parse_rtdn(&c, &a, "{}", 2, &n, &err), PG_ERR_BAD_INPUT);
    assert_int_equal(googleplay_parse_rtdn(&c, &a, "{\"message\":{\"data\":\"!!\"}}", 22, &n, &err), PG_ERR_BAD_INPUT);
    buf_free(&err);
    googleplay_client_free(&c);
    arena_free(&a);
}

static void test_googleplay_service_account_assertion(void **state)
{
    (void)state;
    googleplay_client_t c;
    buf_t err, jwt, input, sig_std;
    memset(&c, 0, sizeof c);
    buf_init(&err, NULL);
    buf_init(&jwt, NULL);
    buf_init(&input, NULL);
    buf_init(&sig_std, NULL);
    assert_int_equal(crypto_key_load_private("../fixtures/alipay/app_private.pem", &c.sa_key, &err), PG_OK);
    c.client_email = strdup("sa@p.iam.gserviceaccount.com");
    c.token_uri = strdup("https://oauth2.googleapis.com/token");
    assert_int_equal(googleplay_sa_assertion(&c, NOW, &jwt), PG_OK);
    char *d1 = strchr(jwt.data, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    assert_non_null(d2);
    for (char *p = d2 + 1; *p; p++)
        buf_putc(&sig_std, *p == '-' ? '+' : *p == '_' ? '/' : *p);
    while (sig_std.len % 4)
        buf_putc(&sig_std, '=');
    crypto_key_t *pub = NULL;
    assert_int_equal(crypto_key_load_public("../fixtures/alipay/app_public.pem", &pub, &err), PG_OK);
    assert_int_equal(crypto_rsa_sha256_verify_b64(pub, jwt.data, (size_t)(d2 - jwt.data), sig_std.data), PG_OK);
    /* the claims */
    buf_t cl, std;
    buf_init(&cl, NULL);
    buf_init(&std, NULL);
    for (char *p = d1 + 1; p < d2; p++)
        buf_putc(&std, *p == '-' ? '+' : *p == '_' ? '/' : *p);
    while (std.len % 4)
        buf_putc(&std, '=');
    assert_int_equal(crypto_base64_decode(std.data, std.len, &cl), PG_OK);
    json_t *j = json_loadb(cl.data, cl.len, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(j, "iss")), "sa@p.iam.gserviceaccount.com");
    assert_string_equal(json_string_value(json_object_get(j, "aud")), "https://oauth2.googleapis.com/token");
    assert_string_equal(json_string_value(json_object_get(j, "scope")), "https://www.googleapis.com/auth/androidpublisher");
    assert_int_equal(json_integer_value(json_object_get(j, "exp")) - json_integer_value(json_object_get(j, "iat")), 3600);
    json_decref(j);
    crypto_key_free(pub);
    googleplay_client_free(&c);
    buf_free(&err);
    buf_free(&jwt);
    buf_free(&input);
    buf_free(&sig_std);
    buf_free(&cl);
    buf_free(&std);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_googleplay_accepts_google_push_token),
        cmocka_unit_test(test_googleplay_refuses_forged_push_tokens),
        cmocka_unit_test(test_googleplay_parses_rtdn),
        cmocka_unit_test(test_googleplay_service_account_assertion),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
