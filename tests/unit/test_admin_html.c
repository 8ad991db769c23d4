/* admin_html and pwhash: the console's cookie is read only when it is
 * there exactly once, the cookie it sets is HttpOnly/SameSite=Strict
 * (Secure when asked), values are escaped, the chart's bars are integer
 * proportions, and passwords hash to Argon2id strings that verify only
 * with the right password (an unknown account verifies nothing). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "admin_html.h"
#include "arena.h"
#include "pwhash.h"

static void test_admin_cookie_is_read_only_when_present_once(void **state)
{
    arena_t a;
    const char *t;
    (void)state;
    arena_init(&a, 0);
    t = admin_html_cookie_token(&a, "x=1; pg_admin=abcDEF123; y=2");
    assert_non_null(t);
    assert_string_equal(t, "abcDEF123");
    assert_string_equal(admin_html_cookie_token(&a, "pg_admin=tok"), "tok");
    assert_null(admin_html_cookie_token(&a, NULL));
    assert_null(admin_html_cookie_token(&a, "pg_admin="));
    assert_null(admin_html_cookie_token(&a, "xpg_admin=tok"));
    assert_null(admin_html_cookie_token(&a, "pg_admin=a; pg_admin=b"));   /* planted beside ours */
    arena_free(&a);
}

static void test_admin_set_cookie_flags(void **state)
{
    arena_t a;
    http_response_t res;
    (void)state;
    arena_init(&a, 0);
    http_response_init(&res, &a);
    admin_html_set_cookie(&res, "/pay/admin", "TOKEN", true);
    assert_string_equal(res.headers.data,
                        "Set-Cookie: pg_admin=TOKEN; Path=/pay/admin; HttpOnly; SameSite=Strict; Secure\r\n");
    buf_clear(&res.headers);
    admin_html_set_cookie(&res, "/admin", NULL, false);
    assert_string_equal(res.headers.data, "Set-Cookie: pg_admin=; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=0\r\n");
    arena_free(&a);
}

static void test_admin_page_escapes_and_has_no_script(void **state)
{
    arena_t a;
    http_response_t res;
    admin_page_t p;
    (void)state;
    arena_init(&a, 0);
    http_response_init(&res, &a);
    memset(&p, 0, sizeof p);
    p.res = &res;
    p.b = &res.body;
    p.loc = I18N_EN;
    p.root = "/pay/admin";
    p.username = "<b>op</b>";
    p.role = "operator";
    p.csrf = "CSRF123";
    admin_html_begin(&p, 200, MSG_ADM_TITLE_ORDER, "<script>x</script>");
    admin_html_cell(&p, "\"><img src=x>");
    admin_html_end(&p);
    assert_null(strstr(res.body.data, "<script"));
    assert_null(strstr(res.body.data, "<img"));
    assert_non_null(strstr(res.body.data, "Order &lt;script&gt;x&lt;/script&gt;"));
    assert_non_null(strstr(res.body.data, "Signed in as &lt;b&gt;op&lt;/b&gt;"));
    assert_non_null(strstr(res.body.data, "name=\"csrf\" value=\"CSRF123\""));
    assert_non_null(strstr(res.headers.data, "Content-Security-Policy: default-src 'none';"));
    assert_non_null(strstr(res.headers.data, "X-Frame-Options: DENY\r\n"));
    arena_free(&a);
}

static void test_admin_chart_bars_are_integer_proportions(void **state)
{
    arena_t a;
    http_response_t res;
    admin_page_t p;
    const int64_t v[3] = { 0, 5000, 10000000000LL };
    const char *const labels[3] = { "2026-01-01", "2026-01-02", "2026-01-03" };
    (void)state;
    arena_init(&a, 0);
    http_response_init(&res, &a);
    memset(&p, 0, sizeof p);
    p.res = &res;
    p.b = &res.body;
    p.loc = I18N_ZH_CN;
    p.root = "/admin";
    admin_html_chart(&p, v, labels, 3);
    /* the largest is full height (160), a tiny one at least 1, zero none */
    assert_non_null(strstr(res.body.data, "data-day=\"2026-01-03\" data-fen=\"10000000000\" x=\"402\" y=\"10\" "
                                          "width=\"196\" height=\"160\""));
    assert_non_null(strstr(res.body.data, "data-day=\"2026-01-02\" data-fen=\"5000\" x=\"202\" y=\"169\" "
                                          "width=\"196\" height=\"1\""));
    assert_non_null(strstr(res.body.data, "data-day=\"2026-01-01\" data-fen=\"0\" x=\"2\" y=\"170\" "
                                          "width=\"196\" height=\"0\""));
    arena_free(&a);
}

static void test_pwhash_argon2id_verifies_only_the_password(void **state)
{
    char h[PWHASH_STR_MAX];
    (void)state;
    assert_int_equal(pwhash_hash("short", h), PG_ERR_BAD_INPUT);
    assert_int_equal(pwhash_hash("a long enough password", h), PG_OK);
    assert_memory_equal(h, "$argon2id$", 10);
    assert_true(pwhash_verify(h, "a long enough password"));
    assert_false(pwhash_verify(h, "a long enough passwore"));
    assert_false(pwhash_verify(h, ""));
    assert_false(pwhash_verify(NULL, "a long enough password"));
    assert_false(pwhash_verify("", "a long enough password"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_admin_cookie_is_read_only_when_present_once),
        cmocka_unit_test(test_admin_set_cookie_flags),
        cmocka_unit_test(test_admin_page_escapes_and_has_no_script),
        cmocka_unit_test(test_admin_chart_bars_are_integer_proportions),
        cmocka_unit_test(test_pwhash_argon2id_verifies_only_the_password),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
