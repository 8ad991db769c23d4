/* QR tests: the SVG is well-formed and carries the expected module grid. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "qr.h"

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

static void test_qr_svg_encodes_code_url_with_quiet_zone(void **state)
{
    buf_t b;
    (void)state;
    buf_init(&b, NULL);
    assert_int_equal(qr_svg("weixin://wxpay/bizpayurl?pr=abc", 240, &b), PG_OK);
    assert_true(strncmp(b.data, "<svg ", 5) == 0);
    assert_non_null(strstr(b.data, "width=\"240\""));
    /* 31 bytes at level M need version 3: 29 modules + 2 x 4 quiet = 37. */
    assert_non_null(strstr(b.data, "viewBox=\"0 0 37 37\""));
    /* The three finder patterns: the top-left one starts at the quiet zone. */
    assert_non_null(strstr(b.data, "M4 4h1v1h-1z"));
    assert_true(count(b.data, "h1v1h-1z") > 200);
    assert_string_equal(b.data + b.len - 9, "\"/></svg>");
    buf_free(&b);
}

static void test_qr_svg_refuses_empty_and_oversized_text(void **state)
{
    buf_t b;
    static char big[8000];
    (void)state;
    buf_init(&b, NULL);
    assert_int_equal(qr_svg("", 100, &b), PG_ERR_BAD_INPUT);
    memset(big, 'x', sizeof big - 1);
    assert_int_equal(qr_svg(big, 100, &b), PG_ERR_TOO_LARGE);
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_qr_svg_encodes_code_url_with_quiet_zone),
        cmocka_unit_test(test_qr_svg_refuses_empty_and_oversized_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
