/* Bill parser and download tests. Fixtures come from
 * tests/fixtures/bills/make_fixtures.sh (iconv, zip and gzip CLI on
 * hand-written texts, plus the sandbox's own renderer as a second producer)
 * — never from paygate code. Downloads run against a forked loopback server
 * that serves a fixed sequence of replies; the Alipay gateway reply is
 * signed at test time with the fixture "Alipay" private key, since it must
 * carry the loopback port in its bill_download_url. Run with cwd tests/unit. */
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

#include "bill.h"
#include "crypto.h"
#include "httpc.h"
#include "kv.h"
#include "xml.h"

#define FIX "../fixtures/bills/"
#define ALIFIX "../fixtures/alipay/"
#define WX_KEY "192006250b4c09247ec02edce69f6a2d"

static crypto_key_t *g_app_priv, *g_ali_priv, *g_ali_pub;

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

static char *fixture(arena_t *a, const char *name, size_t *len)
{
    char path[256];
    snprintf(path, sizeof path, FIX "%s", name);
    return read_file(a, path, len);
}

static crypto_key_t *load_key(const char *path, int priv)
{
    arena_t a;
    buf_t err;
    crypto_key_t *k = NULL;
    arena_init(&a, 0);
    buf_init(&err, &a);
    if ((priv ? crypto_key_load_private(path, &k, &err) : crypto_key_load_public(path, &k, &err)) != PG_OK)
        fail_msg("key %s: %s", path, err.data);
    arena_free(&a);
    return k;
}

static int group_setup(void **state)
{
    (void)state;
    xml_global_init();
    httpc_global_init();
    g_app_priv = load_key(ALIFIX "app_private.pem", 1);
    g_ali_priv = load_key(ALIFIX "alipay_private.pem", 1);
    g_ali_pub = load_key(ALIFIX "alipay_public.pem", 0);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    crypto_key_free(g_app_priv);
    crypto_key_free(g_ali_priv);
    crypto_key_free(g_ali_pub);
    httpc_global_cleanup();
    xml_global_cleanup();
    return 0;
}

/* Replaces the first occurrence of `from` in s (arena copy). */
static char *replace_once(arena_t *a, const char *s, const char *from, const char *to)
{
    const char *hit = strstr(s, from);
    buf_t b;
    if (hit == NULL)
        fail_msg("replace_once: \"%s\" not found", from);
    buf_init(&b, a);
    buf_append(&b, s, (size_t)(hit - s));
    buf_puts(&b, to);
    buf_puts(&b, hit + strlen(from));
    assert_false(b.failed);
    return b.data;
}

static void assert_row(const bill_row_t *r, bill_kind_t kind, const char *trade_no, const char *out_trade_no,
                       const char *out_refund_no, const char *provider_refund_no, int64_t amount,
                       int64_t fee, const char *status, const char *finished_at)
{
    assert_int_equal(r->kind, kind);
    assert_string_equal(r->provider_trade_no, trade_no);
    assert_string_equal(r->out_trade_no, out_trade_no);
    if (out_refund_no == NULL)
        assert_null(r->out_refund_no);
    else
        assert_string_equal(r->out_refund_no, out_refund_no);
    if (provider_refund_no == NULL)
        assert_null(r->provider_refund_no);
    else
        assert_string_equal(r->provider_refund_no, provider_refund_no);
    assert_int_equal(r->amount_fen, amount);
    assert_int_equal(r->fee_fen, fee);
    assert_string_equal(r->status, status);
    assert_string_equal(r->finished_at, finished_at);
}

/* The four rows every hand-written Alipay fixture holds. */
static void assert_alipay_rows(const bill_t *b)
{
    assert_int_equal(b->count, 4);
    assert_row(&b->rows[0], BILL_PAYMENT, "2026010222001234560000000001", "PG20260102A1", NULL, NULL,
               1000, 6, "交易", "2026-01-02 10:00:00");
    assert_row(&b->rows[1], BILL_PAYMENT, "2026010222001234560000000002", "PG20260102A2", NULL, NULL,
               123456, 741, "交易", "2026-01-02 10:30:00");
    assert_row(&b->rows[2], BILL_REFUND, "2026010222001234560000000001", "PG20260102A1",
               "PG20260102A1R1", NULL, 300, -2, "退款", "2026-01-02 11:00:00");
    assert_row(&b->rows[3], BILL_REFUND, "2026010222001234560000000002", "PG20260102A2",
               "PG20260102A2R1", NULL, 123456, -741, "退款", "2026-01-02 12:00:00");
    assert_null(b->rows[0].refund_status);
    assert_int_equal(b->rows[0].line, 6);
    assert_true(b->has_totals);
    assert_int_equal(b->total_amount_fen, 124456);
    assert_int_equal(b->total_refund_fen, 123756);
}

static void assert_wechat_rows(const bill_t *b)
{
    assert_int_equal(b->count, 4);
    assert_row(&b->rows[0], BILL_PAYMENT, "4200000001202601020000000001", "PG20260102W1", NULL, NULL,
               1000, 6, "SUCCESS", "2026-01-02 10:00:00");
    assert_row(&b->rows[1], BILL_PAYMENT, "4200000001202601020000000002", "PG20260102W2", NULL, NULL,
               123456, 741, "SUCCESS", "2026-01-02 10:30:00");
    assert_row(&b->rows[2], BILL_REFUND, "4200000001202601020000000001", "PG20260102W1",
               "PG20260102W1R1", "50300000012026010200000000001", 300, -2, "REFUND",
               "2026-01-02 11:00:00");
    assert_row(&b->rows[3], BILL_REFUND, "4200000001202601020000000002", "PG20260102W2",
               "PG20260102W2R1", "50300000012026010200000000002", 123456, -741, "REFUND",
               "2026-01-02 12:00:00");
    assert_null(b->rows[0].refund_status);
    assert_string_equal(b->rows[2].refund_status, "SUCCESS");
    assert_int_equal(b->rows[1].line, 3);
    assert_true(b->has_totals);
    assert_true(b->has_fee_total);
    assert_int_equal(b->total_amount_fen, 124456);
    assert_int_equal(b->total_refund_fen, 123756);
    assert_int_equal(b->total_fee_fen, 4);
}

static pg_err wx_text(arena_t *a, const char *text, bill_t *b, buf_t *err)
{
    return bill_parse_wechat(a, text, strlen(text), b, err);
}

static pg_err al_text(arena_t *a, const char *text, bill_t *b, buf_t *err)
{
    return bill_parse_alipay_csv(a, text, strlen(text), b, err);
}

static void assert_err_has(const buf_t *err, const char *want)
{
    if (strstr(err->data, want) == NULL)
        fail_msg("error \"%s\" does not mention \"%s\"", err->data, want);
}

/* ------------------------------------------------------------------ */
/* Alipay                                                              */

static void test_alipay_zip_rows_and_totals(void **state)
{
    arena_t a;
    buf_t err;
    bill_t b;
    size_t n;
    char *zip;
    (void)state;
    arena_init(&a, 0);
    buf_init(&err, &a);
    zip = fixture(&a, "alipay_ok.zip", &n);
    if (bill_parse_alipay_zip(&a, zip, n, &b, &err) != PG_OK)
        fail_msg("zip: %s", err.data);
    assert_alipay_rows(&b);
    /* the summary's 合计 row: 订单金额 and -服务费 (-0.06-7.41+0.02+7.41) */
    assert_true(b.has_fee_total);
    assert_int_equal(b.total_fee_fen, 4);
    arena_free(&a);
}

static void test_alipay_csv_utf8_and_gbk(void **state)
{
    arena_t a;
    buf_t err;
    bill_t b;
    size_t n;
    char *csv;
    (void)state;
    arena_init(&a, 0);
    buf_init(&err, &a);
    csv = fixture(&a, "alipay_detail_utf8.csv", &n);
    if (bill_parse_alipay_csv(&a, csv, n, &b, &err) != PG_OK)
        fail_msg("csv: %s", err.data);
    assert_alipay_rows(&b);
    assert_false(b.has_fee_total);   /* the detail footer has no fee total */

    csv = fixture(&a, "alipay_detail_gbk.csv", &n);
    if (bill_parse_alipay_csv_gbk(&a, csv, n, &b, &err) != PG_OK)
        fail_msg("gbk csv: %s", err.data);
    assert_alipay_rows(&b);

    /* a UTF-8 BOM is dropped; LF-only line ends work too */
    csv = fixture(&a, "alipay_detail_utf8.csv", &n);
    {
        buf_t t;
        size_t i;
        buf_init(&t, &a);
        buf_puts(&t, "\xef\xbb\xbf");
        for (i = 0; i < n; i++)
            if (csv[i] != '\r')
                buf_putc(&t, csv[i]);
        if (bill_parse_alipay_csv(&a, t.data, t.len, &b, &err) != PG_OK)
            fail_msg("bom/lf csv: %s", err.data);
        assert_alipay_rows(&b);
    }
    arena_free(&a);
}

static void test_alipay_header_by_name_not_position(void **state)
{
    static const char csv[] =
        "#支付宝业务明细查询\r\n"
        "服务费(元),业务类型,完成时间,商家实收（元）,退款批次号/请求号,订单金额(元),商户订单号,支付宝交易号\r\n"
        "-0.01,交易,2026-01-02 10:00:00,1.00,,1.00,o1,t1\r\n"
        "\r\n"
        "0.00,退款,2026-01-02 10:01:00,-0.50,r1,-0.50,o1,t1\r\n";
    arena_t a;
    buf_t err;
    bill_t b;
    (void)state;
    arena_init(&a, 0);
    buf_init(&err, &a);
    if (al_text(&a, csv, &b, &err) != PG_OK)
        fail_msg("csv: %s", err.data);
    assert_int_equal(b.count, 2);
    assert_row(&b.rows[0], BILL_PAYMENT, "t1", "o1", NULL, NULL, 100, 1, "交易", "2026-01-02 10:00:00");
    /* real bills have been seen with a negative 订单金额 on refunds: ignored */
    assert_row(&b.rows[1], BILL_REFUND, "t1", "o1", "r1", NULL, 50, 0, "退款", "2026-01-02 10:01:00");
    assert_false(b.has_totals);   /* no footer */
    assert_int_equal(b.rows[1].line, 5);
    arena_free(&a);
}

static void test_alipay_bad_gbk(void **state)
{
    arena_t a;
    buf_t err;
    bill_t b;
    size_t n;
    char *zip;
    (void)state;
    arena_init(&a, 0);
    buf_init(&err, &a);
    zip = fixture(&a, "alipay_bad_gbk.zip", &n);
    assert_int_equal(bill_parse_alipay_zip(&a, zip, n, &b, &err), PG_ERR_BAD_INPUT);
    assert_err_has(&err, "GBK");
    assert_int_equal(b.count, 0);
    assert_null(b.rows);
    assert_int_equal(bill_parse_alipay_csv_gbk(&a, "ok\xff\xfe", 4, &b, &err), PG_ERR_BAD_INPUT);
    /* a lead byte cut off at the end */
    assert_int_equal(bill_parse_alipay_csv_gbk(&a, "ok\xd2", 3, &b, &err), PG_ERR_BAD_INPUT);
    arena_free(&a);
}

static void test_alipay_missing_column(void **state)
{
    arena_t a;
    buf_t err;
    bill_t b;
    char *csv;
    (void)state;
    arena_init(&a, 0);
    buf_init(&err, &a);
    csv = fixture(&a, "alipay_detail_utf8.csv", NULL);
    assert_int_equal(al_text(&a, replace_once(&a, csv, ",业务类型,", ",类型,"), &b, &err), PG_ERR_BAD_INPUT);
    assert_err_has(&err, "业务类型");
    assert_int_equal(al_text(&a, replace_once(&a, csv, "服务费（元）", "手续费"), &b, &err), PG_ERR_BAD_INPUT);
    assert_err_has(&err, "服务费");
    /* the same column twice */
    assert_int_equal(al_text(&a, replace_once(&a, csv, ",备注", ",业务类型"), &b, &err), PG_ERR_BAD_INPUT);
    assert_err_has(&err, "twice");
    /* no header at all */
    assert_int_equal(al_text(&a, "#only comments\r\n#here\r\n", &b, &err), PG_ERR_BAD_INPUT);
    arena_free(&a);
}

static void test_alipay_malformed_rows(void **state)
{
    arena_t a;
    buf_t err;
    bill_t b;
    char *csv;
    (void)state;
    arena_init(&a, 0);
    buf_init(&err, &a);
    csv = fixture(&a, "alipay_detail_utf8.csv", NULL);
    /* amounts: exactly two decimals, one optional '-' */
    assert_int_equal(al_text(&a, replace_once(&a, csv, ",10.00,10.00,", ",12.3,10.00,"), &b, &err),
                     PG_ERR_BAD_INPUT);
    assert_err_has(&err, "订单金额");
    assert_err_has(&err, "line 6");
    assert_int_equal(al_text(&a, replace_once(&a, csv, ",-0.06,", ",-0.060,"), &b, &err), PG_ERR_BAD_INPUT);
    assert_int_equal(al_text(&a, replace_once(&a, csv, ",-0.06,", ",+0.06,"), &b, &err), PG_ERR_BAD_INPUT);
    assert_int_equal(al_text(&a, replace_once(&a, csv, ",-0.06,", ",--0.06,"), &b, &err), PG_ERR_BAD_INPUT);
    assert_int_equal(al_text(&a, replace_once(&a, csv, ",-3.00,", ",-3,"), &b, &err), PG_ERR_BAD_INPUT);
    assert_int_equal(al_text(&a, replace_once(&a, csv, ",10.00,10.00,", ",-10.00,10.00,"), &b, &err),
                     PG_ERR_BAD_INPUT);
    /* 业务类型 other than 交易/退款 */
    assert_int_equal(al_text(&a, replace_once(&a, csv, ",退款,", ",冻结,"), &b, &err), PG_ERR_BAD_INPUT);
    assert_err_has(&err, "冻结");
    /* empty 支付宝交易号 */
    assert_int_equal(al_text(&a, replace_once(&a, csv, "2026010222001234560000000001\t,PG20260102A1\t,交易",
                                              ",PG20260102A1\t,交易"), &b, &err),
                     PG_ERR_BAD_INPUT);
    /* a row short of fields; extra non-empty fields */
    assert_int_equal(al_text(&a, replace_once(&a, csv, ",-0.06,0.00,\r\n", ",-0.06,0.00\r\n"), &b, &err),
                     PG_ERR_BAD_INPUT);
    assert_int_equal(al_text(&a, replace_once(&a, csv, ",-0.06,0.00,\r\n", ",-0.06,0.00,,x\r\n"), &b, &err),
                     PG_ERR_BAD_INPUT);
    /* trailing empty fields are tolerated */
    if (al_text(&a, replace_once(&a, csv, ",-0.06,0.00,\r\n", ",-0.06,0.00,,,\r\n"), &b, &err) != PG_OK)
        fail_msg("trailing commas: %s", err.data);
    /* quoting */
    assert_int_equal(al_text(&a, replace_once(&a, csv, "\"课程, 第二讲 \"\"精讲\"\"\",2026-01-02 10:29:00,2026-01-02 10:30:00",
                                              "\"课程, 第二讲,2026-01-02 10:29:00,2026-01-02 10:30:00"), &b, &err),
                     PG_ERR_BAD_INPUT);
    assert_int_equal(al_text(&a, replace_once(&a, csv, "\"课程, 第二讲 \"\"精讲\"\"\",", "\"课程\"x,"), &b, &err),
                     PG_ERR_BAD_INPUT);
    /* footer counts must match the rows (a dropped row = truncation) */
    assert_int_equal(al_text(&a, replace_once(&a, csv, "#交易合计：2笔", "#交易合计：3笔"), &b, &err),
                     PG_ERR_BAD_INPUT);
    assert_err_has(&err, "footer");
    assert_int_equal(al_text(&a, replace_once(&a, csv, "#退款合计：2笔", "#退款合计：1笔"), &b, &err),
                     PG_ERR_BAD_INPUT);
    assert_int_equal(al_text(&a, replace_once(&a, csv, "商家实收共1244.56元", "商家实收共1244.5元"), &b, &err),
                     PG_ERR_BAD_INPUT);
    /* not UTF-8; a NUL byte */
    assert_int_equal(al_text(&a, replace_once(&a, csv, "课程,", "\xe8\xaf,"), &b, &err), PG_ERR_BAD_INPUT);
    assert_int_equal(bill_parse_alipay_csv(&a, "a\0b", 3, &b, &err), PG_ERR_BAD_INPUT);
    assert_int_equal(bill_parse_alipay_csv(&a, NULL, 0, &b, &err), PG_ERR_BAD_INPUT);
    arena_free(&a);
}

static void test_alipay_zip_refusals(void **state)
{
    arena_t a;
    buf_t err;
    bill_t b;
    size_t n;
    char *zip;
    (void)state;
    arena_init(&a, 0);
    buf_init(&err, &a);
    zip = fixture(&a, "alipay_truncated.zip", &n);
    assert_int_equal(bill_parse_alipay_zip(&a, zip, n, &b, &err), PG_ERR_BAD_INPUT);
    zip = fixture(&a, "alipay_bomb.zip", &n);
    assert_int_equal(bill_parse_alipay_zip(&a, zip, n, &b, &err), PG_ERR_TOO_LARGE);
    assert_err_has(&err, "limit");
    zip = fixture(&a, "alipay_bomb_lying.zip", &n);
    assert_int_equal(bill_parse_alipay_zip(&a, zip, n, &b, &err), PG_ERR_TOO_LARGE);
    assert_err_has(&err, "declared");
    zip = fixture(&a, "alipay_many.zip", &n);
    assert_int_equal(bill_parse_alipay_zip(&a, zip, n, &b, &err), PG_ERR_TOO_LARGE);
    zip = fixture(&a, "alipay_no_detail.zip", &n);
    assert_int_equal(bill_parse_alipay_zip(&a, zip, n, &b, &err), PG_ERR_BAD_INPUT);
    assert_err_has(&err, "detail");
    assert_int_equal(bill_parse_alipay_zip(&a, "PK\x03\x04", 4, &b, &err), PG_ERR_BAD_INPUT);
    assert_int_equal(bill_parse_alipay_zip(&a, "not a zip", 9, &b, &err), PG_ERR_BAD_INPUT);
    assert_int_equal(bill_parse_alipay_zip(&a, NULL, 0, &b, &err), PG_ERR_BAD_INPUT);
    /* a flipped byte in the compressed detail: CRC or inflate error */
    zip = fixture(&a, "alipay_ok.zip", &n);
    zip[120] ^= 0x55;
    assert_int_equal(bill_parse_alipay_zip(&a, zip, n, &b, &err), PG_ERR_BAD_INPUT);
    arena_free(&a);
}

static void test_alipay_sandbox_zip(void **state)
{
    arena_t a;
    buf_t err;
    bill_t b;
    size_t n;
    char *zip;
    (void)state;
    arena_init(&a, 0);
    buf_init(&err, &a);
    zip = fixture(&a, "sandbox_alipay.zip", &n);
    if (bill_parse_alipay_zip(&a, zip, n, &b, &err) != PG_OK)
        fail_msg("sandbox zip: %s", err.data);
    assert_int_equal(b.count, 2);
    assert_row(&b.rows[0], BILL_PAYMENT, "2026010222001234560000000009", "PGSB1", NULL, NULL, 9900, 59,
               "交易", "2026-01-02 08:01:00");
    assert_row(&b.rows[1], BILL_REFUND, "2026010222001234560000000009", "PGSB1", "PGSB1R1", NULL, 4950,
               -30, "退款", "2026-01-02 09:00:00");
    assert_true(b.has_totals && b.has_fee_total);
    assert_int_equal(b.total_amount_fen, 9900);
    assert_int_equal(b.total_refund_fen, 4950);
    assert_int_equal(b.total_fee_fen, 29);
    arena_free(&a);
}

/* ------------------------------------------------------------------ */
/* WeChat                                                              */

static void test_wechat_plain_and_gzip(void **state)
{
    arena_t a;
    buf_t err;
    bill_t b;
    size_t n;
    char *t;
    (void)state;
    arena_init(&a, 0);
    buf_init(&err, &a);
    t = fixture(&a, "wechat_all.txt", &n);
    if (bill_parse_wechat(&a, t, n, &b, &err) != PG_OK)
        fail_msg("text: %s", err.data);
    assert_wechat_rows(&b);
    t = fixture(&a, "wechat_all.txt.gz", &n);
    if (bill_parse_wechat(&a, t, n, &b, &err) != PG_OK)
        fail_msg("gzip: %s", err.data);
    assert_wechat_rows(&b);
    t = fixture(&a, "wechat_two_members.gz", &n);
    if (bill_parse_wechat(&a, t, n, &b, &err) != PG_OK)
        fail_msg("two members: %s", err.data);
    assert_wechat_rows(&b);
    /* bill_wechat_plain (the v3 download's text, whose SHA1 is checked):
     * the gzip and the plain fixture give the same bytes */
    {
        buf_t plain, packed;
        size_t pn;
        char *pt = fixture(&a, "wechat_all.txt", &pn);
        buf_init(&plain, &a);
        buf_init(&packed, &a);
        assert_int_equal(bill_wechat_plain(pt, pn, &plain, &err), PG_OK);
        t = fixture(&a, "wechat_all.txt.gz", &n);
        assert_int_equal(bill_wechat_plain(t, n, &packed, &err), PG_OK);
        assert_int_equal(plain.len, pn);
        assert_int_equal(packed.len, pn);
        assert_memory_equal(packed.data, pt, pn);
        buf_clear(&packed);
        assert_int_equal(bill_wechat_plain(t, n - 8, &packed, &err), PG_ERR_BAD_INPUT);   /* cut */
    }
    /* a BOM and LF line ends */
    {
        buf_t x;
        size_t i;
        t = fixture(&a, "wechat_all.txt", &n);
        buf_init(&x, &a);
        buf_puts(&x, "\xef\xbb\xbf");
        for (i = 0; i < n; i++)
            if (t[i] != '\r')
                buf_putc(&x, t[i]);
        if (bill_parse_wechat(&a, x.data, x.len, &b, &err) != PG_OK)
            fail_msg("bom/lf: %s", err.data);
        assert_wechat_rows(&b);
    }
    arena_free(&a);
}

static void test_wechat_sandbox_text_and_gzip(void **state)
{
    static const char *const names[] = { "sandbox_wechat.txt", "sandbox_wechat.txt.gz" };
    arena_t a;
    buf_t err;
    bill_t b;
    size_t n, i;
    char *t;
    (void)state;
    arena_init(&a, 0);
    buf_init(&err, &a);
    for (i = 0; i < 2; i++) {
        t = fixture(&a, names[i], &n);
        if (bill_parse_wechat(&a, t, n, &b, &err) != PG_OK)
            fail_msg("%s: %s", names[i], err.data);
        assert_int_equal(b.count, 2);
        assert_row(&b.rows[0], BILL_PAYMENT, "2026010222001234560000000009", "PGSB1", NULL, NULL, 9900, 59,
                   "SUCCESS", "2026-01-02 08:01:00");
        assert_row(&b.rows[1], BILL_REFUND, "2026010222001234560000000009", "PGSB1", "PGSB1R1",
                   "50300000012026010200000000009", 4950, -30, "REFUND", "2026-01-02 09:00:00");
        assert_int_equal(b.total_amount_fen, 9900);
        assert_int_equal(b.total_refund_fen, 4950);
        assert_int_equal(b.total_fee_fen, 29);
    }
    arena_free(&a);
}

/* bill_type REFUND (29 columns): 交易时间 is the payment's, the refund's own
 * time is 退款成功时间. bill_type SUCCESS (20 columns): no refund columns. */
static void test_wechat_refund_and_success_bill_types(void **state)
{
    static const char refund_bill[] =
        "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,"
        "应结订单金额,代金券金额,退款申请时间,退款成功时间,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,"
        "退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注\r\n"
        "`2026-01-01 10:00:00,`wx1,`1900000109,`0,`,`4200X,`o9,`u,`NATIVE,`REFUND,`OTHERS,`CNY,`0.00,`0.00,"
        "`2026-01-02 11:00:00,`2026-01-02 11:00:05,`5030X,`r9,`0.01,`0.00,`ORIGINAL,`SUCCESS,`x,`,`0.00000,"
        "`0.60%,`0.00,`0.01,`\r\n"
        "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额\r\n"
        "`1,`0.00,`0.01,`0.00,`0.00000,`0.00,`0.01\r\n";
    static const char success_bill[] =
        "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,"
        "应结订单金额,代金券金额,商品名称,商户数据包,手续费,费率,订单金额,费率备注\n"
        "`2026-01-02 10:00:00,`wx1,`1900000109,`0,`,`4200Y,`o8,`u,`NATIVE,`SUCCESS,`OTHERS,`CNY,`0.01,`0.00,"
        "`x,`,`0.00000,`0.60%,`0.01,`\n"
        "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额\n"
        "`1,`0.01,`0.00,`0.00,`0.00000,`0.01,`0.00\n";
    arena_t a;
    buf_t err;
    bill_t b;
    (void)state;
    arena_init(&a, 0);
    buf_init(&err, &a);
    if (wx_text(&a, refund_bill, &b, &err) != PG_OK)
        fail_msg("refund bill: %s", err.data);
    assert_int_equal(b.count, 1);
    assert_row(&b.rows[0], BILL_REFUND, "4200X", "o9", "r9", "5030X", 1, 0, "REFUND", "2026-01-02 11:00:05");
    if (wx_text(&a, success_bill, &b, &err) != PG_OK)
        fail_msg("success bill: %s", err.data);
    assert_int_equal(b.count, 1);
    assert_row(&b.rows[0], BILL_PAYMENT, "4200Y", "o8", NULL, NULL, 1, 0, "SUCCESS", "2026-01-02 10:00:00");
    /* a REFUND row in a bill without the refund columns */
    assert_int_equal(wx_text(&a, replace_once(&a, success_bill, "`SUCCESS,", "`REFUND,"), &b, &err),
                     PG_ERR_BAD_INPUT);
    assert_err_has(&err, "退款金额");
    arena_free(&a);
}

static void test_wechat_fee_decimals(void **state)
{
    arena_t a;
    buf_t err;
    bill_t b;
    char *t;
    (void)state;
    arena_init(&a, 0);
    buf_init(&err, &a);
    t = fixture(&a, "wechat_all.txt", NULL);
    /* below a fen: half away from zero (WeChat charges whole fen) */
    t = replace_once(&a, t, "`0.06000,", "`0.05500,");
    t = replace_once(&a, t, "`-0.02000,", "`-0.01499,");
    t = replace_once(&a, t, "`0.04000,", "`0.03999,");
    if (wx_text(&a, t, &b, &err) != PG_OK)
        fail_msg("fees: %s", err.data);
    assert_int_equal(b.rows[0].fee_fen, 6);
    assert_int_equal(b.rows[2].fee_fen, -1);
    assert_int_equal(b.total_fee_fen, 4);
    t = fixture(&a, "wechat_all.txt", NULL);
    assert_int_equal(wx_text(&a, replace_once(&a, t, "`0.06000,", "`0.0600000,"), &b, &err), PG_ERR_BAD_INPUT);
    assert_int_equal(wx_text(&a, replace_once(&a, t, "`0.06000,", "`0.06a00,"), &b, &err), PG_ERR_BAD_INPUT);
    assert_int_equal(wx_text(&a, replace_once(&a, t, "`0.06000,", "`.06,"), &b, &err), PG_ERR_BAD_INPUT);
    assert_int_equal(wx_text(&a, replace_once(&a, t, "`0.06000,", "`,"), &b, &err), PG_ERR_BAD_INPUT);
    arena_free(&a);
}

static void test_wechat_malformed(void **state)
{
    arena_t a;
    buf_t err;
    bill_t b;
    char *t;
    (void)state;
    arena_init(&a, 0);
    buf_init(&err, &a);
    t = fixture(&a, "wechat_all.txt", NULL);
    /* a field without its backtick */
    assert_int_equal(wx_text(&a, replace_once(&a, t, ",`NATIVE,", ",NATIVE,"), &b, &err), PG_ERR_BAD_INPUT);
    assert_err_has(&err, "backtick");
    assert_err_has(&err, "line 2");
    assert_int_equal(wx_text(&a, replace_once(&a, t, "`2026-01-02 10:00:00,", "2026-01-02 10:00:00,"), &b, &err),
                     PG_ERR_BAD_INPUT);
    /* amount "12.3" */
    assert_int_equal(wx_text(&a, replace_once(&a, t, "`10.00,`0.00,`0,", "`12.3,`0.00,`0,"), &b, &err),
                     PG_ERR_BAD_INPUT);
    assert_err_has(&err, "应结订单金额");
    assert_int_equal(wx_text(&a, replace_once(&a, t, "`3.00,", "`3.0,"), &b, &err), PG_ERR_BAD_INPUT);
    assert_err_has(&err, "退款金额");
    assert_int_equal(wx_text(&a, replace_once(&a, t, "`10.00,`0.00,`0,", "`-10.00,`0.00,`0,"), &b, &err),
                     PG_ERR_BAD_INPUT);
    /* missing header column */
    assert_int_equal(wx_text(&a, replace_once(&a, t, ",商户订单号,", ",商户单号,"), &b, &err), PG_ERR_BAD_INPUT);
    assert_err_has(&err, "商户订单号");
    /* unknown 交易状态 */
    assert_int_equal(wx_text(&a, replace_once(&a, t, "`SUCCESS,`OTHERS", "`REVOKED,`OTHERS"), &b, &err),
                     PG_ERR_BAD_INPUT);
    assert_err_has(&err, "REVOKED");
    /* summary: wrong count, missing row, text after it, bad amount, missing column */
    assert_int_equal(wx_text(&a, replace_once(&a, t, "`4,`1244.56", "`5,`1244.56"), &b, &err), PG_ERR_BAD_INPUT);
    assert_int_equal(wx_text(&a, replace_once(&a, t, "`4,`1244.56,`1237.56,`0.00,`0.04000,`1244.56,`1237.56\r\n", ""),
                             &b, &err),
                     PG_ERR_BAD_INPUT);
    assert_err_has(&err, "truncated");
    /* no summary at all: parsed, but has_totals says so */
    if (wx_text(&a, replace_once(&a, t, "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额\r\n"
                                        "`4,`1244.56,`1237.56,`0.00,`0.04000,`1244.56,`1237.56\r\n", ""),
                &b, &err) != PG_OK)
        fail_msg("no summary: %s", err.data);
    assert_int_equal(b.count, 4);
    assert_false(b.has_totals);
    assert_false(b.has_fee_total);
    {
        buf_t x;
        buf_init(&x, &a);
        buf_puts(&x, t);
        buf_puts(&x, "`1,`2\r\n");
        assert_int_equal(wx_text(&a, x.data, &b, &err), PG_ERR_BAD_INPUT);
        assert_err_has(&err, "after the summary");
    }
    assert_int_equal(wx_text(&a, replace_once(&a, t, "`4,`1244.56,", "`4,`1244.5,"), &b, &err), PG_ERR_BAD_INPUT);
    assert_int_equal(wx_text(&a, replace_once(&a, t, "总交易单数,", "交易单数,"), &b, &err), PG_ERR_BAD_INPUT);
    assert_int_equal(wx_text(&a, replace_once(&a, t, "`4,`1244.56,", "`4,1244.56,"), &b, &err), PG_ERR_BAD_INPUT);
    /* a row before the header; an empty body; an XML error reply; bytes */
    assert_int_equal(wx_text(&a, strstr(t, "`2026"), &b, &err), PG_ERR_BAD_INPUT);
    assert_int_equal(wx_text(&a, "", &b, &err), PG_ERR_BAD_INPUT);
    assert_int_equal(wx_text(&a, "\r\n<xml><return_code>FAIL</return_code></xml>", &b, &err), PG_ERR_BAD_INPUT);
    assert_err_has(&err, "XML");
    assert_int_equal(wx_text(&a, replace_once(&a, t, "课程，第一讲", "\xff"), &b, &err), PG_ERR_BAD_INPUT);
    assert_int_equal(wx_text(&a, replace_once(&a, t, "课程，第一讲", "\xc0\xaf"), &b, &err), PG_ERR_BAD_INPUT);
    assert_int_equal(bill_parse_wechat(&a, "a\0b", 3, &b, &err), PG_ERR_BAD_INPUT);
    assert_int_equal(bill_parse_wechat(&a, NULL, 0, &b, &err), PG_ERR_BAD_INPUT);
    assert_int_equal(b.count, 0);
    arena_free(&a);
}

/* Found by tests/fuzz (fuzz_bill_wechat): totals follow the row model. A
 * negative payment total (WeChat 应结订单总金额, Alipay 商家实收共) is refused
 * as a negative payment row is; the Alipay refund total is positive whatever
 * sign its footer wrote, as refund rows are. */
static void test_bill_totals_keep_the_row_signs(void **state)
{
    arena_t a;
    buf_t err;
    bill_t b;
    char *t;
    (void)state;
    arena_init(&a, 0);
    buf_init(&err, &a);
    t = fixture(&a, "wechat_all.txt", NULL);
    assert_int_equal(wx_text(&a, replace_once(&a, t, "`4,`1244.56,", "`4,`-1244.56,"), &b, &err),
                     PG_ERR_BAD_INPUT);
    assert_err_has(&err, "应结订单总金额");
    assert_int_equal(b.count, 0);

    t = fixture(&a, "alipay_detail_utf8.csv", NULL);
    assert_int_equal(al_text(&a, replace_once(&a, t, "商家实收共1244.56元", "商家实收共-1244.56元"), &b, &err),
                     PG_ERR_BAD_INPUT);
    assert_err_has(&err, "商家实收共");
    if (al_text(&a, replace_once(&a, t, "商家实收退款共-1237.56元", "商家实收退款共1237.56元"), &b, &err) != PG_OK)
        fail_msg("positive refund footer: %s", err.data);
    assert_true(b.has_totals);
    assert_int_equal(b.total_amount_fen, 124456);
    assert_int_equal(b.total_refund_fen, 123756);
    if (al_text(&a, t, &b, &err) != PG_OK)
        fail_msg("csv: %s", err.data);
    assert_int_equal(b.total_refund_fen, 123756);
    arena_free(&a);
}

/* Found by tests/fuzz (fuzz_bill_wechat): the XML-reply message quoted up to
 * 200 bytes with %.200s from a body that is not NUL-terminated. */
static void test_wechat_xml_reply_quote_stays_in_body(void **state)
{
    static const char bytes[] = "<xml SECRET-BEYOND-THE-BODY";
    arena_t a;
    buf_t err;
    bill_t b;
    char *body;
    (void)state;
    arena_init(&a, 0);
    buf_init(&err, &a);
    body = malloc(5);   /* exactly "<xml ", no terminator: ASan sees an over-read */
    assert_non_null(body);
    memcpy(body, bytes, 5);
    assert_int_equal(bill_parse_wechat(&a, body, 5, &b, &err), PG_ERR_BAD_INPUT);
    assert_err_has(&err, "XML");
    assert_int_equal(bill_parse_wechat(&a, bytes, 5, &b, &err), PG_ERR_BAD_INPUT);
    assert_null(strstr(err.data, "SECRET"));
    free(body);
    arena_free(&a);
}

static void test_wechat_gzip_refusals(void **state)
{
    arena_t a;
    buf_t err, x;
    bill_t b;
    size_t n;
    char *t;
    (void)state;
    arena_init(&a, 0);
    buf_init(&err, &a);
    t = fixture(&a, "wechat_truncated.gz", &n);
    assert_int_equal(bill_parse_wechat(&a, t, n, &b, &err), PG_ERR_BAD_INPUT);
    assert_err_has(&err, "truncated");
    t = fixture(&a, "wechat_bomb.gz", &n);
    assert_int_equal(bill_parse_wechat(&a, t, n, &b, &err), PG_ERR_TOO_LARGE);
    /* junk after the gzip data */
    t = fixture(&a, "wechat_all.txt.gz", &n);
    buf_init(&x, &a);
    buf_append(&x, t, n);
    buf_puts(&x, "junk");
    assert_int_equal(bill_parse_wechat(&a, x.data, x.len, &b, &err), PG_ERR_BAD_INPUT);
    assert_err_has(&err, "junk");
    /* a corrupted byte in the deflate data */
    t[n / 2] ^= 0x5a;
    assert_int_equal(bill_parse_wechat(&a, t, n, &b, &err), PG_ERR_BAD_INPUT);
    /* the magic alone */
    assert_int_equal(bill_parse_wechat(&a, "\x1f\x8b", 2, &b, &err), PG_ERR_BAD_INPUT);
    arena_free(&a);
}

/* Every prefix and many single-byte corruptions of every fixture: no crash,
 * no read past the input (ASan), only the documented error codes. */
static void test_prefixes_and_corruptions_never_crash(void **state)
{
    static const char *const names[] = {
        "alipay_ok.zip", "alipay_detail_utf8.csv", "alipay_detail_gbk.csv", "wechat_all.txt",
        "wechat_all.txt.gz",
    };
    size_t k;
    (void)state;
    for (k = 0; k < sizeof names / sizeof names[0]; k++) {
        arena_t keep, a;
        buf_t err;
        bill_t b;
        size_t n, i;
        char *orig;
        arena_init(&keep, 0);
        orig = fixture(&keep, names[k], &n);
        for (i = 0; i <= n; i++) {
            char *copy;
            pg_err rc[2];
            int j;
            arena_init(&a, 0);
            buf_init(&err, &a);
            /* an exact-size heap copy, so ASan sees any over-read */
            copy = malloc(i > 0 ? i : 1);
            assert_non_null(copy);
            memcpy(copy, orig, i);
            for (j = 0; j < 2; j++) {
                if (j == 1) {
                    if (i == n)
                        break;
                    memcpy(copy, orig, i);
                    if (i > 0)
                        copy[(i * 7919) % i] ^= (char)(1 + (i % 255));
                }
                if (strstr(names[k], ".zip") != NULL)
                    rc[j] = bill_parse_alipay_zip(&a, copy, i, &b, &err);
                else if (strstr(names[k], "gbk") != NULL)
                    rc[j] = bill_parse_alipay_csv_gbk(&a, copy, i, &b, &err);
                else if (strstr(names[k], "alipay") != NULL)
                    rc[j] = bill_parse_alipay_csv(&a, copy, i, &b, &err);
                else
                    rc[j] = bill_parse_wechat(&a, copy, i, &b, &err);
                if (rc[j] != PG_OK && rc[j] != PG_ERR_BAD_INPUT && rc[j] != PG_ERR_TOO_LARGE)
                    fail_msg("%s[%zu] variant %d: %s (%s)", names[k], i, j, pg_err_name(rc[j]), err.data);
                if (rc[j] == PG_OK && b.count > 0)
                    assert_non_null(b.rows[b.count - 1].provider_trade_no);
            }
            free(copy);
            arena_free(&a);
        }
        arena_free(&keep);
    }
}

static void test_normalize_date(void **state)
{
    char d[11];
    (void)state;
    assert_int_equal(bill_normalize_date("2026-01-02", false, d), PG_OK);
    assert_string_equal(d, "20260102");
    assert_int_equal(bill_normalize_date("20260102", true, d), PG_OK);
    assert_string_equal(d, "2026-01-02");
    assert_int_equal(bill_normalize_date("2024-02-29", true, d), PG_OK);
    assert_int_equal(bill_normalize_date("2000-02-29", true, d), PG_OK);
    assert_int_equal(bill_normalize_date("2100-02-29", true, d), PG_ERR_BAD_INPUT);
    assert_int_equal(bill_normalize_date("2026-02-29", true, d), PG_ERR_BAD_INPUT);
    assert_int_equal(bill_normalize_date("2026-13-01", true, d), PG_ERR_BAD_INPUT);
    assert_int_equal(bill_normalize_date("2026-04-31", true, d), PG_ERR_BAD_INPUT);
    assert_int_equal(bill_normalize_date("2026-1-02", true, d), PG_ERR_BAD_INPUT);
    assert_int_equal(bill_normalize_date("2026/01/02", true, d), PG_ERR_BAD_INPUT);
    assert_int_equal(bill_normalize_date("202601", true, d), PG_ERR_BAD_INPUT);
    assert_int_equal(bill_normalize_date("2026-01-0x", true, d), PG_ERR_BAD_INPUT);
    assert_int_equal(bill_normalize_date(NULL, true, d), PG_ERR_BAD_INPUT);
}

/* ------------------------------------------------------------------ */
/* loopback server: serves a fixed sequence of replies, one per connection */

#define MAX_REPLIES 3

typedef struct reply {
    int status;
    const char *ctype;
    const char *body;
    size_t len;
} reply_t;

typedef struct fake_srv {
    pid_t pid;
    int port;
    int lfd;
    int pipe_rd;
} fake_srv_t;

static void srv_child(int lfd, int wfd, const reply_t *r, size_t nr)
{
    size_t k;
    alarm(10);
    for (k = 0; k < nr; k++) {
        char req[65536], hdr[256];
        size_t have = 0, need = 0;
        const char *eoh = NULL;
        int cfd = accept(lfd, NULL, NULL);
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
                if (strcasestr(req, "\r\nexpect: 100-continue") != NULL &&
                    write(cfd, "HTTP/1.1 100 Continue\r\n\r\n", 25) != 25)
                    _exit(3);
            }
            if (eoh != NULL && have >= need)
                break;
        }
        if (write(wfd, req, have) != (ssize_t)have || write(wfd, "\n=====\n", 7) != 7)
            _exit(4);
        snprintf(hdr, sizeof hdr,
                 "HTTP/1.1 %d X\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                 r[k].status, r[k].ctype, r[k].len);
        if (write(cfd, hdr, strlen(hdr)) < 0 || (r[k].len > 0 && write(cfd, r[k].body, r[k].len) < 0))
            _exit(5);
        shutdown(cfd, SHUT_WR);
        close(cfd);
    }
    close(wfd);
    _exit(0);
}

/* Binds first (so the port is known), forks later with the replies. */
static void srv_bind(fake_srv_t *s)
{
    struct sockaddr_in sa;
    socklen_t sl = sizeof sa;
    s->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s->lfd >= 0);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s->lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(s->lfd, 4), 0);
    assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&sa, &sl), 0);
    s->port = ntohs(sa.sin_port);
}

static void srv_start(fake_srv_t *s, const reply_t *r, size_t nr)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    s->pid = fork();
    assert_true(s->pid >= 0);
    if (s->pid == 0) {
        close(p[0]);
        srv_child(s->lfd, p[1], r, nr);
    }
    close(s->lfd);
    close(p[1]);
    s->pipe_rd = p[0];
}

/* Waits for the child (killing it when asked: replies not all fetched);
 * returns every request it saw. */
static char *srv_finish(fake_srv_t *s, arena_t *a, int kill_child)
{
    buf_t req;
    char chunk[4096];
    ssize_t n;
    int st = 0;
    if (kill_child)
        kill(s->pid, SIGKILL);
    buf_init(&req, a);
    while ((n = read(s->pipe_rd, chunk, sizeof chunk)) > 0)
        buf_append(&req, chunk, (size_t)n);
    close(s->pipe_rd);
    assert_int_equal(waitpid(s->pid, &st, 0), s->pid);
    if (!kill_child)
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    return req.data;
}

static reply_t text_reply(int status, const char *body)
{
    reply_t r = { status, "text/plain", body, strlen(body) };
    return r;
}

/* ------------------------------------------------------------------ */
/* WeChat downloads                                                    */

static wechat_client_t wx_client(arena_t *a, const fake_srv_t *s)
{
    wechat_client_t c;
    memset(&c, 0, sizeof c);
    c.appid = "wxd930ea5d5a258f4f";
    c.mch_id = "10000100";
    c.api_key = WX_KEY;
    c.gateway = arena_printf(a, "http://127.0.0.1:%d/", s->port);
    c.sign_type = WECHAT_SIGN_MD5;
    c.http.connect_timeout_ms = 1000;
    c.http.total_timeout_ms = 2000;
    return c;
}

/* The XML fields of the (single) captured request. */
static void request_fields(arena_t *a, const char *req, kv_list_t *out)
{
    const char *body = strstr(req, "\r\n\r\n");
    const char *end;
    buf_t err;
    assert_non_null(body);
    body += 4;
    end = strstr(body, "\n=====\n");
    assert_non_null(end);
    buf_init(&err, a);
    if (xml_parse_flat(a, body, (size_t)(end - body), out, &err) != PG_OK)
        fail_msg("request XML: %s", err.data);
}

static void test_fetch_wechat_gzip_bill(void **state)
{
    arena_t a;
    buf_t err, text;
    fake_srv_t s;
    reply_t r;
    wechat_client_t c;
    kv_list_t req;
    bill_t b;
    size_t n;
    char *gz, *raw;
    (void)state;
    arena_init(&a, 0);
    buf_init(&err, &a);
    buf_init(&text, &a);
    gz = fixture(&a, "wechat_all.txt.gz", &n);
    r.status = 200;
    r.ctype = "application/x-gzip";
    r.body = gz;
    r.len = n;
    srv_bind(&s);
    c = wx_client(&a, &s);
    srv_start(&s, &r, 1);
    if (bill_fetch_wechat(&a, &c, "2026-01-02", &text, &err) != PG_OK)
        fail_msg("fetch: %s", err.data);
    raw = srv_finish(&s, &a, 0);
    assert_int_equal(text.len, n);
    assert_memory_equal(text.data, gz, n);
    assert_true(strncmp(raw, "POST /pay/downloadbill HTTP/1.1\r\n", 33) == 0);
    request_fields(&a, raw, &req);
    assert_string_equal(kv_get(&req, "appid"), "wxd930ea5d5a258f4f");
    assert_string_equal(kv_get(&req, "mch_id"), "10000100");
    assert_string_equal(kv_get(&req, "bill_date"), "20260102");
    assert_string_equal(kv_get(&req, "bill_type"), "ALL");
    assert_string_equal(kv_get(&req, "tar_type"), "GZIP");
    assert_int_equal(strlen(kv_get(&req, "nonce_str")), 32);
    assert_null(kv_get(&req, "sign_type"));
    assert_int_equal(wechat_verify_sign(&req, WX_KEY, WECHAT_SIGN_MD5), PG_OK);
    if (bill_parse_wechat(&a, text.data, text.len, &b, &err) != PG_OK)
        fail_msg("parse: %s", err.data);
    assert_wechat_rows(&b);
    arena_free(&a);
}

static void test_fetch_wechat_plain_hmac(void **state)
{
    arena_t a;
    buf_t err, text;
    fake_srv_t s;
    reply_t r;
    wechat_client_t c;
    kv_list_t req;
    size_t n;
    char *t;
    (void)state;
    arena_init(&a, 0);
    buf_init(&err, &a);
    buf_init(&text, &a);
    t = fixture(&a, "wechat_all.txt", &n);
    r = text_reply(200, t);
    srv_bind(&s);
    c = wx_client(&a, &s);
    c.sign_type = WECHAT_SIGN_HMAC_SHA256;
    srv_start(&s, &r, 1);
    if (bill_fetch_wechat(&a, &c, "20260102", &text, &err) != PG_OK)
        fail_msg("fetch: %s", err.data);
    request_fields(&a, srv_finish(&s, &a, 0), &req);
    assert_string_equal(kv_get(&req, "sign_type"), "HMAC-SHA256");
    assert_int_equal(strlen(kv_get(&req, "sign")), 64);
    assert_int_equal(wechat_verify_sign(&req, WX_KEY, WECHAT_SIGN_MD5), PG_OK);
    assert_string_equal(text.data, t);
    arena_free(&a);
}

static void test_fetch_wechat_errors(void **state)
{
    static const char no_bill[] =
        "<xml><return_code><![CDATA[FAIL]]></return_code><return_msg><![CDATA[No Bill Exist]]></return_msg>"
        "<error_code><![CDATA[20002]]></error_code></xml>";
    static const char bad_date[] =
        "<xml><return_code><![CDATA[FAIL]]></return_code><return_msg><![CDATA[invalid bill_date]]></return_msg>"
        "<error_code><![CDATA[20001]]></error_code></xml>";
    static const char creating[] =
        "\n<xml><return_code>FAIL</return_code><return_msg>Bill Creating</return_msg></xml>";
    arena_t a;
    buf_t err, text;
    fake_srv_t s;
    reply_t r;
    wechat_client_t c;
    (void)state;
    arena_init(&a, 0);
    buf_init(&err, &a);
    buf_init(&text, &a);

    r = text_reply(200, no_bill);
    srv_bind(&s);
    c = wx_client(&a, &s);
    srv_start(&s, &r, 1);
    assert_int_equal(bill_fetch_wechat(&a, &c, "2026-01-02", &text, &err), PG_ERR_NOT_FOUND);
    assert_err_has(&err, "No Bill Exist");
    (void)srv_finish(&s, &a, 0);

    r = text_reply(200, bad_date);
    srv_bind(&s);
    c = wx_client(&a, &s);
    srv_start(&s, &r, 1);
    assert_int_equal(bill_fetch_wechat(&a, &c, "2026-01-02", &text, &err), PG_ERR_UPSTREAM);
    assert_err_has(&err, "invalid bill_date");
    assert_err_has(&err, "20001");
    (void)srv_finish(&s, &a, 0);

    r = text_reply(200, creating);
    srv_bind(&s);
    c = wx_client(&a, &s);
    srv_start(&s, &r, 1);
    assert_int_equal(bill_fetch_wechat(&a, &c, "2026-01-02", &text, &err), PG_ERR_TIMEOUT);
    (void)srv_finish(&s, &a, 0);

    r = text_reply(200, "<xml><return_code>FAIL");
    srv_bind(&s);
    c = wx_client(&a, &s);
    srv_start(&s, &r, 1);
    assert_int_equal(bill_fetch_wechat(&a, &c, "2026-01-02", &text, &err), PG_ERR_UPSTREAM);
    (void)srv_finish(&s, &a, 0);

    r = text_reply(404, "nope");
    srv_bind(&s);
    c = wx_client(&a, &s);
    srv_start(&s, &r, 1);
    assert_int_equal(bill_fetch_wechat(&a, &c, "2026-01-02", &text, &err), PG_ERR_UPSTREAM);
    assert_err_has(&err, "404");
    (void)srv_finish(&s, &a, 0);

    r = text_reply(200, "");
    srv_bind(&s);
    c = wx_client(&a, &s);
    srv_start(&s, &r, 1);
    assert_int_equal(bill_fetch_wechat(&a, &c, "2026-01-02", &text, &err), PG_ERR_UPSTREAM);
    (void)srv_finish(&s, &a, 0);
    assert_int_equal(text.len, 0);

    /* nothing is sent for a bad date or a missing configuration */
    c.gateway = "http://127.0.0.1:9";
    assert_int_equal(bill_fetch_wechat(&a, &c, "2026-02-30", &text, &err), PG_ERR_BAD_INPUT);
    c.api_key = NULL;
    assert_int_equal(bill_fetch_wechat(&a, &c, "2026-01-02", &text, &err), PG_ERR_CONFIG);
    assert_int_equal(bill_fetch_wechat(&a, NULL, "2026-01-02", &text, &err), PG_ERR_CONFIG);
    arena_free(&a);
}

/* ------------------------------------------------------------------ */
/* Alipay downloads                                                    */

#define AL_METHOD_KEY "alipay_data_dataservice_bill_downloadurl_query_response"

/* {"<key>":<inner>,"sign":"<RSA2 of inner with the fixture Alipay key>"} */
static char *signed_reply(arena_t *a, const char *inner)
{
    buf_t sig, out;
    buf_init(&sig, a);
    assert_int_equal(crypto_rsa_sha256_sign_b64(g_ali_priv, inner, strlen(inner), &sig), PG_OK);
    buf_init(&out, a);
    buf_printf(&out, "{\"" AL_METHOD_KEY "\":%s,\"sign\":\"%s\"}", inner, sig.data);
    assert_false(out.failed);
    return out.data;
}

static alipay_client_t al_client(arena_t *a, const fake_srv_t *s)
{
    alipay_client_t c;
    memset(&c, 0, sizeof c);
    c.app_id = "2021004100000001";
    c.gateway = arena_printf(a, "http://127.0.0.1:%d/gateway.do", s->port);
    c.app_private_key = g_app_priv;
    c.alipay_public_key = g_ali_pub;
    c.http.connect_timeout_ms = 1000;
    c.http.total_timeout_ms = 2000;
    return c;
}

static void test_fetch_alipay_zip(void **state)
{
    arena_t a;
    buf_t err, zip;
    fake_srv_t s;
    reply_t r[2];
    alipay_client_t c;
    kv_list_t form;
    bill_t b;
    size_t n;
    char *z, *raw, *body, *end;
    const char *biz;
    (void)state;
    arena_init(&a, 0);
    buf_init(&err, &a);
    buf_init(&zip, &a);
    z = fixture(&a, "alipay_ok.zip", &n);
    srv_bind(&s);
    c = al_client(&a, &s);
    r[0] = text_reply(200, signed_reply(&a, arena_printf(&a,
        "{\"code\":\"10000\",\"msg\":\"Success\",\"bill_download_url\":"
        "\"http:\\/\\/127.0.0.1:%d\\/bills\\/alipay\\/0123456789abcdef.zip?t=1\"}", s.port)));
    r[1].status = 200;
    r[1].ctype = "application/zip";
    r[1].body = z;
    r[1].len = n;
    srv_start(&s, r, 2);
    if (bill_fetch_alipay(&a, &c, "20260102", &zip, &err) != PG_OK)
        fail_msg("fetch: %s", err.data);
    raw = srv_finish(&s, &a, 0);
    assert_int_equal(zip.len, n);
    assert_memory_equal(zip.data, z, n);

    /* first the signed gateway call, then a GET of the URL */
    assert_true(strncmp(raw, "POST /gateway.do HTTP/1.1\r\n", 27) == 0);
    body = strstr(raw, "\r\n\r\n") + 4;
    end = strstr(body, "\n=====\n");
    kv_init(&form, &a);
    assert_int_equal(form_parse(body, (size_t)(end - body), &form), PG_OK);
    assert_string_equal(kv_get(&form, "method"), "alipay.data.dataservice.bill.downloadurl.query");
    biz = kv_get(&form, "biz_content");
    assert_non_null(strstr(biz, "\"bill_type\":\"trade\""));
    assert_non_null(strstr(biz, "\"bill_date\":\"2026-01-02\""));
    assert_non_null(strstr(end, "GET /bills/alipay/0123456789abcdef.zip?t=1 HTTP/1.1\r\n"));

    if (bill_parse_alipay_zip(&a, zip.data, zip.len, &b, &err) != PG_OK)
        fail_msg("parse: %s", err.data);
    assert_alipay_rows(&b);
    arena_free(&a);
}

static void test_fetch_alipay_not_exist_and_errors(void **state)
{
    arena_t a;
    buf_t err, zip;
    fake_srv_t s;
    reply_t r[2];
    alipay_client_t c;
    char *unsigned_not_exist;
    (void)state;
    arena_init(&a, 0);
    buf_init(&err, &a);
    buf_init(&zip, &a);

    /* a signed isp.bill_not_exist */
    srv_bind(&s);
    c = al_client(&a, &s);
    r[0] = text_reply(200, signed_reply(&a,
        "{\"code\":\"40004\",\"msg\":\"Business Failed\",\"sub_code\":\"isp.bill_not_exist\","
        "\"sub_msg\":\"账单不存在\"}"));
    srv_start(&s, r, 1);
    assert_int_equal(bill_fetch_alipay(&a, &c, "2026-01-02", &zip, &err), PG_ERR_NOT_FOUND);
    (void)srv_finish(&s, &a, 0);

    /* the same unsigned is not believed */
    unsigned_not_exist = arena_printf(&a, "{\"" AL_METHOD_KEY "\":{\"code\":\"40004\",\"msg\":\"Business Failed\","
                                      "\"sub_code\":\"isp.bill_not_exist\",\"sub_msg\":\"x\"}}");
    srv_bind(&s);
    c = al_client(&a, &s);
    r[0] = text_reply(200, unsigned_not_exist);
    srv_start(&s, r, 1);
    assert_int_equal(bill_fetch_alipay(&a, &c, "2026-01-02", &zip, &err), PG_ERR_UPSTREAM);
    (void)srv_finish(&s, &a, 0);

    /* success without a URL */
    srv_bind(&s);
    c = al_client(&a, &s);
    r[0] = text_reply(200, signed_reply(&a, "{\"code\":\"10000\",\"msg\":\"Success\"}"));
    srv_start(&s, r, 1);
    assert_int_equal(bill_fetch_alipay(&a, &c, "2026-01-02", &zip, &err), PG_ERR_UPSTREAM);
    assert_err_has(&err, "bill_download_url");
    (void)srv_finish(&s, &a, 0);

    /* a tampered signature */
    srv_bind(&s);
    c = al_client(&a, &s);
    r[0] = text_reply(200, replace_once(&a, signed_reply(&a,
        "{\"code\":\"10000\",\"msg\":\"Success\",\"bill_download_url\":\"http://127.0.0.1:9/x.zip\"}"),
        "127.0.0.1:9", "127.0.0.1:8"));
    srv_start(&s, r, 1);
    assert_int_equal(bill_fetch_alipay(&a, &c, "2026-01-02", &zip, &err), PG_ERR_BAD_SIGNATURE);
    (void)srv_finish(&s, &a, 0);

    /* the download: HTTP 404 (expired link), then a body that is not a zip */
    srv_bind(&s);
    c = al_client(&a, &s);
    r[0] = text_reply(200, signed_reply(&a, arena_printf(&a,
        "{\"code\":\"10000\",\"msg\":\"Success\",\"bill_download_url\":\"http://127.0.0.1:%d/b.zip\"}", s.port)));
    r[1] = text_reply(404, "gone");
    srv_start(&s, r, 2);
    assert_int_equal(bill_fetch_alipay(&a, &c, "2026-01-02", &zip, &err), PG_ERR_UPSTREAM);
    assert_err_has(&err, "404");
    (void)srv_finish(&s, &a, 0);

    srv_bind(&s);
    c = al_client(&a, &s);
    r[0] = text_reply(200, signed_reply(&a, arena_printf(&a,
        "{\"code\":\"10000\",\"msg\":\"Success\",\"bill_download_url\":\"http://127.0.0.1:%d/b.zip\"}", s.port)));
    r[1] = text_reply(200, "<html>login</html>");
    srv_start(&s, r, 2);
    assert_int_equal(bill_fetch_alipay(&a, &c, "2026-01-02", &zip, &err), PG_ERR_UPSTREAM);
    assert_err_has(&err, "not a zip");
    (void)srv_finish(&s, &a, 0);
    assert_int_equal(zip.len, 0);

    /* a bad date sends nothing */
    assert_int_equal(bill_fetch_alipay(&a, &c, "2026-01", &zip, &err), PG_ERR_BAD_INPUT);
    assert_int_equal(bill_fetch_alipay(&a, NULL, "2026-01-02", &zip, &err), PG_ERR_CONFIG);
    arena_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alipay_zip_rows_and_totals),
        cmocka_unit_test(test_alipay_csv_utf8_and_gbk),
        cmocka_unit_test(test_alipay_header_by_name_not_position),
        cmocka_unit_test(test_alipay_bad_gbk),
        cmocka_unit_test(test_alipay_missing_column),
        cmocka_unit_test(test_alipay_malformed_rows),
        cmocka_unit_test(test_alipay_zip_refusals),
        cmocka_unit_test(test_alipay_sandbox_zip),
        cmocka_unit_test(test_wechat_plain_and_gzip),
        cmocka_unit_test(test_wechat_sandbox_text_and_gzip),
        cmocka_unit_test(test_wechat_refund_and_success_bill_types),
        cmocka_unit_test(test_wechat_fee_decimals),
        cmocka_unit_test(test_wechat_malformed),
        cmocka_unit_test(test_wechat_xml_reply_quote_stays_in_body),
        cmocka_unit_test(test_bill_totals_keep_the_row_signs),
        cmocka_unit_test(test_wechat_gzip_refusals),
        cmocka_unit_test(test_prefixes_and_corruptions_never_crash),
        cmocka_unit_test(test_normalize_date),
        cmocka_unit_test(test_fetch_wechat_gzip_bill),
        cmocka_unit_test(test_fetch_wechat_plain_hmac),
        cmocka_unit_test(test_fetch_wechat_errors),
        cmocka_unit_test(test_fetch_alipay_zip),
        cmocka_unit_test(test_fetch_alipay_not_exist_and_errors),
    };
    return cmocka_run_group_tests_name("bill", tests, group_setup, group_teardown);
}
