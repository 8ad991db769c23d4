/* text and netaddr: the Alipay subject sanitizer (UTF-8 cut on a character
 * boundary), IP literals, CIDR lists and the client behind trusted proxies. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include "arena.h"
#include "buf.h"
#include "netaddr.h"
#include "text.h"

static const char *subject(arena_t *a, const char *title, size_t max)
{
    buf_t b;
    buf_init(&b, a);
    assert_true(text_alipay_subject(title, max, &b));
    return b.data;
}

static void test_subject_special_characters_become_single_spaces(void **state)
{
    arena_t a;
    (void)state;
    arena_init(&a, 0);
    assert_string_equal(subject(&a, "C/C++ = fun & games", 256), "C C fun games");
    assert_string_equal(subject(&a, "  a?b#c%d\\e<f>g  ", 256), "a b c d e f g");
    assert_string_equal(subject(&a, "tab\there\r\nnew", 256), "tab here new");
    /* readable text stays as it is: Chinese, quotes, brackets, dashes */
    assert_string_equal(subject(&a, "C\xe8\xaf\xad\xe8\xa8\x80 - \"\xe5\x85\xa5\xe9\x97\xa8\" {x} (2)", 256),
                        "C\xe8\xaf\xad\xe8\xa8\x80 - \"\xe5\x85\xa5\xe9\x97\xa8\" {x} (2)");
    /* nothing left: a word, never an empty subject */
    assert_string_equal(subject(&a, "/=&", 256), "Order");
    assert_string_equal(subject(&a, "", 256), "Order");
    arena_free(&a);
}

static void test_subject_cut_on_a_character_boundary(void **state)
{
    arena_t a;
    buf_t b;
    char title[1200];
    const char *s;
    size_t n = 0;
    (void)state;
    arena_init(&a, 0);
    /* 300 Chinese characters (3 bytes each): 256 characters, 768 bytes */
    for (int i = 0; i < 300; i++) {
        memcpy(title + n, "\xe8\xaf\xbe", 3);
        n += 3;
    }
    title[n] = '\0';
    s = subject(&a, title, TEXT_ALIPAY_SUBJECT_MAX);
    assert_int_equal(strlen(s), 256 * 3);
    assert_memory_equal(s + 255 * 3, "\xe8\xaf\xbe", 3);
    /* 4-byte characters at the limit are whole or absent */
    s = subject(&a, "ab\xf0\x9f\x98\x80\xf0\x9f\x98\x80", 3);
    assert_string_equal(s, "ab\xf0\x9f\x98\x80");
    /* a space is never the last character of a cut subject */
    assert_string_equal(subject(&a, "abc/def", 4), "abc");
    assert_string_equal(subject(&a, "ab/def", 4), "ab d");
    /* invalid UTF-8 is reported (and dropped) */
    buf_init(&b, &a);
    assert_false(text_alipay_subject("bad \xff utf8 \xe8\xaf", 256, &b));
    assert_string_equal(b.data, "bad utf8");
    buf_init(&b, &a);
    assert_false(text_alipay_subject("\xed\xa0\x80 surrogate", 256, &b));
    arena_free(&a);
}

static void test_netaddr_literals(void **state)
{
    (void)state;
    assert_true(netaddr_is_ip("203.0.113.7"));
    assert_true(netaddr_is_ip("2001:db8::1"));
    assert_true(netaddr_is_ip("::ffff:192.0.2.1"));
    assert_false(netaddr_is_ip(""));
    assert_false(netaddr_is_ip(NULL));
    assert_false(netaddr_is_ip("localhost"));
    assert_false(netaddr_is_ip("1.2.3"));
    assert_false(netaddr_is_ip("1.2.3.4 "));
    assert_false(netaddr_is_ip("1.2.3.256"));
    assert_false(netaddr_is_ip("fe80::1%eth0"));
    assert_false(netaddr_is_ip("10.0.0.0/8"));
}

static void test_netaddr_list_parse_and_match(void **state)
{
    netaddr_list_t l;
    buf_t err;
    (void)state;
    buf_init(&err, NULL);
    assert_int_equal(netaddr_list_parse("10.0.0.0/8, 192.168.1.7 2001:db8::/32,::1", &l, &err), PG_OK);
    assert_int_equal(l.count, 4);
    assert_true(netaddr_list_contains(&l, "10.255.0.1"));
    assert_false(netaddr_list_contains(&l, "11.0.0.1"));
    assert_true(netaddr_list_contains(&l, "192.168.1.7"));
    assert_false(netaddr_list_contains(&l, "192.168.1.8"));
    assert_true(netaddr_list_contains(&l, "2001:db8:ffff::9"));
    assert_false(netaddr_list_contains(&l, "2001:db9::1"));
    assert_true(netaddr_list_contains(&l, "::1"));
    assert_true(netaddr_list_contains(&l, "::ffff:10.1.2.3"));   /* IPv4-mapped */
    assert_false(netaddr_list_contains(&l, "garbage"));
    netaddr_list_free(&l);
    assert_int_equal(netaddr_list_parse("172.16.0.0/12", &l, &err), PG_OK);
    assert_true(netaddr_list_contains(&l, "172.31.255.255"));
    assert_false(netaddr_list_contains(&l, "172.32.0.0"));
    netaddr_list_free(&l);
    assert_int_equal(netaddr_list_parse("", &l, &err), PG_OK);
    assert_int_equal(l.count, 0);
    assert_int_equal(netaddr_list_parse("10.0.0.0/33", &l, &err), PG_ERR_BAD_INPUT);
    assert_int_equal(netaddr_list_parse("10.0.0.0/", &l, &err), PG_ERR_BAD_INPUT);
    assert_int_equal(netaddr_list_parse("proxy.local", &l, &err), PG_ERR_BAD_INPUT);
    assert_non_null(strstr(err.data, "proxy.local"));
    buf_free(&err);
}

static void test_netaddr_client_rightmost_untrusted_hop(void **state)
{
    arena_t a;
    netaddr_list_t l;
    buf_t err;
    (void)state;
    arena_init(&a, 0);
    buf_init(&err, NULL);
    assert_int_equal(netaddr_list_parse("127.0.0.1, 10.0.0.0/8", &l, &err), PG_OK);
    /* a direct client: its header is not believed */
    assert_string_equal(netaddr_client(&a, &l, "198.51.100.9", "1.1.1.1"), "198.51.100.9");
    /* through our proxy */
    assert_string_equal(netaddr_client(&a, &l, "127.0.0.1", "203.0.113.7"), "203.0.113.7");
    /* a forged first hop is left of the real one: the rightmost untrusted wins */
    assert_string_equal(netaddr_client(&a, &l, "127.0.0.1", "6.6.6.6, 203.0.113.7 , 10.1.1.1"), "203.0.113.7");
    /* garbage stops the walk at the last trusted hop */
    assert_string_equal(netaddr_client(&a, &l, "127.0.0.1", "203.0.113.7, bogus"), "127.0.0.1");
    assert_string_equal(netaddr_client(&a, &l, "127.0.0.1", "203.0.113.7,, 10.0.0.2"), "10.0.0.2");
    /* all trusted: the leftmost */
    assert_string_equal(netaddr_client(&a, &l, "127.0.0.1", "10.0.0.3, 10.0.0.2"), "10.0.0.3");
    /* no header, or no trusted proxies configured */
    assert_string_equal(netaddr_client(&a, &l, "127.0.0.1", NULL), "127.0.0.1");
    netaddr_list_free(&l);
    assert_string_equal(netaddr_client(&a, &l, "127.0.0.1", "203.0.113.7"), "127.0.0.1");
    buf_free(&err);
    arena_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_subject_special_characters_become_single_spaces),
        cmocka_unit_test(test_subject_cut_on_a_character_boundary),
        cmocka_unit_test(test_netaddr_literals),
        cmocka_unit_test(test_netaddr_list_parse_and_match),
        cmocka_unit_test(test_netaddr_client_rightmost_untrusted_hop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
