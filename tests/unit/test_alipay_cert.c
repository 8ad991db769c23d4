/* Alipay certificate mode: SNs, request parameters, reply alipay_cert_sn,
 * chain and key checks, configuration rules. The expected SNs below are
 * tests/fixtures/alipay_cert/expected_sn.json, written by the official npm
 * alipay-sdk (sn_sdk.js) from certificates made by make_certs.sh, and agree
 * with expected_openssl.txt (sn_openssl.sh: openssl's issuer/serial + MD5).
 * Run with cwd tests/unit. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alipay.h"
#include "alipay_cert.h"
#include "certs.h"
#include "config.h"
#include "fake_gw.h"

#define CF "../fixtures/alipay_cert/"
#define AF "../fixtures/alipay/"

/* expected_sn.json (alipay-sdk 4.14.0) */
#define SDK_APP_CERT_SN "b97e9b7cecce25696972a7c5ee80daea"
#define SDK_ALIPAY_CERT_SN "a399d2fd8b7d916d0db1ecbf4d1b440d"
#define SDK_ROOT_CERT_SN "cf97263e34f99a62fe47b6866f4e1cc6_56b51d3e3b99fb4f8a99f54a3aa24f4b_" \
                         "fd4c57c362fca298090e429eb6c3603e"
#define SDK_ODD_ISSUER_SN "160d4e978aaea4384cea742e3d4704f4"
#define SDK_CLASS2_AS_ROOT_SN "01e7fd6ac374789c3d8fd3569c0ec99a"

static void sn_of(const char *path, const char *want)
{
    char sn[ALIPAY_CERT_SN_LEN + 1];
    buf_t err;
    buf_init(&err, NULL);
    assert_int_equal(alipay_cert_sn_file(path, sn, &err), PG_OK);
    assert_string_equal(sn, want);
    buf_free(&err);
}

static void root_sn_of(const char *path, const char *want)
{
    buf_t out, err;
    buf_init(&out, NULL);
    buf_init(&err, NULL);
    assert_int_equal(alipay_root_cert_sn_file(path, &out, &err), PG_OK);
    assert_string_equal(out.data, want);
    buf_free(&out);
    buf_free(&err);
}

static void test_cert_sns_match_official_sdk(void **state)
{
    (void)state;
    sn_of(CF "appCertPublicKey.crt", SDK_APP_CERT_SN);
    /* alipayCertPublicKey_RSA2.crt holds the certificate and its CA: the
     * first one counts */
    sn_of(CF "alipayCertPublicKey_RSA2.crt", SDK_ALIPAY_CERT_SN);
    /* L, ST, E short names, an attribute without one, a 127-bit serial */
    sn_of(CF "odd_issuer.crt", SDK_ODD_ISSUER_SN);
}

static void test_root_sn_leaves_out_non_rsa_certificates(void **state)
{
    x509_bundle_t *b = NULL;
    buf_t err;
    char oid[64];
    size_t i, rsa = 0;
    (void)state;
    /* the bundle: SM2, ECDSA, sha256/sha1/sha512WithRSA roots */
    buf_init(&err, NULL);
    assert_int_equal(x509_bundle_load(CF "alipayRootCert.crt", &b, &err), PG_OK);
    assert_int_equal(x509_bundle_count(b), 5);
    for (i = 0; i < 5; i++) {
        assert_int_equal(x509_signature_oid(b, i, oid), PG_OK);
        rsa += strncmp(oid, "1.2.840.113549.1.1.", 19) == 0;
    }
    assert_int_equal(rsa, 3);
    x509_bundle_free(b);
    buf_free(&err);
    root_sn_of(CF "alipayRootCert.crt", SDK_ROOT_CERT_SN);
    root_sn_of(CF "ca_class2.crt", SDK_CLASS2_AS_ROOT_SN);
}

static void test_bundle_refuses_junk(void **state)
{
    static const char junk[] = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    x509_bundle_t *b = NULL;
    buf_t out, err;
    (void)state;
    buf_init(&out, NULL);
    buf_init(&err, NULL);
    assert_int_not_equal(x509_bundle_parse(junk, sizeof junk - 1, &b, &err), PG_OK);
    assert_null(b);
    assert_int_not_equal(x509_bundle_parse("hello", 5, &b, &err), PG_OK);
    /* a bundle with no RSA-signed certificate has no root SN */
    assert_int_not_equal(alipay_root_cert_sn_file(AF "app_public.pem", &out, &err), PG_OK);
    buf_free(&out);
    buf_free(&err);
}

static void test_chain_checks(void **state)
{
    x509_bundle_t *ali = NULL, *root = NULL, *foreign = NULL, *app = NULL;
    buf_t err;
    (void)state;
    buf_init(&err, NULL);
    assert_int_equal(x509_bundle_load(CF "alipayCertPublicKey_RSA2.crt", &ali, &err), PG_OK);
    assert_int_equal(x509_bundle_load(CF "alipayRootCert.crt", &root, &err), PG_OK);
    assert_int_equal(x509_bundle_load(CF "alipay_foreign.crt", &foreign, &err), PG_OK);
    assert_int_equal(x509_bundle_load(CF "appCertPublicKey.crt", &app, &err), PG_OK);
    assert_true(x509_chains_to(ali, root));
    assert_false(x509_chains_to(foreign, root));
    /* the app certificate alone lacks its CA (Class 2): no chain */
    assert_false(x509_chains_to(app, root));
    x509_bundle_free(ali);
    x509_bundle_free(root);
    x509_bundle_free(foreign);
    x509_bundle_free(app);
    buf_free(&err);
}

static alipay_client_t cert_client(crypto_key_t *priv, crypto_key_t *ali)
{
    alipay_client_t c;
    memset(&c, 0, sizeof c);
    c.app_id = "2021004100000001";
    c.gateway = "https://openapi.alipay.com/gateway.do";
    c.app_private_key = priv;
    c.alipay_public_key = ali;
    c.app_cert_sn = SDK_APP_CERT_SN;
    c.alipay_root_cert_sn = SDK_ROOT_CERT_SN;
    c.alipay_cert_sn = SDK_ALIPAY_CERT_SN;
    return c;
}

static crypto_key_t *key(const char *path, int priv)
{
    crypto_key_t *k = NULL;
    buf_t err;
    buf_init(&err, NULL);
    if ((priv ? crypto_key_load_private(path, &k, &err) : crypto_key_load_public(path, &k, &err)) != PG_OK)
        fail_msg("%s: %s", path, err.data);
    buf_free(&err);
    return k;
}

static void test_requests_carry_cert_sns_signed(void **state)
{
    crypto_key_t *priv = key(AF "app_private.pem", 1), *pub = key(AF "app_public.pem", 0);
    alipay_client_t c = cert_client(priv, NULL);
    arena_t a;
    kv_list_t p;
    buf_t content;
    (void)state;
    arena_init(&a, 0);
    kv_init(&p, &a);
    assert_int_equal(alipay_sign_request(&c, "alipay.trade.query", "{}", false, 1795522500, &p), PG_OK);
    assert_string_equal(kv_get(&p, "app_cert_sn"), SDK_APP_CERT_SN);
    assert_string_equal(kv_get(&p, "alipay_root_cert_sn"), SDK_ROOT_CERT_SN);
    /* both are inside the signed string */
    buf_init(&content, &a);
    assert_int_equal(alipay_sign_content(&p, false, &content), PG_OK);
    assert_non_null(strstr(content.data, "&app_cert_sn=" SDK_APP_CERT_SN "&"));
    assert_non_null(strstr(content.data, "alipay_root_cert_sn=" SDK_ROOT_CERT_SN "&"));
    assert_int_equal(crypto_rsa_sha256_verify_b64(pub, content.data, content.len, kv_get(&p, "sign")), PG_OK);
    /* public-key mode: neither */
    c.app_cert_sn = NULL;
    kv_init(&p, &a);
    assert_int_equal(alipay_sign_request(&c, "alipay.trade.query", "{}", false, 1795522500, &p), PG_OK);
    assert_null(kv_get(&p, "app_cert_sn"));
    assert_null(kv_get(&p, "alipay_root_cert_sn"));
    arena_free(&a);
    crypto_key_free(priv);
    crypto_key_free(pub);
}

static char *slurp(arena_t *a, const char *path)
{
    FILE *f = fopen(path, "rb");
    char *d;
    long n;
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    rewind(f);
    d = arena_alloc(a, (size_t)n + 1);
    assert_int_equal(fread(d, 1, (size_t)n, f), (size_t)n);
    d[n] = '\0';
    fclose(f);
    return d;
}

/* precreate_ok.json is signed by alipay_private.pem (openssl) and carries
 * "alipay_cert_sn":"x{\"y" beside the response (outside the signed span). */
static void test_reply_alipay_cert_sn_is_checked(void **state)
{
    crypto_key_t *ali = key(AF "alipay_public.pem", 0);
    alipay_client_t c = cert_client(NULL, ali);
    alipay_reply_t r;
    arena_t a;
    buf_t err;
    char *body, *cut;
    (void)state;
    arena_init(&a, 0);
    buf_init(&err, &a);
    body = slurp(&a, AF "precreate_ok.json");
    /* the configured SN differs: refused although the signature holds */
    assert_int_equal(alipay_check_response(&a, &c, "alipay.trade.precreate", body, strlen(body), &r, &err),
                     PG_ERR_BAD_SIGNATURE);
    assert_non_null(strstr(err.data, "alipay_cert_sn"));
    assert_null(r.json);
    /* the SN it names (decoded): accepted */
    c.alipay_cert_sn = "x{\"y";
    assert_int_equal(alipay_check_response(&a, &c, "alipay.trade.precreate", body, strlen(body), &r, &err),
                     PG_OK);
    /* no alipay_cert_sn at all in certificate mode: refused */
    cut = strstr(body, "\"alipay_cert_sn\"");
    assert_non_null(cut);
    memset(cut, ' ', strlen("\"alipay_cert_sn\":\"x{\\\"y\","));
    assert_int_equal(alipay_check_response(&a, &c, "alipay.trade.precreate", body, strlen(body), &r, &err),
                     PG_ERR_BAD_SIGNATURE);
    /* public-key mode does not look at it */
    c.alipay_cert_sn = NULL;
    assert_int_equal(alipay_check_response(&a, &c, "alipay.trade.precreate", body, strlen(body), &r, &err),
                     PG_OK);
    arena_free(&a);
    crypto_key_free(ali);
}


/* ---- transfers ----------------------------------------------------------
 * Replies signed here with alipay_private.pem (what is under test is the
 * outcome class, not the signature; signing is checked against openssl in
 * test_alipay.c), served by the one-shot fake gateway. */

static char *signed_reply(arena_t *a, const char *method_key, const char *inner, const char *cert_sn)
{
    crypto_key_t *k = key(AF "alipay_private.pem", 1);
    buf_t sig;
    char *body;
    buf_init(&sig, a);
    assert_int_equal(crypto_rsa_sha256_sign_b64(k, inner, strlen(inner), &sig), PG_OK);
    body = arena_printf(a, "{\"%s\":%s,\"alipay_cert_sn\":\"%s\",\"sign\":\"%s\"}", method_key, inner,
                        cert_sn, sig.data);
    crypto_key_free(k);
    return body;
}

static const alipay_payee_t PAYEE = { "creator@example.com", "ALIPAY_LOGON_ID", "Zhang San" };

static pg_err transfer_with(arena_t *a, alipay_client_t *c, int status, const char *body,
                            alipay_transfer_result_t *t, char **request)
{
    fake_gw_t g;
    buf_t err;
    pg_err rc;
    buf_init(&err, a);
    fake_gw_start(&g, status, "application/json;charset=utf-8", body, 0);
    c->gateway = arena_printf(a, "http://127.0.0.1:%d/gateway.do", g.port);
    c->http.total_timeout_ms = 3000;
    rc = alipay_fund_transfer(a, c, "S20261207-ab12CD34", 6888, "creator payout", &PAYEE, t, &err);
    *request = fake_gw_finish(&g, a, 0);
    return rc;
}

#define TKEY "alipay_fund_trans_uni_transfer_response"

static void test_transfer_outcome_classes(void **state)
{
    crypto_key_t *priv = key(AF "app_private.pem", 1), *ali = key(AF "alipay_public.pem", 0);
    alipay_client_t c = cert_client(priv, ali);
    alipay_transfer_result_t t;
    arena_t a;
    char *req;
    (void)state;
    arena_init(&a, 0);
    /* success: the request is a certificate-mode transfer of 68.88 */
    assert_int_equal(transfer_with(&a, &c, 200, signed_reply(&a, TKEY,
        "{\"code\":\"10000\",\"msg\":\"Success\",\"out_biz_no\":\"S20261207-ab12CD34\",\"order_id\":\"O1\","
        "\"pay_fund_order_id\":\"F1\",\"status\":\"SUCCESS\",\"trans_date\":\"2026-12-07 10:00:00\"}",
        SDK_ALIPAY_CERT_SN), &t, &req), PG_OK);
    assert_int_equal(t.status, ALIPAY_TRANSFER_SUCCESS);
    assert_string_equal(t.order_id, "O1");
    assert_non_null(strstr(req, "method=alipay.fund.trans.uni.transfer"));
    assert_non_null(strstr(req, "app_cert_sn=" SDK_APP_CERT_SN));
    assert_non_null(strstr(req, "%22trans_amount%22%3A%2268.88%22"));
    assert_non_null(strstr(req, "%22identity_type%22%3A%22ALIPAY_LOGON_ID%22"));
    /* a reply for another out_biz_no: unknown, to be queried */
    assert_int_equal(transfer_with(&a, &c, 200, signed_reply(&a, TKEY,
        "{\"code\":\"10000\",\"msg\":\"Success\",\"out_biz_no\":\"OTHER\",\"status\":\"SUCCESS\"}",
        SDK_ALIPAY_CERT_SN), &t, &req), PG_ERR_TIMEOUT);
    /* signed business refusal: definitive, with the sub_code */
    assert_int_equal(transfer_with(&a, &c, 200, signed_reply(&a, TKEY,
        "{\"code\":\"40004\",\"msg\":\"Business Failed\",\"sub_code\":\"PAYEE_NOT_EXIST\",\"sub_msg\":\"x\"}",
        SDK_ALIPAY_CERT_SN), &t, &req), PG_ERR_CONFLICT);
    assert_string_equal(t.sub_code, "PAYEE_NOT_EXIST");
    /* SYSTEM_ERROR, even signed: unknown */
    assert_int_equal(transfer_with(&a, &c, 200, signed_reply(&a, TKEY,
        "{\"code\":\"40004\",\"msg\":\"Business Failed\",\"sub_code\":\"SYSTEM_ERROR\",\"sub_msg\":\"x\"}",
        SDK_ALIPAY_CERT_SN), &t, &req), PG_ERR_TIMEOUT);
    /* the same refusal unsigned, or under another certificate: unknown */
    assert_int_equal(transfer_with(&a, &c, 200,
        "{\"" TKEY "\":{\"code\":\"40004\",\"msg\":\"Business Failed\",\"sub_code\":\"PAYEE_NOT_EXIST\"}}",
        &t, &req), PG_ERR_TIMEOUT);
    assert_int_equal(transfer_with(&a, &c, 200, signed_reply(&a, TKEY,
        "{\"code\":\"40004\",\"msg\":\"Business Failed\",\"sub_code\":\"PAYEE_NOT_EXIST\",\"sub_msg\":\"x\"}",
        "00000000000000000000000000000000"), &t, &req), PG_ERR_TIMEOUT);
    /* HTTP 502: unknown */
    assert_int_equal(transfer_with(&a, &c, 502, "<html>bad gateway</html>", &t, &req), PG_ERR_TIMEOUT);
    /* public-key mode: nothing is sent */
    c.app_cert_sn = NULL;
    {
        buf_t err;
        buf_init(&err, &a);
        assert_int_equal(alipay_fund_transfer(&a, &c, "S1", 100, "t", &PAYEE, &t, &err), PG_ERR_CONFIG);
    }
    arena_free(&a);
    crypto_key_free(priv);
    crypto_key_free(ali);
}

static void test_transfer_query_classes(void **state)
{
    crypto_key_t *priv = key(AF "app_private.pem", 1), *ali = key(AF "alipay_public.pem", 0);
    alipay_client_t c = cert_client(priv, ali);
    alipay_transfer_result_t t;
    fake_gw_t g;
    arena_t a;
    buf_t err;
    static const char *const cases[][2] = {
        { "{\"code\":\"40004\",\"msg\":\"Business Failed\",\"sub_code\":\"ORDER_NOT_EXIST\",\"sub_msg\":\"x\"}", "N" },
        { "{\"code\":\"10000\",\"msg\":\"Success\",\"out_biz_no\":\"S1\",\"status\":\"DEALING\"}", "D" },
        { "{\"code\":\"10000\",\"msg\":\"Success\",\"out_biz_no\":\"S1\",\"status\":\"FAIL\",\"fail_reason\":\"r\"}", "F" },
        { "{\"code\":\"10000\",\"msg\":\"Success\",\"out_biz_no\":\"S1\",\"status\":\"SUCCESS\"}", "S" },
        { "{\"code\":\"10000\",\"msg\":\"Success\",\"out_biz_no\":\"S2\",\"status\":\"SUCCESS\"}", "M" },
    };
    size_t i;
    (void)state;
    arena_init(&a, 0);
    buf_init(&err, &a);
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pg_err rc;
        fake_gw_start(&g, 200, "application/json", signed_reply(&a, "alipay_fund_trans_common_query_response",
                                                               cases[i][0], SDK_ALIPAY_CERT_SN), 0);
        c.gateway = arena_printf(&a, "http://127.0.0.1:%d/gateway.do", g.port);
        rc = alipay_fund_transfer_query(&a, &c, "S1", &t, &err);
        fake_gw_finish(&g, &a, 0);
        switch (cases[i][1][0]) {
        case 'N': assert_int_equal(rc, PG_OK); assert_int_equal(t.status, ALIPAY_TRANSFER_NOT_FOUND); break;
        case 'D': assert_int_equal(rc, PG_OK); assert_int_equal(t.status, ALIPAY_TRANSFER_DEALING); break;
        case 'F': assert_int_equal(rc, PG_OK); assert_int_equal(t.status, ALIPAY_TRANSFER_FAIL); break;
        case 'S': assert_int_equal(rc, PG_OK); assert_int_equal(t.status, ALIPAY_TRANSFER_SUCCESS); break;
        default: assert_int_equal(rc, PG_ERR_MISMATCH); break;
        }
    }
    arena_free(&a);
    crypto_key_free(priv);
    crypto_key_free(ali);
}

/* ---- configuration ---------------------------------------------------- */

static char dir[64], ini[128];

static int cfg_setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/paygate-certcfg-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(ini, sizeof ini, "%s/paygate.ini", dir);
    return 0;
}

static int cfg_teardown(void **state)
{
    (void)state;
    unlink(ini);
    rmdir(dir);
    return 0;
}

static pg_err load_alipay(const char *alipay_lines, pg_config_t **cfg, buf_t *err)
{
    FILE *f = fopen(ini, "w");
    assert_non_null(f);
    fprintf(f, "[server]\nbase_url = https://shop.example.com/pay\napi_key = 0123456789abcdef0123\n"
               "checkout_secret = fedcba9876543210fedc\n[database]\nuser = paygate\n"
               "[alipay]\nenabled = true\napp_id = 2021000000000001\n%s", alipay_lines);
    fclose(f);
    buf_init(err, NULL);
    *cfg = NULL;
    return config_load(ini, true, cfg, err);
}

#define CERT_LINES(app, ali, root) \
    "app_private_key = " AF "app_private.pem\napp_cert = " app "\nalipay_cert = " ali \
    "\nalipay_root_cert = " root "\n"

static void test_config_cert_mode_loads_sns(void **state)
{
    pg_config_t *cfg;
    buf_t err;
    (void)state;
    assert_int_equal(load_alipay(CERT_LINES(CF "appCertPublicKey.crt", CF "alipayCertPublicKey_RSA2.crt",
                                            CF "alipayRootCert.crt"), &cfg, &err), PG_OK);
    assert_true(cfg->alipay.cert_mode);
    assert_string_equal(cfg->alipay.app_cert_sn, SDK_APP_CERT_SN);
    assert_string_equal(cfg->alipay.alipay_cert_sn, SDK_ALIPAY_CERT_SN);
    assert_string_equal(cfg->alipay.alipay_root_cert_sn, SDK_ROOT_CERT_SN);
    assert_non_null(cfg->alipay.alipay_public_key);
    assert_null(cfg->alipay.warnings);
    config_free(cfg);
    buf_free(&err);
}

static void refused(const char *lines, const char *needle)
{
    pg_config_t *cfg;
    buf_t err;
    assert_int_equal(load_alipay(lines, &cfg, &err), PG_ERR_CONFIG);
    if (strstr(err.data, needle) == NULL)
        fail_msg("expected '%s' in: %s", needle, err.data);
    buf_free(&err);
}

static void test_config_refuses_mixed_and_broken_cert_setups(void **state)
{
    (void)state;
    refused(CERT_LINES(CF "appCertPublicKey.crt", CF "alipayCertPublicKey_RSA2.crt", CF "alipayRootCert.crt")
            "alipay_public_key = " AF "alipay_public.pem\n",
            "[alipay] alipay_public_key: set together with app_cert");
    refused("app_private_key = " AF "app_private.pem\napp_cert = " CF "appCertPublicKey.crt\n",
            "[alipay] alipay_cert: missing");
    /* a private key that is not app_cert's */
    refused("app_private_key = " AF "alipay_private.pem\napp_cert = " CF "appCertPublicKey.crt\n"
            "alipay_cert = " CF "alipayCertPublicKey_RSA2.crt\nalipay_root_cert = " CF "alipayRootCert.crt\n",
            "[alipay] app_cert: '" CF "appCertPublicKey.crt' is not the certificate of app_private_key");
    /* alipay_cert under another root */
    refused(CERT_LINES(CF "appCertPublicKey.crt", CF "alipay_foreign.crt", CF "alipayRootCert.crt"),
            "[alipay] alipay_cert: '" CF "alipay_foreign.crt' is not issued under alipay_root_cert");
    /* the app certificate where Alipay's belongs */
    refused(CERT_LINES(CF "appCertPublicKey.crt", CF "appCertPublicKey.crt", CF "alipayRootCert.crt"),
            "is your app certificate, not Alipay's");
    refused(CERT_LINES(CF "appCertPublicKey.crt", CF "alipayCertPublicKey_RSA2.crt", AF "app_public.pem"),
            "[alipay] alipay_root_cert: '" AF "app_public.pem' holds no usable certificate");
}

static void test_config_warns_of_expiry(void **state)
{
    pg_config_t *cfg;
    buf_t err;
    (void)state;
    /* app_expiring.crt was made valid for 10 days (later: expired) */
    assert_int_equal(load_alipay(CERT_LINES(CF "app_expiring.crt", CF "alipayCertPublicKey_RSA2.crt",
                                            CF "alipayRootCert.crt"), &cfg, &err), PG_OK);
    assert_non_null(cfg->alipay.warnings);
    assert_non_null(strstr(cfg->alipay.warnings, "warning: [alipay] app_cert: certificate 1 of '" CF "app_expiring.crt'"));
    assert_null(strstr(cfg->alipay.warnings, "alipay_cert:"));
    config_free(cfg);
    buf_free(&err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cert_sns_match_official_sdk),
        cmocka_unit_test(test_root_sn_leaves_out_non_rsa_certificates),
        cmocka_unit_test(test_bundle_refuses_junk),
        cmocka_unit_test(test_chain_checks),
        cmocka_unit_test(test_requests_carry_cert_sns_signed),
        cmocka_unit_test(test_reply_alipay_cert_sn_is_checked),
        cmocka_unit_test(test_transfer_outcome_classes),
        cmocka_unit_test(test_transfer_query_classes),
        cmocka_unit_test_setup_teardown(test_config_cert_mode_loads_sns, cfg_setup, cfg_teardown),
        cmocka_unit_test_setup_teardown(test_config_refuses_mixed_and_broken_cert_setups, cfg_setup, cfg_teardown),
        cmocka_unit_test_setup_teardown(test_config_warns_of_expiry, cfg_setup, cfg_teardown),
    };
    httpc_global_init();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
