/* buf: growth, printf, escaping appenders; malloc- and arena-backed. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include "buf.h"

static void test_buf_init_gives_empty_string(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b, NULL);
    assert_non_null(b.data);
    assert_string_equal(b.data, "");
    assert_int_equal(b.len, 0);
    buf_clear(&b);
    buf_free(&b);
    buf_free(&b);   /* second free is harmless */
    buf_wipe(&b);
}

static void test_buf_grows_malloc_backed(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b, NULL);
    for (int i = 0; i < 10000; i++)
        assert_int_equal(buf_putc(&b, (char)('a' + i % 26)), PG_OK);
    assert_int_equal(b.len, 10000);
    assert_true(b.cap > b.len);
    assert_int_equal(b.data[10000], '\0');
    for (int i = 0; i < 10000; i++)
        assert_int_equal(b.data[i], 'a' + i % 26);
    buf_free(&b);
    assert_int_equal(b.len, 0);
}

static void test_buf_grows_arena_backed(void **state)
{
    (void)state;
    arena_t a;
    arena_init(&a, 128);
    buf_t b;
    buf_init(&b, &a);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(buf_puts(&b, "0123456789"), PG_OK);
    assert_int_equal(b.len, 10000);
    assert_int_equal(strlen(b.data), 10000);
    assert_memory_equal(b.data + 9990, "0123456789", 10);
    buf_free(&b);   /* no-op: the arena owns it */
    arena_free(&a);
}

static void test_buf_append_binary_with_nul(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b, NULL);
    assert_int_equal(buf_append(&b, "a\0b", 3), PG_OK);
    assert_int_equal(b.len, 3);
    assert_memory_equal(b.data, "a\0b", 4);
    assert_int_equal(buf_append(&b, NULL, 0), PG_OK);
    assert_int_equal(b.len, 3);
    buf_free(&b);
}

static void test_buf_clear_keeps_storage(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b, NULL);
    buf_puts(&b, "hello");
    char *before = b.data;
    buf_clear(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    assert_ptr_equal(b.data, before);
    buf_puts(&b, "again");
    assert_string_equal(b.data, "again");
    buf_free(&b);
}

static void test_buf_printf_appends_short_and_long(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b, NULL);
    assert_int_equal(buf_printf(&b, "%s=%d", "n", 7), PG_OK);
    assert_int_equal(buf_printf(&b, "&%s", "x"), PG_OK);
    assert_string_equal(b.data, "n=7&x");
    char big[5000];
    memset(big, 'z', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(buf_printf(&b, "[%s]", big), PG_OK);
    assert_int_equal(b.len, 5 + 1 + 4999 + 1);
    assert_int_equal(b.data[5], '[');
    assert_int_equal(b.data[b.len - 1], ']');
    assert_int_equal(b.data[b.len], '\0');
    assert_int_equal(buf_printf(&b, "%s", ""), PG_OK);
    assert_int_equal(b.len, 5 + 1 + 4999 + 1);
    buf_free(&b);
}

static void test_buf_printf_arena_backed_grows(void **state)
{
    (void)state;
    arena_t a;
    arena_init(&a, 64);
    buf_t b;
    buf_init(&b, &a);
    buf_puts(&b, "head:");
    for (int i = 0; i < 200; i++)
        assert_int_equal(buf_printf(&b, "%03d,", i), PG_OK);
    assert_int_equal(b.len, 5 + 200 * 4);
    assert_memory_equal(b.data, "head:000,001,", 13);
    assert_memory_equal(b.data + b.len - 4, "199,", 4);
    arena_free(&a);
}

static void test_buf_wipe_zeroes_and_frees(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b, NULL);
    buf_puts(&b, "secret-key");
    buf_wipe(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");

    arena_t a;
    arena_init(&a, 0);
    buf_init(&b, &a);
    buf_puts(&b, "secret-key");
    char *storage = b.data;
    buf_wipe(&b);
    for (size_t i = 0; i < 10; i++)
        assert_int_equal(storage[i], 0);
    arena_free(&a);
}

static void assert_urlencoded(const char *in, const char *want)
{
    buf_t b;
    buf_init(&b, NULL);
    assert_int_equal(buf_append_urlencoded(&b, in), PG_OK);
    assert_string_equal(b.data, want);
    buf_free(&b);
}

static void test_buf_urlencode_keeps_unreserved(void **state)
{
    (void)state;
    assert_urlencoded("AZaz09-._~", "AZaz09-._~");
    assert_urlencoded("", "");
}

static void test_buf_urlencode_uses_uppercase_hex(void **state)
{
    (void)state;
    assert_urlencoded("a b+c&d=e/f?g#h%i", "a%20b%2Bc%26d%3De%2Ff%3Fg%23h%25i");
    assert_urlencoded("*'()!:@,;", "%2A%27%28%29%21%3A%40%2C%3B");
    assert_urlencoded("\n\x7f", "%0A%7F");
}

static void test_buf_urlencode_encodes_utf8_bytes(void **state)
{
    (void)state;
    assert_urlencoded("课程", "%E8%AF%BE%E7%A8%8B");
    assert_urlencoded("\xff", "%FF");
}

static void test_buf_html_escapes_five_characters(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b, NULL);
    assert_int_equal(buf_append_html(&b, "<a href=\"x\">Tom & Jerry's</a>"), PG_OK);
    assert_string_equal(b.data, "&lt;a href=&quot;x&quot;&gt;Tom &amp; Jerry&#39;s&lt;/a&gt;");
    buf_clear(&b);
    assert_int_equal(buf_append_html(&b, "plain 课程"), PG_OK);
    assert_string_equal(b.data, "plain 课程");
    buf_clear(&b);
    assert_int_equal(buf_append_html(&b, "&amp;"), PG_OK);   /* escaped again, never trusted */
    assert_string_equal(b.data, "&amp;amp;");
    buf_free(&b);
}

static void test_buf_json_string_escapes(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b, NULL);
    assert_int_equal(buf_append_json_string(&b, "say \"hi\"\\ \n\r\t\b\f"), PG_OK);
    assert_string_equal(b.data, "\"say \\\"hi\\\"\\\\ \\n\\r\\t\\b\\f\"");
    buf_clear(&b);
    assert_int_equal(buf_append_json_string(&b, ""), PG_OK);
    assert_string_equal(b.data, "\"\"");
    buf_free(&b);
}

static void test_buf_json_control_chars_become_u00xx(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b, NULL);
    assert_int_equal(buf_append_json_string(&b, "\x01\x1f\x1b" "a"), PG_OK);
    assert_string_equal(b.data, "\"\\u0001\\u001f\\u001ba\"");
    buf_free(&b);
}

static void test_buf_json_passes_utf8_and_slash(void **state)
{
    (void)state;
    arena_t a;
    arena_init(&a, 0);
    buf_t b;
    buf_init(&b, &a);
    assert_int_equal(buf_append_json_string(&b, "课程/€ ok"), PG_OK);
    assert_string_equal(b.data, "\"课程/€ ok\"");
    arena_free(&a);
}

static void test_buf_json_appends_after_existing_content(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b, NULL);
    buf_puts(&b, "{\"k\":");
    buf_append_json_string(&b, "v");
    buf_putc(&b, '}');
    assert_string_equal(b.data, "{\"k\":\"v\"}");
    buf_free(&b);
}

static void test_buf_refuses_impossible_growth_and_stays_failed(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b, NULL);
    buf_puts(&b, "abc");
    /* a length that cannot be represented: must fail cleanly, not wrap */
    assert_int_equal(buf_append(&b, "x", SIZE_MAX - 1), PG_ERR_NOMEM);
    assert_true(b.failed);
    assert_int_equal(buf_puts(&b, "more"), PG_ERR_NOMEM);
    assert_int_equal(buf_printf(&b, "%d", 1), PG_ERR_NOMEM);
    assert_int_equal(buf_append_json_string(&b, "x"), PG_ERR_NOMEM);
    assert_string_equal(b.data, "abc");
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_init_gives_empty_string),
        cmocka_unit_test(test_buf_grows_malloc_backed),
        cmocka_unit_test(test_buf_grows_arena_backed),
        cmocka_unit_test(test_buf_append_binary_with_nul),
        cmocka_unit_test(test_buf_clear_keeps_storage),
        cmocka_unit_test(test_buf_printf_appends_short_and_long),
        cmocka_unit_test(test_buf_printf_arena_backed_grows),
        cmocka_unit_test(test_buf_wipe_zeroes_and_frees),
        cmocka_unit_test(test_buf_urlencode_keeps_unreserved),
        cmocka_unit_test(test_buf_urlencode_uses_uppercase_hex),
        cmocka_unit_test(test_buf_urlencode_encodes_utf8_bytes),
        cmocka_unit_test(test_buf_html_escapes_five_characters),
        cmocka_unit_test(test_buf_json_string_escapes),
        cmocka_unit_test(test_buf_json_control_chars_become_u00xx),
        cmocka_unit_test(test_buf_json_passes_utf8_and_slash),
        cmocka_unit_test(test_buf_json_appends_after_existing_content),
        cmocka_unit_test(test_buf_refuses_impossible_growth_and_stays_failed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
