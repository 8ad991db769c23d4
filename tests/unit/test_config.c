/* Config tests: valid files load; every problem names file, section and key. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "config.h"

#define KEYS "../fixtures/keys/"
#define ALIPAY "../fixtures/alipay/"

static char dir[64];
static char path[128];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/paygate-config-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(path, sizeof path, "%s/paygate.ini", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(path);
    rmdir(dir);
    return 0;
}

static void write_ini(const char *alipay_private, const char *alipay_public, const char *extra)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f,
            "[server]\nbase_url = https://shop.example.com/pay/ ; trailing slash is dropped\n"
            "api_key = 0123456789abcdef0123\ncheckout_secret = fedcba9876543210fedc\n"
            "[database]\nuser = paygate\npassword = s3cret\n"
            "[alipay]\nenabled = true\napp_id = 2021000000000001\n"
            "app_private_key = %s\nalipay_public_key = %s\n%s",
            alipay_private, alipay_public, extra);
    fclose(f);
}

static pg_err load(buf_t *err, pg_config_t **cfg)
{
    buf_init(err, NULL);
    return config_load(path, true, cfg, err);
}

static void assert_error_mentions(const char *extra, const char *needle)
{
    pg_config_t *cfg = NULL;
    buf_t err;
    write_ini(KEYS "app_private_pkcs1.pem", ALIPAY "alipay_public.pem", extra);
    assert_int_equal(load(&err, &cfg), PG_ERR_CONFIG);
    assert_null(cfg);
    if (!strstr(err.data, needle))
        fail_msg("expected '%s' in:\n%s", needle, err.data);
    assert_non_null(strstr(err.data, path));
    buf_free(&err);
}

static void test_config_valid_file_loads_with_defaults(void **state)
{
    pg_config_t *cfg = NULL;
    buf_t err;
    (void)state;
    write_ini(KEYS "app_private_pkcs1.pem", ALIPAY "alipay_public.pem", "");
    assert_int_equal(load(&err, &cfg), PG_OK);
    assert_string_equal(cfg->server.base_url, "https://shop.example.com/pay");
    assert_string_equal(cfg->server.base_path, "/pay");
    assert_int_equal(cfg->server.order_ttl, 900);
    assert_string_equal(cfg->database.host, "127.0.0.1");
    assert_int_equal(cfg->database.port, 3306);
    assert_int_equal(cfg->fees.alipay_rate_bp, 60);
    assert_false(cfg->fees.surcharge);
    assert_true(cfg->settlement.delayed);
    assert_non_null(cfg->alipay.app_private_key);
    assert_non_null(cfg->alipay.alipay_public_key);
    config_free(cfg);
    buf_free(&err);
}

static void test_config_accepts_pkcs8_and_bare_base64_keys(void **state)
{
    pg_config_t *cfg = NULL;
    buf_t err;
    (void)state;
    write_ini(KEYS "app_private_pkcs8.pem", ALIPAY "alipay_public_bare.txt", "");
    assert_int_equal(load(&err, &cfg), PG_OK);
    config_free(cfg);
    buf_free(&err);
    write_ini(KEYS "app_private_bare.txt", ALIPAY "alipay_public.pem", "");
    assert_int_equal(load(&err, &cfg), PG_OK);
    config_free(cfg);
    buf_free(&err);
}

static void test_config_unknown_key_is_named(void **state)
{
    (void)state;
    assert_error_mentions("colour = blue\n", "[alipay] colour: unknown key");
}

static void test_config_bad_values_are_named(void **state)
{
    (void)state;
    assert_error_mentions("[server]\norder_ttl = 15m\n", "[server] order_ttl");
    assert_error_mentions("[wechat]\nsign_type = SHA1\n", "[wechat] sign_type: 'SHA1' is not one of MD5|HMAC-SHA256");
    assert_error_mentions("[fees]\nmode = maybe\n", "[fees] mode");
    assert_error_mentions("[database]\nport = 99999\n", "[database] port");
    assert_error_mentions("[demo]\nstorefront = sure\n", "[demo] storefront");
    assert_error_mentions("[server]\nlocale = fr\n", "[server] locale: 'fr' is not one of zh-CN|en");
}

static void test_config_missing_required_key_is_named(void **state)
{
    pg_config_t *cfg = NULL;
    buf_t err;
    FILE *f;
    (void)state;
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("[server]\nbase_url = https://x.example/pay\n[database]\nuser = u\n[alipay]\nenabled = false\n", f);
    fclose(f);
    assert_int_equal(load(&err, &cfg), PG_ERR_CONFIG);
    assert_non_null(strstr(err.data, "[server] api_key: missing"));
    assert_non_null(strstr(err.data, "[server] checkout_secret: missing"));
    buf_free(&err);
}

static void test_config_enabled_wechat_needs_32_char_key(void **state)
{
    (void)state;
    assert_error_mentions("[wechat]\nenabled = true\nappid = wx1\nmch_id = 1900000000\napi_key = short\n",
                          "[wechat] api_key: must be exactly 32 characters");
}

static void test_config_stripe_keys_are_checked(void **state)
{
    pg_config_t *cfg = NULL;
    buf_t err;
    (void)state;
    assert_error_mentions("[stripe]\nenabled = true\nwebhook_secret = whsec_x\n", "[stripe] secret_key: missing");
    assert_error_mentions("[stripe]\nenabled = true\nsecret_key = pk_test_x\nwebhook_secret = whsec_x\n",
                          "[stripe] secret_key: must be a secret");
    assert_error_mentions("[stripe]\nenabled = true\nsecret_key = sk_test_x\nwebhook_secret = abc\n",
                          "[stripe] webhook_secret: must be the endpoint's signing secret");
    assert_error_mentions("[stripe]\nenabled = true\nsecret_key = sk_test_x\nwebhook_secret = whsec_x\n"
                          "currency = USD\n",
                          "[stripe] currency: must be a lowercase three-letter ISO code");
    write_ini(KEYS "app_private_pkcs1.pem", ALIPAY "alipay_public.pem",
              "[stripe]\nenabled = true\nsecret_key = sk_test_x\nwebhook_secret = whsec_x\n");
    assert_int_equal(load(&err, &cfg), PG_OK);
    assert_string_equal(cfg->stripe.currency, "cny");
    assert_string_equal(cfg->stripe.api_base, "https://api.stripe.com");
    assert_int_equal(cfg->stripe.fee_rate_bp, 340);
    config_free(cfg);
    buf_free(&err);
}

/* WeChat closes no order within 5 minutes of creating it: a shorter
 * order_ttl could never be honoured. Alipay alone may go down to 60 s. */
static void test_config_wechat_needs_order_ttl_of_5_minutes(void **state)
{
    pg_config_t *cfg = NULL;
    buf_t err;
    (void)state;
    assert_error_mentions("[wechat]\nenabled = true\nappid = wx1\nmch_id = 1900000000\n"
                          "api_key = 0123456789abcdef0123456789abcdef\n[server]\norder_ttl = 299\n",
                          "[server] order_ttl: must be at least 300 seconds when WeChat is enabled");
    write_ini(KEYS "app_private_pkcs1.pem", ALIPAY "alipay_public.pem",
              "[wechat]\nenabled = true\nappid = wx1\nmch_id = 1900000000\n"
              "api_key = 0123456789abcdef0123456789abcdef\n[server]\norder_ttl = 300\n");
    assert_int_equal(load(&err, &cfg), PG_OK);
    config_free(cfg);
    buf_free(&err);
    write_ini(KEYS "app_private_pkcs1.pem", ALIPAY "alipay_public.pem", "[server]\norder_ttl = 60\n");
    assert_int_equal(load(&err, &cfg), PG_OK);
    assert_int_equal(cfg->server.order_ttl, 60);
    config_free(cfg);
    buf_free(&err);
}

/* Batches before start_date may have been paid by hand from the CSV:
 * switching transfers on must never pay them again. */
static void test_config_payouts_need_a_start_date(void **state)
{
    (void)state;
    assert_error_mentions("[payouts]\nenabled = true\n", "[payouts] start_date: required");
    assert_error_mentions("[payouts]\nenabled = true\nstart_date = 2026-02-30\n",
                          "[payouts] start_date: '2026-02-30' is not a date YYYY-MM-DD");
    assert_error_mentions("[payouts]\nenabled = true\nstart_date = 20260201\n",
                          "[payouts] start_date: '20260201' is not a date YYYY-MM-DD");
}

static void test_config_app_stores_are_checked(void **state)
{
    (void)state;
    assert_error_mentions("[appstore]\nenabled = true\nroot_cert = ../fixtures/appstore/root.pem\n",
                          "[appstore] bundle_id: missing");
    assert_error_mentions("[appstore]\nenabled = true\nbundle_id = com.example.shop\n"
                          "root_cert = ../fixtures/appstore/root.pem\n",
                          "[appstore] app_apple_id: missing");   /* Production needs it */
    assert_error_mentions("[appstore]\nenabled = true\nbundle_id = b\nenvironment = Xcode\n"
                          "root_cert = ../fixtures/appstore/root.pem\n", "[appstore] environment");
    assert_error_mentions("[appstore]\nenabled = true\nbundle_id = b\napp_apple_id = 12a\n"
                          "root_cert = ../fixtures/appstore/root.pem\n", "[appstore] app_apple_id");
    assert_error_mentions("[appstore]\nstore_fee_bp = 10001\n", "[appstore] store_fee_bp");
    assert_error_mentions("[googleplay]\nenabled = true\npackage_name = p\nservice_account = /nonexistent.json\n"
                          "push_audience = a\npush_email = e\n", "[googleplay] service_account: cannot read");
    assert_error_mentions("[googleplay]\nenabled = true\npackage_name = p\n"
                          "service_account = ../fixtures/appstore/root.pem\n", "[googleplay] push_audience: missing");
}

static void test_config_metrics_allow_and_token_are_checked(void **state)
{
    (void)state;
    assert_error_mentions("[metrics]\nallow = 127.0.0.1/32, localhost\n",
                          "[metrics] allow: 'localhost' is not an IP address or CIDR range");
    assert_error_mentions("[metrics]\nallow = 10.0.0.0/33\n", "[metrics] allow");
    assert_error_mentions("[metrics]\ntoken = short\n", "[metrics] token: too short");
}

static void test_config_unreadable_key_file_is_named(void **state)
{
    pg_config_t *cfg = NULL;
    buf_t err;
    (void)state;
    write_ini("/nonexistent/app.pem", ALIPAY "alipay_public.pem", "");
    assert_int_equal(load(&err, &cfg), PG_ERR_CONFIG);
    assert_non_null(strstr(err.data, "[alipay] app_private_key: cannot read '/nonexistent/app.pem'"));
    buf_free(&err);
}

static void test_config_rejects_key_that_does_not_parse(void **state)
{
    pg_config_t *cfg = NULL;
    buf_t err;
    (void)state;
    write_ini(KEYS "app_public.pem", ALIPAY "alipay_public.pem", "");
    assert_int_equal(load(&err, &cfg), PG_ERR_CONFIG);
    assert_non_null(strstr(err.data, "[alipay] app_private_key: '" KEYS "app_public.pem' holds no usable RSA private key"));
    buf_free(&err);
}

/* The classic mistake: our own public key where Alipay's belongs. */
static void test_config_refuses_app_public_key_as_alipay_key(void **state)
{
    pg_config_t *cfg = NULL;
    buf_t err;
    (void)state;
    write_ini(KEYS "app_private_pkcs1.pem", KEYS "app_public.pem", "");
    assert_int_equal(load(&err, &cfg), PG_ERR_CONFIG);
    assert_non_null(strstr(err.data, "[alipay] alipay_public_key"));
    assert_non_null(strstr(err.data, "public half of your app key"));
    buf_free(&err);
}

static void test_config_refuses_private_key_as_alipay_public_key(void **state)
{
    pg_config_t *cfg = NULL;
    buf_t err;
    (void)state;
    write_ini(KEYS "app_private_pkcs1.pem", ALIPAY "alipay_private.pem", "");
    assert_int_equal(load(&err, &cfg), PG_ERR_CONFIG);
    assert_non_null(strstr(err.data, "holds a private key"));
    buf_free(&err);
}

static void test_config_key_given_twice_is_an_error(void **state)
{
    (void)state;
    assert_error_mentions("app_id = 2021000000000002\n", "[alipay] app_id: given twice");
}

/* ---- WeChat Pay API v3 ------------------------------------------------- */

#define V3 "../fixtures/wechat_v3/"
#define V3_BASE "[wechat]\nenabled = true\nappid = wxd930ea5d5a258f4f\nmch_id = 1900009191\n"
#define V3_KEYS "api_version = v3\napi_v3_key = a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb\n" \
                "client_cert = " V3 "merchant_cert.pem\nclient_key = " V3 "merchant_key.pem\n"
#define V3_PUBKEY "wechatpay_public_key = " V3 "wechatpay_pub.pem\n" \
                  "wechatpay_public_key_id = PUB_KEY_ID_0119000091912026112400000000000001\n"

static pg_config_t *load_ok(const char *extra)
{
    pg_config_t *cfg = NULL;
    buf_t err;
    write_ini(KEYS "app_private_pkcs1.pem", ALIPAY "alipay_public.pem", extra);
    if (load(&err, &cfg) != PG_OK)
        fail_msg("expected to load, got:\n%s", err.data);
    buf_free(&err);
    return cfg;
}

/* A merchant with only v3 keys: no v2 api_key, the serial read from the
 * certificate as openssl prints it, both keys loaded. */
static void test_config_wechat_v3_public_key_mode_loads(void **state)
{
    pg_config_t *cfg;
    FILE *f;
    char want[80] = "";
    (void)state;
    cfg = load_ok(V3_BASE V3_KEYS V3_PUBKEY);
    assert_true(cfg->wechat.api_v3);
    assert_null(cfg->wechat.api_key);
    f = fopen(V3 "openssl_merchant_serial.txt", "r");
    assert_non_null(f);
    assert_non_null(fgets(want, sizeof want, f));
    fclose(f);
    want[strcspn(want, "\n")] = '\0';
    assert_string_equal(cfg->wechat.mch_serial_no, want);
    assert_non_null(cfg->wechat.mch_key);
    assert_non_null(cfg->wechat.wechatpay_public_key);
    assert_string_equal(cfg->wechat.wechatpay_public_key_id, "PUB_KEY_ID_0119000091912026112400000000000001");
    config_free(cfg);
    /* the serial given by hand, in lower case, is the same serial */
    cfg = load_ok(V3_BASE V3_KEYS V3_PUBKEY "mch_serial_no = 5f3ac0de11223344556677889900aabbccddeeff\n");
    assert_string_equal(cfg->wechat.mch_serial_no, want);
    config_free(cfg);
}

static void test_config_wechat_v3_platform_mode_and_v2_default(void **state)
{
    pg_config_t *cfg;
    char extra[512];
    (void)state;
    snprintf(extra, sizeof extra, V3_BASE V3_KEYS "platform_cert_dir = %s\n", dir);
    cfg = load_ok(extra);
    assert_true(cfg->wechat.api_v3);
    assert_null(cfg->wechat.wechatpay_public_key);
    config_free(cfg);
    /* v2 stays the default, and then needs its api_key */
    assert_error_mentions(V3_BASE "api_v3_key = a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb\n"
                          "client_cert = " V3 "merchant_cert.pem\nclient_key = " V3 "merchant_key.pem\n" V3_PUBKEY,
                          "[wechat] api_key: missing");
}

static void test_config_wechat_v3_problems_are_named(void **state)
{
    (void)state;
    assert_error_mentions(V3_BASE "api_version = v4\n", "[wechat] api_version: 'v4' is not one of v2|v3");
    assert_error_mentions(V3_BASE "api_version = v3\napi_v3_key = short\nclient_cert = " V3
                          "merchant_cert.pem\nclient_key = " V3 "merchant_key.pem\n" V3_PUBKEY,
                          "[wechat] api_v3_key: must be exactly 32 bytes");
    assert_error_mentions(V3_BASE "api_version = v3\napi_v3_key = a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb\n" V3_PUBKEY,
                          "[wechat] client_key: missing");
    assert_error_mentions(V3_BASE V3_KEYS, "v3 verifies WeChat Pay's signatures with");
    assert_error_mentions(V3_BASE V3_KEYS "wechatpay_public_key = " V3 "wechatpay_pub.pem\n",
                          "[wechat] wechatpay_public_key_id: missing");
    assert_error_mentions(V3_BASE V3_KEYS "wechatpay_public_key = " V3 "wechatpay_pub.pem\n"
                          "wechatpay_public_key_id = 0119000091912026\n",
                          "does not look like PUB_KEY_ID_");
    assert_error_mentions(V3_BASE V3_KEYS "platform_cert_dir = /nonexistent/certs\n",
                          "[wechat] platform_cert_dir: '/nonexistent/certs' is not a directory");
    /* the key is not the certificate's */
    assert_error_mentions(V3_BASE "api_version = v3\napi_v3_key = a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb\n"
                          "client_cert = " V3 "merchant_cert.pem\nclient_key = " V3 "other_key.pem\n" V3_PUBKEY,
                          "is not the key of client_cert");
    assert_error_mentions(V3_BASE V3_KEYS V3_PUBKEY "mch_serial_no = 0A1B2C\n",
                          "[wechat] mch_serial_no: '0A1B2C' is not the serial of client_cert");
    /* the merchant's own certificate where WeChat Pay's public key belongs */
    assert_error_mentions(V3_BASE V3_KEYS "wechatpay_public_key = " V3 "merchant_cert.pem\n"
                          "wechatpay_public_key_id = PUB_KEY_ID_01\n",
                          "is your merchant key's public half");
    assert_error_mentions(V3_BASE V3_KEYS "wechatpay_public_key = " V3 "wechatpay_key.pem\n"
                          "wechatpay_public_key_id = PUB_KEY_ID_01\n",
                          "holds a private key; this must be WeChat Pay's public key");
    assert_error_mentions(V3_BASE V3_KEYS "wechatpay_public_key = " V3 "vectors.json\n"
                          "wechatpay_public_key_id = PUB_KEY_ID_01\n",
                          "holds no usable RSA public key");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_valid_file_loads_with_defaults),
        cmocka_unit_test(test_config_accepts_pkcs8_and_bare_base64_keys),
        cmocka_unit_test(test_config_unknown_key_is_named),
        cmocka_unit_test(test_config_bad_values_are_named),
        cmocka_unit_test(test_config_missing_required_key_is_named),
        cmocka_unit_test(test_config_enabled_wechat_needs_32_char_key),
        cmocka_unit_test(test_config_wechat_needs_order_ttl_of_5_minutes),
        cmocka_unit_test(test_config_unreadable_key_file_is_named),
        cmocka_unit_test(test_config_rejects_key_that_does_not_parse),
        cmocka_unit_test(test_config_refuses_app_public_key_as_alipay_key),
        cmocka_unit_test(test_config_refuses_private_key_as_alipay_public_key),
        cmocka_unit_test(test_config_key_given_twice_is_an_error),
        cmocka_unit_test(test_config_payouts_need_a_start_date),
        cmocka_unit_test(test_config_wechat_v3_public_key_mode_loads),
        cmocka_unit_test(test_config_wechat_v3_platform_mode_and_v2_default),
        cmocka_unit_test(test_config_wechat_v3_problems_are_named),
        cmocka_unit_test(test_config_metrics_allow_and_token_are_checked),
        cmocka_unit_test(test_config_stripe_keys_are_checked),
        cmocka_unit_test(test_config_app_stores_are_checked),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
