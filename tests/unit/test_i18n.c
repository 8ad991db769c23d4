/* i18n: both catalogues complete, Accept-Language negotiation with
 * q-values (bounded), amounts, Beijing time by integer arithmetic, and
 * escaping of message arguments. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "buf.h"
#include "i18n.h"

static void test_i18n_catalogues_are_complete(void **state)
{
    (void)state;
    for (int id = 0; id < MSG_COUNT; id++) {
        if (!I18N_CATALOGUE_ZH_CN[id] || !*I18N_CATALOGUE_ZH_CN[id])
            fail_msg("zh-CN lacks message %d", id);
        if (!I18N_CATALOGUE_EN[id] || !*I18N_CATALOGUE_EN[id])
            fail_msg("en lacks message %d", id);
        /* the same holes in both languages */
        assert_int_equal(strstr(I18N_CATALOGUE_ZH_CN[id], "{}") != NULL,
                         strstr(I18N_CATALOGUE_EN[id], "{}") != NULL);
    }
    assert_string_equal(i18n_msg(I18N_ZH_CN, MSG_TITLE_PAY_WECHAT), "微信支付");
    assert_string_equal(i18n_msg(I18N_EN, MSG_TITLE_PAY_WECHAT), "Pay with WeChat");
}

#define ZH I18N_ZH_CN
#define EN I18N_EN

static void test_i18n_negotiates_by_q_values(void **state)
{
    (void)state;
    assert_int_equal(i18n_negotiate(ZH, NULL), ZH);
    assert_int_equal(i18n_negotiate(EN, NULL), EN);
    assert_int_equal(i18n_negotiate(ZH, ""), ZH);
    assert_int_equal(i18n_negotiate(ZH, "en"), EN);
    assert_int_equal(i18n_negotiate(EN, "zh-CN"), ZH);
    assert_int_equal(i18n_negotiate(ZH, "en-US,en;q=0.9"), EN);
    assert_int_equal(i18n_negotiate(EN, "zh-TW,zh;q=0.9,en-US;q=0.8,en;q=0.7"), ZH);
    assert_int_equal(i18n_negotiate(ZH, "zh;q=0.5, en;q=0.8"), EN);
    assert_int_equal(i18n_negotiate(ZH, "en;q=0.8 , zh ; q=0.9"), ZH);
    assert_int_equal(i18n_negotiate(ZH, "EN-gb"), EN);
    /* order decides a tie */
    assert_int_equal(i18n_negotiate(ZH, "en;q=0.5,zh;q=0.5"), EN);
    assert_int_equal(i18n_negotiate(EN, "zh;q=0.5,en;q=0.5"), ZH);
    /* q=0 refuses; neither named: the default */
    assert_int_equal(i18n_negotiate(ZH, "en;q=0"), ZH);
    assert_int_equal(i18n_negotiate(EN, "fr-FR,de;q=0.8"), EN);
    assert_int_equal(i18n_negotiate(ZH, "fr-FR,de;q=0.8"), ZH);
    assert_int_equal(i18n_negotiate(ZH, "fr,en;q=0.1"), EN);
    /* "*" is the default language */
    assert_int_equal(i18n_negotiate(ZH, "*;q=0.9,en;q=0.5"), ZH);
    assert_int_equal(i18n_negotiate(EN, "zh;q=0.5,*"), EN);
    assert_int_equal(i18n_negotiate(EN, "zh;q=0.5,*;q=0.1"), ZH);
    /* the English "en" is not "eng" nor a prefix of "enx" */
    assert_int_equal(i18n_negotiate(ZH, "eng"), ZH);
    assert_int_equal(i18n_negotiate(EN, "zhx"), EN);
    assert_int_equal(i18n_negotiate(ZH, "en;q=1.000"), EN);
    assert_int_equal(i18n_negotiate(ZH, "en;q=0.001"), EN);
}

static void test_i18n_malformed_or_huge_header_gives_default(void **state)
{
    static const char *const BAD[] = {
        "en;q=2", "en;q=1.5", "en;q=0.0001", "en;q=", "en;q=abc", "en;level=1", "en;q=0.5x",
        "en us", "en-@", "-en", "en,,;", "en;q=1.0001", "en;Q", "e\x01n",
    };
    char big[700];
    char many[200];
    (void)state;
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++)
        if (i18n_negotiate(ZH, BAD[i]) != ZH)
            fail_msg("'%s' was not refused", BAD[i]);
    memset(big, ' ', sizeof big);
    memcpy(big + sizeof big - 3, "en", 3);   /* 699 bytes, ends in "en\0" */
    assert_int_equal(i18n_negotiate(ZH, big), ZH);
    memcpy(big + sizeof big - 3 - 400, "en", 2);
    big[sizeof big - 3 - 400 + 2] = '\0';    /* 299 spaces then "en": fine */
    assert_int_equal(i18n_negotiate(ZH, big), EN);
    for (int i = 0; i < 33; i++)
        memcpy(many + 3 * i, "fr,", 3);
    memcpy(many + 3 * 33, "en", 3);
    assert_int_equal(i18n_negotiate(ZH, many), ZH);   /* 34 entries */
    assert_int_equal(i18n_negotiate(ZH, many + 3 * 2), EN);   /* 32 entries */
}

static char rendered[128];

static const char *render_time(i18n_locale_t loc, const char *iso)
{
    buf_t b;
    pg_err rc;
    buf_init(&b, NULL);
    rc = i18n_append_time(&b, loc, iso);
    snprintf(rendered, sizeof rendered, "%s", b.data);
    buf_free(&b);
    return rc == PG_OK ? rendered : NULL;
}

static void test_i18n_times_in_beijing_and_utc(void **state)
{
    (void)state;
    assert_string_equal(render_time(ZH, "2026-03-01T02:30:59Z"), "2026-03-01 10:30（北京时间）");
    assert_string_equal(render_time(EN, "2026-03-01T02:30:59Z"), "2026-03-01 02:30 UTC");
    /* across a day, a month (leap year), a year */
    assert_string_equal(render_time(ZH, "2024-02-28T16:00:00Z"), "2024-02-29 00:00（北京时间）");
    assert_string_equal(render_time(ZH, "2023-02-28T16:00:00Z"), "2023-03-01 00:00（北京时间）");
    assert_string_equal(render_time(ZH, "2025-12-31T23:59:00Z"), "2026-01-01 07:59（北京时间）");
    assert_string_equal(render_time(ZH, "1970-01-01T00:00:00Z"), "1970-01-01 08:00（北京时间）");
    /* no DST in summer */
    assert_string_equal(render_time(ZH, "2026-07-15T12:00:00Z"), "2026-07-15 20:00（北京时间）");
    assert_null(render_time(ZH, "2026-02-30T00:00:00Z"));
    assert_null(render_time(ZH, "2026-01-01 00:00:00"));
    assert_null(render_time(ZH, "2026-01-01T24:00:00Z"));
    assert_null(render_time(EN, NULL));
}

static void test_i18n_amounts_and_escaped_arguments(void **state)
{
    buf_t b;
    (void)state;
    buf_init(&b, NULL);
    i18n_append_amount(&b, 9900);
    assert_string_equal(b.data, "¥99.00");
    buf_clear(&b);
    i18n_append_amount(&b, 5);
    assert_string_equal(b.data, "¥0.05");
    buf_clear(&b);
    /* per currency: zero-decimal ones without decimals, a symbol or the code */
    i18n_append_amount_in(&b, 9900, NULL);
    assert_string_equal(b.data, "¥99.00");
    buf_clear(&b);
    i18n_append_amount_in(&b, 9900, "jpy");
    assert_string_equal(b.data, "JP¥9900");
    buf_clear(&b);
    i18n_append_amount_in(&b, 15000, "krw");
    assert_string_equal(b.data, "₩15000");
    buf_clear(&b);
    i18n_append_amount_in(&b, 1250, "usd");
    assert_string_equal(b.data, "US$12.50");
    buf_clear(&b);
    i18n_append_amount_in(&b, 1250, "chf");
    assert_string_equal(b.data, "CHF 12.50");
    buf_clear(&b);
    i18n_append_amount_in(&b, 700, "xof");
    assert_string_equal(b.data, "XOF 700");
    buf_clear(&b);
    i18n_append_amount_in(&b, -500, "jpy");
    assert_string_equal(b.data, "-JP¥500");
    buf_clear(&b);
    i18n_append_html(&b, EN, MSG_PAYABLE_UNTIL, "<b>&\"'");
    assert_string_equal(b.data, "Payable until &lt;b&gt;&amp;&quot;&#39;.");
    buf_clear(&b);
    i18n_append_html(&b, ZH, MSG_PAYABLE_UNTIL, "x");
    assert_string_equal(b.data, "请在 x 前完成支付。");
    assert_string_equal(i18n_error_msg(EN, "link_expired"), i18n_msg(EN, MSG_ERR_LINK_EXPIRED));
    assert_string_equal(i18n_error_msg(ZH, "no_such_code"), i18n_msg(ZH, MSG_ERR_GENERIC));
    assert_string_equal(i18n_error_msg(ZH, NULL), i18n_msg(ZH, MSG_ERR_GENERIC));
    assert_string_equal(i18n_status_msg(ZH, "PAID"), "已支付");
    assert_null(i18n_status_msg(EN, "WEIRD"));
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_i18n_catalogues_are_complete),
        cmocka_unit_test(test_i18n_negotiates_by_q_values),
        cmocka_unit_test(test_i18n_malformed_or_huge_header_gives_default),
        cmocka_unit_test(test_i18n_times_in_beijing_and_utc),
        cmocka_unit_test(test_i18n_amounts_and_escaped_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
