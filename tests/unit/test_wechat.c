/* WeChat Pay v2 adapter tests. Expected signs come from the documented
 * example in PROTOCOLS.md, from openssl commands written next to them, or
 * from tests/fixtures/wechat/make_fixtures.sh (openssl CLI only) — never
 * from our own signing code. Calls (unifiedorder ... refund, refundquery)
 * run against a one-shot fake gateway on loopback (forked child), so no
 * network is needed. Run with cwd
 * tests/unit. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crypto.h"
#include "httpc.h"
#include "wechat.h"
#include "xml.h"
#include "fake_gw.h"

#define FIX "../fixtures/wechat/"
#define API_KEY "192006250b4c09247ec02edce69f6a2d"
#define APPID "wxd930ea5d5a258f4f"
#define MCH_ID "10000100"
#define FIXED_NOW ((time_t)1795522500)   /* 2026-11-24 12:15:00 UTC */

/* ------------------------------------------------------------------ */
/* helpers                                                             */

static int group_setup(void **state)
{
    (void)state;
    xml_global_init();
    httpc_global_init();
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    httpc_global_cleanup();
    xml_global_cleanup();
    return 0;
}

static char *read_file(arena_t *a, const char *path, size_t *len_out)
{
    FILE *f = fopen(path, "rb");
    char *data;
    long n;

    if (f == NULL)
        fail_msg("cannot open %s (run from tests/unit)", path);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    n = ftell(f);
    assert_true(n >= 0);
    rewind(f);
    data = arena_alloc(a, (size_t)n + 1);
    assert_non_null(data);
    assert_int_equal(fread(data, 1, (size_t)n, f), (size_t)n);
    data[n] = '\0';
    fclose(f);
    if (len_out != NULL)
        *len_out = (size_t)n;
    return data;
}

static char *fixture(arena_t *a, const char *name)
{
    char path[256];
    snprintf(path, sizeof path, FIX "%s", name);
    return read_file(a, path, NULL);
}

/* A fixture file holding one line (a sign), without its newline. */
static char *fixture_line(arena_t *a, const char *name)
{
    char *s = fixture(a, name);
    s[strcspn(s, "\r\n")] = '\0';
    return s;
}

static wechat_client_t client(void)
{
    wechat_client_t c;
    memset(&c, 0, sizeof c);
    c.appid = APPID;
    c.mch_id = MCH_ID;
    c.api_key = API_KEY;
    c.gateway = "https://api.mch.weixin.qq.com";
    c.notify_url = "https://shop.example.com/paygate/notify/wechat";
    c.sign_type = WECHAT_SIGN_MD5;
    c.http.connect_timeout_ms = 1000;
    c.http.total_timeout_ms = 2000;
    return c;
}

/* Replaces the first occurrence of `from` in s (arena copy). */
static char *replace_once(arena_t *a, const char *s, const char *from, const char *to)
{
    const char *hit = strstr(s, from);
    buf_t b;
    assert_non_null(hit);
    buf_init(&b, a);
    buf_append(&b, s, (size_t)(hit - s));
    buf_puts(&b, to);
    buf_puts(&b, hit + strlen(from));
    assert_false(b.failed);
    return b.data;
}

/* Removes <name>...</name> (first occurrence). */
static char *remove_element(arena_t *a, const char *s, const char *name)
{
    char open[64], close[64];
    const char *start, *end;
    buf_t b;
    snprintf(open, sizeof open, "<%s>", name);
    snprintf(close, sizeof close, "</%s>", name);
    start = strstr(s, open);
    assert_non_null(start);
    end = strstr(start, close);
    assert_non_null(end);
    end += strlen(close);
    buf_init(&b, a);
    buf_append(&b, s, (size_t)(start - s));
    buf_puts(&b, end);
    return b.data;
}

static void example_params(kv_list_t *l, arena_t *a)
{
    /* PROTOCOLS.md's documented example, deliberately out of order */
    kv_init(l, a);
    kv_add(l, "nonce_str", "ibuaiVcKdpRxkhJA");
    kv_add(l, "mch_id", "10000100");
    kv_add(l, "body", "test");
    kv_add(l, "appid", "wxd930ea5d5a258f4f");
    kv_add(l, "device_info", "1000");
}

static char *gw_url(arena_t *a, const fake_gw_t *g)
{
    return arena_printf(a, "http://127.0.0.1:%d", g->port);
}

/* Parses the XML body of a captured request. */
static void request_fields(arena_t *a, const char *req, kv_list_t *out)
{
    const char *body = strstr(req, "\r\n\r\n");
    buf_t err;
    assert_non_null(body);
    body += 4;
    buf_init(&err, a);
    if (xml_parse_flat(a, body, strlen(body), out, &err) != PG_OK)
        fail_msg("request body is not flat XML: %s", err.data);
}

/* ------------------------------------------------------------------ */
/* signing                                                             */

static void test_sign_documented_example_md5_and_hmac(void **state)
{
    arena_t a;
    kv_list_t l;
    char out[65];
    (void)state;
    arena_init(&a, 0);
    example_params(&l, &a);
    assert_int_equal(wechat_sign(&l, API_KEY, WECHAT_SIGN_MD5, out), PG_OK);
    assert_string_equal(out, "9A0A8659F005D6984697E2CA0A9CF3B7");
    assert_int_equal(wechat_sign(&l, API_KEY, WECHAT_SIGN_HMAC_SHA256, out), PG_OK);
    assert_string_equal(out, "6A9AE1657590FD6257D693A078E1C3E4BB6BA4DC30B23E0EE2496E54170DACD6");
    arena_free(&a);
}

/* String: "Zeta=z&appid=wx1&body=中文 & =?&nonce_str=n1&sign_type=HMAC-SHA256&key=192006250b4c09247ec02edce69f6a2d"
 *   printf %s "$S" | openssl dgst -sha256 -hmac 192006250b4c09247ec02edce69f6a2d
 *     -> 9fb8ac5bb1a270cfd0071d0b51b4c86c558b86d13fad387b09bc5783ccedf287
 *   printf %s "$S" | openssl dgst -md5 -> 7105064f13647b6c55c32a47d72c0299
 * (uppercase before lowercase: byte order; empty values and sign dropped;
 * sign_type signed like any field; values raw). */
static void test_sign_sorts_bytewise_skips_empty_and_sign(void **state)
{
    arena_t a;
    kv_list_t l;
    char out[65];
    (void)state;
    arena_init(&a, 0);
    kv_init(&l, &a);
    kv_add(&l, "nonce_str", "n1");
    kv_add(&l, "sign", "IGNORED");
    kv_add(&l, "empty", "");
    kv_add(&l, "body", "\xe4\xb8\xad\xe6\x96\x87 & =?");
    kv_add(&l, "appid", "wx1");
    kv_add(&l, "sign_type", "HMAC-SHA256");
    kv_add(&l, "Zeta", "z");
    kv_add(&l, "attach", "");
    assert_int_equal(wechat_sign(&l, API_KEY, WECHAT_SIGN_HMAC_SHA256, out), PG_OK);
    assert_string_equal(out, "9FB8AC5BB1A270CFD0071D0B51B4C86C558B86D13FAD387B09BC5783CCEDF287");
    assert_int_equal(wechat_sign(&l, API_KEY, WECHAT_SIGN_MD5, out), PG_OK);
    assert_string_equal(out, "7105064F13647B6C55C32A47D72C0299");
    arena_free(&a);
}

static void test_sign_refuses_repeated_key_and_missing_api_key(void **state)
{
    arena_t a;
    kv_list_t l;
    char out[65];
    (void)state;
    arena_init(&a, 0);
    example_params(&l, &a);
    kv_add(&l, "body", "other");
    assert_int_equal(wechat_sign(&l, API_KEY, WECHAT_SIGN_MD5, out), PG_ERR_BAD_INPUT);
    example_params(&l, &a);
    kv_add(&l, "sign", "A");
    kv_add(&l, "sign", "B");
    assert_int_equal(wechat_sign(&l, API_KEY, WECHAT_SIGN_MD5, out), PG_ERR_BAD_INPUT);
    example_params(&l, &a);
    assert_int_equal(wechat_sign(&l, "", WECHAT_SIGN_MD5, out), PG_ERR_CONFIG);
    assert_int_equal(wechat_sign(&l, NULL, WECHAT_SIGN_MD5, out), PG_ERR_CONFIG);
    arena_free(&a);
}

static void test_verify_sign_type_named_vs_configured(void **state)
{
    arena_t a;
    kv_list_t l;
    (void)state;
    arena_init(&a, 0);

    /* no sign_type in the message: the configured algorithm decides */
    example_params(&l, &a);
    kv_add(&l, "sign", "9A0A8659F005D6984697E2CA0A9CF3B7");
    assert_int_equal(wechat_verify_sign(&l, API_KEY, WECHAT_SIGN_MD5), PG_OK);
    assert_int_equal(wechat_verify_sign(&l, API_KEY, WECHAT_SIGN_HMAC_SHA256), PG_ERR_BAD_SIGNATURE);
    example_params(&l, &a);
    kv_add(&l, "sign", "6A9AE1657590FD6257D693A078E1C3E4BB6BA4DC30B23E0EE2496E54170DACD6");
    assert_int_equal(wechat_verify_sign(&l, API_KEY, WECHAT_SIGN_HMAC_SHA256), PG_OK);
    assert_int_equal(wechat_verify_sign(&l, API_KEY, WECHAT_SIGN_MD5), PG_ERR_BAD_SIGNATURE);

    /* sign_type named: it wins over the configuration (test above's string) */
    kv_init(&l, &a);
    kv_add(&l, "Zeta", "z");
    kv_add(&l, "appid", "wx1");
    kv_add(&l, "body", "\xe4\xb8\xad\xe6\x96\x87 & =?");
    kv_add(&l, "nonce_str", "n1");
    kv_add(&l, "sign_type", "HMAC-SHA256");
    kv_add(&l, "sign", "9FB8AC5BB1A270CFD0071D0B51B4C86C558B86D13FAD387B09BC5783CCEDF287");
    assert_int_equal(wechat_verify_sign(&l, API_KEY, WECHAT_SIGN_MD5), PG_OK);
    assert_int_equal(wechat_verify_sign(&l, API_KEY, WECHAT_SIGN_HMAC_SHA256), PG_OK);
    /* lowercase hex is refused (WeChat sends uppercase; see wechat.h) */
    l.items[5].value = "9fb8ac5bb1a270cfd0071d0b51b4c86c558b86d13fad387b09bc5783ccedf287";
    assert_int_equal(wechat_verify_sign(&l, API_KEY, WECHAT_SIGN_MD5), PG_ERR_BAD_SIGNATURE);
    /* an unknown algorithm is never guessed */
    l.items[4].value = "SHA1";
    l.items[5].value = "9FB8AC5BB1A270CFD0071D0B51B4C86C558B86D13FAD387B09BC5783CCEDF287";
    assert_int_equal(wechat_verify_sign(&l, API_KEY, WECHAT_SIGN_HMAC_SHA256), PG_ERR_BAD_SIGNATURE);
    l.items[4].value = "hmac-sha256";
    assert_int_equal(wechat_verify_sign(&l, API_KEY, WECHAT_SIGN_HMAC_SHA256), PG_ERR_BAD_SIGNATURE);
    arena_free(&a);
}

/* No downgrade chosen by the sender: with HMAC-SHA256 configured, a message
 * that names MD5 is refused even though its MD5 sign is right. */
static void test_verify_sign_md5_named_refused_when_hmac_configured(void **state)
{
    arena_t a;
    kv_list_t l;
    char md5[65];
    (void)state;
    arena_init(&a, 0);
    example_params(&l, &a);
    kv_add(&l, "sign_type", "MD5");
    assert_int_equal(wechat_sign(&l, API_KEY, WECHAT_SIGN_MD5, md5), PG_OK);
    kv_add(&l, "sign", md5);
    assert_int_equal(wechat_verify_sign(&l, API_KEY, WECHAT_SIGN_MD5), PG_OK);
    assert_int_equal(wechat_verify_sign(&l, API_KEY, WECHAT_SIGN_HMAC_SHA256), PG_ERR_BAD_SIGNATURE);
    arena_free(&a);
}

static void test_verify_sign_missing_empty_wrong(void **state)
{
    arena_t a;
    kv_list_t l;
    (void)state;
    arena_init(&a, 0);
    example_params(&l, &a);
    assert_int_equal(wechat_verify_sign(&l, API_KEY, WECHAT_SIGN_MD5), PG_ERR_BAD_SIGNATURE);
    kv_add(&l, "sign", "");
    assert_int_equal(wechat_verify_sign(&l, API_KEY, WECHAT_SIGN_MD5), PG_ERR_BAD_SIGNATURE);
    example_params(&l, &a);
    kv_add(&l, "sign", "9A0A8659F005D6984697E2CA0A9CF3B8");
    assert_int_equal(wechat_verify_sign(&l, API_KEY, WECHAT_SIGN_MD5), PG_ERR_BAD_SIGNATURE);
    /* the same message with one more (non-empty) field no longer verifies;
     * an extra empty field changes nothing */
    example_params(&l, &a);
    kv_add(&l, "sign", "9A0A8659F005D6984697E2CA0A9CF3B7");
    kv_add(&l, "attach", "");
    assert_int_equal(wechat_verify_sign(&l, API_KEY, WECHAT_SIGN_MD5), PG_OK);
    kv_add(&l, "extra", "1");
    assert_int_equal(wechat_verify_sign(&l, API_KEY, WECHAT_SIGN_MD5), PG_ERR_BAD_SIGNATURE);
    /* wrong key */
    example_params(&l, &a);
    kv_add(&l, "sign", "9A0A8659F005D6984697E2CA0A9CF3B7");
    assert_int_equal(wechat_verify_sign(&l, "192006250b4c09247ec02edce69f6a2e", WECHAT_SIGN_MD5),
                     PG_ERR_BAD_SIGNATURE);
    arena_free(&a);
}

static void test_format_time_is_beijing(void **state)
{
    char out[15];
    (void)state;
    setenv("TZ", "America/New_York", 1);
    tzset();
    wechat_format_time(FIXED_NOW, out);
    assert_string_equal(out, "20261124201500");
    wechat_format_time(0, out);
    assert_string_equal(out, "19700101080000");
    wechat_format_time((time_t)1798761599, out);   /* 2026-12-31 23:59:59 UTC */
    assert_string_equal(out, "20270101075959");
    unsetenv("TZ");
    tzset();
}

/* ------------------------------------------------------------------ */
/* notifications                                                       */

static pg_err verify_notify_text(arena_t *a, const wechat_client_t *c, const char *body,
                                 wechat_notify_t *n)
{
    buf_t reason;
    pg_err rc;
    buf_init(&reason, a);
    rc = wechat_verify_notify(a, c, body, strlen(body), n, &reason);
    assert_true(reason.len > 0);
    return rc;
}

static void test_notify_ok_with_coupons(void **state)
{
    arena_t a;
    wechat_client_t c = client();
    wechat_notify_t n;
    (void)state;
    arena_init(&a, 0);
    assert_int_equal(verify_notify_text(&a, &c, fixture(&a, "notify_ok.xml"), &n), PG_OK);
    assert_true(n.paid);
    assert_string_equal(n.out_trade_no, "PG20261124201500W1");
    assert_string_equal(n.transaction_id, "4200001234202611241234567890");
    assert_string_equal(n.openid, "oUpF8uMEb4qRXf22hE3X68TekukE");
    assert_string_equal(n.time_end, "20261124201733");
    assert_string_equal(n.trade_type, "NATIVE");
    assert_int_equal(n.total_fee, 9900);
    /* without sign_type in the message the configured algorithm is used,
     * so a merchant configured for HMAC-SHA256 refuses this MD5 message */
    c.sign_type = WECHAT_SIGN_HMAC_SHA256;
    assert_int_equal(verify_notify_text(&a, &c, fixture(&a, "notify_ok.xml"), &n), PG_ERR_BAD_SIGNATURE);
    assert_false(n.paid);
    arena_free(&a);
}

static void test_notify_tampered_fields_fail(void **state)
{
    arena_t a;
    wechat_client_t c = client();
    wechat_notify_t n;
    char *ok;
    (void)state;
    arena_init(&a, 0);
    ok = fixture(&a, "notify_ok.xml");
    assert_int_equal(verify_notify_text(&a, &c, replace_once(&a, ok, "<total_fee>9900<", "<total_fee>1<"), &n),
                     PG_ERR_BAD_SIGNATURE);
    assert_false(n.paid);
    assert_null(n.out_trade_no);
    /* the coupon_*_$n fields are signed too */
    assert_int_equal(verify_notify_text(&a, &c, replace_once(&a, ok, "<coupon_fee_0>100<", "<coupon_fee_0>900<"), &n),
                     PG_ERR_BAD_SIGNATURE);
    assert_int_equal(verify_notify_text(&a, &c, remove_element(&a, ok, "coupon_id_0"), &n), PG_ERR_BAD_SIGNATURE);
    /* an added field the provider did not send */
    assert_int_equal(verify_notify_text(&a, &c, replace_once(&a, ok, "</xml>", "<x>1</x></xml>"), &n),
                     PG_ERR_BAD_SIGNATURE);
    /* an added empty field is outside the signed string: still fine */
    assert_int_equal(verify_notify_text(&a, &c, replace_once(&a, ok, "</xml>", "<device_info></device_info></xml>"), &n),
                     PG_OK);
    /* unsigned probe */
    assert_int_equal(verify_notify_text(&a, &c, remove_element(&a, ok, "sign"), &n), PG_ERR_BAD_SIGNATURE);
    /* wrong API key */
    c.api_key = "192006250b4c09247ec02edce69f6a2e";
    assert_int_equal(verify_notify_text(&a, &c, ok, &n), PG_ERR_BAD_SIGNATURE);
    arena_free(&a);
}

static void test_notify_sign_type_named_or_configured(void **state)
{
    arena_t a;
    wechat_client_t c = client();
    wechat_notify_t n;
    (void)state;
    arena_init(&a, 0);
    /* names HMAC-SHA256: verifies whatever the configuration says */
    assert_int_equal(verify_notify_text(&a, &c, fixture(&a, "notify_hmac.xml"), &n), PG_OK);
    assert_true(n.paid);
    assert_int_equal(n.total_fee, 1);
    assert_string_equal(n.trade_type, "JSAPI");
    /* HMAC-signed without naming it: only a merchant configured for HMAC */
    assert_int_equal(verify_notify_text(&a, &c, fixture(&a, "notify_hmac_unnamed.xml"), &n), PG_ERR_BAD_SIGNATURE);
    c.sign_type = WECHAT_SIGN_HMAC_SHA256;
    assert_int_equal(verify_notify_text(&a, &c, fixture(&a, "notify_hmac_unnamed.xml"), &n), PG_OK);
    assert_string_equal(n.out_trade_no, "PG20261124201500W3");
    assert_null(n.openid);
    /* flipping the named type breaks it */
    assert_int_equal(verify_notify_text(&a, &c, replace_once(&a, fixture(&a, "notify_hmac.xml"),
                                                             "HMAC-SHA256<", "MD5<"), &n),
                     PG_ERR_BAD_SIGNATURE);
    arena_free(&a);
}

static void test_notify_other_merchant_is_mismatch(void **state)
{
    arena_t a;
    wechat_client_t c = client();
    wechat_notify_t n;
    (void)state;
    arena_init(&a, 0);
    assert_int_equal(verify_notify_text(&a, &c, fixture(&a, "notify_other_mch.xml"), &n), PG_ERR_MISMATCH);
    assert_false(n.paid);
    c.appid = "wx0000000000000000";
    assert_int_equal(verify_notify_text(&a, &c, fixture(&a, "notify_ok.xml"), &n), PG_ERR_MISMATCH);
    arena_free(&a);
}

static void test_notify_result_fail_is_not_paid(void **state)
{
    arena_t a;
    wechat_client_t c = client();
    wechat_notify_t n;
    (void)state;
    arena_init(&a, 0);
    assert_int_equal(verify_notify_text(&a, &c, fixture(&a, "notify_fail.xml"), &n), PG_OK);
    assert_false(n.paid);
    assert_string_equal(n.out_trade_no, "PG20261124201500W4");
    assert_int_equal(n.total_fee, 500);
    assert_null(n.transaction_id);
    arena_free(&a);
}

static void test_notify_bad_input(void **state)
{
    static const char xxe[] =
        "<!DOCTYPE xml [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><xml><return_code>&x;</return_code></xml>";
    arena_t a;
    wechat_client_t c = client();
    wechat_notify_t n;
    buf_t reason, big;
    size_t i;
    (void)state;
    arena_init(&a, 0);
    /* signed, but total_fee "09900" is not strict fen */
    assert_int_equal(verify_notify_text(&a, &c, fixture(&a, "notify_bad_fee.xml"), &n), PG_ERR_BAD_INPUT);
    assert_int_equal(verify_notify_text(&a, &c, xxe, &n), PG_ERR_BAD_INPUT);
    assert_int_equal(verify_notify_text(&a, &c, "success", &n), PG_ERR_BAD_INPUT);
    assert_int_equal(verify_notify_text(&a, &c, "<xml><return_code>FAIL</return_code><return_msg>x</return_msg></xml>", &n),
                     PG_ERR_BAD_INPUT);
    assert_int_equal(verify_notify_text(&a, &c, "<xml><a><b/></a></xml>", &n), PG_ERR_BAD_INPUT);
    buf_init(&big, &a);
    buf_puts(&big, "<xml><return_code>SUCCESS</return_code><attach>");
    for (i = 0; i < 70000; i++)
        buf_putc(&big, 'x');
    buf_puts(&big, "</attach></xml>");
    buf_init(&reason, &a);
    assert_int_equal(wechat_verify_notify(&a, &c, big.data, big.len, &n, &reason), PG_ERR_TOO_LARGE);
    arena_free(&a);
}

/* ------------------------------------------------------------------ */
/* replies to WeChat                                                   */

static void test_reply_exact_bytes(void **state)
{
    buf_t out;
    (void)state;
    buf_init(&out, NULL);
    wechat_reply(true, NULL, &out);
    assert_string_equal(out.data,
                        "<xml><return_code><![CDATA[SUCCESS]]></return_code>"
                        "<return_msg><![CDATA[OK]]></return_msg></xml>");
    buf_clear(&out);
    wechat_reply(false, "bad sign", &out);
    assert_string_equal(out.data,
                        "<xml><return_code><![CDATA[FAIL]]></return_code>"
                        "<return_msg><![CDATA[bad sign]]></return_msg></xml>");
    buf_clear(&out);
    wechat_reply(false, "a]]>b", &out);
    assert_string_equal(out.data,
                        "<xml><return_code><![CDATA[FAIL]]></return_code>"
                        "<return_msg><![CDATA[a]]]]><![CDATA[>b]]></return_msg></xml>");
    buf_clear(&out);
    wechat_reply(false, NULL, &out);
    assert_string_equal(out.data,
                        "<xml><return_code><![CDATA[FAIL]]></return_code>"
                        "<return_msg><![CDATA[FAIL]]></return_msg></xml>");
    /* a message XML cannot carry falls back, and appends after existing text */
    buf_clear(&out);
    buf_puts(&out, "X");
    wechat_reply(false, "bad\x01", &out);
    assert_string_equal(out.data,
                        "X<xml><return_code><![CDATA[FAIL]]></return_code>"
                        "<return_msg><![CDATA[FAIL]]></return_msg></xml>");
    buf_free(&out);
}

/* ------------------------------------------------------------------ */
/* JSAPI                                                               */

/* Fixtures jsapi_md5.sign / jsapi_hmac.sign are openssl over
 * "appId=wxd930ea5d5a258f4f&nonceStr=e61463f8efa94090b1f366cccfbbb444&package=prepay_id=wx201411101639507cbf6ffd8b0779950874&signType=MD5&timeStamp=1795522500&key=..."
 * (and signType=HMAC-SHA256 with openssl dgst -sha256 -hmac KEY). */
static void test_jsapi_params_match_openssl(void **state)
{
    arena_t a;
    wechat_client_t c = client();
    kv_list_t l;
    (void)state;
    arena_init(&a, 0);
    assert_int_equal(wechat_jsapi_params(&a, &c, "wx201411101639507cbf6ffd8b0779950874", FIXED_NOW,
                                         "e61463f8efa94090b1f366cccfbbb444", &l),
                     PG_OK);
    assert_int_equal(l.count, 6);
    assert_string_equal(kv_get(&l, "appId"), APPID);
    assert_string_equal(kv_get(&l, "timeStamp"), "1795522500");
    assert_string_equal(kv_get(&l, "nonceStr"), "e61463f8efa94090b1f366cccfbbb444");
    assert_string_equal(kv_get(&l, "package"), "prepay_id=wx201411101639507cbf6ffd8b0779950874");
    assert_string_equal(kv_get(&l, "signType"), "MD5");
    assert_string_equal(kv_get(&l, "paySign"), fixture_line(&a, "jsapi_md5.sign"));

    c.sign_type = WECHAT_SIGN_HMAC_SHA256;
    assert_int_equal(wechat_jsapi_params(&a, &c, "wx201411101639507cbf6ffd8b0779950874", FIXED_NOW,
                                         "e61463f8efa94090b1f366cccfbbb444", &l),
                     PG_OK);
    assert_string_equal(kv_get(&l, "signType"), "HMAC-SHA256");
    assert_string_equal(kv_get(&l, "paySign"), fixture_line(&a, "jsapi_hmac.sign"));

    /* random nonce: 32 alnum, and the sign still verifies over the five keys */
    assert_int_equal(wechat_jsapi_params(&a, &c, "wx1", FIXED_NOW, NULL, &l), PG_OK);
    assert_int_equal(strlen(kv_get(&l, "nonceStr")), 32);
    {
        kv_list_t v;
        size_t i;
        kv_init(&v, &a);
        for (i = 0; i < l.count; i++)
            kv_add(&v, strcmp(l.items[i].key, "paySign") == 0 ? "sign" : l.items[i].key, l.items[i].value);
        assert_int_equal(wechat_verify_sign(&v, API_KEY, WECHAT_SIGN_HMAC_SHA256), PG_OK);
    }
    assert_int_equal(wechat_jsapi_params(&a, &c, "", FIXED_NOW, NULL, &l), PG_ERR_BAD_INPUT);
    c.api_key = NULL;
    assert_int_equal(wechat_jsapi_params(&a, &c, "wx1", FIXED_NOW, NULL, &l), PG_ERR_CONFIG);
    arena_free(&a);
}

/* ------------------------------------------------------------------ */
/* refund notification req_info                                        */

static void test_decrypt_req_info_fixture(void **state)
{
    arena_t a;
    kv_list_t l;
    buf_t err;
    char *b64;
    (void)state;
    arena_init(&a, 0);
    buf_init(&err, &a);
    b64 = fixture_line(&a, "req_info.b64");
    assert_int_equal(wechat_decrypt_req_info(&a, API_KEY, b64, &l, &err), PG_OK);
    assert_int_equal(l.count, 13);
    assert_string_equal(kv_get(&l, "out_refund_no"), "RF20261125100000R1");
    assert_string_equal(kv_get(&l, "out_trade_no"), "PG20261124201500W1");
    assert_string_equal(kv_get(&l, "refund_fee"), "3300");
    assert_string_equal(kv_get(&l, "refund_status"), "SUCCESS");
    assert_string_equal(kv_get(&l, "success_time"), "2026-11-25 10:00:07");
    assert_string_equal(kv_get(&l, "refund_recv_accout"), "\xe6\x94\xaf\xe4\xbb\x98\xe7\x94\xa8\xe6\x88\xb7\xe9\x9b\xb6\xe9\x92\xb1");
    arena_free(&a);
}

static void test_decrypt_req_info_refusals(void **state)
{
    arena_t a;
    kv_list_t l;
    buf_t err;
    char *b64, *bad;
    size_t n;
    (void)state;
    arena_init(&a, 0);
    buf_init(&err, &a);
    b64 = fixture_line(&a, "req_info.b64");
    n = strlen(b64);
    /* wrong API key: padding (or XML) fails -> not authentic */
    assert_int_equal(wechat_decrypt_req_info(&a, "192006250b4c09247ec02edce69f6a2e", b64, &l, &err),
                     PG_ERR_BAD_SIGNATURE);
    assert_int_equal(l.count, 0);
    /* the last block changed (padding breaks) */
    bad = arena_strdup(&a, b64);
    bad[n - 6] = bad[n - 6] == 'A' ? 'B' : 'A';
    assert_int_equal(wechat_decrypt_req_info(&a, API_KEY, bad, &l, &err), PG_ERR_BAD_SIGNATURE);
    /* a block in the middle changed: padding holds, the XML does not */
    bad = arena_strdup(&a, b64);
    memcpy(bad + 64, "AAAAAAAAAAAAAAAAAAAAAAAA", 24);
    assert_int_equal(wechat_decrypt_req_info(&a, API_KEY, bad, &l, &err), PG_ERR_BAD_SIGNATURE);
    /* not base64 / empty / not a whole number of blocks */
    assert_int_equal(wechat_decrypt_req_info(&a, API_KEY, "%%%not base64", &l, &err), PG_ERR_BAD_INPUT);
    assert_int_equal(wechat_decrypt_req_info(&a, API_KEY, "", &l, &err), PG_ERR_BAD_INPUT);
    assert_int_equal(wechat_decrypt_req_info(&a, API_KEY, "QUJDRA==", &l, &err), PG_ERR_BAD_SIGNATURE);
    /* line-wrapped base64 is fine */
    bad = arena_printf(&a, "%.76s\n%s", b64, b64 + 76);
    assert_int_equal(wechat_decrypt_req_info(&a, API_KEY, bad, &l, &err), PG_OK);
    assert_int_equal(wechat_decrypt_req_info(&a, NULL, b64, &l, &err), PG_ERR_CONFIG);
    arena_free(&a);
}

/* ------------------------------------------------------------------ */
/* gateway replies                                                     */

static pg_err check_reply(arena_t *a, const wechat_client_t *c, const char *body, kv_list_t *reply,
                          char err_code[64], buf_t *err)
{
    buf_init(err, a);
    return wechat_check_reply(a, c, body, strlen(body), reply, err_code, err);
}

static void test_check_reply_ok_md5_and_hmac(void **state)
{
    arena_t a;
    wechat_client_t c = client();
    kv_list_t r;
    buf_t err;
    char code[64];
    (void)state;
    arena_init(&a, 0);
    assert_int_equal(check_reply(&a, &c, fixture(&a, "reply_unifiedorder_ok.xml"), &r, code, &err), PG_OK);
    assert_string_equal(code, "");
    assert_string_equal(kv_get(&r, "prepay_id"), "wx201411101639507cbf6ffd8b0779950874");
    assert_string_equal(kv_get(&r, "code_url"), "weixin://wxpay/bizpayurl?pr=8FcA1Bz");
    /* an HMAC merchant's replies are HMAC-signed without naming it */
    assert_int_equal(check_reply(&a, &c, fixture(&a, "reply_unifiedorder_hmac.xml"), &r, code, &err),
                     PG_ERR_BAD_SIGNATURE);
    c.sign_type = WECHAT_SIGN_HMAC_SHA256;
    assert_int_equal(check_reply(&a, &c, fixture(&a, "reply_unifiedorder_hmac.xml"), &r, code, &err), PG_OK);
    assert_int_equal(check_reply(&a, &c, fixture(&a, "reply_unifiedorder_ok.xml"), &r, code, &err),
                     PG_ERR_BAD_SIGNATURE);
    arena_free(&a);
}

static void test_check_reply_return_code_fail(void **state)
{
    arena_t a;
    wechat_client_t c = client();
    kv_list_t r;
    buf_t err;
    char code[64];
    (void)state;
    arena_init(&a, 0);
    assert_int_equal(check_reply(&a, &c, fixture(&a, "reply_return_fail.xml"), &r, code, &err), PG_ERR_UPSTREAM);
    assert_string_equal(code, "");
    assert_non_null(strstr(err.data, "\xe7\xad\xbe\xe5\x90\x8d\xe9\x94\x99\xe8\xaf\xaf"));   /* 签名错误 */
    assert_int_equal(check_reply(&a, &c, "<xml><return_msg>x</return_msg></xml>", &r, code, &err), PG_ERR_UPSTREAM);
    assert_int_equal(check_reply(&a, &c, "<html>502 Bad Gateway</html>", &r, code, &err), PG_ERR_UPSTREAM);
    assert_int_equal(check_reply(&a, &c, "", &r, code, &err), PG_ERR_UPSTREAM);
    arena_free(&a);
}

static void test_check_reply_result_code_fail_copies_err_code(void **state)
{
    arena_t a;
    wechat_client_t c = client();
    kv_list_t r;
    buf_t err;
    char code[64];
    (void)state;
    arena_init(&a, 0);
    assert_int_equal(check_reply(&a, &c, fixture(&a, "reply_result_fail.xml"), &r, code, &err), PG_ERR_UPSTREAM);
    assert_string_equal(code, "ORDERPAID");
    assert_non_null(strstr(err.data, "\xe8\xaf\xa5\xe8\xae\xa2\xe5\x8d\x95\xe5\xb7\xb2\xe6\x94\xaf\xe4\xbb\x98"));
    /* err_code may be NULL */
    buf_init(&err, &a);
    assert_int_equal(wechat_check_reply(&a, &c, fixture(&a, "reply_result_fail.xml"),
                                        strlen(fixture(&a, "reply_result_fail.xml")), &r, NULL, &err),
                     PG_ERR_UPSTREAM);
    /* a tampered err_code is not believed */
    assert_int_equal(check_reply(&a, &c, replace_once(&a, fixture(&a, "reply_result_fail.xml"), "ORDERPAID", "ORDERCLOSED"),
                                 &r, code, &err),
                     PG_ERR_BAD_SIGNATURE);
    assert_string_equal(code, "");
    arena_free(&a);
}

static void test_check_reply_bad_or_missing_sign(void **state)
{
    arena_t a;
    wechat_client_t c = client();
    kv_list_t r;
    buf_t err;
    char code[64];
    char *ok;
    (void)state;
    arena_init(&a, 0);
    ok = fixture(&a, "reply_unifiedorder_ok.xml");
    assert_int_equal(check_reply(&a, &c, replace_once(&a, ok, "pr=8FcA1Bz", "pr=EVIL"), &r, code, &err),
                     PG_ERR_BAD_SIGNATURE);
    assert_int_equal(check_reply(&a, &c, remove_element(&a, ok, "sign"), &r, code, &err), PG_ERR_BAD_SIGNATURE);
    assert_non_null(strstr(err.data, "missing"));
    /* unsigned success claims are never believed */
    assert_int_equal(check_reply(&a, &c, "<xml><return_code>SUCCESS</return_code><result_code>SUCCESS</result_code></xml>",
                                 &r, code, &err),
                     PG_ERR_BAD_SIGNATURE);
    arena_free(&a);
}

static void test_check_reply_other_merchant(void **state)
{
    arena_t a;
    wechat_client_t c = client();
    kv_list_t r;
    buf_t err;
    char code[64];
    (void)state;
    arena_init(&a, 0);
    assert_int_equal(check_reply(&a, &c, fixture(&a, "reply_other_mch.xml"), &r, code, &err), PG_ERR_MISMATCH);
    c.appid = "wx0000000000000000";
    assert_int_equal(check_reply(&a, &c, fixture(&a, "reply_unifiedorder_ok.xml"), &r, code, &err), PG_ERR_MISMATCH);
    arena_free(&a);
}

/* ------------------------------------------------------------------ */
/* calls against the loopback fake gateway                             */

static void test_unifiedorder_native_request_and_reply(void **state)
{
    /* 60 x "中" = 180 bytes: cut to 42 characters = 126 bytes */
    char body[200];
    arena_t a;
    wechat_client_t c = client();
    wechat_order_t o;
    wechat_prepay_t p;
    fake_gw_t g;
    kv_list_t req;
    buf_t err;
    char code[64], *raw;
    int i;
    (void)state;

    for (i = 0; i < 60; i++)
        memcpy(body + 3 * i, "\xe4\xb8\xad", 3);
    body[180] = '\0';
    arena_init(&a, 0);
    buf_init(&err, &a);
    fake_gw_start(&g, 200, "text/plain", fixture(&a, "reply_unifiedorder_ok.xml"), 0);
    c.gateway = arena_printf(&a, "%s/", gw_url(&a, &g));   /* trailing slash is joined cleanly */
    memset(&o, 0, sizeof o);
    o.out_trade_no = "PG20261124201500W1";
    o.body = body;
    o.total_fee = 9900;
    o.trade_type = "NATIVE";
    o.expires_at = FIXED_NOW + 900;
    if (wechat_unifiedorder(&a, &c, &o, &p, code, &err) != PG_OK)
        fail_msg("unifiedorder: %s", err.data);
    assert_string_equal(p.prepay_id, "wx201411101639507cbf6ffd8b0779950874");
    assert_string_equal(p.code_url, "weixin://wxpay/bizpayurl?pr=8FcA1Bz");
    assert_null(p.mweb_url);

    raw = fake_gw_finish(&g, &a, 0);
    assert_true(strncmp(raw, "POST /pay/unifiedorder HTTP/1.1\r\n", 33) == 0);
    assert_non_null(strcasestr(raw, "\r\nContent-Type: text/xml"));
    request_fields(&a, raw, &req);
    assert_string_equal(kv_get(&req, "appid"), APPID);
    assert_string_equal(kv_get(&req, "mch_id"), MCH_ID);
    assert_int_equal(strlen(kv_get(&req, "nonce_str")), 32);
    assert_null(kv_get(&req, "sign_type"));   /* MD5 is the default: not sent */
    assert_int_equal(strlen(kv_get(&req, "body")), 126);
    assert_memory_equal(kv_get(&req, "body"), body, 126);
    assert_string_equal(kv_get(&req, "out_trade_no"), "PG20261124201500W1");
    assert_string_equal(kv_get(&req, "total_fee"), "9900");
    assert_string_equal(kv_get(&req, "spbill_create_ip"), "127.0.0.1");
    assert_string_equal(kv_get(&req, "notify_url"), c.notify_url);
    assert_string_equal(kv_get(&req, "trade_type"), "NATIVE");
    assert_string_equal(kv_get(&req, "product_id"), "PG20261124201500W1");
    assert_string_equal(kv_get(&req, "time_expire"), "20261124203000");
    assert_int_equal(wechat_verify_sign(&req, API_KEY, WECHAT_SIGN_MD5), PG_OK);
    arena_free(&a);
}

static void test_unifiedorder_hmac_jsapi_request(void **state)
{
    arena_t a;
    wechat_client_t c = client();
    wechat_order_t o;
    wechat_prepay_t p;
    fake_gw_t g;
    kv_list_t req;
    buf_t err;
    char code[64], *raw;
    (void)state;
    arena_init(&a, 0);
    buf_init(&err, &a);
    c.sign_type = WECHAT_SIGN_HMAC_SHA256;
    fake_gw_start(&g, 200, "text/plain", fixture(&a, "reply_unifiedorder_hmac.xml"), 0);
    c.gateway = gw_url(&a, &g);
    memset(&o, 0, sizeof o);
    o.out_trade_no = "PG20261124201500W2";
    o.body = "Short <body> & ]]> text";
    o.total_fee = 1;
    o.trade_type = "JSAPI";
    o.openid = "oUpF8uMEb4qRXf22hE3X68TekukE";
    o.spbill_create_ip = "203.0.113.7";
    if (wechat_unifiedorder(&a, &c, &o, &p, code, &err) != PG_OK)
        fail_msg("unifiedorder: %s", err.data);
    assert_string_equal(p.prepay_id, "wx201411101639507cbf6ffd8b0779950874");
    raw = fake_gw_finish(&g, &a, 0);
    request_fields(&a, raw, &req);
    assert_string_equal(kv_get(&req, "sign_type"), "HMAC-SHA256");
    assert_string_equal(kv_get(&req, "body"), "Short <body> & ]]> text");
    assert_string_equal(kv_get(&req, "openid"), "oUpF8uMEb4qRXf22hE3X68TekukE");
    assert_string_equal(kv_get(&req, "spbill_create_ip"), "203.0.113.7");
    assert_null(kv_get(&req, "product_id"));
    assert_null(kv_get(&req, "time_expire"));
    assert_int_equal(strlen(kv_get(&req, "sign")), 64);
    /* named sign_type: verifies even with an MD5 configuration */
    assert_int_equal(wechat_verify_sign(&req, API_KEY, WECHAT_SIGN_MD5), PG_OK);
    arena_free(&a);
}

static void test_unifiedorder_reply_without_required_url(void **state)
{
    arena_t a;
    wechat_client_t c = client();
    wechat_order_t o;
    wechat_prepay_t p;
    fake_gw_t g;
    buf_t err;
    char code[64];
    (void)state;
    arena_init(&a, 0);
    buf_init(&err, &a);
    /* MWEB needs mweb_url; the NATIVE reply has code_url only */
    fake_gw_start(&g, 200, "text/plain", fixture(&a, "reply_unifiedorder_ok.xml"), 0);
    c.gateway = gw_url(&a, &g);
    memset(&o, 0, sizeof o);
    o.out_trade_no = "PG20261124201500W9";
    o.body = "x";
    o.total_fee = 100;
    o.trade_type = "MWEB";
    o.spbill_create_ip = "203.0.113.7";
    o.scene_info = "{\"h5_info\":{\"type\":\"Wap\"}}";
    assert_int_equal(wechat_unifiedorder(&a, &c, &o, &p, code, &err), PG_ERR_UPSTREAM);
    assert_null(p.prepay_id);
    assert_non_null(strstr(err.data, "mweb_url"));
    (void)fake_gw_finish(&g, &a, 0);
    arena_free(&a);
}

static void test_unifiedorder_refuses_bad_orders_before_calling(void **state)
{
    arena_t a;
    wechat_client_t c = client();
    wechat_order_t o, base;
    wechat_prepay_t p;
    buf_t err;
    char code[64];
    (void)state;
    arena_init(&a, 0);
    buf_init(&err, &a);
    c.gateway = "http://127.0.0.1:1";   /* never reached */
    memset(&base, 0, sizeof base);
    base.out_trade_no = "PG1";
    base.body = "x";
    base.total_fee = 1;
    base.trade_type = "NATIVE";

    o = base; o.trade_type = "APP";
    assert_int_equal(wechat_unifiedorder(&a, &c, &o, &p, code, &err), PG_ERR_UNSUPPORTED);
    o = base; o.trade_type = NULL;
    assert_int_equal(wechat_unifiedorder(&a, &c, &o, &p, code, &err), PG_ERR_UNSUPPORTED);
    o = base; o.trade_type = "JSAPI"; o.spbill_create_ip = "1.2.3.4";
    assert_int_equal(wechat_unifiedorder(&a, &c, &o, &p, code, &err), PG_ERR_BAD_INPUT);   /* no openid */
    o = base; o.trade_type = "MWEB";
    assert_int_equal(wechat_unifiedorder(&a, &c, &o, &p, code, &err), PG_ERR_BAD_INPUT);   /* no IP */
    o = base; o.total_fee = 0;
    assert_int_equal(wechat_unifiedorder(&a, &c, &o, &p, code, &err), PG_ERR_BAD_INPUT);
    o = base; o.total_fee = -5;
    assert_int_equal(wechat_unifiedorder(&a, &c, &o, &p, code, &err), PG_ERR_BAD_INPUT);
    o = base; o.out_trade_no = "123456789012345678901234567890123";   /* 33 */
    assert_int_equal(wechat_unifiedorder(&a, &c, &o, &p, code, &err), PG_ERR_BAD_INPUT);
    o = base; o.out_trade_no = "has space";
    assert_int_equal(wechat_unifiedorder(&a, &c, &o, &p, code, &err), PG_ERR_BAD_INPUT);
    o = base; o.body = "";
    assert_int_equal(wechat_unifiedorder(&a, &c, &o, &p, code, &err), PG_ERR_BAD_INPUT);
    o = base; o.body = "bad\x01";   /* cannot be written as XML */
    assert_int_equal(wechat_unifiedorder(&a, &c, &o, &p, code, &err), PG_ERR_BAD_INPUT);
    c.notify_url = NULL;
    assert_int_equal(wechat_unifiedorder(&a, &c, &base, &p, code, &err), PG_ERR_CONFIG);
    arena_free(&a);
}

static void test_orderquery_reply(void **state)
{
    arena_t a;
    wechat_client_t c = client();
    wechat_trade_state_t st;
    fake_gw_t g;
    kv_list_t req;
    buf_t err;
    char code[64], *raw;
    (void)state;
    arena_init(&a, 0);
    buf_init(&err, &a);
    fake_gw_start(&g, 200, "text/plain", fixture(&a, "reply_orderquery_ok.xml"), 0);
    c.gateway = gw_url(&a, &g);
    if (wechat_orderquery(&a, &c, "PG20261124201500W1", &st, code, &err) != PG_OK)
        fail_msg("orderquery: %s", err.data);
    assert_string_equal(st.trade_state, "SUCCESS");
    assert_string_equal(st.transaction_id, "4200001234202611241234567890");
    assert_string_equal(st.time_end, "20261124201733");
    assert_int_equal(st.total_fee, 9900);
    raw = fake_gw_finish(&g, &a, 0);
    assert_true(strncmp(raw, "POST /pay/orderquery ", 21) == 0);
    request_fields(&a, raw, &req);
    assert_string_equal(kv_get(&req, "out_trade_no"), "PG20261124201500W1");
    assert_int_equal(wechat_verify_sign(&req, API_KEY, WECHAT_SIGN_MD5), PG_OK);

    /* the reply is about another order */
    fake_gw_start(&g, 200, "text/plain", fixture(&a, "reply_orderquery_ok.xml"), 0);
    c.gateway = gw_url(&a, &g);
    assert_int_equal(wechat_orderquery(&a, &c, "PG20261124201500W2", &st, code, &err), PG_ERR_MISMATCH);
    assert_null(st.trade_state);
    (void)fake_gw_finish(&g, &a, 0);
    arena_free(&a);
}

static void test_closeorder_orderpaid_is_conflict(void **state)
{
    arena_t a;
    wechat_client_t c = client();
    fake_gw_t g;
    buf_t err;
    char code[64];
    (void)state;
    arena_init(&a, 0);
    buf_init(&err, &a);
    fake_gw_start(&g, 200, "text/plain", fixture(&a, "reply_result_fail.xml"), 0);
    c.gateway = gw_url(&a, &g);
    assert_int_equal(wechat_closeorder(&a, &c, "PG20261124201500W1", code, &err), PG_ERR_CONFLICT);
    assert_string_equal(code, "ORDERPAID");
    assert_true(strncmp(fake_gw_finish(&g, &a, 0), "POST /pay/closeorder ", 21) == 0);
    arena_free(&a);
}

static void test_call_http_errors_and_timeouts(void **state)
{
    arena_t a;
    wechat_client_t c = client();
    kv_list_t params, reply;
    fake_gw_t g;
    buf_t err;
    char code[64];
    (void)state;
    arena_init(&a, 0);
    buf_init(&err, &a);

    /* HTTP 500 */
    fake_gw_start(&g, 500, "text/plain", "oops", 0);
    c.gateway = gw_url(&a, &g);
    kv_init(&params, &a);
    kv_add(&params, "out_trade_no", "PG1");
    assert_int_equal(wechat_call(&a, &c, "/pay/orderquery", &params, false, &reply, code, &err), PG_ERR_UPSTREAM);
    (void)fake_gw_finish(&g, &a, 0);

    /* no answer within the total timeout */
    fake_gw_start(&g, 200, "text/plain", "", 5);
    c.gateway = gw_url(&a, &g);
    c.http.total_timeout_ms = 300;
    kv_init(&params, &a);
    kv_add(&params, "out_trade_no", "PG1");
    assert_int_equal(wechat_call(&a, &c, "/pay/orderquery", &params, false, &reply, code, &err), PG_ERR_TIMEOUT);
    (void)fake_gw_finish(&g, &a, 1);

    /* closed port */
    c.gateway = "http://127.0.0.1:1";
    kv_init(&params, &a);
    assert_int_equal(wechat_call(&a, &c, "/pay/orderquery", &params, false, &reply, code, &err), PG_ERR_UPSTREAM);

    /* configuration */
    kv_init(&params, &a);
    assert_int_equal(wechat_call(&a, &c, "/secapi/pay/refund", &params, true, &reply, code, &err), PG_ERR_CONFIG);
    c.gateway = NULL;
    assert_int_equal(wechat_call(&a, &c, "/pay/orderquery", &params, false, &reply, code, &err), PG_ERR_CONFIG);
    arena_free(&a);
}

/* ------------------------------------------------------------------ */
/* refund, refundquery, refund notification                            */

#define OUT_TRADE_NO "PG20261124201500W1"
#define OUT_REFUND_NO "RF20261125100000R1"

/* One exchange with the fake gateway: status 0 = never answer (the client's
 * total timeout is cut to 300 ms); fixture (a file) or text is the body. */
typedef struct exchange {
    int status;
    const char *fixture;
    const char *text;
    fake_gw_t g;
    char *request;          /* filled by exchange_end */
} exchange_t;

static wechat_client_t refund_client(void)
{
    wechat_client_t c = client();
    /* only used for TLS; the fake gateway speaks plain HTTP */
    c.client_cert = "/etc/paygate/wechat/apiclient_cert.pem";
    c.client_key = "/etc/paygate/wechat/apiclient_key.pem";
    return c;
}

static void exchange_begin(arena_t *a, exchange_t *x, wechat_client_t *c)
{
    const char *body = x->fixture != NULL ? fixture(a, x->fixture) : x->text != NULL ? x->text : "";
    fake_gw_start(&x->g, x->status != 0 ? x->status : 200, "text/plain", body, x->status == 0 ? 5 : 0);
    c->gateway = gw_url(a, &x->g);
    if (x->status == 0)
        c->http.total_timeout_ms = 300;
}

static void exchange_end(arena_t *a, exchange_t *x)
{
    x->request = fake_gw_finish(&x->g, a, x->status == 0);
}

static wechat_refund_req_t refund_req(void)
{
    wechat_refund_req_t r;
    memset(&r, 0, sizeof r);
    r.out_trade_no = OUT_TRADE_NO;
    r.out_refund_no = OUT_REFUND_NO;
    r.total_fee = 9900;
    r.refund_fee = 3300;
    return r;
}

static pg_err run_refund(arena_t *a, exchange_t *x, const wechat_refund_req_t *r,
                         wechat_refund_result_t *out, char code[64], buf_t *err)
{
    wechat_client_t c = refund_client();
    pg_err rc;
    exchange_begin(a, x, &c);
    rc = wechat_refund(a, &c, r, out, code, err);
    exchange_end(a, x);
    return rc;
}

static void test_refund_request_fields_and_accepted(void **state)
{
    exchange_t x = { .status = 200, .fixture = "reply_refund_ok.xml" };
    wechat_refund_req_t r = refund_req();
    wechat_refund_result_t out;
    kv_list_t req;
    arena_t a;
    buf_t err;
    char code[64], desc[100];
    int i;
    (void)state;

    /* 30 x "退" = 90 bytes: cut to 26 characters = 78 bytes (limit 80) */
    for (i = 0; i < 30; i++)
        memcpy(desc + 3 * i, "\xe9\x80\x80", 3);
    desc[90] = '\0';
    r.refund_desc = desc;
    r.notify_url = "https://shop.example.com/paygate/notify/wechat-refund";
    arena_init(&a, 0);
    buf_init(&err, &a);
    if (run_refund(&a, &x, &r, &out, code, &err) != PG_OK)
        fail_msg("refund: %s", err.data);
    assert_string_equal(out.refund_id, "50000408942018111907145868882");
    assert_int_equal(out.refund_fee, 3300);
    assert_string_equal(code, "");

    assert_true(strncmp(x.request, "POST /secapi/pay/refund HTTP/1.1\r\n", 34) == 0);
    assert_non_null(strcasestr(x.request, "\r\nContent-Type: text/xml"));
    request_fields(&a, x.request, &req);
    assert_string_equal(kv_get(&req, "appid"), APPID);
    assert_string_equal(kv_get(&req, "mch_id"), MCH_ID);
    assert_int_equal(strlen(kv_get(&req, "nonce_str")), 32);
    assert_string_equal(kv_get(&req, "out_trade_no"), OUT_TRADE_NO);
    assert_string_equal(kv_get(&req, "out_refund_no"), OUT_REFUND_NO);
    assert_string_equal(kv_get(&req, "total_fee"), "9900");
    assert_string_equal(kv_get(&req, "refund_fee"), "3300");
    assert_int_equal(strlen(kv_get(&req, "refund_desc")), 78);
    assert_memory_equal(kv_get(&req, "refund_desc"), desc, 78);
    assert_string_equal(kv_get(&req, "notify_url"), "https://shop.example.com/paygate/notify/wechat-refund");
    assert_null(kv_get(&req, "transaction_id"));
    assert_int_equal(req.count, 10);   /* appid, mch_id, nonce_str, the 7 fields above, sign */
    assert_int_equal(wechat_verify_sign(&req, API_KEY, WECHAT_SIGN_MD5), PG_OK);
    arena_free(&a);
}

static void test_refund_without_optional_fields(void **state)
{
    exchange_t x = { .status = 200, .fixture = "reply_refund_ok.xml" };
    wechat_refund_req_t r = refund_req();
    wechat_refund_result_t out;
    kv_list_t req;
    arena_t a;
    buf_t err;
    char code[64];
    (void)state;

    arena_init(&a, 0);
    buf_init(&err, &a);
    r.refund_desc = "";
    assert_int_equal(run_refund(&a, &x, &r, &out, code, &err), PG_OK);
    request_fields(&a, x.request, &req);
    assert_null(kv_get(&req, "refund_desc"));
    assert_null(kv_get(&req, "notify_url"));
    arena_free(&a);
}

static void test_refund_refusals_are_conflict(void **state)
{
    static const struct {
        const char *fixture, *code;
    } cases[] = {
        { "reply_refund_NOTENOUGH.xml", "NOTENOUGH" },
        { "reply_refund_ERROR.xml", "ERROR" },
        { "reply_refund_USER_ACCOUNT_ABNORMAL.xml", "USER_ACCOUNT_ABNORMAL" },
        { "reply_return_fail.xml", "" },   /* return_code FAIL: not processed */
    };
    wechat_refund_req_t r = refund_req();
    wechat_refund_result_t out;
    arena_t a;
    buf_t err;
    char code[64];
    size_t i;
    (void)state;

    arena_init(&a, 0);
    buf_init(&err, &a);
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        exchange_t x = { .status = 200, .fixture = cases[i].fixture };
        pg_err rc = run_refund(&a, &x, &r, &out, code, &err);
        if (rc != PG_ERR_CONFLICT)
            fail_msg("%s: %s (%s)", cases[i].fixture, pg_err_name(rc), err.data);
        assert_string_equal(code, cases[i].code);
        assert_null(out.refund_id);
        assert_int_equal(out.refund_fee, 0);
    }
    arena_free(&a);
}

static void test_refund_unknown_outcomes_are_timeout(void **state)
{
    exchange_t cases[] = {
        { .status = 200, .fixture = "reply_refund_SYSTEMERROR.xml" },
        { .status = 200, .fixture = "reply_refund_BIZERR_NEED_RETRY.xml" },
        { .status = 200, .fixture = "reply_refund_FREQUENCY_LIMITED.xml" },
        { .status = 200, .fixture = "reply_refund_no_id.xml" },
        { .status = 200, .fixture = "reply_other_mch.xml" },
        /* return_code FAIL that says the system was busy (系统繁忙) */
        { .status = 200, .text = "<xml><return_code><![CDATA[FAIL]]></return_code><return_msg><![CDATA["
                                  "\xe7\xb3\xbb\xe7\xbb\x9f\xe7\xb9\x81\xe5\xbf\x99,\xe8\xaf\xb7\xe7\xa8\x8d"
                                  "\xe5\x90\x8e\xe5\x86\x8d\xe8\xaf\x95]]></return_msg></xml>" },
        { .status = 200, .text = NULL },   /* [6] tampered ok, below */
        { .status = 500, .text = "oops" },
        { .status = 502, .fixture = "reply_refund_ok.xml" },
        { .status = 404, .text = "not here" },
        { .status = 200, .text = "<html>maintenance</html>" },
        { .status = 200, .text = "" },
        { .status = 200, .text = "<xml><result_code>SUCCESS</result_code></xml>" },   /* no return_code */
        { .status = 0 },
    };
    static const char *const codes[] = { "SYSTEMERROR", "BIZERR_NEED_RETRY", "FREQUENCY_LIMITED" };
    wechat_refund_req_t r = refund_req();
    wechat_refund_result_t out;
    wechat_client_t c = refund_client();
    arena_t a;
    buf_t err;
    char code[64];
    size_t i;
    (void)state;

    arena_init(&a, 0);
    buf_init(&err, &a);
    cases[6].text = replace_once(&a, fixture(&a, "reply_refund_ok.xml"), "<refund_fee>3300", "<refund_fee>9900");
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pg_err rc = run_refund(&a, &cases[i], &r, &out, code, &err);
        if (rc != PG_ERR_TIMEOUT)
            fail_msg("case %zu (%s): %s (%s)", i, cases[i].fixture ? cases[i].fixture : "text",
                     pg_err_name(rc), err.data);
        if (i < 3)
            assert_string_equal(code, codes[i]);
        assert_null(out.refund_id);
        assert_int_equal(out.refund_fee, 0);
        assert_true(strncmp(cases[i].request, "POST /secapi/pay/refund ", 24) == 0);
    }
    {
        /* a signed acceptance of another refund number */
        exchange_t x = { .status = 200, .fixture = "reply_refund_ok.xml" };
        r.out_refund_no = "RF20261125100000R2";
        assert_int_equal(run_refund(&a, &x, &r, &out, code, &err), PG_ERR_TIMEOUT);
        assert_null(out.refund_id);
        r = refund_req();
    }
    {
        /* signed result_code FAIL without an err_code */
        exchange_t x = { .status = 200, .fixture = "reply_refund_fail_no_code.xml" };
        assert_int_equal(run_refund(&a, &x, &r, &out, code, &err), PG_ERR_TIMEOUT);
        assert_string_equal(code, "");
    }
    /* nobody listening: httpc cannot say whether bytes left */
    c.gateway = "http://127.0.0.1:1";
    assert_int_equal(wechat_refund(&a, &c, &r, &out, code, &err), PG_ERR_TIMEOUT);
    arena_free(&a);
}

static void test_refund_config_and_bad_input_send_nothing(void **state)
{
    wechat_refund_req_t r;
    wechat_refund_result_t out;
    wechat_client_t c = refund_client();
    arena_t a;
    buf_t err;
    char code[64];
    (void)state;

    arena_init(&a, 0);
    buf_init(&err, &a);
    c.gateway = "http://127.0.0.1:1";   /* never reached */
    r = refund_req(); r.refund_fee = 0;
    assert_int_equal(wechat_refund(&a, &c, &r, &out, code, &err), PG_ERR_BAD_INPUT);
    r = refund_req(); r.refund_fee = 9901;   /* more than the order */
    assert_int_equal(wechat_refund(&a, &c, &r, &out, code, &err), PG_ERR_BAD_INPUT);
    r = refund_req(); r.total_fee = -1;
    assert_int_equal(wechat_refund(&a, &c, &r, &out, code, &err), PG_ERR_BAD_INPUT);
    r = refund_req(); r.out_refund_no = "";
    assert_int_equal(wechat_refund(&a, &c, &r, &out, code, &err), PG_ERR_BAD_INPUT);
    r = refund_req(); r.out_refund_no = "RF 1";
    assert_int_equal(wechat_refund(&a, &c, &r, &out, code, &err), PG_ERR_BAD_INPUT);
    r = refund_req();
    r.out_refund_no = "12345678901234567890123456789012345678901234567890123456789012345";   /* 65 */
    assert_int_equal(wechat_refund(&a, &c, &r, &out, code, &err), PG_ERR_BAD_INPUT);
    r = refund_req(); r.out_trade_no = NULL;
    assert_int_equal(wechat_refund(&a, &c, &r, &out, code, &err), PG_ERR_BAD_INPUT);
    r = refund_req(); r.refund_desc = "bad\x01";   /* cannot be written as XML */
    assert_int_equal(wechat_refund(&a, &c, &r, &out, code, &err), PG_ERR_BAD_INPUT);
    r = refund_req();
    c.client_cert = NULL;
    assert_int_equal(wechat_refund(&a, &c, &r, &out, code, &err), PG_ERR_CONFIG);
    c = refund_client();
    c.client_key = "";
    assert_int_equal(wechat_refund(&a, &c, &r, &out, code, &err), PG_ERR_CONFIG);
    c = refund_client();
    c.api_key = NULL;
    assert_int_equal(wechat_refund(&a, &c, &r, &out, code, &err), PG_ERR_CONFIG);
    assert_int_equal(wechat_refund(&a, &c, NULL, &out, code, &err), PG_ERR_CONFIG);
    arena_free(&a);
}

static pg_err run_refundquery(arena_t *a, exchange_t *x, const char *out_refund_no,
                              wechat_refund_state_t *st, char code[64], buf_t *err)
{
    wechat_client_t c = client();   /* no client certificate needed */
    pg_err rc;
    exchange_begin(a, x, &c);
    rc = wechat_refundquery(a, &c, out_refund_no, st, code, err);
    exchange_end(a, x);
    return rc;
}

static void test_refundquery_picks_our_entry(void **state)
{
    exchange_t ours = { .status = 200, .fixture = "reply_refundquery_ok.xml" };
    exchange_t first = { .status = 200, .fixture = "reply_refundquery_ok.xml" };
    exchange_t absent = { .status = 200, .fixture = "reply_refundquery_ok.xml" };
    wechat_refund_state_t st;
    kv_list_t req;
    arena_t a;
    buf_t err;
    char code[64];
    (void)state;

    arena_init(&a, 0);
    buf_init(&err, &a);
    if (run_refundquery(&a, &ours, OUT_REFUND_NO, &st, code, &err) != PG_OK)
        fail_msg("refundquery: %s", err.data);
    assert_true(st.found);
    assert_string_equal(st.refund_status, "SUCCESS");
    assert_string_equal(st.refund_id, "50000408942018111907145868882");
    assert_int_equal(st.refund_fee, 3300);
    assert_true(strncmp(ours.request, "POST /pay/refundquery HTTP/1.1\r\n", 32) == 0);
    request_fields(&a, ours.request, &req);
    assert_string_equal(kv_get(&req, "out_refund_no"), OUT_REFUND_NO);
    assert_null(kv_get(&req, "out_trade_no"));
    assert_int_equal(req.count, 5);   /* appid, mch_id, nonce_str, out_refund_no, sign */
    assert_int_equal(wechat_verify_sign(&req, API_KEY, WECHAT_SIGN_MD5), PG_OK);

    assert_int_equal(run_refundquery(&a, &first, "RF20261125090000R0", &st, code, &err), PG_OK);
    assert_string_equal(st.refund_status, "REFUNDCLOSE");
    assert_string_equal(st.refund_id, "50000408942018111907145860000");
    assert_int_equal(st.refund_fee, 100);

    assert_int_equal(run_refundquery(&a, &absent, "RF20261125100000R7", &st, code, &err), PG_ERR_MISMATCH);
    assert_false(st.found);
    assert_null(st.refund_status);
    arena_free(&a);
}

static void test_refundquery_not_exist_and_failures(void **state)
{
    static const struct {
        int status;
        const char *fixture, *code;
        pg_err want;
    } cases[] = {
        { 200, "reply_refundquery_REFUNDNOTEXIST.xml", "REFUNDNOTEXIST", PG_OK },
        { 200, "reply_refundquery_SYSTEMERROR.xml", "SYSTEMERROR", PG_ERR_TIMEOUT },
        { 200, "reply_refundquery_INVALID_TRANSACTIONID.xml", "INVALID_TRANSACTIONID", PG_ERR_UPSTREAM },
        { 200, "reply_refundquery_bad_status.xml", "", PG_ERR_UPSTREAM },
        { 200, "reply_refundquery_bad_fee.xml", "", PG_ERR_UPSTREAM },
        { 200, "reply_return_fail.xml", "", PG_ERR_UPSTREAM },
        { 200, "reply_other_mch.xml", "", PG_ERR_MISMATCH },
        { 503, "reply_refundquery_ok.xml", "", PG_ERR_TIMEOUT },
        { 0, NULL, "", PG_ERR_TIMEOUT },
    };
    wechat_refund_state_t st;
    wechat_client_t c = client();
    arena_t a;
    buf_t err;
    char code[64];
    size_t i;
    (void)state;

    arena_init(&a, 0);
    buf_init(&err, &a);
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        exchange_t x = { .status = cases[i].status, .fixture = cases[i].fixture };
        pg_err rc = run_refundquery(&a, &x, OUT_REFUND_NO, &st, code, &err);
        if (rc != cases[i].want)
            fail_msg("case %zu (%s): %s, want %s (%s)", i, cases[i].fixture ? cases[i].fixture : "silent",
                     pg_err_name(rc), pg_err_name(cases[i].want), err.data);
        assert_string_equal(code, cases[i].code);
        assert_false(st.found);
        assert_null(st.refund_status);
        assert_int_equal(st.refund_fee, 0);
    }
    {
        /* a tampered "not exist" is not believed */
        exchange_t x = { .status = 200 };
        x.text = replace_once(&a, fixture(&a, "reply_refundquery_SYSTEMERROR.xml"), "[SYSTEMERROR]]></err_code>",
                              "[REFUNDNOTEXIST]]></err_code>");
        assert_int_equal(run_refundquery(&a, &x, OUT_REFUND_NO, &st, code, &err), PG_ERR_BAD_SIGNATURE);
        assert_false(st.found);
    }
    c.gateway = "http://127.0.0.1:1";
    assert_int_equal(wechat_refundquery(&a, &c, "", &st, code, &err), PG_ERR_BAD_INPUT);
    assert_int_equal(wechat_refundquery(&a, &c, "RF<1>", &st, code, &err), PG_ERR_BAD_INPUT);
    arena_free(&a);
}

static pg_err verify_refund_notify_text(arena_t *a, const wechat_client_t *c, const char *body,
                                        wechat_refund_notify_t *n)
{
    buf_t reason;
    pg_err rc;
    buf_init(&reason, a);
    rc = wechat_verify_refund_notify(a, c, body, strlen(body), n, &reason);
    assert_true(reason.len > 0);
    return rc;
}

static void test_refund_notify_ok(void **state)
{
    wechat_client_t c = client();
    wechat_refund_notify_t n;
    arena_t a;
    (void)state;

    arena_init(&a, 0);
    assert_int_equal(verify_refund_notify_text(&a, &c, fixture(&a, "refund_notify_ok.xml"), &n), PG_OK);
    assert_string_equal(n.out_trade_no, OUT_TRADE_NO);
    assert_string_equal(n.transaction_id, "4200001234202611241234567890");
    assert_string_equal(n.refund_id, "50000408942018111907145868882");
    assert_string_equal(n.out_refund_no, OUT_REFUND_NO);
    assert_string_equal(n.refund_status, "SUCCESS");
    assert_string_equal(n.success_time, "2026-11-25 10:00:07");
    assert_int_equal(n.total_fee, 9900);
    assert_int_equal(n.refund_fee, 3300);
    /* the configured sign type plays no part: there is no sign */
    c.sign_type = WECHAT_SIGN_HMAC_SHA256;
    assert_int_equal(verify_refund_notify_text(&a, &c, fixture(&a, "refund_notify_ok.xml"), &n), PG_OK);

    assert_int_equal(verify_refund_notify_text(&a, &c, fixture(&a, "refund_notify_closed.xml"), &n), PG_OK);
    assert_string_equal(n.refund_status, "REFUNDCLOSE");
    assert_string_equal(n.out_refund_no, "RF20261125100000R2");
    assert_int_equal(n.refund_fee, 100);
    assert_null(n.transaction_id);
    assert_null(n.success_time);
    arena_free(&a);
}

static void test_refund_notify_refusals(void **state)
{
    wechat_client_t c = client();
    wechat_refund_notify_t n;
    arena_t a;
    char *ok, *b64, *bad;
    size_t len;
    (void)state;

    arena_init(&a, 0);
    ok = fixture(&a, "refund_notify_ok.xml");
    b64 = fixture_line(&a, "req_info.b64");
    len = strlen(b64);

    /* identity */
    assert_int_equal(verify_refund_notify_text(&a, &c, fixture(&a, "refund_notify_other_mch.xml"), &n),
                     PG_ERR_MISMATCH);
    assert_null(n.out_trade_no);
    assert_int_equal(verify_refund_notify_text(&a, &c, replace_once(&a, ok, APPID, "wx0000000000000000"), &n),
                     PG_ERR_MISMATCH);
    assert_int_equal(verify_refund_notify_text(&a, &c, remove_element(&a, ok, "mch_id"), &n), PG_ERR_MISMATCH);

    /* authentication: decrypting is the proof */
    assert_int_equal(verify_refund_notify_text(&a, &c, fixture(&a, "refund_notify_wrong_key.xml"), &n),
                     PG_ERR_BAD_SIGNATURE);
    bad = arena_strdup(&a, b64);
    bad[len - 6] = bad[len - 6] == 'A' ? 'B' : 'A';   /* last block: padding breaks */
    assert_int_equal(verify_refund_notify_text(&a, &c, replace_once(&a, ok, b64, bad), &n), PG_ERR_BAD_SIGNATURE);
    bad = arena_strdup(&a, b64);
    memcpy(bad + 64, "AAAAAAAAAAAAAAAAAAAAAAAA", 24);   /* middle block: XML breaks */
    assert_int_equal(verify_refund_notify_text(&a, &c, replace_once(&a, ok, b64, bad), &n), PG_ERR_BAD_SIGNATURE);
    assert_int_equal(verify_refund_notify_text(&a, &c, replace_once(&a, ok, b64, "%%%not base64"), &n),
                     PG_ERR_BAD_SIGNATURE);
    c.api_key = "192006250b4c09247ec02edce69f6a2e";
    assert_int_equal(verify_refund_notify_text(&a, &c, ok, &n), PG_ERR_BAD_SIGNATURE);
    assert_null(n.out_refund_no);
    c = client();

    /* shape */
    assert_int_equal(verify_refund_notify_text(&a, &c, replace_once(&a, ok, "<return_code>SUCCESS", "<return_code>FAIL"), &n),
                     PG_ERR_BAD_INPUT);
    assert_int_equal(verify_refund_notify_text(&a, &c, remove_element(&a, ok, "return_code"), &n), PG_ERR_BAD_INPUT);
    assert_int_equal(verify_refund_notify_text(&a, &c, remove_element(&a, ok, "req_info"), &n), PG_ERR_BAD_INPUT);
    assert_int_equal(verify_refund_notify_text(&a, &c, fixture(&a, "refund_notify_no_fee.xml"), &n), PG_ERR_BAD_INPUT);
    assert_int_equal(verify_refund_notify_text(&a, &c, fixture(&a, "refund_notify_bad_fee.xml"), &n), PG_ERR_BAD_INPUT);
    assert_null(n.out_trade_no);
    assert_int_equal(n.total_fee, 0);
    assert_int_equal(verify_refund_notify_text(&a, &c, "<xml><return_code>SUCCESS</return_code>", &n), PG_ERR_BAD_INPUT);
    assert_int_equal(verify_refund_notify_text(&a, &c,
                                               "<!DOCTYPE xml [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>"
                                               "<xml><return_code>&x;</return_code></xml>", &n),
                     PG_ERR_BAD_INPUT);
    c.api_key = NULL;
    assert_int_equal(verify_refund_notify_text(&a, &c, ok, &n), PG_ERR_CONFIG);
    arena_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sign_documented_example_md5_and_hmac),
        cmocka_unit_test(test_sign_sorts_bytewise_skips_empty_and_sign),
        cmocka_unit_test(test_sign_refuses_repeated_key_and_missing_api_key),
        cmocka_unit_test(test_verify_sign_type_named_vs_configured),
        cmocka_unit_test(test_verify_sign_md5_named_refused_when_hmac_configured),
        cmocka_unit_test(test_verify_sign_missing_empty_wrong),
        cmocka_unit_test(test_format_time_is_beijing),
        cmocka_unit_test(test_notify_ok_with_coupons),
        cmocka_unit_test(test_notify_tampered_fields_fail),
        cmocka_unit_test(test_notify_sign_type_named_or_configured),
        cmocka_unit_test(test_notify_other_merchant_is_mismatch),
        cmocka_unit_test(test_notify_result_fail_is_not_paid),
        cmocka_unit_test(test_notify_bad_input),
        cmocka_unit_test(test_reply_exact_bytes),
        cmocka_unit_test(test_jsapi_params_match_openssl),
        cmocka_unit_test(test_decrypt_req_info_fixture),
        cmocka_unit_test(test_decrypt_req_info_refusals),
        cmocka_unit_test(test_check_reply_ok_md5_and_hmac),
        cmocka_unit_test(test_check_reply_return_code_fail),
        cmocka_unit_test(test_check_reply_result_code_fail_copies_err_code),
        cmocka_unit_test(test_check_reply_bad_or_missing_sign),
        cmocka_unit_test(test_check_reply_other_merchant),
        cmocka_unit_test(test_unifiedorder_native_request_and_reply),
        cmocka_unit_test(test_unifiedorder_hmac_jsapi_request),
        cmocka_unit_test(test_unifiedorder_reply_without_required_url),
        cmocka_unit_test(test_unifiedorder_refuses_bad_orders_before_calling),
        cmocka_unit_test(test_orderquery_reply),
        cmocka_unit_test(test_closeorder_orderpaid_is_conflict),
        cmocka_unit_test(test_call_http_errors_and_timeouts),
        cmocka_unit_test(test_refund_request_fields_and_accepted),
        cmocka_unit_test(test_refund_without_optional_fields),
        cmocka_unit_test(test_refund_refusals_are_conflict),
        cmocka_unit_test(test_refund_unknown_outcomes_are_timeout),
        cmocka_unit_test(test_refund_config_and_bad_input_send_nothing),
        cmocka_unit_test(test_refundquery_picks_our_entry),
        cmocka_unit_test(test_refundquery_not_exist_and_failures),
        cmocka_unit_test(test_refund_notify_ok),
        cmocka_unit_test(test_refund_notify_refusals),
    };
    return cmocka_run_group_tests_name("wechat", tests, group_setup, group_teardown);
}
