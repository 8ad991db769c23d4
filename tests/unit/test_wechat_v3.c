/* WeChat Pay API v3 adapter tests (src/wechat_v3.c, src/crypto_v3.c).
 * Every signature, ciphertext and serial we compare with comes from outside
 * our code: tests/fixtures/wechat_v3/vectors.json was made by the npm
 * libraries wechatpay-axios-plugin and wechatpay-node-v3 (each vector checked
 * by both, sandbox/interop/wechat_v3_vectors.js), the openssl_* files by the
 * openssl CLI (tests/fixtures/wechat_v3/make_fixtures.sh). Only the envelope
 * refusal cases sign with our own code, to get past the signature and reach
 * the rule under test. Run with cwd tests/unit. */
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
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "crypto.h"
#include "crypto_v3.h"
#include "httpc.h"
#include "money.h"
#include "wechat_v3.h"
#include "wechat_v3_certs.h"

#define FIX "../fixtures/wechat_v3/"

static json_t *g_vec;
static crypto_key_t *g_merchant, *g_wechatpay_pub, *g_wechatpay_priv, *g_platform_pub, *g_other;
static char g_merchant_serial[CRYPTO_X509_SERIAL_MAX + 1];
static char g_platform_serial[CRYPTO_X509_SERIAL_MAX + 1];
static wxv3_platform_key_t g_platform_map[1];
static time_t g_now;

/* ------------------------------------------------------------------ */
/* helpers                                                             */

static char *slurp(const char *name, size_t *len_out)
{
    char path[256];
    FILE *f;
    char *data;
    long n;

    snprintf(path, sizeof path, FIX "%s", name);
    f = fopen(path, "rb");
    if (f == NULL)
        fail_msg("cannot open %s (run from tests/unit)", path);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    n = ftell(f);
    rewind(f);
    data = malloc((size_t)n + 1);
    assert_non_null(data);
    assert_int_equal(fread(data, 1, (size_t)n, f), (size_t)n);
    data[n] = '\0';
    fclose(f);
    if (len_out != NULL)
        *len_out = (size_t)n;
    return data;
}

static char *read_whole(arena_t *a, const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    buf_t b;
    char chunk[4096];
    size_t n;
    assert_non_null(f);
    buf_init(&b, a);
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        buf_append(&b, chunk, n);
    fclose(f);
    *len = b.len;
    return b.data;
}

static char *slurp_line(const char *name)
{
    char *s = slurp(name, NULL);
    s[strcspn(s, "\r\n")] = '\0';
    return s;
}

static crypto_key_t *load_key(const char *name, int is_private)
{
    char path[256];
    crypto_key_t *k = NULL;
    buf_t err;
    buf_init(&err, NULL);
    snprintf(path, sizeof path, FIX "%s", name);
    assert_int_equal(is_private ? crypto_key_load_private(path, &k, &err)
                                : crypto_key_load_public(path, &k, &err), PG_OK);
    buf_free(&err);
    return k;
}

static const char *vs(const char *obj, const char *key)
{
    json_t *o = obj != NULL ? json_object_get(g_vec, obj) : g_vec;
    const char *s = json_string_value(json_object_get(o, key));
    if (s == NULL)
        fail_msg("vectors.json: %s.%s missing", obj ? obj : "", key);
    return s;
}

static int group_setup(void **state)
{
    json_error_t jerr;
    char *pem;
    size_t len;
    (void)state;

    g_vec = json_load_file(FIX "vectors.json", 0, &jerr);
    if (g_vec == NULL)
        fail_msg("vectors.json: %s", jerr.text);
    g_now = (time_t)json_integer_value(json_object_get(g_vec, "now"));
    g_merchant = load_key("merchant_key.pem", 1);
    g_wechatpay_pub = load_key("wechatpay_pub.pem", 0);
    g_wechatpay_priv = load_key("wechatpay_key.pem", 1);
    g_platform_pub = load_key("platform_cert.pem", 0);
    g_other = load_key("other_key.pem", 1);
    pem = slurp("merchant_cert.pem", &len);
    assert_int_equal(crypto_x509_serial_hex(pem, len, g_merchant_serial, NULL), PG_OK);
    free(pem);
    pem = slurp("platform_cert.pem", &len);
    assert_int_equal(crypto_x509_serial_hex(pem, len, g_platform_serial, NULL), PG_OK);
    free(pem);
    g_platform_map[0].serial = g_platform_serial;
    g_platform_map[0].key = g_platform_pub;
    httpc_global_init();
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    json_decref(g_vec);
    crypto_key_free(g_merchant);
    crypto_key_free(g_wechatpay_pub);
    crypto_key_free(g_wechatpay_priv);
    crypto_key_free(g_platform_pub);
    crypto_key_free(g_other);
    httpc_global_cleanup();
    return 0;
}

/* Both modes configured, as during a switch of key sets. */
static wxv3_client_t client(void)
{
    wxv3_client_t c;
    memset(&c, 0, sizeof c);
    c.appid = vs(NULL, "appid");
    c.mchid = vs(NULL, "mchid");
    c.mch_serial_no = g_merchant_serial;
    c.mch_key = g_merchant;
    c.api_v3_key = vs(NULL, "api_v3_key");
    c.notify_url = "https://shop.example/notify/wechat";
    c.refund_notify_url = "https://shop.example/notify/wechat/refund";
    c.pubkey_id = vs(NULL, "pubkey_id");
    c.pubkey = g_wechatpay_pub;
    c.platform = g_platform_map;
    c.platform_count = 1;
    return c;
}

static wxv3_sig_headers_t headers_of(const char *vector)
{
    wxv3_sig_headers_t h;
    h.timestamp = vs(vector, "timestamp");
    h.nonce = vs(vector, "nonce");
    h.signature = vs(vector, "signature");
    h.serial = vs(vector, "serial");
    return h;
}

static pg_err verify_vector(const wxv3_client_t *c, const char *vector)
{
    wxv3_sig_headers_t h = headers_of(vector);
    const char *body = vs(vector, "body");
    return wxv3_verify(c, &h, body, strlen(body), g_now, NULL);
}

/* s with the first `from` replaced by `to` (arena copy). */
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

/* ------------------------------------------------------------------ */
/* serials and request signatures                                      */

static void test_serial_is_what_openssl_prints(void **state)
{
    char *want;
    char out[CRYPTO_X509_SERIAL_MAX + 1];
    (void)state;

    want = slurp_line("openssl_merchant_serial.txt");
    assert_string_equal(g_merchant_serial, want);
    free(want);
    want = slurp_line("openssl_platform_serial.txt");
    assert_string_equal(g_platform_serial, want);   /* 0A...: the leading zero digit kept */
    assert_int_equal(g_platform_serial[0], '0');
    free(want);
    /* wechatpay-node-v3 reads the same serial (it writes lower case). */
    assert_int_equal(strcasecmp(g_merchant_serial, vs(NULL, "merchant_serial_node_v3")), 0);
    assert_int_equal(strcasecmp(g_platform_serial, vs(NULL, "platform_serial_node_v3")), 0);
    assert_int_equal(crypto_x509_serial_hex("not a cert", 10, out, NULL), PG_ERR_BAD_INPUT);
    assert_string_equal(out, "");
}

static void test_validity_is_what_openssl_prints(void **state)
{
    char *pem, *dates;
    size_t len;
    time_t nb = 0, na = 0;
    long long want_nb, want_na;
    (void)state;

    pem = slurp("platform_cert.pem", &len);
    dates = slurp("openssl_platform_validity.txt", NULL);
    assert_int_equal(sscanf(dates, "%lld %lld", &want_nb, &want_na), 2);
    assert_int_equal(crypto_x509_validity(pem, len, &nb, &na, NULL), PG_OK);
    assert_int_equal((long long)nb, want_nb);
    assert_int_equal((long long)na, want_na);
    assert_int_equal(crypto_x509_validity("x", 1, &nb, &na, NULL), PG_ERR_BAD_INPUT);
    free(pem);
    free(dates);
}

static void test_sign_request_matches_npm_vectors(void **state)
{
    static const char *const which[] = { "request_post", "request_get" };
    wxv3_client_t c = client();
    (void)state;

    for (size_t i = 0; i < 2; i++) {
        const char *body = vs(which[i], "body");
        buf_t auth, want;
        buf_init(&auth, NULL);
        buf_init(&want, NULL);
        assert_int_equal(wxv3_sign_request(&c, vs(which[i], "method"), vs(which[i], "uri"), g_now,
                                           vs(which[i], "nonce"), body, strlen(body), &auth), PG_OK);
        buf_printf(&want,
                   "WECHATPAY2-SHA256-RSA2048 mchid=\"1900009191\",nonce_str=\"%s\",signature=\"%s\","
                   "timestamp=\"%lld\",serial_no=\"%s\"",
                   vs(which[i], "nonce"), vs(which[i], "signature"), (long long)g_now, g_merchant_serial);
        assert_string_equal(auth.data, want.data);
        buf_free(&auth);
        buf_free(&want);
    }
}

static void test_sign_request_matches_openssl(void **state)
{
    wxv3_client_t c = client();
    char *sig = slurp_line("openssl_get.sig");
    buf_t auth;
    (void)state;

    buf_init(&auth, NULL);
    assert_int_equal(wxv3_sign_request(&c, "GET", "/v3/certificates", g_now, "SN0penssl1795522500abcdef",
                                       NULL, 0, &auth), PG_OK);
    assert_non_null(strstr(auth.data, sig));
    buf_free(&auth);
    free(sig);
}

static void test_sign_request_refusals(void **state)
{
    wxv3_client_t c = client();
    buf_t auth;
    (void)state;

    buf_init(&auth, NULL);
    assert_int_equal(wxv3_sign_request(&c, "get", "/v3/x", g_now, "abc", NULL, 0, &auth), PG_ERR_BAD_INPUT);
    assert_int_equal(wxv3_sign_request(&c, "GET", "v3/x", g_now, "abc", NULL, 0, &auth), PG_ERR_BAD_INPUT);
    assert_int_equal(wxv3_sign_request(&c, "GET", "/v3/x y", g_now, "abc", NULL, 0, &auth), PG_ERR_BAD_INPUT);
    assert_int_equal(wxv3_sign_request(&c, "GET", "/v3/x", g_now, "a\"b", NULL, 0, &auth), PG_ERR_BAD_INPUT);
    assert_int_equal(wxv3_sign_request(&c, "GET", "/v3/x", g_now, "", NULL, 0, &auth), PG_ERR_BAD_INPUT);
    c.mch_key = NULL;
    assert_int_equal(wxv3_sign_request(&c, "GET", "/v3/x", g_now, "abc", NULL, 0, &auth), PG_ERR_CONFIG);
    c = client();
    c.mch_serial_no = "5f3a";   /* not as WeChat shows it */
    assert_int_equal(wxv3_sign_request(&c, "GET", "/v3/x", g_now, "abc", NULL, 0, &auth), PG_ERR_CONFIG);
    assert_int_equal(auth.len, 0);
    buf_free(&auth);
}

/* ------------------------------------------------------------------ */
/* builders                                                            */

static void test_build_prepay_native_is_the_signed_vector(void **state)
{
    wxv3_client_t c = client();
    wxv3_order_t o;
    buf_t path, body, auth;
    (void)state;

    memset(&o, 0, sizeof o);
    o.kind = WXV3_NATIVE;
    o.out_trade_no = "P4a9cK2mZq8Xw3Rt";
    o.description = "课程：C 语言入门";
    o.total_fen = 9900;
    o.expires_at = g_now + 900;
    buf_init(&path, NULL);
    buf_init(&body, NULL);
    buf_init(&auth, NULL);
    assert_int_equal(wxv3_build_prepay(&c, &o, &path, &body), PG_OK);
    assert_string_equal(path.data, "/v3/pay/transactions/native");
    assert_string_equal(body.data, vs("request_post", "body"));
    assert_int_equal(wxv3_sign_request(&c, "POST", path.data, g_now, vs("request_post", "nonce"), body.data,
                                       body.len, &auth), PG_OK);
    assert_non_null(strstr(auth.data, vs("request_post", "signature")));
    buf_free(&path);
    buf_free(&body);
    buf_free(&auth);
}

static json_t *build_json(const wxv3_client_t *c, const wxv3_order_t *o, pg_err want, const char *want_path)
{
    buf_t path, body;
    json_t *j = NULL;
    buf_init(&path, NULL);
    buf_init(&body, NULL);
    assert_int_equal(wxv3_build_prepay(c, o, &path, &body), want);
    if (want == PG_OK) {
        assert_string_equal(path.data, want_path);
        j = json_loads(body.data, JSON_REJECT_DUPLICATES, NULL);
        assert_non_null(j);
    }
    buf_free(&path);
    buf_free(&body);
    return j;
}

static void test_build_prepay_jsapi_h5_and_refusals(void **state)
{
    wxv3_client_t c = client();
    wxv3_order_t o;
    json_t *j;
    (void)state;

    memset(&o, 0, sizeof o);
    o.kind = WXV3_JSAPI;
    o.out_trade_no = "P4a9cK2mZq8Xw3Rt";
    o.description = "d";
    o.total_fen = 1;
    assert_null(build_json(&c, &o, PG_ERR_BAD_INPUT, NULL));   /* no openid */
    o.openid = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o";
    j = build_json(&c, &o, PG_OK, "/v3/pay/transactions/jsapi");
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "payer"), "openid")), o.openid);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "amount"), "total")), 1);
    assert_null(json_object_get(j, "time_expire"));
    json_decref(j);

    o.kind = WXV3_H5;
    o.payer_client_ip = "not-an-ip";
    assert_null(build_json(&c, &o, PG_ERR_BAD_INPUT, NULL));
    o.payer_client_ip = "2001:db8::1";
    o.h5_app_name = "课程";
    j = build_json(&c, &o, PG_OK, "/v3/pay/transactions/h5");
    json_t *h5 = json_object_get(json_object_get(j, "scene_info"), "h5_info");
    assert_string_equal(json_string_value(json_object_get(h5, "type")), "Wap");
    assert_string_equal(json_string_value(json_object_get(h5, "app_name")), "课程");
    assert_null(json_object_get(j, "payer"));
    json_decref(j);

    o.total_fen = 0;
    assert_null(build_json(&c, &o, PG_ERR_BAD_INPUT, NULL));
    o.total_fen = MONEY_MAX_FEN + 1;
    assert_null(build_json(&c, &o, PG_ERR_BAD_INPUT, NULL));
    o.total_fen = 1;
    o.out_trade_no = "P4a9c";   /* v3 wants 6..32 */
    assert_null(build_json(&c, &o, PG_ERR_BAD_INPUT, NULL));
    o.out_trade_no = "P4a9cK2mZq8Xw3Rt/";
    assert_null(build_json(&c, &o, PG_ERR_BAD_INPUT, NULL));
    o.out_trade_no = "P4a9cK2mZq8Xw3Rt";
    o.description = "\xff\xfe";   /* not UTF-8 */
    assert_null(build_json(&c, &o, PG_ERR_BAD_INPUT, NULL));
    o.description = "d";
    c.notify_url = NULL;
    assert_null(build_json(&c, &o, PG_ERR_CONFIG, NULL));
}

static void test_description_cut_at_utf8_boundary(void **state)
{
    wxv3_client_t c = client();
    wxv3_order_t o;
    char desc[200];
    json_t *j;
    (void)state;

    /* 42 x "课" (3 bytes) = 126 bytes, then one more: 129 > 127 -> 126. */
    desc[0] = '\0';
    for (int i = 0; i < 43; i++)
        strcat(desc, "课");
    memset(&o, 0, sizeof o);
    o.kind = WXV3_NATIVE;
    o.out_trade_no = "P4a9cK2mZq8Xw3Rt";
    o.description = desc;
    o.total_fen = 5;
    j = build_json(&c, &o, PG_OK, "/v3/pay/transactions/native");
    assert_int_equal(strlen(json_string_value(json_object_get(j, "description"))), 126);
    json_decref(j);
}

static void test_jsapi_pay_sign_matches_npm(void **state)
{
    wxv3_client_t c = client();
    arena_t a;
    kv_list_t out;
    (void)state;

    arena_init(&a, 0);
    assert_int_equal(wxv3_jsapi_params(&a, &c, "wx201410272009395522657a690389285100", g_now,
                                       vs("jsapi", "nonceStr"), &out), PG_OK);
    assert_string_equal(kv_get(&out, "appId"), vs("jsapi", "appId"));
    assert_string_equal(kv_get(&out, "timeStamp"), vs("jsapi", "timeStamp"));
    assert_string_equal(kv_get(&out, "package"), vs("jsapi", "package"));
    assert_string_equal(kv_get(&out, "signType"), "RSA");
    assert_string_equal(kv_get(&out, "paySign"), vs("jsapi", "paySign"));
    assert_int_equal(wxv3_jsapi_params(&a, &c, "bad id", g_now, NULL, &out), PG_ERR_BAD_INPUT);
    assert_int_equal(wxv3_jsapi_params(&a, &c, "wx1", g_now, NULL, &out), PG_OK);
    assert_int_equal(strlen(kv_get(&out, "nonceStr")), 32);
    arena_free(&a);
}

static void test_build_query_close_refund(void **state)
{
    wxv3_client_t c = client();
    wxv3_refund_req_t r;
    buf_t path, body;
    (void)state;

    buf_init(&path, NULL);
    buf_init(&body, NULL);
    assert_int_equal(wxv3_build_query(&c, "P4a9cK2mZq8Xw3Rt", &path), PG_OK);
    assert_string_equal(path.data, vs("request_get", "uri"));
    buf_clear(&path);
    assert_int_equal(wxv3_build_query(&c, "P4a9cK2m|q8*w3Rt", &path), PG_OK);
    assert_string_equal(path.data, "/v3/pay/transactions/out-trade-no/P4a9cK2m%7Cq8%2Aw3Rt?mchid=1900009191");
    buf_clear(&path);
    assert_int_equal(wxv3_build_query(&c, "../x?mchid=1", &path), PG_ERR_BAD_INPUT);
    assert_int_equal(wxv3_build_close(&c, "P4a9cK2mZq8Xw3Rt", &path, &body), PG_OK);
    assert_string_equal(path.data, "/v3/pay/transactions/out-trade-no/P4a9cK2mZq8Xw3Rt/close");
    assert_string_equal(body.data, "{\"mchid\":\"1900009191\"}");
    buf_clear(&path);
    buf_clear(&body);

    memset(&r, 0, sizeof r);
    r.out_trade_no = "P4a9cK2mZq8Xw3Rt";
    r.out_refund_no = "R7hQ2mXc9LpZ4sVb";
    r.total_fen = 9900;
    r.refund_fen = 3300;
    r.reason = "课程退款";
    assert_int_equal(wxv3_build_refund(&c, &r, &path, &body), PG_OK);
    assert_string_equal(path.data, "/v3/refund/domestic/refunds");
    assert_string_equal(body.data,
                        "{\"out_trade_no\":\"P4a9cK2mZq8Xw3Rt\",\"out_refund_no\":\"R7hQ2mXc9LpZ4sVb\","
                        "\"reason\":\"课程退款\",\"notify_url\":\"https://shop.example/notify/wechat/refund\","
                        "\"amount\":{\"refund\":3300,\"total\":9900,\"currency\":\"CNY\"}}");
    r.refund_fen = 9901;
    assert_int_equal(wxv3_build_refund(&c, &r, &path, &body), PG_ERR_BAD_INPUT);
    r.refund_fen = 0;
    assert_int_equal(wxv3_build_refund(&c, &r, &path, &body), PG_ERR_BAD_INPUT);
    buf_clear(&path);
    assert_int_equal(wxv3_build_refund_query("R7hQ2mXc9LpZ4sVb", &path), PG_OK);
    assert_string_equal(path.data, "/v3/refund/domestic/refunds/R7hQ2mXc9LpZ4sVb");
    assert_int_equal(wxv3_build_refund_query("", &path), PG_ERR_BAD_INPUT);
    buf_free(&path);
    buf_free(&body);
}

/* ------------------------------------------------------------------ */
/* verification                                                        */

static void test_verify_both_modes(void **state)
{
    wxv3_client_t c = client();
    wxv3_client_t only_pub = client(), only_platform = client();
    (void)state;

    only_pub.platform = NULL;
    only_pub.platform_count = 0;
    only_platform.pubkey_id = NULL;
    only_platform.pubkey = NULL;
    assert_int_equal(verify_vector(&c, "reply_native_pubkey"), PG_OK);
    assert_int_equal(verify_vector(&c, "reply_native_platform"), PG_OK);
    assert_int_equal(verify_vector(&only_pub, "reply_native_pubkey"), PG_OK);
    assert_int_equal(verify_vector(&only_platform, "reply_native_platform"), PG_OK);
    /* The serial names a key the client does not hold: never another one. */
    assert_int_equal(verify_vector(&only_pub, "reply_native_platform"), PG_ERR_NOT_FOUND);
    assert_int_equal(verify_vector(&only_platform, "reply_native_pubkey"), PG_ERR_NOT_FOUND);
    assert_int_equal(verify_vector(&c, "reply_close_204"), PG_OK);   /* empty body */
    assert_int_equal(verify_vector(&c, "reply_edge"), PG_OK);        /* exactly 300 s ahead */
    assert_int_equal(verify_vector(&c, "reply_stale"), PG_ERR_BAD_SIGNATURE);   /* 301 s behind */
    assert_int_equal(verify_vector(&c, "reply_query_ok"), PG_OK);
    assert_int_equal(verify_vector(&c, "reply_refund_ok"), PG_OK);
}

static void test_verify_refusals(void **state)
{
    wxv3_client_t c = client();
    wxv3_sig_headers_t h, good = headers_of("reply_native_pubkey");
    const char *body = vs("reply_native_pubkey", "body");
    size_t len = strlen(body);
    arena_t a;
    (void)state;

    arena_init(&a, 0);
    /* A body changed by one byte. */
    char *tampered = replace_once(&a, body, "p4lp", "p4lq");
    assert_int_equal(wxv3_verify(&c, &good, tampered, len, g_now, NULL), PG_ERR_BAD_SIGNATURE);
    /* The clock: the vector is fine at its own time, refused 301 s later. */
    assert_int_equal(wxv3_verify(&c, &good, body, len, g_now + 301, NULL), PG_ERR_BAD_SIGNATURE);
    assert_int_equal(wxv3_verify(&c, &good, body, len, g_now + 300, NULL), PG_OK);
    /* The signature test probe. */
    h = good;
    h.signature = "WECHATPAY/SIGNTEST/aTowv/jThwdgABaPFG1xJl0uMNdPPyV2uJ3gkRnx8Gp3";
    assert_int_equal(wxv3_verify(&c, &h, body, len, g_now, NULL), PG_ERR_BAD_SIGNATURE);
    /* A probe under a serial we do not know is refused as a probe, not
     * reported as an unknown serial (which would make the caller refresh
     * its certificates). */
    h.serial = "7132D72A03E93CDDF8C03BBD1F37EEDF";
    assert_int_equal(wxv3_verify(&c, &h, body, len, g_now, NULL), PG_ERR_BAD_SIGNATURE);
    /* Empty and absent values never verify. */
    const char **fields[] = { &h.timestamp, &h.nonce, &h.signature, &h.serial };
    for (size_t i = 0; i < 4; i++) {
        h = good;
        *fields[i] = "";
        assert_int_equal(wxv3_verify(&c, &h, body, len, g_now, NULL), PG_ERR_BAD_SIGNATURE);
        *fields[i] = NULL;
        assert_int_equal(wxv3_verify(&c, &h, body, len, g_now, NULL), PG_ERR_BAD_SIGNATURE);
    }
    assert_int_equal(wxv3_verify(&c, NULL, body, len, g_now, NULL), PG_ERR_BAD_SIGNATURE);
    h = good;
    h.timestamp = "+1795522500";
    assert_int_equal(wxv3_verify(&c, &h, body, len, g_now, NULL), PG_ERR_BAD_SIGNATURE);
    /* The platform-signed reply presented under the public key's ID: the
     * public key is the one tried, and it fails; the platform key that did
     * sign is not tried. */
    h = headers_of("reply_native_platform");
    h.serial = vs(NULL, "pubkey_id");
    assert_int_equal(wxv3_verify(&c, &h, body, len, g_now, NULL), PG_ERR_BAD_SIGNATURE);
    /* Serials compare exactly (the lower-case form is another serial). */
    h = headers_of("reply_native_platform");
    h.serial = vs(NULL, "platform_serial_node_v3");
    assert_int_equal(wxv3_verify(&c, &h, body, len, g_now, NULL), PG_ERR_NOT_FOUND);
    /* An empty pubkey_id configured matches nothing. */
    c.pubkey_id = "";
    assert_int_equal(verify_vector(&c, "reply_native_pubkey"), PG_ERR_NOT_FOUND);
    arena_free(&a);
}

/* ------------------------------------------------------------------ */
/* AES-256-GCM                                                         */

static json_t *resource_of(const char *vector)
{
    json_t *env = json_loads(vs(vector, "body"), 0, NULL);
    assert_non_null(env);
    return env;
}

static void test_decrypt_npm_resources(void **state)
{
    const char *key = vs(NULL, "api_v3_key");
    json_t *env = resource_of("notify_paid_pubkey");
    json_t *res = json_object_get(env, "resource");
    const char *ct = json_string_value(json_object_get(res, "ciphertext"));
    const char *nonce = json_string_value(json_object_get(res, "nonce"));
    arena_t a;
    buf_t out;
    (void)state;

    arena_init(&a, 0);
    buf_init(&out, &a);
    assert_int_equal(wxv3_decrypt(key, ct, nonce, "transaction", &out), PG_OK);
    assert_string_equal(out.data, vs("notify_paid_pubkey", "plaintext"));
    buf_clear(&out);
    assert_int_equal(wxv3_decrypt(key, ct, nonce, "", &out), PG_ERR_BAD_SIGNATURE);   /* aad */
    assert_int_equal(wxv3_decrypt(key, ct, "fdasflkja48X", "transaction", &out), PG_ERR_BAD_SIGNATURE);
    assert_int_equal(wxv3_decrypt("b7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb", ct, nonce, "transaction", &out),
                     PG_ERR_BAD_SIGNATURE);
    assert_int_equal(wxv3_decrypt("short", ct, nonce, "transaction", &out), PG_ERR_CONFIG);
    assert_int_equal(wxv3_decrypt(key, "!!!!", nonce, "transaction", &out), PG_ERR_BAD_INPUT);
    assert_int_equal(wxv3_decrypt(key, "AAAA", nonce, "transaction", &out), PG_ERR_BAD_INPUT);   /* < tag */
    assert_int_equal(out.len, 0);
    /* Every single-bit flip of the ciphertext or tag is refused. */
    buf_t raw;
    buf_init(&raw, &a);
    assert_int_equal(crypto_base64_decode(ct, strlen(ct), &raw), PG_OK);
    for (size_t i = 0; i < raw.len; i += 7) {
        raw.data[i] ^= 0x01;
        assert_int_equal(crypto_aes256_gcm_decrypt(key, nonce, strlen(nonce), "transaction", 11, raw.data,
                                                   raw.len, &out), PG_ERR_BAD_SIGNATURE);
        raw.data[i] ^= 0x01;
    }
    assert_int_equal(crypto_aes256_gcm_decrypt(key, nonce, strlen(nonce), "transaction", 11, raw.data,
                                               raw.len - 1, &out), PG_ERR_BAD_SIGNATURE);   /* cut tag */
    assert_int_equal(crypto_aes256_gcm_decrypt(key, nonce, 0, NULL, 0, raw.data, raw.len, &out), PG_ERR_BAD_INPUT);
    assert_int_equal(crypto_aes256_gcm_decrypt(key, nonce, strlen(nonce), NULL, 0, raw.data,
                                               CRYPTO_GCM_CIPHER_MAX + 1, &out), PG_ERR_TOO_LARGE);
    assert_int_equal(out.len, 0);
    json_decref(env);
    arena_free(&a);
}

/* ------------------------------------------------------------------ */
/* notifications                                                       */

static pg_err open_vector(arena_t *a, const wxv3_client_t *c, const char *vector, wxv3_event_t *ev)
{
    wxv3_sig_headers_t h = headers_of(vector);
    const char *body = vs(vector, "body");
    return wxv3_open_notification(a, c, &h, body, strlen(body), g_now, ev, NULL);
}

static void test_payment_notification(void **state)
{
    static const char *const ok[] = { "notify_paid_pubkey", "notify_paid_platform", "notify_paid_no_aad" };
    wxv3_client_t c = client();
    wxv3_event_t ev;
    wxv3_transaction_t t;
    arena_t a;
    (void)state;

    arena_init(&a, 0);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(open_vector(&a, &c, ok[i], &ev), PG_OK);
        assert_string_equal(ev.event_type, "TRANSACTION.SUCCESS");
        assert_string_equal(ev.original_type, "transaction");
        assert_string_equal(ev.plaintext, vs(ok[i], "plaintext"));
        assert_int_equal(wxv3_parse_transaction(&a, &c, ev.plaintext, ev.plaintext_len, &t, NULL), PG_OK);
        assert_string_equal(t.out_trade_no, "P4a9cK2mZq8Xw3Rt");
        assert_string_equal(t.transaction_id, "4200001234202611240123456789");
        assert_string_equal(t.trade_state, "SUCCESS");
        assert_string_equal(t.openid, "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o");
        assert_int_equal(t.total_fen, 9900);
        assert_int_equal(t.payer_total_fen, 9900);
    }
    assert_int_equal(open_vector(&a, &c, "notify_other_mch", &ev), PG_OK);
    assert_int_equal(wxv3_parse_transaction(&a, &c, ev.plaintext, ev.plaintext_len, &t, NULL), PG_ERR_MISMATCH);
    assert_null(t.out_trade_no);
    assert_int_equal(open_vector(&a, &c, "notify_other_app", &ev), PG_OK);
    assert_int_equal(wxv3_parse_transaction(&a, &c, ev.plaintext, ev.plaintext_len, &t, NULL), PG_ERR_MISMATCH);
    assert_int_equal(open_vector(&a, &c, "notify_real_amount", &ev), PG_OK);
    assert_int_equal(wxv3_parse_transaction(&a, &c, ev.plaintext, ev.plaintext_len, &t, NULL), PG_ERR_BAD_INPUT);
    assert_int_equal(t.total_fen, -1);
    assert_int_equal(open_vector(&a, &c, "notify_no_txn_id", &ev), PG_OK);
    assert_int_equal(wxv3_parse_transaction(&a, &c, ev.plaintext, ev.plaintext_len, &t, NULL), PG_ERR_BAD_INPUT);
    /* Another api_v3_key: signed, but the resource does not open. */
    c.api_v3_key = "b7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb";
    assert_int_equal(open_vector(&a, &c, "notify_paid_pubkey", &ev), PG_ERR_BAD_SIGNATURE);
    assert_null(ev.plaintext);
    arena_free(&a);
}

static void test_refund_notification(void **state)
{
    wxv3_client_t c = client();
    wxv3_event_t ev;
    wxv3_refund_t r;
    arena_t a;
    (void)state;

    arena_init(&a, 0);
    assert_int_equal(open_vector(&a, &c, "notify_refund", &ev), PG_OK);
    assert_string_equal(ev.event_type, "REFUND.SUCCESS");
    assert_int_equal(wxv3_parse_refund(&a, &c, true, ev.plaintext, ev.plaintext_len, &r, NULL), PG_OK);
    assert_string_equal(r.out_refund_no, "R7hQ2mXc9LpZ4sVb");
    assert_string_equal(r.refund_id, "50300000382026112400000000001");
    assert_string_equal(r.status, "SUCCESS");
    assert_int_equal(r.refund_fen, 3300);
    assert_int_equal(r.total_fen, 9900);
    /* A notification resource carries refund_status, not status. */
    assert_int_equal(wxv3_parse_refund(&a, &c, false, ev.plaintext, ev.plaintext_len, &r, NULL), PG_ERR_BAD_INPUT);
    assert_int_equal(open_vector(&a, &c, "notify_refund_over", &ev), PG_OK);
    assert_int_equal(wxv3_parse_refund(&a, &c, true, ev.plaintext, ev.plaintext_len, &r, NULL), PG_ERR_BAD_INPUT);
    assert_int_equal(open_vector(&a, &c, "notify_refund_abnormal", &ev), PG_OK);
    assert_int_equal(wxv3_parse_refund(&a, &c, true, ev.plaintext, ev.plaintext_len, &r, NULL), PG_OK);
    assert_string_equal(r.status, "ABNORMAL");
    c.mchid = "1900000109";
    assert_int_equal(open_vector(&a, &c, "notify_refund", &ev), PG_OK);
    assert_int_equal(wxv3_parse_refund(&a, &c, true, ev.plaintext, ev.plaintext_len, &r, NULL), PG_ERR_MISMATCH);
    arena_free(&a);
}

/* The body re-signed with the fixture WeChat Pay key, so that the rule
 * after the signature is what decides. */
static pg_err open_resigned(arena_t *a, const wxv3_client_t *c, const char *body)
{
    wxv3_sig_headers_t h = headers_of("notify_paid_pubkey");
    wxv3_event_t ev;
    buf_t msg, sig;
    pg_err rc;

    buf_init(&msg, a);
    buf_init(&sig, a);
    buf_printf(&msg, "%s\n%s\n%s\n", h.timestamp, h.nonce, body);
    assert_int_equal(crypto_rsa_sha256_sign_b64(g_wechatpay_priv, msg.data, msg.len, &sig), PG_OK);
    h.signature = sig.data;
    rc = wxv3_open_notification(a, c, &h, body, strlen(body), g_now, &ev, NULL);
    if (rc != PG_OK)
        assert_null(ev.plaintext);
    return rc;
}

static void test_notification_envelope_refusals(void **state)
{
    wxv3_client_t c = client();
    const char *body = vs("notify_paid_pubkey", "body");
    wxv3_sig_headers_t h = headers_of("notify_paid_pubkey");
    wxv3_event_t ev;
    arena_t a;
    (void)state;

    arena_init(&a, 0);
    assert_int_equal(open_resigned(&a, &c, body), PG_OK);
    assert_int_equal(open_resigned(&a, &c, replace_once(&a, body, "encrypt-resource", "plain")), PG_ERR_BAD_INPUT);
    assert_int_equal(open_resigned(&a, &c, replace_once(&a, body, "AEAD_AES_256_GCM", "AEAD_AES_128_GCM")),
                     PG_ERR_BAD_INPUT);
    assert_int_equal(open_resigned(&a, &c, replace_once(&a, body, "\"nonce\":", "\"nonc\":")), PG_ERR_BAD_INPUT);
    assert_int_equal(open_resigned(&a, &c, replace_once(&a, body, "{\"id\":", "{\"id\":\"x\",\"id\":")),
                     PG_ERR_BAD_INPUT);   /* duplicate key */
    assert_int_equal(open_resigned(&a, &c, "[1]"), PG_ERR_BAD_INPUT);
    assert_int_equal(open_resigned(&a, &c, replace_once(&a, body, "\"associated_data\":\"transaction\"",
                                                        "\"associated_data\":\"refund\"")),
                     PG_ERR_BAD_SIGNATURE);
    /* The genuine body signed by a key that is not WeChat's. */
    assert_int_equal(wxv3_open_notification(&a, &c, &h, body, strlen(body) - 1, g_now, &ev, NULL),
                     PG_ERR_BAD_SIGNATURE);
    char *big = arena_alloc(&a, WXV3_BODY_MAX + 2);
    memset(big, ' ', WXV3_BODY_MAX + 1);
    big[WXV3_BODY_MAX + 1] = '\0';
    assert_int_equal(wxv3_open_notification(&a, &c, &h, big, WXV3_BODY_MAX + 1, g_now, &ev, NULL),
                     PG_ERR_TOO_LARGE);
    arena_free(&a);
}

/* ------------------------------------------------------------------ */
/* replies                                                             */

static void test_replies(void **state)
{
    wxv3_client_t c = client();
    wxv3_sig_headers_t h = headers_of("reply_native_pubkey");
    const char *body = vs("reply_native_pubkey", "body");
    char code[WXV3_CODE_MAX];
    wxv3_prepay_t p;
    wxv3_transaction_t t;
    wxv3_refund_t r;
    arena_t a;
    buf_t err;
    (void)state;

    arena_init(&a, 0);
    buf_init(&err, &a);
    assert_int_equal(wxv3_check_reply(&c, 200, &h, body, strlen(body), g_now, code, &err), PG_OK);
    assert_int_equal(wxv3_parse_prepay(&a, WXV3_NATIVE, body, strlen(body), &p), PG_OK);
    assert_string_equal(p.code_url, "weixin://wxpay/bizpayurl?pr=p4lpSuKzz");
    assert_int_equal(wxv3_parse_prepay(&a, WXV3_JSAPI, body, strlen(body), &p), PG_ERR_BAD_INPUT);
    assert_int_equal(wxv3_parse_prepay(&a, WXV3_JSAPI, "{\"prepay_id\":\"wx2014\"}", 22, &p), PG_OK);
    assert_string_equal(p.prepay_id, "wx2014");
    assert_int_equal(wxv3_parse_prepay(&a, WXV3_H5, "{\"h5_url\":\"https://wx.tenpay.com/x\"}", 36, &p), PG_OK);
    assert_string_equal(p.h5_url, "https://wx.tenpay.com/x");
    /* 201 is not a WeChat success; a 4xx gives its code, never a fact. */
    assert_int_equal(wxv3_check_reply(&c, 201, &h, body, strlen(body), g_now, code, &err), PG_ERR_UPSTREAM);
    const char *e = "{\"code\":\"ORDER_CLOSED\",\"message\":\"订单已关闭\"}";
    assert_int_equal(wxv3_check_reply(&c, 400, NULL, e, strlen(e), g_now, code, &err), PG_ERR_UPSTREAM);
    assert_string_equal(code, "ORDER_CLOSED");
    assert_string_equal(err.data, "订单已关闭");
    assert_int_equal(wxv3_check_reply(&c, 500, NULL, "<html>", 6, g_now, code, &err), PG_ERR_UPSTREAM);
    assert_string_equal(code, "");
    /* A 200 without signature headers is refused. */
    assert_int_equal(wxv3_check_reply(&c, 200, NULL, body, strlen(body), g_now, code, &err), PG_ERR_BAD_SIGNATURE);

    body = vs("reply_query_ok", "body");
    assert_int_equal(wxv3_parse_transaction(&a, &c, body, strlen(body), &t, NULL), PG_OK);
    assert_string_equal(t.trade_type, "NATIVE");
    assert_string_equal(t.success_time, "2026-11-24T20:14:05+08:00");
    const char *notpay = "{\"appid\":\"wxd930ea5d5a258f4f\",\"mchid\":\"1900009191\",\"out_trade_no\":\"P4a9cK2mZq8Xw3Rt\","
                         "\"trade_state\":\"NOTPAY\",\"amount\":{\"total\":9900,\"currency\":\"CNY\"}}";
    assert_int_equal(wxv3_parse_transaction(&a, &c, notpay, strlen(notpay), &t, NULL), PG_OK);
    assert_null(t.transaction_id);
    assert_int_equal(t.total_fen, 9900);
    const char *usd = "{\"appid\":\"wxd930ea5d5a258f4f\",\"mchid\":\"1900009191\",\"out_trade_no\":\"P4a9cK2mZq8Xw3Rt\","
                      "\"trade_state\":\"NOTPAY\",\"amount\":{\"total\":9900,\"currency\":\"USD\"}}";
    assert_int_equal(wxv3_parse_transaction(&a, &c, usd, strlen(usd), &t, NULL), PG_ERR_BAD_INPUT);
    const char *weird = "{\"appid\":\"wxd930ea5d5a258f4f\",\"mchid\":\"1900009191\",\"out_trade_no\":\"P4a9cK2mZq8Xw3Rt\","
                        "\"trade_state\":\"PAID\"}";
    assert_int_equal(wxv3_parse_transaction(&a, &c, weird, strlen(weird), &t, NULL), PG_ERR_BAD_INPUT);
    const char *huge = "{\"appid\":\"wxd930ea5d5a258f4f\",\"mchid\":\"1900009191\",\"out_trade_no\":\"P4a9cK2mZq8Xw3Rt\","
                       "\"trade_state\":\"NOTPAY\",\"amount\":{\"total\":10000000001}}";
    assert_int_equal(wxv3_parse_transaction(&a, &c, huge, strlen(huge), &t, NULL), PG_ERR_BAD_INPUT);

    body = vs("reply_refund_ok", "body");
    assert_int_equal(wxv3_parse_refund(&a, &c, false, body, strlen(body), &r, NULL), PG_OK);
    assert_string_equal(r.status, "PROCESSING");
    assert_null(r.mchid);
    assert_int_equal(r.refund_fen, 3300);
    arena_free(&a);
}

static void test_certificates(void **state)
{
    wxv3_client_t c = client();
    const char *body = vs("reply_certificates", "body");
    wxv3_cert_entry_t *certs;
    size_t n;
    arena_t a;
    char *pem;
    (void)state;

    arena_init(&a, 0);
    assert_int_equal(verify_vector(&c, "reply_certificates"), PG_OK);
    assert_int_equal(wxv3_parse_certificates(&a, &c, body, strlen(body), &certs, &n, NULL), PG_OK);
    assert_int_equal(n, 1);
    assert_string_equal(certs[0].serial_no, g_platform_serial);
    assert_string_equal(certs[0].expire_time, "2031-11-24T20:00:00+08:00");
    pem = slurp("platform_cert.pem", NULL);
    assert_string_equal(certs[0].pem, pem);
    free(pem);
    /* The listed serial must be the certificate's own. */
    char *lied = replace_once(&a, body, g_platform_serial, "0A1B2C3D4E5F60718293A4B5C6D7E8F901234568");
    assert_int_equal(wxv3_parse_certificates(&a, &c, lied, strlen(lied), &certs, &n, NULL), PG_ERR_MISMATCH);
    assert_int_equal(n, 0);
    char *tag = replace_once(&a, body, "\"associated_data\":\"certificate\"", "\"associated_data\":\"certificatf\"");
    assert_int_equal(wxv3_parse_certificates(&a, &c, tag, strlen(tag), &certs, &n, NULL), PG_ERR_BAD_SIGNATURE);
    assert_int_equal(wxv3_parse_certificates(&a, &c, "{\"data\":[]}", 11, &certs, &n, NULL), PG_ERR_BAD_INPUT);
    arena_free(&a);
}

static void test_ack_and_time(void **state)
{
    buf_t b;
    char t[26];
    (void)state;

    buf_init(&b, NULL);
    wxv3_ack_fail("bad \"sig\"", &b);
    assert_string_equal(b.data, "{\"code\":\"FAIL\",\"message\":\"bad \\\"sig\\\"\"}");
    buf_clear(&b);
    wxv3_ack_fail(NULL, &b);
    assert_string_equal(b.data, "{\"code\":\"FAIL\",\"message\":\"FAIL\"}");
    buf_free(&b);
    wxv3_format_time(g_now, t);
    assert_string_equal(t, "2026-11-24T20:15:00+08:00");
    wxv3_format_time((time_t)1798761599, t);   /* 2026-12-31 23:59:59 UTC */
    assert_string_equal(t, "2027-01-01T07:59:59+08:00");
}

/* v3 times as the use cases take Beijing time (v2's way of writing it). */
static void test_beijing_time(void **state)
{
    arena_t a;
    (void)state;
    arena_init(&a, 0);
    assert_string_equal(wxv3_beijing_time(&a, "2026-11-24T20:15:00+08:00"), "2026-11-24 20:15:00");
    assert_null(wxv3_beijing_time(&a, NULL));
    assert_null(wxv3_beijing_time(&a, "2026-11-24T12:15:00Z"));            /* not Beijing: dropped */
    assert_null(wxv3_beijing_time(&a, "2026-11-24T20:15:00+09:00"));
    assert_null(wxv3_beijing_time(&a, "2026-11-24T20:15:00.123+08:00"));
    assert_null(wxv3_beijing_time(&a, "2026-11-24 20:15:00+08:00"));
    arena_free(&a);
}

/* ------------------------------------------------------------------ */
/* calls, against a one-shot fake gateway that answers a raw response  */

typedef struct fake_v3 {
    pid_t pid;
    int port, pipe_rd;
} fake_v3_t;

static void fake_v3_child(int lfd, int wfd, const char *response)
{
    char req[65536];
    size_t have = 0, need = 0;
    const char *eoh = NULL;
    int cfd;

    alarm(10);
    cfd = accept(lfd, NULL, NULL);
    if (cfd < 0)
        _exit(2);
    while (have < sizeof req - 1) {
        ssize_t n = read(cfd, req + have, sizeof req - 1 - have);
        if (n <= 0)
            break;
        have += (size_t)n;
        req[have] = '\0';
        if (eoh == NULL && (eoh = strstr(req, "\r\n\r\n")) != NULL) {
            const char *cl = strcasestr(req, "\r\ncontent-length:");
            need = (size_t)(eoh - req) + 4 + (cl != NULL ? strtoul(cl + 17, NULL, 10) : 0);
        }
        if (eoh != NULL && have >= need)
            break;
    }
    if (write(wfd, req, have) != (ssize_t)have || write(cfd, response, strlen(response)) < 0)
        _exit(3);
    close(wfd);
    shutdown(cfd, SHUT_WR);
    close(cfd);
    _exit(0);
}

static void fake_v3_start(fake_v3_t *f, const char *response)
{
    struct sockaddr_in sa;
    socklen_t sl = sizeof sa;
    int lfd = socket(AF_INET, SOCK_STREAM, 0), fds[2];

    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_true(lfd >= 0 && bind(lfd, (struct sockaddr *)&sa, sizeof sa) == 0 && listen(lfd, 1) == 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &sl), 0);
    assert_int_equal(pipe(fds), 0);
    f->port = ntohs(sa.sin_port);
    f->pid = fork();
    assert_true(f->pid >= 0);
    if (f->pid == 0) {
        close(fds[0]);
        fake_v3_child(lfd, fds[1], response);
    }
    close(lfd);
    close(fds[1]);
    f->pipe_rd = fds[0];
}

/* The request the fake received (arena copy). */
static char *fake_v3_finish(fake_v3_t *f, arena_t *a)
{
    buf_t got;
    char chunk[4096];
    ssize_t n;
    int status = 0;

    buf_init(&got, a);
    while ((n = read(f->pipe_rd, chunk, sizeof chunk)) > 0)
        buf_append(&got, chunk, (size_t)n);
    close(f->pipe_rd);
    waitpid(f->pid, &status, 0);
    return got.data;
}

/* A raw HTTP response: status, the vector's Wechatpay-* headers (unless
 * vector is NULL), extra header lines, the body (the vector's unless given). */
static char *raw_response(arena_t *a, int status, const char *vector, const char *extra, const char *body)
{
    buf_t r;
    if (body == NULL)
        body = vector != NULL ? vs(vector, "body") : "";
    buf_init(&r, a);
    buf_printf(&r, "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
               "Connection: close\r\n", status, strlen(body));
    if (vector != NULL)
        buf_printf(&r, "Wechatpay-Timestamp: %s\r\nWechatpay-Nonce: %s\r\nWechatpay-Signature: %s\r\n"
                   "Wechatpay-Serial: %s\r\n", vs(vector, "timestamp"), vs(vector, "nonce"),
                   vs(vector, "signature"), vs(vector, "serial"));
    buf_printf(&r, "%s\r\n%s", extra != NULL ? extra : "", body);
    return r.data;
}

static wxv3_client_t call_client(arena_t *a, const fake_v3_t *f)
{
    wxv3_client_t c = client();
    c.gateway = arena_printf(a, "http://127.0.0.1:%d", f->port);
    c.http.connect_timeout_ms = 2000;
    c.http.total_timeout_ms = 4000;
    return c;
}

/* The Authorization header of a captured request verifies with the
 * merchant certificate over what was actually sent. */
static void assert_request_signed(arena_t *a, const char *req, const char *method, const char *path)
{
    const char *auth = strstr(req, "\r\nAuthorization: WECHATPAY2-SHA256-RSA2048 ");
    const char *body = strstr(req, "\r\n\r\n") + 4;
    char nonce[65] = "", sig[700] = "", ts[24] = "", serial[80] = "";
    buf_t msg;

    assert_non_null(auth);
    assert_non_null(strstr(req, "\r\nAccept: application/json\r\n"));
    assert_int_equal(strncmp(req, method, strlen(method)), 0);
    assert_int_equal(sscanf(auth, "\r\nAuthorization: WECHATPAY2-SHA256-RSA2048 mchid=\"1900009191\","
                                  "nonce_str=\"%64[^\"]\",signature=\"%699[^\"]\",timestamp=\"%23[^\"]\","
                                  "serial_no=\"%79[^\"]\"", nonce, sig, ts, serial), 4);
    assert_string_equal(serial, g_merchant_serial);
    assert_string_equal(ts, "1795522500");
    assert_int_equal(strlen(nonce), 32);
    buf_init(&msg, a);
    buf_printf(&msg, "%s\n%s\n%s\n%s\n%s\n", method, path, ts, nonce, body);
    crypto_key_t *cert = load_key("merchant_cert.pem", 0);
    assert_int_equal(crypto_rsa_sha256_verify_b64(cert, msg.data, msg.len, sig), PG_OK);
    crypto_key_free(cert);
}

static void test_call_prepay_query_close(void **state)
{
    char code[WXV3_CODE_MAX];
    wxv3_prepay_t p;
    wxv3_transaction_t t;
    wxv3_order_t o;
    fake_v3_t f;
    wxv3_client_t c;
    arena_t a;
    buf_t err;
    char *req;
    (void)state;

    arena_init(&a, 0);
    buf_init(&err, &a);
    memset(&o, 0, sizeof o);
    o.kind = WXV3_NATIVE;
    o.out_trade_no = "P4a9cK2mZq8Xw3Rt";
    o.description = "课程：C 语言入门";
    o.total_fen = 9900;
    o.expires_at = g_now + 900;
    fake_v3_start(&f, raw_response(&a, 200, "reply_native_pubkey", NULL, NULL));
    c = call_client(&a, &f);
    assert_int_equal(wxv3_prepay(&a, &c, &o, g_now, &p, code, &err), PG_OK);
    assert_string_equal(p.code_url, "weixin://wxpay/bizpayurl?pr=p4lpSuKzz");
    req = fake_v3_finish(&f, &a);
    assert_request_signed(&a, req, "POST", "/v3/pay/transactions/native");
    assert_non_null(strstr(req, "\r\nContent-Type: application/json\r\n"));
    assert_non_null(strstr(req, vs("request_post", "body")));

    fake_v3_start(&f, raw_response(&a, 200, "reply_query_ok", NULL, NULL));
    c = call_client(&a, &f);
    assert_int_equal(wxv3_query(&a, &c, "P4a9cK2mZq8Xw3Rt", g_now, &t, code, &err), PG_OK);
    assert_string_equal(t.trade_state, "SUCCESS");
    assert_int_equal(t.total_fen, 9900);
    req = fake_v3_finish(&f, &a);
    assert_request_signed(&a, req, "GET", "/v3/pay/transactions/out-trade-no/P4a9cK2mZq8Xw3Rt?mchid=1900009191");

    /* the reply is about another trade */
    fake_v3_start(&f, raw_response(&a, 200, "reply_query_ok", NULL, NULL));
    c = call_client(&a, &f);
    assert_int_equal(wxv3_query(&a, &c, "P4a9cK2mZq8Xw3Ru", g_now, &t, code, &err), PG_ERR_MISMATCH);
    fake_v3_finish(&f, &a);

    fake_v3_start(&f, raw_response(&a, 204, "reply_close_204", NULL, NULL));
    c = call_client(&a, &f);
    assert_int_equal(wxv3_close(&a, &c, "P4a9cK2mZq8Xw3Rt", g_now, code, &err), PG_OK);
    req = fake_v3_finish(&f, &a);
    assert_request_signed(&a, req, "POST", "/v3/pay/transactions/out-trade-no/P4a9cK2mZq8Xw3Rt/close");

    fake_v3_start(&f, raw_response(&a, 400, NULL, NULL, "{\"code\":\"ORDERPAID\",\"message\":\"paid\"}"));
    c = call_client(&a, &f);
    assert_int_equal(wxv3_close(&a, &c, "P4a9cK2mZq8Xw3Rt", g_now, code, &err), PG_ERR_CONFLICT);
    assert_string_equal(code, "ORDERPAID");
    fake_v3_finish(&f, &a);

    fake_v3_start(&f, raw_response(&a, 404, NULL, NULL, "{\"code\":\"ORDER_NOT_EXIST\",\"message\":\"x\"}"));
    c = call_client(&a, &f);
    assert_int_equal(wxv3_query(&a, &c, "P4a9cK2mZq8Xw3Rt", g_now, &t, code, &err), PG_ERR_NOT_FOUND);
    fake_v3_finish(&f, &a);
    arena_free(&a);
}

static void test_call_reply_signature_is_required(void **state)
{
    char code[WXV3_CODE_MAX];
    wxv3_prepay_t p;
    wxv3_order_t o;
    fake_v3_t f;
    wxv3_client_t c;
    arena_t a;
    buf_t err;
    (void)state;

    arena_init(&a, 0);
    buf_init(&err, &a);
    memset(&o, 0, sizeof o);
    o.kind = WXV3_NATIVE;
    o.out_trade_no = "P4a9cK2mZq8Xw3Rt";
    o.description = "d";
    o.total_fen = 1;
    /* no signature headers */
    fake_v3_start(&f, raw_response(&a, 200, NULL, NULL, vs("reply_native_pubkey", "body")));
    c = call_client(&a, &f);
    assert_int_equal(wxv3_prepay(&a, &c, &o, g_now, &p, code, &err), PG_ERR_BAD_SIGNATURE);
    assert_null(p.code_url);
    fake_v3_finish(&f, &a);
    /* a second Wechatpay-Signature header: refused, whichever came first */
    fake_v3_start(&f, raw_response(&a, 200, "reply_native_pubkey",
                                   "Wechatpay-Signature: AAAA\r\n", NULL));
    c = call_client(&a, &f);
    assert_int_equal(wxv3_prepay(&a, &c, &o, g_now, &p, code, &err), PG_ERR_BAD_SIGNATURE);
    fake_v3_finish(&f, &a);
    /* the headers of one reply on the body of another */
    fake_v3_start(&f, raw_response(&a, 200, "reply_native_pubkey", NULL, "{\"code_url\":\"weixin://evil\"}"));
    c = call_client(&a, &f);
    assert_int_equal(wxv3_prepay(&a, &c, &o, g_now, &p, code, &err), PG_ERR_BAD_SIGNATURE);
    fake_v3_finish(&f, &a);
    /* headers in another case are still read */
    fake_v3_start(&f, "HTTP/1.1 200 X\r\nContent-Length: 0\r\nConnection: close\r\n"
                      "WECHATPAY-TIMESTAMP: 1\r\n\r\n");
    c = call_client(&a, &f);
    assert_int_equal(wxv3_close(&a, &c, "P4a9cK2mZq8Xw3Rt", g_now, code, &err), PG_ERR_BAD_SIGNATURE);
    fake_v3_finish(&f, &a);
    arena_free(&a);
}

static void test_call_refund_outcomes(void **state)
{
    char code[WXV3_CODE_MAX];
    wxv3_refund_t r;
    wxv3_refund_req_t req;
    fake_v3_t f;
    wxv3_client_t c;
    arena_t a;
    buf_t err;
    (void)state;

    arena_init(&a, 0);
    buf_init(&err, &a);
    memset(&req, 0, sizeof req);
    req.out_trade_no = "P4a9cK2mZq8Xw3Rt";
    req.out_refund_no = "R7hQ2mXc9LpZ4sVb";
    req.total_fen = 9900;
    req.refund_fen = 3300;
    fake_v3_start(&f, raw_response(&a, 200, "reply_refund_ok", NULL, NULL));
    c = call_client(&a, &f);
    assert_int_equal(wxv3_refund(&a, &c, &req, g_now, &r, code, &err), PG_OK);
    assert_string_equal(r.status, "PROCESSING");
    assert_int_equal(r.refund_fen, 3300);
    fake_v3_finish(&f, &a);
    /* refused: nothing happened */
    fake_v3_start(&f, raw_response(&a, 403, NULL, NULL, "{\"code\":\"NOT_ENOUGH\",\"message\":\"x\"}"));
    c = call_client(&a, &f);
    assert_int_equal(wxv3_refund(&a, &c, &req, g_now, &r, code, &err), PG_ERR_CONFLICT);
    assert_string_equal(code, "NOT_ENOUGH");
    fake_v3_finish(&f, &a);
    /* unknown outcome: 429, 500, an unsigned 200, another refund's reply */
    fake_v3_start(&f, raw_response(&a, 429, NULL, NULL, "{\"code\":\"FREQUENCY_LIMITED\",\"message\":\"x\"}"));
    c = call_client(&a, &f);
    assert_int_equal(wxv3_refund(&a, &c, &req, g_now, &r, code, &err), PG_ERR_TIMEOUT);
    fake_v3_finish(&f, &a);
    fake_v3_start(&f, raw_response(&a, 500, NULL, NULL, "{\"code\":\"SYSTEM_ERROR\",\"message\":\"x\"}"));
    c = call_client(&a, &f);
    assert_int_equal(wxv3_refund(&a, &c, &req, g_now, &r, code, &err), PG_ERR_TIMEOUT);
    fake_v3_finish(&f, &a);
    fake_v3_start(&f, raw_response(&a, 200, NULL, NULL, vs("reply_refund_ok", "body")));
    c = call_client(&a, &f);
    assert_int_equal(wxv3_refund(&a, &c, &req, g_now, &r, code, &err), PG_ERR_TIMEOUT);
    assert_null(r.refund_id);
    fake_v3_finish(&f, &a);
    req.out_refund_no = "R7hQ2mXc9LpZ4sVc";
    fake_v3_start(&f, raw_response(&a, 200, "reply_refund_ok", NULL, NULL));
    c = call_client(&a, &f);
    assert_int_equal(wxv3_refund(&a, &c, &req, g_now, &r, code, &err), PG_ERR_TIMEOUT);
    fake_v3_finish(&f, &a);
    /* nothing listens: connection refused is an unknown outcome too */
    c = client();
    c.gateway = "http://127.0.0.1:1";
    assert_int_equal(wxv3_refund(&a, &c, &req, g_now, &r, code, &err), PG_ERR_TIMEOUT);
    /* the query: found, not found */
    req.out_refund_no = "R7hQ2mXc9LpZ4sVb";
    fake_v3_start(&f, raw_response(&a, 200, "reply_refund_ok", NULL, NULL));
    c = call_client(&a, &f);
    assert_int_equal(wxv3_refund_query(&a, &c, "R7hQ2mXc9LpZ4sVb", g_now, &r, code, &err), PG_OK);
    assert_string_equal(r.refund_id, "50300000382026112400000000001");
    fake_v3_finish(&f, &a);
    fake_v3_start(&f, raw_response(&a, 404, NULL, NULL, "{\"code\":\"RESOURCE_NOT_EXISTS\",\"message\":\"x\"}"));
    c = call_client(&a, &f);
    assert_int_equal(wxv3_refund_query(&a, &c, "R7hQ2mXc9LpZ4sVb", g_now, &r, code, &err), PG_ERR_NOT_FOUND);
    fake_v3_finish(&f, &a);
    arena_free(&a);
}

static void test_call_certificates(void **state)
{
    wxv3_cert_entry_t *certs;
    size_t n;
    fake_v3_t f;
    wxv3_client_t c;
    arena_t a;
    buf_t err;
    (void)state;

    arena_init(&a, 0);
    buf_init(&err, &a);
    fake_v3_start(&f, raw_response(&a, 200, "reply_certificates", NULL, NULL));
    c = call_client(&a, &f);
    assert_int_equal(wxv3_fetch_certificates(&a, &c, g_now, &certs, &n, &err), PG_OK);
    assert_int_equal(n, 1);
    assert_string_equal(certs[0].serial_no, g_platform_serial);
    assert_request_signed(&a, fake_v3_finish(&f, &a), "GET", "/v3/certificates");
    arena_free(&a);
}

/* ------------------------------------------------------------------ */
/* platform certificate store                                          */

static char *temp_dir(arena_t *a)
{
    char *d = arena_strdup(a, "/tmp/paygate-wxv3-XXXXXX");
    assert_non_null(mkdtemp(d));
    return d;
}

static void remove_dir(const char *d)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
    assert_int_equal(system(cmd), 0);
}

/* Platform-certificate mode from nothing: the first fetch is verified with
 * the certificate it brings (authenticated by the api_v3_key), kept on disk
 * under its serial, found again by a new store. */
static void test_certstore_first_fetch_and_reload(void **state)
{
    wxv3_certstore_t s, again;
    wxv3_client_t c;
    fake_v3_t f;
    arena_t a;
    buf_t err;
    char path[512], *want, *got;
    size_t got_len;
    char *dir;
    (void)state;

    arena_init(&a, 0);
    buf_init(&err, &a);
    dir = temp_dir(&a);
    assert_int_equal(wxv3_certstore_open(&s, dir, &err), PG_OK);
    assert_int_equal(s.count, 0);
    assert_true(wxv3_certstore_due(&s, g_now));
    fake_v3_start(&f, raw_response(&a, 200, "reply_certificates_platform", NULL, NULL));
    c = call_client(&a, &f);
    c.pubkey_id = NULL;
    c.pubkey = NULL;
    c.platform = NULL;
    c.platform_count = 0;
    assert_int_equal(wxv3_certstore_refresh(&s, &a, &c, g_now, &err), PG_OK);
    fake_v3_finish(&f, &a);
    assert_int_equal(s.count, 1);
    assert_false(wxv3_certstore_due(&s, g_now));
    assert_true(wxv3_certstore_due(&s, g_now + WXV3_CERTS_REFRESH_S));
    assert_int_equal(c.platform_count, 1);
    assert_string_equal(c.platform[0].serial, g_platform_serial);
    snprintf(path, sizeof path, "%s/%s.pem", dir, g_platform_serial);
    want = slurp("platform_cert.pem", NULL);
    got = read_whole(&a, path, &got_len);
    assert_string_equal(got, want);
    free(want);
    /* the kept certificate verifies what the platform key signed */
    assert_int_equal(verify_vector(&c, "reply_native_platform"), PG_OK);
    assert_int_equal(wxv3_certstore_open(&again, dir, &err), PG_OK);
    assert_int_equal(again.count, 1);
    wxv3_certstore_attach(&again, &c, g_now);
    assert_int_equal(verify_vector(&c, "reply_native_platform"), PG_OK);
    /* not valid yet / any more: not handed out */
    wxv3_certstore_attach(&again, &c, (time_t)1735689599);
    assert_int_equal(c.platform_count, 0);
    wxv3_certstore_close(&again);
    wxv3_certstore_close(&s);
    remove_dir(dir);
    arena_free(&a);
}

static void test_certstore_refusals(void **state)
{
    wxv3_certstore_t s;
    wxv3_client_t c;
    fake_v3_t f;
    arena_t a;
    buf_t err;
    char path[512], *dir, *pem;
    FILE *fp;
    (void)state;

    arena_init(&a, 0);
    buf_init(&err, &a);
    dir = temp_dir(&a);
    /* a first fetch signed under a serial that is not in the reply */
    assert_int_equal(wxv3_certstore_open(&s, dir, &err), PG_OK);
    fake_v3_start(&f, raw_response(&a, 200, "reply_certificates", NULL, NULL));   /* PUB_KEY_ID_ */
    c = call_client(&a, &f);
    c.pubkey_id = NULL;
    c.pubkey = NULL;
    assert_int_equal(wxv3_certstore_refresh(&s, &a, &c, g_now, &err), PG_ERR_BAD_SIGNATURE);
    fake_v3_finish(&f, &a);
    assert_int_equal(s.count, 0);
    /* a reply body that is not the one signed (the certificate inside still decrypts) */
    fake_v3_start(&f, raw_response(&a, 200, "reply_certificates_platform", NULL,
                                   replace_once(&a, vs("reply_certificates", "body"), "2031-11-24", "2031-11-25")));
    c = call_client(&a, &f);
    c.pubkey_id = NULL;
    c.pubkey = NULL;
    c.platform_count = 0;
    assert_int_equal(wxv3_certstore_refresh(&s, &a, &c, g_now, &err) == PG_OK, 0);
    fake_v3_finish(&f, &a);
    assert_int_equal(s.count, 0);
    wxv3_certstore_close(&s);
    /* a file filed under another serial is a configuration error */
    snprintf(path, sizeof path, "%s/0A1B2C.pem", dir);
    fp = fopen(path, "w");
    assert_non_null(fp);
    pem = slurp("platform_cert.pem", NULL);
    fputs(pem, fp);
    fclose(fp);
    free(pem);
    assert_int_equal(wxv3_certstore_open(&s, dir, &err), PG_ERR_CONFIG);
    assert_int_equal(s.count, 0);
    remove_dir(dir);
    assert_int_equal(wxv3_certstore_open(&s, "/nonexistent/dir", &err), PG_ERR_CONFIG);
    arena_free(&a);
}

/* An unknown serial triggers one refresh, then the check is made again;
 * a second unknown serial within WXV3_CERTS_RETRY_S triggers none. */
static void test_certstore_verify_refreshes_once(void **state)
{
    wxv3_certstore_t s;
    wxv3_client_t c;
    wxv3_sig_headers_t h = headers_of("reply_native_platform");
    const char *body = vs("reply_native_platform", "body");
    fake_v3_t f;
    arena_t a;
    buf_t err;
    char *dir;
    (void)state;

    arena_init(&a, 0);
    buf_init(&err, &a);
    dir = temp_dir(&a);
    assert_int_equal(wxv3_certstore_open(&s, dir, &err), PG_OK);
    fake_v3_start(&f, raw_response(&a, 200, "reply_certificates", NULL, NULL));   /* signed in public-key mode */
    c = call_client(&a, &f);
    c.platform = NULL;
    c.platform_count = 0;
    assert_int_equal(wxv3_certstore_verify(&s, &a, &c, &h, body, strlen(body), g_now, &err), PG_OK);
    fake_v3_finish(&f, &a);
    assert_int_equal(s.count, 1);
    /* within the retry window: no call (nothing listens there now) */
    h.serial = "0A1B2C3D4E5F60718293A4B5C6D7E8F901234568";
    assert_int_equal(wxv3_certstore_verify(&s, &a, &c, &h, body, strlen(body), g_now + 10, &err),
                     PG_ERR_NOT_FOUND);
    assert_int_equal(s.last_attempt, g_now);   /* no second fetch was tried */
    wxv3_certstore_close(&s);
    remove_dir(dir);
    arena_free(&a);
}

/* ------------------------------------------------------------------ */
/* against the sandbox's v3 side (run by tests/integration/              */
/* test_sandbox_wechat_v3.py with PAYGATE_WXV3_SANDBOX=base URL and       */
/* PAYGATE_WXV3_STATE=its state dir; skipped otherwise)                   */

static char *sandbox_file(arena_t *a, const char *state, const char *name, size_t *len)
{
    char path[512];
    FILE *fp;
    buf_t b;
    char chunk[4096];
    size_t n;

    snprintf(path, sizeof path, "%s/%s", state, name);
    fp = fopen(path, "rb");
    assert_non_null(fp);
    buf_init(&b, a);
    while ((n = fread(chunk, 1, sizeof chunk, fp)) > 0)
        buf_append(&b, chunk, n);
    fclose(fp);
    *len = b.len;
    return b.data;
}

static void sandbox_pay(arena_t *a, const char *base, const char *out_trade_no)
{
    httpc_response_t resp;
    buf_t err;
    char *body = arena_printf(a, "{\"out_trade_no\":\"%s\"}", out_trade_no);
    buf_init(&err, a);
    assert_int_equal(httpc_post(a, arena_printf(a, "%s/_sandbox/wechat/pay", base), "application/json",
                                body, strlen(body), NULL, &resp, &err), PG_OK);
    assert_int_equal(resp.status, 200);
}

/* WeChat closes no order within 5 minutes of its creation: the sandbox's
 * clock for this trade moves 400 s back. */
static void sandbox_age(arena_t *a, const char *base, const char *out_trade_no)
{
    httpc_response_t resp;
    buf_t err;
    char *body = arena_printf(a, "{\"out_trade_no\":\"%s\",\"seconds\":400}", out_trade_no);
    buf_init(&err, a);
    assert_int_equal(httpc_post(a, arena_printf(a, "%s/_sandbox/wechat/age", base), "application/json",
                                body, strlen(body), NULL, &resp, &err), PG_OK);
    assert_int_equal(resp.status, 200);
}

static void test_calls_against_the_sandbox(void **state)
{
    const char *base = getenv("PAYGATE_WXV3_SANDBOX"), *dir = getenv("PAYGATE_WXV3_STATE");
    char serial[CRYPTO_X509_SERIAL_MAX + 1], pserial[CRYPTO_X509_SERIAL_MAX + 1], code[WXV3_CODE_MAX];
    crypto_key_t *mkey = NULL, *pub = NULL, *plat = NULL;
    wxv3_platform_key_t map[1];
    wxv3_client_t c;
    wxv3_order_t o;
    wxv3_prepay_t p;
    wxv3_transaction_t t;
    wxv3_refund_req_t rr;
    wxv3_refund_t r;
    wxv3_cert_entry_t *certs;
    size_t n, len;
    char *pem, *no;
    arena_t a;
    buf_t err;
    (void)state;

    if (base == NULL || dir == NULL)
        skip();
    arena_init(&a, 0);
    buf_init(&err, &a);
    pem = sandbox_file(&a, dir, "wechat_apiclient_key.pem", &len);
    assert_int_equal(crypto_key_parse_private(pem, len, &mkey, &err), PG_OK);
    pem = sandbox_file(&a, dir, "wechat_apiclient_cert.pem", &len);
    assert_int_equal(crypto_x509_serial_hex(pem, len, serial, &err), PG_OK);
    pem = sandbox_file(&a, dir, "wechatpay_pub_key.pem", &len);
    assert_int_equal(crypto_key_parse_public(pem, len, &pub, &err), PG_OK);
    pem = sandbox_file(&a, dir, "wechatpay_platform_cert.pem", &len);
    assert_int_equal(crypto_key_parse_public(pem, len, &plat, &err), PG_OK);
    assert_int_equal(crypto_x509_serial_hex(pem, len, pserial, &err), PG_OK);
    map[0].serial = pserial;
    map[0].key = plat;
    memset(&c, 0, sizeof c);
    c.appid = "wx2421b1c4370ec43b";
    c.mchid = "1900000109";
    c.mch_serial_no = serial;
    c.mch_key = mkey;
    c.api_v3_key = "sandboxV3sandboxV3sandboxV3key32";
    c.notify_url = "http://127.0.0.1:9/notify/wechat";
    c.pubkey_id = "PUB_KEY_ID_0119000001092026120700000000000001";
    c.pubkey = pub;
    c.platform = map;
    c.platform_count = 1;
    c.gateway = base;

    no = arena_printf(&a, "v3c%ld", (long)getpid());
    memset(&o, 0, sizeof o);
    o.kind = WXV3_NATIVE;
    o.out_trade_no = no;
    o.description = "课程 C";
    o.total_fen = 4321;
    o.expires_at = time(NULL) + 900;
    assert_int_equal(wxv3_prepay(&a, &c, &o, time(NULL), &p, code, &err), PG_OK);
    assert_non_null(strstr(p.code_url, "weixin://wxpay/bizpayurl?pr="));
    assert_int_equal(wxv3_query(&a, &c, no, time(NULL), &t, code, &err), PG_OK);
    assert_string_equal(t.trade_state, "NOTPAY");
    sandbox_pay(&a, base, no);
    assert_int_equal(wxv3_query(&a, &c, no, time(NULL), &t, code, &err), PG_OK);
    assert_string_equal(t.trade_state, "SUCCESS");
    assert_int_equal(t.total_fen, 4321);
    assert_non_null(t.transaction_id);

    memset(&rr, 0, sizeof rr);
    rr.out_trade_no = no;
    rr.out_refund_no = arena_printf(&a, "%sr", no);
    rr.total_fen = 4321;
    rr.refund_fen = 321;
    rr.reason = "退款";
    assert_int_equal(wxv3_refund(&a, &c, &rr, time(NULL), &r, code, &err), PG_OK);
    assert_string_equal(r.status, "PROCESSING");
    rr.refund_fen = 4321;   /* more than is left (4000): refused by WeChat, nothing happened */
    rr.out_refund_no = arena_printf(&a, "%sx", no);
    assert_int_equal(wxv3_refund(&a, &c, &rr, time(NULL), &r, code, &err), PG_ERR_CONFLICT);
    assert_string_equal(code, "INVALID_REQUEST");
    for (int i = 0; i < 50; i++) {
        assert_int_equal(wxv3_refund_query(&a, &c, arena_printf(&a, "%sr", no), time(NULL), &r, code, &err), PG_OK);
        if (strcmp(r.status, "SUCCESS") == 0)
            break;
        usleep(100000);
    }
    assert_string_equal(r.status, "SUCCESS");
    assert_int_equal(wxv3_refund_query(&a, &c, arena_printf(&a, "%sz", no), time(NULL), &r, code, &err),
                     PG_ERR_NOT_FOUND);

    o.out_trade_no = arena_printf(&a, "%sj", no);
    o.kind = WXV3_JSAPI;
    o.openid = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o";
    assert_int_equal(wxv3_prepay(&a, &c, &o, time(NULL), &p, code, &err), PG_OK);
    assert_non_null(p.prepay_id);
    o.out_trade_no = arena_printf(&a, "%sh", no);
    o.kind = WXV3_H5;
    o.payer_client_ip = "203.0.113.9";
    assert_int_equal(wxv3_prepay(&a, &c, &o, time(NULL), &p, code, &err), PG_OK);
    assert_non_null(strstr(p.h5_url, "/wechat/mweb?prepay_id="));
    assert_int_equal(wxv3_close(&a, &c, o.out_trade_no, time(NULL), code, &err), PG_ERR_UPSTREAM);  /* too early */
    sandbox_age(&a, base, o.out_trade_no);
    assert_int_equal(wxv3_close(&a, &c, o.out_trade_no, time(NULL), code, &err), PG_OK);
    assert_int_equal(wxv3_close(&a, &c, no, time(NULL), code, &err), PG_ERR_CONFLICT);   /* paid */

    assert_int_equal(wxv3_fetch_certificates(&a, &c, time(NULL), &certs, &n, &err), PG_OK);
    assert_int_equal(n, 1);
    assert_string_equal(certs[0].serial_no, pserial);
    /* a client that signs with another key is refused by the sandbox */
    c.mch_key = g_other;
    assert_int_equal(wxv3_query(&a, &c, no, time(NULL), &t, code, &err), PG_ERR_UPSTREAM);
    assert_string_equal(code, "SIGN_ERROR");
    crypto_key_free(mkey);
    crypto_key_free(pub);
    crypto_key_free(plat);
    arena_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_serial_is_what_openssl_prints),
        cmocka_unit_test(test_validity_is_what_openssl_prints),
        cmocka_unit_test(test_sign_request_matches_npm_vectors),
        cmocka_unit_test(test_sign_request_matches_openssl),
        cmocka_unit_test(test_sign_request_refusals),
        cmocka_unit_test(test_build_prepay_native_is_the_signed_vector),
        cmocka_unit_test(test_build_prepay_jsapi_h5_and_refusals),
        cmocka_unit_test(test_description_cut_at_utf8_boundary),
        cmocka_unit_test(test_jsapi_pay_sign_matches_npm),
        cmocka_unit_test(test_build_query_close_refund),
        cmocka_unit_test(test_verify_both_modes),
        cmocka_unit_test(test_verify_refusals),
        cmocka_unit_test(test_decrypt_npm_resources),
        cmocka_unit_test(test_payment_notification),
        cmocka_unit_test(test_refund_notification),
        cmocka_unit_test(test_notification_envelope_refusals),
        cmocka_unit_test(test_replies),
        cmocka_unit_test(test_certificates),
        cmocka_unit_test(test_ack_and_time),
        cmocka_unit_test(test_call_prepay_query_close),
        cmocka_unit_test(test_call_reply_signature_is_required),
        cmocka_unit_test(test_call_refund_outcomes),
        cmocka_unit_test(test_call_certificates),
        cmocka_unit_test(test_certstore_first_fetch_and_reload),
        cmocka_unit_test(test_beijing_time),
        cmocka_unit_test(test_certstore_refusals),
        cmocka_unit_test(test_certstore_verify_refreshes_once),
        cmocka_unit_test(test_calls_against_the_sandbox),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
