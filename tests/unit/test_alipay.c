/* Alipay adapter tests. Expected signatures and signed bodies come from
 * tests/fixtures/alipay/make_fixtures.sh (openssl CLI), never from our own
 * signing code. Server calls (query, close, refund, refund query) run
 * against a one-shot fake gateway on loopback (forked child) that serves
 * those fixtures, so the whole call path is exercised without a network.
 * Run with cwd tests/unit. */
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
#include <jansson.h>

#include "alipay.h"
#include "httpc.h"
#include "money.h"
#include "fake_gw.h"

#define FIX "../fixtures/alipay/"
#define FIXED_NOW ((time_t)1795522500)   /* 2026-11-24 12:15:00 UTC */

static crypto_key_t *g_app_priv, *g_app_pub, *g_ali_pub, *g_ali_pub_bare;

/* The request string to sign for the page.pay fixture, written by hand. */
static const char PAGE_PAY_STRING[] =
    "app_id=2021004100000001"
    "&biz_content={\"out_trade_no\":\"PG20261124201500A1B2\",\"total_amount\":\"99.00\","
    "\"subject\":\"C\xe8\xaf\xad\xe8\xa8\x80 - \\\"\xe5\x85\xa5\xe9\x97\xa8\\\" {\xe8\xaf\xbe\xe7\xa8\x8b}\","
    "\"product_code\":\"FAST_INSTANT_TRADE_PAY\",\"time_expire\":\"2026-11-24 20:30:00\"}"
    "&charset=utf-8&format=JSON&method=alipay.trade.page.pay"
    "&notify_url=https://shop.example.com/paygate/notify/alipay"
    "&return_url=https://shop.example.com/paygate/return/alipay?shop=c&lang=zh"
    "&sign_type=RSA2&timestamp=2026-11-24 20:15:00&version=1.0";

static const char SUBJECT[] =
    "C\xe8\xaf\xad\xe8\xa8\x80 - \"\xe5\x85\xa5\xe9\x97\xa8\" {\xe8\xaf\xbe\xe7\xa8\x8b}";

/* ------------------------------------------------------------------ */
/* helpers                                                             */

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

static crypto_key_t *load_key(const char *path, int is_private)
{
    crypto_key_t *k = NULL;
    buf_t err;
    pg_err rc;

    buf_init(&err, NULL);
    rc = is_private ? crypto_key_load_private(path, &k, &err) : crypto_key_load_public(path, &k, &err);
    if (rc != PG_OK)
        fail_msg("loading %s: %s", path, err.data);
    buf_free(&err);
    return k;
}

static int group_setup(void **state)
{
    arena_t a;
    size_t n;
    char *bare;
    buf_t err;

    (void)state;
    httpc_global_init();
    g_app_priv = load_key(FIX "app_private.pem", 1);
    g_app_pub = load_key(FIX "app_public.pem", 0);
    g_ali_pub = load_key(FIX "alipay_public.pem", 0);
    arena_init(&a, 0);
    buf_init(&err, &a);
    bare = read_file(&a, FIX "alipay_public_bare.txt", &n);
    if (crypto_key_parse_public(bare, n, &g_ali_pub_bare, &err) != PG_OK)
        fail_msg("bare key: %s", err.data);
    arena_free(&a);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    crypto_key_free(g_app_priv);
    crypto_key_free(g_app_pub);
    crypto_key_free(g_ali_pub);
    crypto_key_free(g_ali_pub_bare);
    httpc_global_cleanup();
    return 0;
}

static alipay_client_t client(void)
{
    alipay_client_t c;
    memset(&c, 0, sizeof c);
    c.app_id = "2021004100000001";
    c.gateway = "https://openapi-sandbox.dl.alipaydev.com/gateway.do";
    c.seller_id = NULL;
    c.notify_url = "https://shop.example.com/paygate/notify/alipay";
    c.return_url = "https://shop.example.com/paygate/return/alipay?shop=c&lang=zh";
    c.app_private_key = g_app_priv;
    c.alipay_public_key = g_ali_pub;
    c.http.connect_timeout_ms = 500;
    c.http.total_timeout_ms = 1000;
    return c;
}

static alipay_trade_t page_trade(void)
{
    alipay_trade_t t;
    memset(&t, 0, sizeof t);
    t.out_trade_no = "PG20261124201500A1B2";
    t.amount_fen = 9900;
    t.subject = SUBJECT;
    t.expires_at = FIXED_NOW + 900;
    return t;
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

static void parse_form(arena_t *a, const char *body, kv_list_t *l)
{
    kv_init(l, a);
    assert_int_equal(form_parse(body, strlen(body), l), PG_OK);
}

static void load_form(arena_t *a, const char *name, kv_list_t *l)
{
    char path[256];
    snprintf(path, sizeof path, FIX "%s", name);
    parse_form(a, read_file(a, path, NULL), l);
}

/* True when `pair` appears in url as a whole parameter. */
static int url_has_param(const char *url, const char *pair)
{
    size_t n = strlen(pair);
    const char *p = url;
    while ((p = strstr(p, pair)) != NULL) {
        if ((p > url && (p[-1] == '?' || p[-1] == '&')) && (p[n] == '\0' || p[n] == '&'))
            return 1;
        p++;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* time and string to sign                                             */

static void test_format_time_is_beijing_whatever_tz(void **state)
{
    char out[20];
    (void)state;
    setenv("TZ", "America/New_York", 1);
    tzset();
    alipay_format_time(FIXED_NOW, out);
    assert_string_equal(out, "2026-11-24 20:15:00");
    alipay_format_time(0, out);
    assert_string_equal(out, "1970-01-01 08:00:00");
    alipay_format_time((time_t)1798761599, out);   /* 2026-12-31 23:59:59 UTC */
    assert_string_equal(out, "2027-01-01 07:59:59");
    unsetenv("TZ");
    tzset();
}

static void test_sign_content_sorts_bytewise_and_drops_sign_and_empty(void **state)
{
    arena_t a;
    kv_list_t l;
    buf_t out;
    (void)state;
    arena_init(&a, 0);
    kv_init(&l, &a);
    kv_add(&l, "b", "2");
    kv_add(&l, "a_b", "u");
    kv_add(&l, "sign", "SIG");
    kv_add(&l, "aB", "x");
    kv_add(&l, "a", "1");
    kv_add(&l, "empty", "");
    kv_add(&l, "sign_type", "RSA2");
    kv_add(&l, "Z", "cap");

    buf_init(&out, &a);
    assert_int_equal(alipay_sign_content(&l, false, &out), PG_OK);
    assert_string_equal(out.data, "Z=cap&a=1&aB=x&a_b=u&b=2&sign_type=RSA2");
    buf_init(&out, &a);
    assert_int_equal(alipay_sign_content(&l, true, &out), PG_OK);
    assert_string_equal(out.data, "Z=cap&a=1&aB=x&a_b=u&b=2");
    arena_free(&a);
}

static void test_sign_content_rejects_repeated_key(void **state)
{
    arena_t a;
    kv_list_t l;
    buf_t out;
    (void)state;
    arena_init(&a, 0);
    kv_init(&l, &a);
    kv_add(&l, "a", "1");
    kv_add(&l, "b", "2");
    kv_add(&l, "a", "3");
    buf_init(&out, &a);
    assert_int_equal(alipay_sign_content(&l, true, &out), PG_ERR_BAD_INPUT);

    kv_init(&l, &a);
    kv_add(&l, "sign", "x");
    kv_add(&l, "sign", "y");
    buf_init(&out, &a);
    assert_int_equal(alipay_sign_content(&l, true, &out), PG_ERR_BAD_INPUT);
    arena_free(&a);
}

/* ------------------------------------------------------------------ */
/* requests and pay URLs                                               */

static void test_page_pay_sign_matches_openssl(void **state)
{
    arena_t a;
    alipay_client_t c = client();
    kv_list_t params;
    buf_t content;
    const char *biz;
    char *expected_sign;
    (void)state;

    arena_init(&a, 0);
    expected_sign = read_file(&a, FIX "page_pay.sign", NULL);
    biz = strstr(PAGE_PAY_STRING, "&biz_content=") + strlen("&biz_content=");
    biz = arena_strndup(&a, biz, (size_t)(strstr(biz, "&charset=") - biz));

    kv_init(&params, &a);
    assert_int_equal(alipay_sign_request(&c, "alipay.trade.page.pay", biz, true, FIXED_NOW, &params),
                     PG_OK);
    assert_string_equal(kv_get(&params, "timestamp"), "2026-11-24 20:15:00");
    assert_string_equal(kv_get(&params, "sign_type"), "RSA2");
    buf_init(&content, &a);
    assert_int_equal(alipay_sign_content(&params, false, &content), PG_OK);
    assert_string_equal(content.data, PAGE_PAY_STRING);
    assert_string_equal(kv_get(&params, "sign"), expected_sign);
    arena_free(&a);
}

static void test_page_pay_url_carries_every_param_encoded(void **state)
{
    arena_t a;
    alipay_client_t c = client();
    alipay_trade_t t = page_trade();
    buf_t url;
    char *pairs, *line, *save = NULL;
    size_t count = 0;
    (void)state;

    arena_init(&a, 0);
    buf_init(&url, &a);
    assert_int_equal(alipay_build_pay_url(&a, &c, ALIPAY_PAGE, &t, FIXED_NOW, &url), PG_OK);
    assert_memory_equal(url.data, "https://openapi-sandbox.dl.alipaydev.com/gateway.do?",
                        strlen("https://openapi-sandbox.dl.alipaydev.com/gateway.do?"));
    pairs = read_file(&a, FIX "page_pay_pairs.txt", NULL);
    for (line = strtok_r(pairs, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        if (!url_has_param(url.data, line))
            fail_msg("pay URL lacks %s\nURL: %s", line, url.data);
        count++;
    }
    assert_int_equal(count, 11);
    /* and nothing else: 11 params, 10 separators after the '?' */
    {
        const char *q = strchr(url.data, '?');
        size_t amps = 0;
        for (; *q; q++)
            amps += *q == '&';
        assert_int_equal(amps, 10);
    }
    assert_true(url_has_param(url.data, "timestamp=2026-11-24%2020%3A15%3A00"));
    assert_true(url_has_param(url.data, "method=alipay.trade.page.pay"));
    arena_free(&a);
}

static void test_pay_url_gateway_with_query_uses_ampersand(void **state)
{
    arena_t a;
    alipay_client_t c = client();
    alipay_trade_t t = page_trade();
    buf_t url;
    (void)state;

    arena_init(&a, 0);
    c.gateway = "http://127.0.0.1:18080/sandbox/gateway.do?charset=utf-8";
    buf_init(&url, &a);
    assert_int_equal(alipay_build_pay_url(&a, &c, ALIPAY_PAGE, &t, FIXED_NOW, &url), PG_OK);
    assert_non_null(strstr(url.data, "gateway.do?charset=utf-8&app_id=2021004100000001&"));
    assert_null(strchr(strchr(url.data, '?') + 1, '?'));
    arena_free(&a);
}

static void test_wap_pay_url_has_quick_wap_way_and_quit_url(void **state)
{
    arena_t a;
    alipay_client_t c = client();
    alipay_trade_t t = page_trade();
    buf_t url, content;
    kv_list_t q;
    json_t *biz;
    (void)state;

    arena_init(&a, 0);
    t.quit_url = "https://shop.example.com/c/1?x=\"y\"";
    t.expires_at = 0;
    buf_init(&url, &a);
    assert_int_equal(alipay_build_pay_url(&a, &c, ALIPAY_WAP, &t, FIXED_NOW, &url), PG_OK);
    parse_form(&a, strchr(url.data, '?') + 1, &q);
    assert_string_equal(kv_get(&q, "method"), "alipay.trade.wap.pay");
    assert_string_equal(kv_get(&q, "return_url"), c.return_url);
    biz = json_loads(kv_get(&q, "biz_content"), 0, NULL);
    assert_non_null(biz);
    assert_string_equal(json_string_value(json_object_get(biz, "product_code")), "QUICK_WAP_WAY");
    assert_string_equal(json_string_value(json_object_get(biz, "quit_url")), t.quit_url);
    assert_string_equal(json_string_value(json_object_get(biz, "subject")), SUBJECT);
    assert_string_equal(json_string_value(json_object_get(biz, "total_amount")), "99.00");
    assert_null(json_object_get(biz, "time_expire"));
    json_decref(biz);
    /* the signature verifies with the app public key */
    buf_init(&content, &a);
    assert_int_equal(alipay_sign_content(&q, false, &content), PG_OK);
    assert_int_equal(crypto_rsa_sha256_verify_b64(g_app_pub, content.data, content.len,
                                                   kv_get(&q, "sign")), PG_OK);
    arena_free(&a);
}

static void test_biz_content_escapes_json(void **state)
{
    arena_t a;
    alipay_client_t c = client();
    alipay_trade_t t = page_trade();
    buf_t url;
    kv_list_t q;
    json_t *biz;
    const char *nasty = "a\"b\\c\n\x01</script>";
    (void)state;

    arena_init(&a, 0);
    t.subject = nasty;
    t.amount_fen = 1;
    buf_init(&url, &a);
    assert_int_equal(alipay_build_pay_url(&a, &c, ALIPAY_PAGE, &t, FIXED_NOW, &url), PG_OK);
    parse_form(&a, strchr(url.data, '?') + 1, &q);
    biz = json_loads(kv_get(&q, "biz_content"), 0, NULL);
    assert_non_null(biz);
    assert_int_equal(json_object_size(biz), 5);
    /* what the subject must not carry became spaces: the JSON escaping of the rest holds */
    assert_string_equal(json_string_value(json_object_get(biz, "subject")), "a\"b c script");
    assert_string_equal(json_string_value(json_object_get(biz, "total_amount")), "0.01");
    json_decref(biz);
    arena_free(&a);
}

static void test_build_pay_url_rejects_bad_trade(void **state)
{
    arena_t a;
    alipay_client_t c = client();
    alipay_trade_t t;
    buf_t url;
    (void)state;

    arena_init(&a, 0);
    buf_init(&url, &a);
    t = page_trade();
    t.amount_fen = 0;
    assert_int_equal(alipay_build_pay_url(&a, &c, ALIPAY_PAGE, &t, FIXED_NOW, &url), PG_ERR_BAD_INPUT);
    t = page_trade();
    t.amount_fen = MONEY_MAX_FEN + 1;
    assert_int_equal(alipay_build_pay_url(&a, &c, ALIPAY_PAGE, &t, FIXED_NOW, &url), PG_ERR_BAD_INPUT);
    t = page_trade();
    t.subject = "";
    assert_int_equal(alipay_build_pay_url(&a, &c, ALIPAY_PAGE, &t, FIXED_NOW, &url), PG_ERR_BAD_INPUT);
    t = page_trade();
    t.subject = "bad \xff utf8";
    assert_int_equal(alipay_build_pay_url(&a, &c, ALIPAY_PAGE, &t, FIXED_NOW, &url), PG_ERR_BAD_INPUT);
    t = page_trade();
    c.gateway = NULL;
    assert_int_equal(alipay_build_pay_url(&a, &c, ALIPAY_PAGE, &t, FIXED_NOW, &url), PG_ERR_CONFIG);
    arena_free(&a);
}

/* ------------------------------------------------------------------ */
/* notifications                                                       */

static pg_err verify_body(arena_t *a, const alipay_client_t *c, const char *body,
                          alipay_notify_t *n, buf_t *reason)
{
    kv_list_t form;
    parse_form(a, body, &form);
    return alipay_verify_notify(c, &form, n, reason);
}

static void test_notify_ok(void **state)
{
    arena_t a;
    alipay_client_t c = client();
    kv_list_t form;
    alipay_notify_t n;
    buf_t reason;
    (void)state;

    arena_init(&a, 0);
    buf_init(&reason, &a);
    load_form(&a, "notify_ok.form", &form);
    /* decoded exactly once: the JSON and the URL-encoded text survive */
    assert_string_equal(kv_get(&form, "fund_bill_list"),
                        "[{\"amount\":\"99.00\",\"fundChannel\":\"ALIPAYACCOUNT\"}]");
    assert_string_equal(kv_get(&form, "passback_params"), "shop%3Dc%26lang%3Dzh");
    assert_int_equal(alipay_verify_notify(&c, &form, &n, &reason), PG_OK);
    assert_string_equal(n.out_trade_no, "PG20261124201500A1B2");
    assert_string_equal(n.trade_no, "2026112422001400000000001234");
    assert_string_equal(n.notify_id, "2026112400222201604000000012345678");
    assert_string_equal(n.buyer_id, "2088002000000002");
    assert_string_equal(n.gmt_payment, "2026-11-24 20:16:02");
    assert_int_equal(n.status, ALIPAY_TRADE_SUCCESS);
    assert_int_equal(n.total_fen, 9900);
    assert_false(n.has_refund);
    assert_null(n.out_biz_no);

    /* seller configured and equal; Alipay key given as bare base64 */
    c.seller_id = "2088102000000001";
    c.alipay_public_key = g_ali_pub_bare;
    assert_int_equal(alipay_verify_notify(&c, &form, &n, &reason), PG_OK);
    arena_free(&a);
}

static void test_notify_rejects_tampered_amount(void **state)
{
    arena_t a;
    alipay_client_t c = client();
    alipay_notify_t n;
    buf_t reason;
    char *body;
    (void)state;

    arena_init(&a, 0);
    buf_init(&reason, &a);
    body = read_file(&a, FIX "notify_ok.form", NULL);
    body = replace_once(&a, body, "total_amount=99.00", "total_amount=0.01");
    assert_int_equal(verify_body(&a, &c, body, &n, &reason), PG_ERR_BAD_SIGNATURE);
    assert_non_null(strstr(reason.data, "signature"));
    arena_free(&a);
}

static void test_notify_rejects_param_the_provider_did_not_send(void **state)
{
    arena_t a;
    alipay_client_t c = client();
    alipay_notify_t n;
    buf_t reason, b;
    (void)state;

    arena_init(&a, 0);
    buf_init(&reason, &a);
    buf_init(&b, &a);
    buf_puts(&b, read_file(&a, FIX "notify_ok.form", NULL));
    buf_puts(&b, "&_url=%2Fpaygate%2Fnotify");
    assert_int_equal(verify_body(&a, &c, b.data, &n, &reason), PG_ERR_BAD_SIGNATURE);
    arena_free(&a);
}

static void test_notify_rejects_wrong_app_id(void **state)
{
    arena_t a;
    alipay_client_t c = client();
    kv_list_t form;
    alipay_notify_t n;
    buf_t reason;
    (void)state;

    arena_init(&a, 0);
    buf_init(&reason, &a);
    load_form(&a, "notify_wrong_app.form", &form);
    assert_int_equal(alipay_verify_notify(&c, &form, &n, &reason), PG_ERR_MISMATCH);
    assert_non_null(strstr(reason.data, "app_id"));
    arena_free(&a);
}

static void test_notify_rejects_seller_mismatch(void **state)
{
    arena_t a;
    alipay_client_t c = client();
    kv_list_t form;
    alipay_notify_t n;
    buf_t reason;
    (void)state;

    arena_init(&a, 0);
    buf_init(&reason, &a);
    load_form(&a, "notify_ok.form", &form);
    c.seller_id = "2088102999999999";
    assert_int_equal(alipay_verify_notify(&c, &form, &n, &reason), PG_ERR_MISMATCH);
    assert_non_null(strstr(reason.data, "seller_id"));
    arena_free(&a);
}

static void test_notify_rejects_bad_amount_format(void **state)
{
    arena_t a;
    alipay_client_t c = client();
    kv_list_t form;
    alipay_notify_t n;
    buf_t reason;
    (void)state;

    arena_init(&a, 0);
    buf_init(&reason, &a);
    load_form(&a, "notify_bad_amount.form", &form);
    assert_string_equal(kv_get(&form, "total_amount"), "12.3");
    assert_int_equal(alipay_verify_notify(&c, &form, &n, &reason), PG_ERR_BAD_INPUT);
    assert_non_null(strstr(reason.data, "total_amount"));
    arena_free(&a);
}

static void test_notify_rejects_unknown_trade_status(void **state)
{
    arena_t a;
    alipay_client_t c = client();
    kv_list_t form;
    alipay_notify_t n;
    buf_t reason;
    (void)state;

    arena_init(&a, 0);
    buf_init(&reason, &a);
    load_form(&a, "notify_bad_status.form", &form);
    assert_int_equal(alipay_verify_notify(&c, &form, &n, &reason), PG_ERR_BAD_INPUT);
    assert_non_null(strstr(reason.data, "trade_status"));
    arena_free(&a);
}

static void test_notify_rejects_missing_sign(void **state)
{
    arena_t a;
    alipay_client_t c = client();
    kv_list_t form, nosign;
    alipay_notify_t n;
    buf_t reason;
    size_t i;
    (void)state;

    arena_init(&a, 0);
    buf_init(&reason, &a);
    load_form(&a, "notify_ok.form", &form);
    kv_init(&nosign, &a);
    for (i = 0; i < form.count; i++)
        if (strcmp(form.items[i].key, "sign") != 0)
            kv_add(&nosign, form.items[i].key, form.items[i].value);
    assert_int_equal(nosign.count + 1, form.count);
    assert_int_equal(alipay_verify_notify(&c, &nosign, &n, &reason), PG_ERR_BAD_SIGNATURE);
    assert_non_null(strstr(reason.data, "sign"));
    /* an empty sign is no better */
    kv_add(&nosign, "sign", "");
    assert_int_equal(alipay_verify_notify(&c, &nosign, &n, &reason), PG_ERR_BAD_SIGNATURE);
    arena_free(&a);
}

static void test_notify_rejects_repeated_field(void **state)
{
    arena_t a;
    alipay_client_t c = client();
    alipay_notify_t n;
    buf_t reason, b;
    (void)state;

    arena_init(&a, 0);
    buf_init(&reason, &a);
    buf_init(&b, &a);
    buf_puts(&b, read_file(&a, FIX "notify_ok.form", NULL));
    buf_puts(&b, "&total_amount=99.00");
    assert_int_equal(verify_body(&a, &c, b.data, &n, &reason), PG_ERR_BAD_INPUT);
    arena_free(&a);
}

static void test_notify_rejects_swapped_key(void **state)
{
    arena_t a;
    alipay_client_t c = client();
    kv_list_t form;
    alipay_notify_t n;
    buf_t reason;
    (void)state;

    arena_init(&a, 0);
    buf_init(&reason, &a);
    load_form(&a, "notify_ok.form", &form);
    c.alipay_public_key = g_app_pub;   /* our own public key by mistake */
    assert_int_equal(alipay_verify_notify(&c, &form, &n, &reason), PG_ERR_BAD_SIGNATURE);
    arena_free(&a);
}

static void test_notify_partial_refund(void **state)
{
    arena_t a;
    alipay_client_t c = client();
    kv_list_t form;
    alipay_notify_t n;
    buf_t reason;
    (void)state;

    arena_init(&a, 0);
    buf_init(&reason, &a);
    load_form(&a, "notify_refund.form", &form);
    assert_int_equal(alipay_verify_notify(&c, &form, &n, &reason), PG_OK);
    assert_int_equal(n.status, ALIPAY_TRADE_SUCCESS);
    assert_true(n.has_refund);
    assert_int_equal(n.refund_fen, 1000);
    assert_int_equal(n.total_fen, 9900);
    assert_string_equal(n.out_biz_no, "PGR20261125000001");
    arena_free(&a);
}

static void test_return_ok_and_tampered(void **state)
{
    arena_t a;
    alipay_client_t c = client();
    kv_list_t q;
    buf_t reason;
    const char *otn = NULL;
    char *body;
    (void)state;

    arena_init(&a, 0);
    buf_init(&reason, &a);
    body = read_file(&a, FIX "return_ok.query", NULL);
    parse_form(&a, body, &q);
    assert_int_equal(alipay_verify_return(&c, &q, &otn, &reason), PG_OK);
    assert_string_equal(otn, "PG20261124201500A1B2");

    parse_form(&a, replace_once(&a, body, "out_trade_no=PG20261124201500A1B2",
                                "out_trade_no=PG20261124201500A1B3"), &q);
    assert_int_equal(alipay_verify_return(&c, &q, &otn, &reason), PG_ERR_BAD_SIGNATURE);

    c.app_id = "2021009999999999";
    parse_form(&a, body, &q);
    assert_int_equal(alipay_verify_return(&c, &q, &otn, &reason), PG_ERR_MISMATCH);
    arena_free(&a);
}

/* ------------------------------------------------------------------ */
/* gateway replies                                                     */

static const char PRECREATE_KEY[] = "alipay_trade_precreate_response";

static void test_extract_returns_exact_span_and_unescaped_sign(void **state)
{
    arena_t a;
    size_t body_len, span_exp_len, span_len = 0;
    char *body, *span_exp, *sign = NULL, *sign2 = NULL;
    const char *span = NULL;
    (void)state;

    arena_init(&a, 0);
    body = read_file(&a, FIX "precreate_ok.json", &body_len);
    span_exp = read_file(&a, FIX "precreate_span.json", &span_exp_len);
    assert_int_equal(alipay_extract_response(&a, body, body_len, PRECREATE_KEY, &span, &span_len, &sign),
                     PG_OK);
    assert_int_equal(span_len, span_exp_len);
    assert_memory_equal(span, span_exp, span_len);
    assert_non_null(sign);
    assert_null(strchr(sign, '\\'));
    assert_int_equal(crypto_rsa_sha256_verify_b64(g_ali_pub, span, span_len, sign), PG_OK);

    body = read_file(&a, FIX "precreate_sign_first.json", &body_len);
    assert_int_equal(alipay_extract_response(&a, body, body_len, PRECREATE_KEY, &span, &span_len, &sign2),
                     PG_OK);
    assert_int_equal(span_len, span_exp_len);
    assert_memory_equal(span, span_exp, span_len);
    assert_string_equal(sign, sign2);
    arena_free(&a);
}

static void test_check_response_ok(void **state)
{
    static const char *files[] = { FIX "precreate_ok.json", FIX "precreate_sign_first.json" };
    arena_t a;
    alipay_client_t c = client();
    alipay_reply_t r;
    buf_t err;
    size_t i, len;
    (void)state;

    arena_init(&a, 0);
    buf_init(&err, &a);
    for (i = 0; i < 2; i++) {
        char *body = read_file(&a, files[i], &len);
        assert_int_equal(alipay_check_response(&a, &c, "alipay.trade.precreate", body, len, &r, &err),
                         PG_OK);
        assert_string_equal(r.code, "10000");
        assert_non_null(r.json);
        assert_memory_equal(r.json, "{\"code\":\"10000\"", 15);
        assert_int_equal(r.json[r.json_len - 1], '}');
    }
    arena_free(&a);
}

static void test_check_response_rejects_tampered_span(void **state)
{
    arena_t a;
    alipay_client_t c = client();
    alipay_reply_t r;
    buf_t err;
    size_t len;
    char *body;
    (void)state;

    arena_init(&a, 0);
    buf_init(&err, &a);
    body = read_file(&a, FIX "precreate_ok.json", &len);
    body = replace_once(&a, body, "bax01234", "bax01235");
    assert_int_equal(alipay_check_response(&a, &c, "alipay.trade.precreate", body, strlen(body), &r, &err),
                     PG_ERR_BAD_SIGNATURE);
    assert_null(r.json);
    /* whitespace inside the span counts too */
    body = read_file(&a, FIX "precreate_ok.json", &len);
    body = replace_once(&a, body, "\"Success\", ", "\"Success\",");
    assert_int_equal(alipay_check_response(&a, &c, "alipay.trade.precreate", body, strlen(body), &r, &err),
                     PG_ERR_BAD_SIGNATURE);
    /* the wrong key */
    body = read_file(&a, FIX "precreate_ok.json", &len);
    c.alipay_public_key = g_app_pub;
    assert_int_equal(alipay_check_response(&a, &c, "alipay.trade.precreate", body, len, &r, &err),
                     PG_ERR_BAD_SIGNATURE);
    arena_free(&a);
}

static void test_check_response_error_response_without_sign(void **state)
{
    arena_t a;
    alipay_client_t c = client();
    alipay_reply_t r;
    buf_t err;
    size_t len, span_len;
    const char *span;
    char *body, *sign = (char *)(uintptr_t)1;
    (void)state;

    arena_init(&a, 0);
    buf_init(&err, &a);
    body = read_file(&a, FIX "error_response.json", &len);
    assert_int_equal(alipay_extract_response(&a, body, len, PRECREATE_KEY, &span, &span_len, &sign),
                     PG_ERR_BAD_INPUT);
    assert_int_equal(alipay_extract_response(&a, body, len, "error_response", &span, &span_len, &sign),
                     PG_OK);
    assert_null(sign);
    assert_int_equal(alipay_check_response(&a, &c, "alipay.trade.precreate", body, len, &r, &err),
                     PG_ERR_UPSTREAM);
    assert_string_equal(r.code, "40002");
    assert_string_equal(r.sub_code, "isv.invalid-app-id");
    assert_non_null(strstr(err.data, "40002"));
    arena_free(&a);
}

static void test_check_response_business_failure(void **state)
{
    arena_t a;
    alipay_client_t c = client();
    alipay_reply_t r;
    buf_t err;
    size_t len;
    char *body;
    (void)state;

    arena_init(&a, 0);
    buf_init(&err, &a);
    body = read_file(&a, FIX "precreate_fail.json", &len);
    assert_int_equal(alipay_check_response(&a, &c, "alipay.trade.precreate", body, len, &r, &err),
                     PG_ERR_UPSTREAM);
    assert_string_equal(r.code, "40004");
    assert_string_equal(r.sub_code, "ACQ.TRADE_HAS_SUCCESS");
    assert_string_equal(r.sub_msg, "\xe4\xba\xa4\xe6\x98\x93\xe5\xb7\xb2\xe8\xa2\xab\xe6\x94\xaf\xe4\xbb\x98");
    assert_non_null(r.json);
    assert_non_null(strstr(err.data, "ACQ.TRADE_HAS_SUCCESS"));
    arena_free(&a);
}

static void test_check_response_unsigned_success_is_not_believed(void **state)
{
    static const char body[] =
        "{\"alipay_trade_precreate_response\":{\"code\":\"10000\",\"msg\":\"Success\",\"qr_code\":\"x\"}}";
    arena_t a;
    alipay_client_t c = client();
    alipay_reply_t r;
    buf_t err;
    (void)state;

    arena_init(&a, 0);
    buf_init(&err, &a);
    assert_int_equal(alipay_check_response(&a, &c, "alipay.trade.precreate", body, sizeof body - 1, &r, &err),
                     PG_ERR_BAD_SIGNATURE);
    assert_null(r.json);
    assert_string_equal(r.code, "");
    arena_free(&a);
}

static void test_extract_rejects_every_truncation(void **state)
{
    arena_t a;
    alipay_client_t c = client();
    alipay_reply_t r;
    buf_t err;
    size_t len, cut, span_len;
    const char *span;
    char *body, *sign, *copy;
    (void)state;

    arena_init(&a, 0);
    buf_init(&err, &a);
    body = read_file(&a, FIX "precreate_ok.json", &len);
    assert_int_equal(body[len - 2], '}');
    for (cut = 0; cut < len - 1; cut++) {
        /* a fresh allocation of exactly `cut` bytes, so ASan sees overreads */
        copy = malloc(cut ? cut : 1);
        assert_non_null(copy);
        memcpy(copy, body, cut);
        if (alipay_extract_response(&a, copy, cut, PRECREATE_KEY, &span, &span_len, &sign) != PG_ERR_BAD_INPUT)
            fail_msg("truncation at %zu accepted", cut);
        if (alipay_check_response(&a, &c, "alipay.trade.precreate", copy, cut, &r, &err) != PG_ERR_UPSTREAM)
            fail_msg("truncation at %zu not UPSTREAM", cut);
        free(copy);
    }
    arena_free(&a);
}

static void test_extract_rejects_malformed(void **state)
{
    static const char *bad[] = {
        "",
        "[]",
        "{\"k\":{\"a\":1}} x",
        "{\"k\":{\"a\":1},\"k\":{\"a\":2}}",                    /* repeated key */
        "{\"k\":\"not an object\"}",
        "{\"k\":{\"a\":1},\"sign\":12}",                       /* sign not a string */
        "{\"k\":{\"a\":1},\"sign\":\"a\",\"sign\":\"b\"}",
        "{\"k\":{\"a\":[1}]}",                                 /* crossed brackets */
        "{\"k\":{\"a\":1}}}",
        "{\"k\":{\"a\":1},}",
        "{\"k\" {\"a\":1}}",
        "{\"k\":{\"a\":\"x\ny\"}}",                            /* raw control byte */
        "{\"k\":{\"a\":1},\"sign\":\"ab\\u12\"}",               /* bad escape in sign */
        "{k:{\"a\":1}}",
    };
    arena_t a;
    size_t i, span_len;
    const char *span;
    char *sign;
    buf_t deep;
    (void)state;

    arena_init(&a, 0);
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (alipay_extract_response(&a, bad[i], strlen(bad[i]), "k", &span, &span_len, &sign) != PG_ERR_BAD_INPUT)
            fail_msg("accepted malformed #%zu: %s", i, bad[i]);
    }
    /* nesting deeper than any reply: refused, no recursion */
    buf_init(&deep, &a);
    buf_puts(&deep, "{\"k\":");
    for (i = 0; i < 10000; i++)
        buf_putc(&deep, '[');
    for (i = 0; i < 10000; i++)
        buf_putc(&deep, ']');
    buf_putc(&deep, '}');
    assert_int_equal(alipay_extract_response(&a, deep.data, deep.len, "k", &span, &span_len, &sign),
                     PG_ERR_BAD_INPUT);
    arena_free(&a);
}

static void test_extract_handles_escaped_key_and_huge_body(void **state)
{
    static const char esc[] = "{\"other\":{\"x\":\"}\"},\"k\\u0065y\" : {\"a\":\"\\\"}\"} ,\"sign\":\"QUJD\\/\"}";
    arena_t a;
    size_t i, span_len;
    const char *span;
    char *sign;
    buf_t big;
    (void)state;

    arena_init(&a, 0);
    assert_int_equal(alipay_extract_response(&a, esc, strlen(esc), "key", &span, &span_len, &sign), PG_OK);
    assert_int_equal(span_len, strlen("{\"a\":\"\\\"}\"}"));
    assert_memory_equal(span, "{\"a\":\"\\\"}\"}", span_len);
    assert_string_equal(sign, "QUJD/");

    /* 8 MiB of string value before the span: linear, no copy */
    buf_init(&big, NULL);
    buf_puts(&big, "{\"pad\":\"");
    for (i = 0; i < (8u << 20) / 16; i++)
        buf_puts(&big, "{}[]\\\"abcdefghij");
    buf_puts(&big, "\", \"k\":{\"ok\":true}}");
    assert_false(big.failed);
    assert_int_equal(alipay_extract_response(&a, big.data, big.len, "k", &span, &span_len, &sign), PG_OK);
    assert_int_equal(span_len, strlen("{\"ok\":true}"));
    assert_null(sign);
    buf_free(&big);
    arena_free(&a);
}

/* ------------------------------------------------------------------ */
/* httpc boundaries (no server needed)                                 */

static void test_httpc_refuses_other_schemes(void **state)
{
    arena_t a;
    httpc_response_t resp;
    httpc_opts_t o;
    buf_t err;
    (void)state;

    arena_init(&a, 0);
    buf_init(&err, &a);
    memset(&o, 0, sizeof o);
    assert_int_equal(httpc_get(&a, "file:///etc/passwd", &o, &resp, &err), PG_ERR_UPSTREAM);
    assert_int_equal(resp.body.len, 0);
    assert_true(err.len > 0);
    assert_int_equal(httpc_get(&a, "ftp://127.0.0.1/x", &o, &resp, &err), PG_ERR_UPSTREAM);
    assert_int_equal(httpc_get(&a, "", &o, &resp, &err), PG_ERR_CONFIG);
    arena_free(&a);
}

static void test_httpc_connection_refused_is_upstream(void **state)
{
    arena_t a;
    httpc_response_t resp;
    httpc_opts_t o;
    buf_t err;
    (void)state;

    arena_init(&a, 0);
    buf_init(&err, &a);
    memset(&o, 0, sizeof o);
    o.connect_timeout_ms = 500;
    o.total_timeout_ms = 1000;
    /* port 1 on loopback: nothing listens there */
    assert_int_equal(httpc_post(&a, "http://127.0.0.1:1/gateway.do", "text/plain", "x", 1, &o, &resp, &err),
                     PG_ERR_UPSTREAM);
    assert_int_equal(resp.status, 0);
    assert_non_null(strstr(err.data, "httpc"));
    arena_free(&a);
}

static void test_call_without_gateway_is_config_error(void **state)
{
    arena_t a;
    alipay_client_t c = client();
    alipay_reply_t r;
    buf_t err;
    (void)state;

    arena_init(&a, 0);
    buf_init(&err, &a);
    c.gateway = "";
    assert_int_equal(alipay_call(&a, &c, "alipay.trade.query", "{}", &r, &err), PG_ERR_CONFIG);
    arena_free(&a);
}

static void test_call_to_closed_port_is_upstream(void **state)
{
    arena_t a;
    alipay_client_t c = client();
    alipay_trade_t t = page_trade();
    buf_t err;
    char *qr = (char *)(uintptr_t)1;
    (void)state;

    arena_init(&a, 0);
    buf_init(&err, &a);
    c.gateway = "http://127.0.0.1:1/gateway.do";
    assert_int_equal(alipay_precreate(&a, &c, &t, &qr, &err), PG_ERR_UPSTREAM);
    assert_null(qr);
    arena_free(&a);
}

/* ------------------------------------------------------------------ */
/* one-shot fake gateway on loopback                                   */

/* One exchange: what the fake gateway serves, what it saw. status 0 means
 * "never answer" (the client's total timeout is cut to 300 ms); a NULL
 * fixture name with status != 0 serves `text` instead. */
typedef struct exchange {
    int status;
    const char *fixture;
    const char *text;
    fake_gw_t g;
    char *request;          /* filled by exchange_end */
} exchange_t;

static void exchange_begin(arena_t *a, exchange_t *x, alipay_client_t *c)
{
    const char *body = "";
    if (x->fixture != NULL) {
        char path[256];
        snprintf(path, sizeof path, FIX "%s", x->fixture);
        body = read_file(a, path, NULL);
    } else if (x->text != NULL) {
        body = x->text;
    }
    fake_gw_start(&x->g, x->status != 0 ? x->status : 200, "text/html;charset=utf-8", body,
                  x->status == 0 ? 5 : 0);
    c->gateway = arena_printf(a, "http://127.0.0.1:%d/gateway.do", x->g.port);
    if (x->status == 0)
        c->http.total_timeout_ms = 300;
}

static void exchange_end(arena_t *a, exchange_t *x)
{
    x->request = fake_gw_finish(&x->g, a, x->status == 0);
}

/* The captured request's form fields; checks the line, content type and
 * that the request signature verifies with our app public key. */
static void request_form(arena_t *a, const char *raw, kv_list_t *out)
{
    const char *body = strstr(raw, "\r\n\r\n");
    buf_t content;

    assert_true(strncmp(raw, "POST /gateway.do HTTP/1.1\r\n", 27) == 0);
    assert_non_null(strcasestr(raw, "\r\nContent-Type: application/x-www-form-urlencoded;charset=utf-8\r\n"));
    assert_non_null(body);
    parse_form(a, body + 4, out);
    assert_string_equal(kv_get(out, "app_id"), "2021004100000001");
    assert_string_equal(kv_get(out, "format"), "JSON");
    assert_string_equal(kv_get(out, "charset"), "utf-8");
    assert_string_equal(kv_get(out, "sign_type"), "RSA2");
    assert_string_equal(kv_get(out, "version"), "1.0");
    assert_null(kv_get(out, "return_url"));
    buf_init(&content, a);
    assert_int_equal(alipay_sign_content(out, false, &content), PG_OK);
    assert_int_equal(crypto_rsa_sha256_verify_b64(g_app_pub, content.data, content.len,
                                                  kv_get(out, "sign")), PG_OK);
}

#define OUT_TRADE_NO "PG20261124201500A1B2"
#define OUT_REQUEST_NO "RF20261125100000R1"
#define CLOSED_GATEWAY "http://127.0.0.1:1/gateway.do"

/* ------------------------------------------------------------------ */
/* alipay.trade.query                                                  */

static pg_err run_query(arena_t *a, exchange_t *x, const char *out_trade_no,
                        alipay_query_result_t *q, buf_t *err)
{
    alipay_client_t c = client();
    pg_err rc;
    exchange_begin(a, x, &c);
    rc = alipay_trade_query(a, &c, out_trade_no, q, err);
    exchange_end(a, x);
    return rc;
}

static void test_trade_query_success(void **state)
{
    exchange_t x = { .status = 200, .fixture = "query_ok.json" };
    alipay_query_result_t q;
    kv_list_t req;
    arena_t a;
    buf_t err;
    (void)state;

    arena_init(&a, 0);
    buf_init(&err, &a);
    if (run_query(&a, &x, OUT_TRADE_NO, &q, &err) != PG_OK)
        fail_msg("query: %s", err.data);
    assert_true(q.exists);
    assert_string_equal(q.trade_status, "TRADE_SUCCESS");
    assert_string_equal(q.trade_no, "2026112422001400000000001234");
    assert_string_equal(q.buyer_id, "2088002000000002");
    assert_string_equal(q.send_pay_date, "2026-11-24 20:16:02");
    assert_int_equal(q.total_fen, 9900);

    request_form(&a, x.request, &req);
    assert_string_equal(kv_get(&req, "method"), "alipay.trade.query");
    assert_string_equal(kv_get(&req, "biz_content"), "{\"out_trade_no\":\"PG20261124201500A1B2\"}");
    arena_free(&a);
}

static void test_trade_query_wait_buyer_pay(void **state)
{
    exchange_t x = { .status = 200, .fixture = "query_wait.json" };
    alipay_query_result_t q;
    arena_t a;
    buf_t err;
    (void)state;

    arena_init(&a, 0);
    buf_init(&err, &a);
    assert_int_equal(run_query(&a, &x, OUT_TRADE_NO, &q, &err), PG_OK);
    assert_true(q.exists);
    assert_string_equal(q.trade_status, "WAIT_BUYER_PAY");
    assert_int_equal(q.total_fen, 1);
    assert_null(q.buyer_id);
    assert_null(q.send_pay_date);
    arena_free(&a);
}

static void test_trade_query_not_exist_is_ok_without_trade(void **state)
{
    exchange_t x = { .status = 200, .fixture = "query_not_exist.json" };
    exchange_t unsigned_x = {
        .status = 200,
        .text = "{\"alipay_trade_query_response\":{\"code\":\"40004\",\"msg\":\"Business Failed\","
                "\"sub_code\":\"ACQ.TRADE_NOT_EXIST\",\"sub_msg\":\"x\"}}",
    };
    alipay_query_result_t q;
    arena_t a;
    buf_t err;
    (void)state;

    arena_init(&a, 0);
    buf_init(&err, &a);
    assert_int_equal(run_query(&a, &x, OUT_TRADE_NO, &q, &err), PG_OK);
    assert_false(q.exists);
    assert_null(q.trade_status);
    assert_int_equal(q.total_fen, 0);
    /* "no such trade" is believed only when signed */
    assert_int_equal(run_query(&a, &unsigned_x, OUT_TRADE_NO, &q, &err), PG_ERR_UPSTREAM);
    assert_false(q.exists);
    arena_free(&a);
}

static void test_trade_query_refuses_bad_replies(void **state)
{
    exchange_t bad_amount = { .status = 200, .fixture = "query_bad_amount.json" };
    exchange_t bad_status = { .status = 200, .fixture = "query_bad_status.json" };
    exchange_t other = { .status = 200, .fixture = "query_other_trade.json" };
    exchange_t tampered = { .status = 200 };
    alipay_query_result_t q;
    arena_t a;
    buf_t err;
    (void)state;

    arena_init(&a, 0);
    buf_init(&err, &a);
    assert_int_equal(run_query(&a, &bad_amount, OUT_TRADE_NO, &q, &err), PG_ERR_UPSTREAM);
    assert_non_null(strstr(err.data, "total_amount"));
    assert_false(q.exists);
    assert_null(q.trade_status);
    assert_int_equal(run_query(&a, &bad_status, OUT_TRADE_NO, &q, &err), PG_ERR_UPSTREAM);
    assert_non_null(strstr(err.data, "TRADE_PENDING"));
    assert_int_equal(run_query(&a, &other, OUT_TRADE_NO, &q, &err), PG_ERR_MISMATCH);
    assert_false(q.exists);
    tampered.text = replace_once(&a, read_file(&a, FIX "query_ok.json", NULL),
                                 "\"total_amount\":\"99.00\"", "\"total_amount\":\"0.01\"");
    assert_int_equal(run_query(&a, &tampered, OUT_TRADE_NO, &q, &err), PG_ERR_BAD_SIGNATURE);
    assert_false(q.exists);
    arena_free(&a);
}

static void test_trade_query_retry_later_and_errors(void **state)
{
    exchange_t sys = { .status = 200, .fixture = "query_system_error.json" };
    exchange_t http502 = { .status = 502, .text = "<html>bad gateway</html>" };
    exchange_t http404 = { .status = 404, .text = "not found" };
    exchange_t silent = { .status = 0 };
    alipay_query_result_t q;
    alipay_client_t c = client();
    arena_t a;
    buf_t err;
    (void)state;

    arena_init(&a, 0);
    buf_init(&err, &a);
    assert_int_equal(run_query(&a, &sys, OUT_TRADE_NO, &q, &err), PG_ERR_TIMEOUT);
    assert_int_equal(run_query(&a, &http502, OUT_TRADE_NO, &q, &err), PG_ERR_TIMEOUT);
    assert_int_equal(run_query(&a, &http404, OUT_TRADE_NO, &q, &err), PG_ERR_UPSTREAM);
    assert_int_equal(run_query(&a, &silent, OUT_TRADE_NO, &q, &err), PG_ERR_TIMEOUT);
    /* refused before anything is sent */
    c.gateway = CLOSED_GATEWAY;
    assert_int_equal(alipay_trade_query(&a, &c, "", &q, &err), PG_ERR_BAD_INPUT);
    assert_int_equal(alipay_trade_query(&a, &c, "PG 1", &q, &err), PG_ERR_BAD_INPUT);
    assert_int_equal(alipay_trade_query(&a, &c, NULL, &q, &err), PG_ERR_BAD_INPUT);
    c.gateway = "";
    assert_int_equal(alipay_trade_query(&a, &c, OUT_TRADE_NO, &q, &err), PG_ERR_CONFIG);
    arena_free(&a);
}

/* ------------------------------------------------------------------ */
/* alipay.trade.close                                                  */

static pg_err run_close(arena_t *a, exchange_t *x, buf_t *err)
{
    alipay_client_t c = client();
    pg_err rc;
    exchange_begin(a, x, &c);
    rc = alipay_trade_close(a, &c, OUT_TRADE_NO, err);
    exchange_end(a, x);
    return rc;
}

static void test_trade_close_success_request(void **state)
{
    exchange_t x = { .status = 200, .fixture = "close_ok.json" };
    kv_list_t req;
    arena_t a;
    buf_t err;
    (void)state;

    arena_init(&a, 0);
    buf_init(&err, &a);
    if (run_close(&a, &x, &err) != PG_OK)
        fail_msg("close: %s", err.data);
    request_form(&a, x.request, &req);
    assert_string_equal(kv_get(&req, "method"), "alipay.trade.close");
    assert_string_equal(kv_get(&req, "biz_content"), "{\"out_trade_no\":\"PG20261124201500A1B2\"}");
    arena_free(&a);
}

static void test_trade_close_outcome_classes(void **state)
{
    static const struct {
        int status;
        const char *fixture;
        pg_err want;
    } cases[] = {
        { 200, "close_not_exist.json", PG_OK },              /* never scanned */
        { 200, "close_status_error.json", PG_ERR_CONFLICT }, /* paid meanwhile */
        { 200, "close_system_error.json", PG_ERR_TIMEOUT },
        { 200, "close_unavailable.json", PG_ERR_TIMEOUT },
        { 200, "close_other.json", PG_ERR_UPSTREAM },
        { 200, "error_response.json", PG_ERR_UPSTREAM },     /* unsigned 40002 */
        { 503, "close_ok.json", PG_ERR_TIMEOUT },
        { 403, "close_ok.json", PG_ERR_UPSTREAM },
        { 0, NULL, PG_ERR_TIMEOUT },
    };
    arena_t a;
    buf_t err;
    size_t i;
    (void)state;

    arena_init(&a, 0);
    buf_init(&err, &a);
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        exchange_t x = { .status = cases[i].status, .fixture = cases[i].fixture };
        pg_err rc = run_close(&a, &x, &err);
        if (rc != cases[i].want)
            fail_msg("case %zu (%s): %s, want %s (%s)", i, cases[i].fixture ? cases[i].fixture : "silent",
                     pg_err_name(rc), pg_err_name(cases[i].want), err.data);
    }
    {
        /* a tampered "not exist" must not close anything */
        exchange_t x = { .status = 200 };
        x.text = replace_once(&a, read_file(&a, FIX "close_status_error.json", NULL),
                              "ACQ.TRADE_STATUS_ERROR", "ACQ.TRADE_NOT_EXIST");
        assert_int_equal(run_close(&a, &x, &err), PG_ERR_BAD_SIGNATURE);
    }
    arena_free(&a);
}

/* ------------------------------------------------------------------ */
/* alipay.trade.refund                                                 */

static pg_err run_refund(arena_t *a, exchange_t *x, const char *reason, alipay_refund_result_t *r,
                         buf_t *err)
{
    alipay_client_t c = client();
    pg_err rc;
    exchange_begin(a, x, &c);
    rc = alipay_trade_refund(a, &c, OUT_TRADE_NO, OUT_REQUEST_NO, 1234, reason, r, err);
    exchange_end(a, x);
    return rc;
}

static void test_trade_refund_success_request_fields(void **state)
{
    /* reason: 课程重复购买 */
    static const char reason[] = "\xe8\xaf\xbe\xe7\xa8\x8b\xe9\x87\x8d\xe5\xa4\x8d\xe8\xb4\xad\xe4\xb9\xb0";
    exchange_t x = { .status = 200, .fixture = "refund_ok.json" };
    alipay_refund_result_t r;
    kv_list_t req;
    arena_t a;
    buf_t err;
    (void)state;

    arena_init(&a, 0);
    buf_init(&err, &a);
    if (run_refund(&a, &x, reason, &r, &err) != PG_OK)
        fail_msg("refund: %s", err.data);
    assert_true(r.fund_change);
    assert_int_equal(r.refund_total_fen, 4567);   /* cumulative, not this refund */
    assert_string_equal(r.trade_no, "2026112422001400000000001234");

    request_form(&a, x.request, &req);
    assert_string_equal(kv_get(&req, "method"), "alipay.trade.refund");
    assert_string_equal(kv_get(&req, "biz_content"),
                        "{\"out_trade_no\":\"PG20261124201500A1B2\",\"refund_amount\":\"12.34\","
                        "\"out_request_no\":\"RF20261125100000R1\",\"refund_reason\":"
                        "\"\xe8\xaf\xbe\xe7\xa8\x8b\xe9\x87\x8d\xe5\xa4\x8d\xe8\xb4\xad\xe4\xb9\xb0\"}");
    arena_free(&a);
}

static void test_trade_refund_repeat_without_fund_change(void **state)
{
    exchange_t x = { .status = 200, .fixture = "refund_repeat.json" };
    alipay_refund_result_t r;
    alipay_client_t c = client();
    kv_list_t req;
    arena_t a;
    buf_t err;
    (void)state;

    arena_init(&a, 0);
    buf_init(&err, &a);
    /* amounts keep two decimals: 5 fen -> "0.05"; no reason -> no field */
    exchange_begin(&a, &x, &c);
    assert_int_equal(alipay_trade_refund(&a, &c, OUT_TRADE_NO, "RF2", 5, NULL, &r, &err), PG_OK);
    exchange_end(&a, &x);
    assert_false(r.fund_change);
    assert_int_equal(r.refund_total_fen, 4567);
    request_form(&a, x.request, &req);
    assert_string_equal(kv_get(&req, "biz_content"),
                        "{\"out_trade_no\":\"PG20261124201500A1B2\",\"refund_amount\":\"0.05\","
                        "\"out_request_no\":\"RF2\"}");
    arena_free(&a);
}

static void test_trade_refund_refusals_are_conflict(void **state)
{
    static const struct {
        const char *fixture, *sub_code;
    } cases[] = {
        { "refund_status_error.json", "ACQ.TRADE_STATUS_ERROR" },
        { "refund_amt_not_equal.json", "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL" },
        { "refund_not_exist.json", "ACQ.TRADE_NOT_EXIST" },
        { "error_response.json", "isv.invalid-app-id" },   /* gateway-level 40002, unsigned */
    };
    alipay_refund_result_t r;
    arena_t a;
    buf_t err;
    size_t i;
    (void)state;

    arena_init(&a, 0);
    buf_init(&err, &a);
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        exchange_t x = { .status = 200, .fixture = cases[i].fixture };
        pg_err rc = run_refund(&a, &x, NULL, &r, &err);
        if (rc != PG_ERR_CONFLICT)
            fail_msg("%s: %s (%s)", cases[i].fixture, pg_err_name(rc), err.data);
        assert_non_null(strstr(err.data, cases[i].sub_code));
        assert_false(r.fund_change);
        assert_int_equal(r.refund_total_fen, 0);
    }
    arena_free(&a);
}

static void test_trade_refund_unknown_outcomes_are_timeout(void **state)
{
    exchange_t cases[] = {
        { .status = 200, .fixture = "refund_system_error.json" },
        { .status = 200, .fixture = "refund_unavailable.json" },
        { .status = 200, .fixture = "refund_bad_fee.json" },     /* signed, unreadable */
        { .status = 500, .text = "oops" },
        { .status = 502, .fixture = "refund_ok.json" },
        { .status = 404, .text = "not here" },
        { .status = 200, .text = "<html>maintenance</html>" },
        { .status = 200, .text = "" },
        /* a business refusal that is not signed is not believed */
        { .status = 200, .text = "{\"alipay_trade_refund_response\":{\"code\":\"40004\",\"msg\":\"Business Failed\","
                                  "\"sub_code\":\"ACQ.TRADE_STATUS_ERROR\",\"sub_msg\":\"x\"}}" },
        /* nor an unsigned success */
        { .status = 200, .text = "{\"alipay_trade_refund_response\":{\"code\":\"10000\",\"msg\":\"Success\","
                                  "\"fund_change\":\"Y\",\"refund_fee\":\"12.34\"}}" },
        { .status = 200, .text = NULL },   /* tampered, below */
        { .status = 0 },                   /* no answer */
    };
    alipay_refund_result_t r;
    alipay_client_t c = client();
    arena_t a;
    buf_t err;
    size_t i;
    (void)state;

    arena_init(&a, 0);
    buf_init(&err, &a);
    cases[10].text = replace_once(&a, read_file(&a, FIX "refund_ok.json", NULL), "\"45.67\"", "\"12.34\"");
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pg_err rc = run_refund(&a, &cases[i], NULL, &r, &err);
        if (rc != PG_ERR_TIMEOUT)
            fail_msg("case %zu (%s): %s (%s)", i, cases[i].fixture ? cases[i].fixture : "text",
                     pg_err_name(rc), err.data);
        assert_false(r.fund_change);
        assert_int_equal(r.refund_total_fen, 0);
        assert_null(r.trade_no);
        /* the request went out each time */
        assert_non_null(strstr(cases[i].request, "method=alipay.trade.refund"));
    }
    /* nobody listening: sent or not, we cannot tell from httpc's answer */
    c.gateway = CLOSED_GATEWAY;
    assert_int_equal(alipay_trade_refund(&a, &c, OUT_TRADE_NO, OUT_REQUEST_NO, 1234, NULL, &r, &err),
                     PG_ERR_TIMEOUT);
    arena_free(&a);
}

static void test_trade_refund_bad_arguments_send_nothing(void **state)
{
    alipay_refund_result_t r;
    alipay_client_t c = client();
    arena_t a;
    buf_t err;
    (void)state;

    arena_init(&a, 0);
    buf_init(&err, &a);
    c.gateway = CLOSED_GATEWAY;
    assert_int_equal(alipay_trade_refund(&a, &c, OUT_TRADE_NO, OUT_REQUEST_NO, 0, NULL, &r, &err),
                     PG_ERR_BAD_INPUT);
    assert_int_equal(alipay_trade_refund(&a, &c, OUT_TRADE_NO, OUT_REQUEST_NO, -100, NULL, &r, &err),
                     PG_ERR_BAD_INPUT);
    assert_int_equal(alipay_trade_refund(&a, &c, OUT_TRADE_NO, OUT_REQUEST_NO, MONEY_MAX_FEN + 1, NULL,
                                         &r, &err),
                     PG_ERR_BAD_INPUT);
    assert_int_equal(alipay_trade_refund(&a, &c, OUT_TRADE_NO, "", 100, NULL, &r, &err), PG_ERR_BAD_INPUT);
    assert_int_equal(alipay_trade_refund(&a, &c, OUT_TRADE_NO, NULL, 100, NULL, &r, &err), PG_ERR_BAD_INPUT);
    assert_int_equal(alipay_trade_refund(&a, &c, "", OUT_REQUEST_NO, 100, NULL, &r, &err), PG_ERR_BAD_INPUT);
    assert_int_equal(alipay_trade_refund(&a, &c, OUT_TRADE_NO, "RF&1", 100, NULL, &r, &err), PG_ERR_BAD_INPUT);
    /* reason that is not UTF-8 cannot be put in JSON */
    assert_int_equal(alipay_trade_refund(&a, &c, OUT_TRADE_NO, OUT_REQUEST_NO, 100, "\xff\xfe", &r, &err),
                     PG_ERR_BAD_INPUT);
    c.gateway = "";
    assert_int_equal(alipay_trade_refund(&a, &c, OUT_TRADE_NO, OUT_REQUEST_NO, 100, NULL, &r, &err),
                     PG_ERR_CONFIG);
    c = client();
    c.app_private_key = NULL;
    assert_int_equal(alipay_trade_refund(&a, &c, OUT_TRADE_NO, OUT_REQUEST_NO, 100, NULL, &r, &err),
                     PG_ERR_CONFIG);
    arena_free(&a);
}

/* ------------------------------------------------------------------ */
/* alipay.trade.fastpay.refund.query                                   */

static pg_err run_refund_query(arena_t *a, exchange_t *x, alipay_refund_query_result_t *q, buf_t *err)
{
    alipay_client_t c = client();
    pg_err rc;
    exchange_begin(a, x, &c);
    rc = alipay_refund_query(a, &c, OUT_TRADE_NO, OUT_REQUEST_NO, q, err);
    exchange_end(a, x);
    return rc;
}

static void test_refund_query_found(void **state)
{
    exchange_t x = { .status = 200, .fixture = "refund_query_ok.json" };
    alipay_refund_query_result_t q;
    kv_list_t req;
    arena_t a;
    buf_t err;
    (void)state;

    arena_init(&a, 0);
    buf_init(&err, &a);
    if (run_refund_query(&a, &x, &q, &err) != PG_OK)
        fail_msg("refund query: %s", err.data);
    assert_true(q.found);
    assert_string_equal(q.refund_status, "REFUND_SUCCESS");
    assert_int_equal(q.refund_fen, 1234);
    request_form(&a, x.request, &req);
    assert_string_equal(kv_get(&req, "method"), "alipay.trade.fastpay.refund.query");
    assert_string_equal(kv_get(&req, "biz_content"),
                        "{\"out_trade_no\":\"PG20261124201500A1B2\",\"out_request_no\":\"RF20261125100000R1\","
                        "\"query_options\":[\"gmt_refund_pay\"]}");
    arena_free(&a);
}

static void test_refund_query_absent_refund_is_not_found(void **state)
{
    exchange_t x = { .status = 200, .fixture = "refund_query_none.json" };
    alipay_refund_query_result_t q;
    arena_t a;
    buf_t err;
    (void)state;

    arena_init(&a, 0);
    buf_init(&err, &a);
    assert_int_equal(run_refund_query(&a, &x, &q, &err), PG_OK);
    assert_false(q.found);
    assert_null(q.refund_status);
    assert_int_equal(q.refund_fen, 0);
    arena_free(&a);
}

static void test_refund_query_other_refund_and_retry(void **state)
{
    exchange_t other = { .status = 200, .fixture = "refund_query_other.json" };
    exchange_t unavailable = { .status = 200, .fixture = "refund_query_unavailable.json" };
    exchange_t http500 = { .status = 500, .text = "x" };
    exchange_t silent = { .status = 0 };
    exchange_t tampered = { .status = 200 };
    alipay_refund_query_result_t q;
    alipay_client_t c = client();
    arena_t a;
    buf_t err;
    (void)state;

    arena_init(&a, 0);
    buf_init(&err, &a);
    assert_int_equal(run_refund_query(&a, &other, &q, &err), PG_ERR_MISMATCH);
    assert_false(q.found);
    assert_int_equal(run_refund_query(&a, &unavailable, &q, &err), PG_ERR_TIMEOUT);
    assert_int_equal(run_refund_query(&a, &http500, &q, &err), PG_ERR_TIMEOUT);
    assert_int_equal(run_refund_query(&a, &silent, &q, &err), PG_ERR_TIMEOUT);
    /* a tampered "not found" (amount removed) fails the signature */
    tampered.text = replace_once(&a, read_file(&a, FIX "refund_query_ok.json", NULL),
                                 "\"refund_amount\":\"12.34\",", "");
    assert_int_equal(run_refund_query(&a, &tampered, &q, &err), PG_ERR_BAD_SIGNATURE);
    assert_false(q.found);
    c.gateway = CLOSED_GATEWAY;
    assert_int_equal(alipay_refund_query(&a, &c, OUT_TRADE_NO, "", &q, &err), PG_ERR_BAD_INPUT);
    arena_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_time_is_beijing_whatever_tz),
        cmocka_unit_test(test_sign_content_sorts_bytewise_and_drops_sign_and_empty),
        cmocka_unit_test(test_sign_content_rejects_repeated_key),
        cmocka_unit_test(test_page_pay_sign_matches_openssl),
        cmocka_unit_test(test_page_pay_url_carries_every_param_encoded),
        cmocka_unit_test(test_pay_url_gateway_with_query_uses_ampersand),
        cmocka_unit_test(test_wap_pay_url_has_quick_wap_way_and_quit_url),
        cmocka_unit_test(test_biz_content_escapes_json),
        cmocka_unit_test(test_build_pay_url_rejects_bad_trade),
        cmocka_unit_test(test_notify_ok),
        cmocka_unit_test(test_notify_rejects_tampered_amount),
        cmocka_unit_test(test_notify_rejects_param_the_provider_did_not_send),
        cmocka_unit_test(test_notify_rejects_wrong_app_id),
        cmocka_unit_test(test_notify_rejects_seller_mismatch),
        cmocka_unit_test(test_notify_rejects_bad_amount_format),
        cmocka_unit_test(test_notify_rejects_unknown_trade_status),
        cmocka_unit_test(test_notify_rejects_missing_sign),
        cmocka_unit_test(test_notify_rejects_repeated_field),
        cmocka_unit_test(test_notify_rejects_swapped_key),
        cmocka_unit_test(test_notify_partial_refund),
        cmocka_unit_test(test_return_ok_and_tampered),
        cmocka_unit_test(test_extract_returns_exact_span_and_unescaped_sign),
        cmocka_unit_test(test_check_response_ok),
        cmocka_unit_test(test_check_response_rejects_tampered_span),
        cmocka_unit_test(test_check_response_error_response_without_sign),
        cmocka_unit_test(test_check_response_business_failure),
        cmocka_unit_test(test_check_response_unsigned_success_is_not_believed),
        cmocka_unit_test(test_extract_rejects_every_truncation),
        cmocka_unit_test(test_extract_rejects_malformed),
        cmocka_unit_test(test_extract_handles_escaped_key_and_huge_body),
        cmocka_unit_test(test_httpc_refuses_other_schemes),
        cmocka_unit_test(test_httpc_connection_refused_is_upstream),
        cmocka_unit_test(test_call_without_gateway_is_config_error),
        cmocka_unit_test(test_call_to_closed_port_is_upstream),
        cmocka_unit_test(test_trade_query_success),
        cmocka_unit_test(test_trade_query_wait_buyer_pay),
        cmocka_unit_test(test_trade_query_not_exist_is_ok_without_trade),
        cmocka_unit_test(test_trade_query_refuses_bad_replies),
        cmocka_unit_test(test_trade_query_retry_later_and_errors),
        cmocka_unit_test(test_trade_close_success_request),
        cmocka_unit_test(test_trade_close_outcome_classes),
        cmocka_unit_test(test_trade_refund_success_request_fields),
        cmocka_unit_test(test_trade_refund_repeat_without_fund_change),
        cmocka_unit_test(test_trade_refund_refusals_are_conflict),
        cmocka_unit_test(test_trade_refund_unknown_outcomes_are_timeout),
        cmocka_unit_test(test_trade_refund_bad_arguments_send_nothing),
        cmocka_unit_test(test_refund_query_found),
        cmocka_unit_test(test_refund_query_absent_refund_is_not_found),
        cmocka_unit_test(test_refund_query_other_refund_and_retry),
    };
    return cmocka_run_group_tests_name("alipay", tests, group_setup, group_teardown);
}
