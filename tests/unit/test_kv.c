/* kv: list operations and the strict form/url decoder. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "kv.h"

static int setup_arena(void **state)
{
    static arena_t a;
    arena_init(&a, 0);
    *state = &a;
    return 0;
}

static int teardown_arena(void **state)
{
    arena_free(*state);
    return 0;
}

static pg_err parse(arena_t *a, const char *s, kv_list_t *l)
{
    kv_init(l, a);
    return form_parse(s, strlen(s), l);
}

static void test_kv_add_copies_and_get_returns_first(void **state)
{
    kv_list_t l;
    kv_init(&l, *state);
    char key[] = "k";
    char val[] = "v1";
    assert_int_equal(kv_add(&l, key, val), PG_OK);
    key[0] = 'X';
    val[0] = 'X';
    assert_int_equal(kv_add(&l, "k", "v2"), PG_OK);
    assert_int_equal(l.count, 2);
    assert_string_equal(kv_get(&l, "k"), "v1");
    assert_int_equal(kv_count_key(&l, "k"), 2);
    assert_null(kv_get(&l, "missing"));
    assert_int_equal(kv_count_key(&l, "missing"), 0);
}

static void test_kv_grows_past_initial_capacity(void **state)
{
    kv_list_t l;
    kv_init(&l, *state);
    char key[16];
    for (int i = 0; i < 500; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        assert_int_equal(kv_add(&l, key, key), PG_OK);
    }
    assert_int_equal(l.count, 500);
    assert_string_equal(kv_get(&l, "k0"), "k0");
    assert_string_equal(kv_get(&l, "k499"), "k499");
    assert_string_equal(l.items[250].key, "k250");
}

static void test_form_parses_simple_pairs_in_order(void **state)
{
    kv_list_t l;
    assert_int_equal(parse(*state, "a=1&b=x%20y&c=", &l), PG_OK);
    assert_int_equal(l.count, 3);
    assert_string_equal(l.items[0].key, "a");
    assert_string_equal(l.items[0].value, "1");
    assert_string_equal(l.items[1].key, "b");
    assert_string_equal(l.items[1].value, "x y");
    assert_string_equal(l.items[2].key, "c");
    assert_string_equal(l.items[2].value, "");
}

static void test_form_plus_is_space(void **state)
{
    kv_list_t l;
    assert_int_equal(parse(*state, "sub+ject=hello+world&p=%2B1", &l), PG_OK);
    assert_string_equal(kv_get(&l, "sub ject"), "hello world");
    assert_string_equal(kv_get(&l, "p"), "+1");
}

static void test_form_value_may_contain_equals(void **state)
{
    kv_list_t l;
    assert_int_equal(parse(*state, "sign=abc==&x=a=b", &l), PG_OK);
    assert_string_equal(kv_get(&l, "sign"), "abc==");
    assert_string_equal(kv_get(&l, "x"), "a=b");
}

static void test_form_pair_without_equals_gets_empty_value(void **state)
{
    kv_list_t l;
    assert_int_equal(parse(*state, "flag&a=1", &l), PG_OK);
    assert_int_equal(l.count, 2);
    assert_string_equal(kv_get(&l, "flag"), "");
    assert_string_equal(kv_get(&l, "a"), "1");
}

static void test_form_skips_empty_pairs(void **state)
{
    kv_list_t l;
    assert_int_equal(parse(*state, "&a=1&&b=2&", &l), PG_OK);
    assert_int_equal(l.count, 2);
    assert_string_equal(l.items[0].key, "a");
    assert_string_equal(l.items[1].key, "b");
    assert_int_equal(parse(*state, "", &l), PG_OK);
    assert_int_equal(l.count, 0);
    assert_int_equal(parse(*state, "&&&", &l), PG_OK);
    assert_int_equal(l.count, 0);
}

static void test_form_keeps_repeated_keys_in_order(void **state)
{
    kv_list_t l;
    assert_int_equal(parse(*state, "sign=one&x=1&sign=two", &l), PG_OK);
    assert_int_equal(l.count, 3);
    assert_int_equal(kv_count_key(&l, "sign"), 2);
    assert_string_equal(kv_get(&l, "sign"), "one");
    assert_string_equal(l.items[2].value, "two");
}

static void test_form_rejects_bad_hex(void **state)
{
    kv_list_t l;
    assert_int_equal(parse(*state, "a=%zz", &l), PG_ERR_BAD_INPUT);
    assert_int_equal(parse(*state, "a=%g1", &l), PG_ERR_BAD_INPUT);
    assert_int_equal(parse(*state, "a=%1g", &l), PG_ERR_BAD_INPUT);
    assert_int_equal(parse(*state, "%zz=1", &l), PG_ERR_BAD_INPUT);
    assert_int_equal(parse(*state, "a=50%", &l), PG_ERR_BAD_INPUT);
    assert_int_equal(parse(*state, "a=% 20", &l), PG_ERR_BAD_INPUT);
}

static void test_form_rejects_truncated_escape(void **state)
{
    kv_list_t l;
    assert_int_equal(parse(*state, "a=%4", &l), PG_ERR_BAD_INPUT);
    assert_int_equal(parse(*state, "a=%4&b=1", &l), PG_ERR_BAD_INPUT);
    assert_int_equal(parse(*state, "a=%", &l), PG_ERR_BAD_INPUT);
    /* the length bounds the input, not the NUL: "%41" cut after "%4" */
    kv_init(&l, *state);
    assert_int_equal(form_parse("a=%41", 4, &l), PG_ERR_BAD_INPUT);
}

static void test_form_rejects_percent_00(void **state)
{
    kv_list_t l;
    assert_int_equal(parse(*state, "a=x%00y", &l), PG_ERR_BAD_INPUT);
    assert_int_equal(parse(*state, "a%00=1", &l), PG_ERR_BAD_INPUT);
}

static void test_form_rejects_control_bytes(void **state)
{
    kv_list_t l;
    assert_int_equal(parse(*state, "a=%01", &l), PG_ERR_BAD_INPUT);
    assert_int_equal(parse(*state, "a=%1F", &l), PG_ERR_BAD_INPUT);
    assert_int_equal(parse(*state, "a=%1b[31m", &l), PG_ERR_BAD_INPUT);
    assert_int_equal(parse(*state, "a=x\x01y", &l), PG_ERR_BAD_INPUT);   /* raw */
    kv_init(&l, *state);
    assert_int_equal(form_parse("a=x\0y", 5, &l), PG_ERR_BAD_INPUT);      /* raw NUL */
}

static void test_form_allows_tab_and_line_breaks(void **state)
{
    kv_list_t l;
    assert_int_equal(parse(*state, "memo=a%09b%0D%0Ac", &l), PG_OK);
    assert_string_equal(kv_get(&l, "memo"), "a\tb\r\nc");
}

static void test_form_passes_utf8_through(void **state)
{
    kv_list_t l;
    assert_int_equal(parse(*state, "subject=%E8%AF%BE%E7%A8%8B&raw=课程", &l), PG_OK);
    assert_string_equal(kv_get(&l, "subject"), "课程");
    assert_string_equal(kv_get(&l, "raw"), "课程");
}

static void test_form_accepts_lower_and_upper_hex(void **state)
{
    kv_list_t l;
    assert_int_equal(parse(*state, "a=%2f%2F%e8%af%be", &l), PG_OK);
    assert_string_equal(kv_get(&l, "a"), "//课");
}

static void test_form_decodes_exactly_once(void **state)
{
    kv_list_t l;
    assert_int_equal(parse(*state, "a=%2541&b=%252B&c=%26x%3D1", &l), PG_OK);
    assert_string_equal(kv_get(&l, "a"), "%41");
    assert_string_equal(kv_get(&l, "b"), "%2B");
    assert_int_equal(l.count, 3);   /* encoded & and = do not split */
    assert_string_equal(kv_get(&l, "c"), "&x=1");
}

static void test_form_respects_length_not_nul(void **state)
{
    kv_list_t l;
    kv_init(&l, *state);
    assert_int_equal(form_parse("a=1&b=2&c=3", 7, &l), PG_OK);
    assert_int_equal(l.count, 2);
    assert_string_equal(kv_get(&l, "b"), "2");
    assert_null(kv_get(&l, "c"));
}

static void test_url_decode_plus_handling(void **state)
{
    char *out = NULL;
    assert_int_equal(url_decode(*state, "a+b%20c", 7, true, &out), PG_OK);
    assert_string_equal(out, "a b c");
    assert_int_equal(url_decode(*state, "a+b%20c", 7, false, &out), PG_OK);
    assert_string_equal(out, "a+b c");
    assert_int_equal(url_decode(*state, "", 0, true, &out), PG_OK);
    assert_string_equal(out, "");
}

static void test_url_decode_same_rejections(void **state)
{
    char sentinel[] = "s";
    char *out = sentinel;
    assert_int_equal(url_decode(*state, "%zz", 3, false, &out), PG_ERR_BAD_INPUT);
    assert_null(out);
    assert_int_equal(url_decode(*state, "%4", 2, false, &out), PG_ERR_BAD_INPUT);
    assert_int_equal(url_decode(*state, "%00", 3, false, &out), PG_ERR_BAD_INPUT);
    assert_int_equal(url_decode(*state, "\x02", 1, false, &out), PG_ERR_BAD_INPUT);
    assert_int_equal(url_decode(*state, "%2541", 5, false, &out), PG_OK);
    assert_string_equal(out, "%41");
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup_arena, teardown_arena)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_kv_add_copies_and_get_returns_first),
        T(test_kv_grows_past_initial_capacity),
        T(test_form_parses_simple_pairs_in_order),
        T(test_form_plus_is_space),
        T(test_form_value_may_contain_equals),
        T(test_form_pair_without_equals_gets_empty_value),
        T(test_form_skips_empty_pairs),
        T(test_form_keeps_repeated_keys_in_order),
        T(test_form_rejects_bad_hex),
        T(test_form_rejects_truncated_escape),
        T(test_form_rejects_percent_00),
        T(test_form_rejects_control_bytes),
        T(test_form_allows_tab_and_line_breaks),
        T(test_form_passes_utf8_through),
        T(test_form_accepts_lower_and_upper_hex),
        T(test_form_decodes_exactly_once),
        T(test_form_respects_length_not_nul),
        T(test_url_decode_plus_handling),
        T(test_url_decode_same_rejections),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
