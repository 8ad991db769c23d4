/* xml tests: the flat WeChat dialect, and the hardening that keeps hostile
 * documents (XXE, billion laughs, odd encodings) from doing anything. Run
 * with cwd tests/unit. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "xml.h"

static int group_setup(void **state)
{
    (void)state;
    xml_global_init();
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    xml_global_cleanup();
    return 0;
}

static pg_err parse_len(arena_t *a, const char *doc, size_t len, kv_list_t *out)
{
    buf_t err;
    pg_err rc;
    buf_init(&err, a);
    rc = xml_parse_flat(a, doc, len, out, &err);
    if (rc != PG_OK) {
        assert_true(err.len > 0);        /* every refusal says why */
        assert_int_equal(out->count, 0); /* and never hands out half a message */
    }
    return rc;
}

static pg_err parse(arena_t *a, const char *doc, kv_list_t *out)
{
    return parse_len(a, doc, strlen(doc), out);
}

static pg_err parse_only(const char *doc)
{
    arena_t a;
    kv_list_t l;
    pg_err rc;
    arena_init(&a, 0);
    rc = parse(&a, doc, &l);
    arena_free(&a);
    return rc;
}

static long elapsed_ms(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (long)(t1.tv_sec - t0->tv_sec) * 1000 + (t1.tv_nsec - t0->tv_nsec) / 1000000;
}

/* ------------------------------------------------------------------ */
/* reading                                                             */

static void test_parse_cdata_and_plain_text(void **state)
{
    arena_t a;
    kv_list_t l;
    (void)state;
    arena_init(&a, 0);
    assert_int_equal(parse(&a,
                           "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                           "<xml>\n"
                           "  <return_code><![CDATA[SUCCESS]]></return_code>\n"
                           "  <total_fee>9900</total_fee>\n"
                           "  <body><![CDATA[C\xe8\xaf\xad\xe8\xa8\x80 <\xe5\x85\xa5\xe9\x97\xa8> & more]]></body>\n"
                           "  <escaped>a &amp; b &lt;c&gt; &#20013;&#x6587;</escaped>\n"
                           "</xml>\n",
                           &l),
                     PG_OK);
    assert_int_equal(l.count, 4);
    assert_string_equal(l.items[0].key, "return_code");
    assert_string_equal(l.items[0].value, "SUCCESS");
    assert_string_equal(l.items[1].key, "total_fee");
    assert_string_equal(l.items[1].value, "9900");
    assert_string_equal(kv_get(&l, "body"), "C\xe8\xaf\xad\xe8\xa8\x80 <\xe5\x85\xa5\xe9\x97\xa8> & more");
    assert_string_equal(kv_get(&l, "escaped"), "a & b <c> \xe4\xb8\xad\xe6\x96\x87");
    arena_free(&a);
}

static void test_parse_keeps_values_exactly(void **state)
{
    arena_t a;
    kv_list_t l;
    (void)state;
    arena_init(&a, 0);
    assert_int_equal(parse(&a,
                           "<xml><a><![CDATA[  padded \n]]></a><b>  </b><c> x </c>"
                           "<d>one<![CDATA[two]]>three</d><e><![CDATA[]]]]><![CDATA[>]]></e></xml>",
                           &l),
                     PG_OK);
    assert_string_equal(kv_get(&l, "a"), "  padded \n");
    assert_string_equal(kv_get(&l, "b"), "  ");
    assert_string_equal(kv_get(&l, "c"), " x ");
    assert_string_equal(kv_get(&l, "d"), "onetwothree");
    assert_string_equal(kv_get(&l, "e"), "]]>");
    arena_free(&a);
}

static void test_parse_empty_and_missing_fields(void **state)
{
    arena_t a;
    kv_list_t l;
    (void)state;
    arena_init(&a, 0);
    assert_int_equal(parse(&a, "<xml><a/><b></b><c><![CDATA[]]></c><d>1</d></xml>", &l), PG_OK);
    assert_int_equal(l.count, 4);
    assert_string_equal(kv_get(&l, "a"), "");
    assert_string_equal(kv_get(&l, "b"), "");
    assert_string_equal(kv_get(&l, "c"), "");
    assert_null(kv_get(&l, "missing"));

    assert_int_equal(parse(&a, "<xml></xml>", &l), PG_OK);
    assert_int_equal(l.count, 0);
    assert_int_equal(parse(&a, "<xml/>", &l), PG_OK);
    assert_int_equal(l.count, 0);
    arena_free(&a);
}

static void test_parse_refuses_external_entity(void **state)
{
    (void)state;
    assert_int_equal(parse_only("<!DOCTYPE xml [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><xml><a>&x;</a></xml>"),
                     PG_ERR_BAD_INPUT);
    /* parameter entities and external DTDs */
    assert_int_equal(parse_only("<?xml version=\"1.0\"?><!DOCTYPE xml SYSTEM \"http://127.0.0.1:1/x.dtd\"><xml><a>1</a></xml>"),
                     PG_ERR_BAD_INPUT);
    assert_int_equal(parse_only("<!DOCTYPE xml [<!ENTITY % p SYSTEM \"file:///etc/passwd\"> %p;]><xml/>"),
                     PG_ERR_BAD_INPUT);
    /* any spelling, with or without a subset */
    assert_int_equal(parse_only("<!doctype xml><xml><a>1</a></xml>"), PG_ERR_BAD_INPUT);
    assert_int_equal(parse_only("<!DocType xml><xml><a>1</a></xml>"), PG_ERR_BAD_INPUT);
    assert_int_equal(parse_only("<xml><a><![CDATA[<!ENTITY x \"y\">]]></a></xml>"), PG_ERR_BAD_INPUT);
    /* the byte screen: after other '<'s, at the very end, after a near miss */
    assert_int_equal(parse_only("<xml><a>1</a></xml><!eNtItY"), PG_ERR_BAD_INPUT);
    assert_int_equal(parse_only("<xml><a>1</a><<!<!DOCTYPE x></xml>"), PG_ERR_BAD_INPUT);
    assert_int_equal(parse_only("<xml><a><![CDATA[<!DOCTYP <!ENTIT]]></a></xml>"), PG_OK);
    /* an entity that was never declared */
    assert_int_equal(parse_only("<xml><a>&x;</a></xml>"), PG_ERR_BAD_INPUT);
}

static void test_parse_refuses_billion_laughs_quickly(void **state)
{
    static const char doc[] =
        "<?xml version=\"1.0\"?>\n"
        "<!DOCTYPE lolz [\n"
        " <!ENTITY lol \"lol\">\n"
        " <!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n"
        " <!ENTITY lol2 \"&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;\">\n"
        " <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">\n"
        " <!ENTITY lol4 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">\n"
        " <!ENTITY lol5 \"&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;\">\n"
        " <!ENTITY lol6 \"&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;\">\n"
        " <!ENTITY lol7 \"&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;\">\n"
        " <!ENTITY lol8 \"&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;\">\n"
        " <!ENTITY lol9 \"&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;\">\n"
        "]>\n"
        "<xml><a>&lol9;</a></xml>\n";
    struct timespec t0;
    (void)state;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(parse_only(doc), PG_ERR_BAD_INPUT);
    assert_true(elapsed_ms(&t0) < 1000);
}

static void test_parse_refuses_nesting_and_other_nodes(void **state)
{
    (void)state;
    assert_int_equal(parse_only("<xml><a><b>1</b></a></xml>"), PG_ERR_BAD_INPUT);
    assert_int_equal(parse_only("<xml><a>x<b/>y</a></xml>"), PG_ERR_BAD_INPUT);
    assert_int_equal(parse_only("<xml>text<a>1</a></xml>"), PG_ERR_BAD_INPUT);
    assert_int_equal(parse_only("<xml><![CDATA[x]]><a>1</a></xml>"), PG_ERR_BAD_INPUT);
    assert_int_equal(parse_only("<xml><!-- c --><a>1</a></xml>"), PG_ERR_BAD_INPUT);
    assert_int_equal(parse_only("<xml><a>1<!-- c -->2</a></xml>"), PG_ERR_BAD_INPUT);
    assert_int_equal(parse_only("<xml><?pi x?><a>1</a></xml>"), PG_ERR_BAD_INPUT);
    assert_int_equal(parse_only("<!-- c --><xml><a>1</a></xml>"), PG_ERR_BAD_INPUT);
    assert_int_equal(parse_only("<xml><a x=\"1\">1</a></xml>"), PG_ERR_BAD_INPUT);
    assert_int_equal(parse_only("<xml v=\"1\"><a>1</a></xml>"), PG_ERR_BAD_INPUT);
    assert_int_equal(parse_only("<xml xmlns=\"urn:x\"><a>1</a></xml>"), PG_ERR_BAD_INPUT);
    assert_int_equal(parse_only("<xml xmlns:p=\"urn:x\"><p:a>1</p:a></xml>"), PG_ERR_BAD_INPUT);
    assert_int_equal(parse_only("<xml><a-b>1</a-b></xml>"), PG_ERR_BAD_INPUT);
    assert_int_equal(parse_only("<xml><a>1</a></xml><xml/>"), PG_ERR_BAD_INPUT);
    assert_int_equal(parse_only("<xml><a>1</a></xml>junk"), PG_ERR_BAD_INPUT);
}

static void test_parse_refuses_repeated_child(void **state)
{
    arena_t a;
    kv_list_t l;
    buf_t doc;
    struct timespec t0;
    int i;
    (void)state;
    assert_int_equal(parse_only("<xml><a>1</a><b>2</b><a>1</a></xml>"), PG_ERR_BAD_INPUT);
    assert_int_equal(parse_only("<xml><sign>A</sign><sign/></xml>"), PG_ERR_BAD_INPUT);

    /* thousands of leaves: the check stays fast, and still finds the repeat */
    arena_init(&a, 0);
    buf_init(&doc, &a);
    buf_puts(&doc, "<xml>");
    for (i = 0; i < 5000; i++)
        buf_printf(&doc, "<f%d/>", i);
    buf_puts(&doc, "</xml>");
    assert_true(doc.len < XML_MAX_BYTES);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(parse(&a, doc.data, &l), PG_OK);
    assert_int_equal(l.count, 5000);
    buf_clear(&doc);
    buf_puts(&doc, "<xml>");
    for (i = 0; i < 5000; i++)
        buf_printf(&doc, "<f%d/>", i);
    buf_puts(&doc, "<f4321/></xml>");
    assert_int_equal(parse(&a, doc.data, &l), PG_ERR_BAD_INPUT);
    assert_true(elapsed_ms(&t0) < 1000);
    arena_free(&a);
}

static void test_parse_size_bound(void **state)
{
    arena_t a;
    kv_list_t l;
    char *doc;
    size_t n = 1024 * 1024, fill;
    (void)state;
    arena_init(&a, 0);
    doc = arena_alloc(&a, n + 1);
    assert_non_null(doc);

    /* 1 MiB */
    memcpy(doc, "<xml><a>", 8);
    memset(doc + 8, 'x', n - 8 - 10);
    memcpy(doc + n - 10, "</a></xml>", 10);
    doc[n] = '\0';
    assert_int_equal(parse_len(&a, doc, n, &l), PG_ERR_TOO_LARGE);

    /* exactly XML_MAX_BYTES is fine, one more byte is not */
    fill = XML_MAX_BYTES - 18;
    memcpy(doc, "<xml><a>", 8);
    memset(doc + 8, 'y', fill);
    memcpy(doc + 8 + fill, "</a></xml>", 10);
    doc[XML_MAX_BYTES] = '\0';
    assert_int_equal(parse_len(&a, doc, XML_MAX_BYTES, &l), PG_OK);
    assert_int_equal(strlen(kv_get(&l, "a")), fill);
    memcpy(doc + 8 + fill, "</a></xml> ", 11);
    assert_int_equal(parse_len(&a, doc, XML_MAX_BYTES + 1, &l), PG_ERR_TOO_LARGE);
    arena_free(&a);
}

static void test_parse_root_must_be_allowed(void **state)
{
    static const char *const roots[] = { "root", "xml", NULL };
    arena_t a;
    kv_list_t l;
    buf_t err;
    (void)state;
    assert_int_equal(parse_only("<root><a>1</a></root>"), PG_ERR_BAD_INPUT);
    assert_int_equal(parse_only("<XML><a>1</a></XML>"), PG_ERR_BAD_INPUT);
    assert_int_equal(parse_only("<html><a>1</a></html>"), PG_ERR_BAD_INPUT);

    arena_init(&a, 0);
    buf_init(&err, &a);
    assert_int_equal(xml_parse_flat_root(&a, "<root><a>1</a></root>", 21, roots, &l, &err), PG_OK);
    assert_string_equal(kv_get(&l, "a"), "1");
    assert_int_equal(xml_parse_flat_root(&a, "<xml><a>2</a></xml>", 19, roots, &l, &err), PG_OK);
    assert_string_equal(kv_get(&l, "a"), "2");
    assert_int_equal(xml_parse_flat_root(&a, "<other/>", 8, roots, &l, &err), PG_ERR_BAD_INPUT);
    arena_free(&a);
}

static void test_parse_refuses_every_truncation(void **state)
{
    static const char doc[] =
        "<xml><return_code><![CDATA[SUCCESS]]></return_code><total_fee>1</total_fee><e/></xml>";
    arena_t a;
    kv_list_t l;
    size_t n;
    (void)state;
    arena_init(&a, 0);
    for (n = 0; n < sizeof doc - 1; n++) {
        pg_err rc = parse_len(&a, doc, n, &l);
        if (rc != PG_ERR_BAD_INPUT)
            fail_msg("prefix of %zu bytes gave %s", n, pg_err_name(rc));
    }
    assert_int_equal(parse_len(&a, doc, sizeof doc - 1, &l), PG_OK);
    assert_int_equal(parse(&a, "", &l), PG_ERR_BAD_INPUT);
    assert_int_equal(parse(&a, "   ", &l), PG_ERR_BAD_INPUT);
    assert_int_equal(parse(&a, "not xml at all", &l), PG_ERR_BAD_INPUT);
    assert_int_equal(parse(&a, "{\"json\":1}", &l), PG_ERR_BAD_INPUT);
    arena_free(&a);
}

static void test_parse_encoding_is_always_utf8(void **state)
{
    static const char utf16[] = "\xff\xfe<\0x\0m\0l\0/\0>\0";
    arena_t a;
    kv_list_t l;
    (void)state;
    arena_init(&a, 0);
    /* a declared Latin-1 document is still read as UTF-8: no double encoding */
    assert_int_equal(parse(&a, "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><xml><a>\xe4\xb8\xad</a></xml>", &l),
                     PG_OK);
    assert_string_equal(kv_get(&l, "a"), "\xe4\xb8\xad");
    /* UTF-8 BOM tolerated */
    assert_int_equal(parse(&a, "\xef\xbb\xbf<xml><a>1</a></xml>", &l), PG_OK);
    /* UTF-16 (NUL bytes) refused before parsing; so is bad UTF-8 */
    assert_int_equal(parse_len(&a, utf16, sizeof utf16 - 1, &l), PG_ERR_BAD_INPUT);
    assert_int_equal(parse(&a, "<xml><a>\xc3\x28</a></xml>", &l), PG_ERR_BAD_INPUT);
    assert_int_equal(parse(&a, "<xml><a>\xe4\xb8</a></xml>", &l), PG_ERR_BAD_INPUT);
    assert_int_equal(parse(&a, "<xml><a>\x01</a></xml>", &l), PG_ERR_BAD_INPUT);
    assert_int_equal(parse(&a, "<xml><a>&#0;</a></xml>", &l), PG_ERR_BAD_INPUT);
    arena_free(&a);
}

/* libxml2 must never write to stderr, whatever it is fed. */
static void test_parse_errors_never_reach_stderr(void **state)
{
    static const char *const bad[] = {
        "<xml><a>1</b></xml>", "<xml><a>&x;</a></xml>", "<xml", "<xml><a>\xc3\x28</a></xml>",
        "<?xml version=\"9\" encoding=\"nope\"?><xml/>", "<xml><a>1</a></xml>junk",
    };
    char path[] = "/tmp/test_xml_stderr_XXXXXX";
    int fd = mkstemp(path), saved;
    size_t i;
    off_t size;
    (void)state;
    assert_true(fd >= 0);
    fflush(stderr);
    saved = dup(2);
    assert_true(saved >= 0);
    assert_int_equal(dup2(fd, 2), 2);
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
        (void)parse_only(bad[i]);
    fflush(stderr);
    assert_int_equal(dup2(saved, 2), 2);
    close(saved);
    size = lseek(fd, 0, SEEK_END);
    close(fd);
    unlink(path);
    assert_int_equal(size, 0);
}

/* ------------------------------------------------------------------ */
/* writing                                                             */

static void test_build_exact_bytes(void **state)
{
    arena_t a;
    kv_list_t l;
    buf_t out;
    (void)state;
    arena_init(&a, 0);
    kv_init(&l, &a);
    kv_add(&l, "appid", "wxd930ea5d5a258f4f");
    kv_add(&l, "total_fee", "9900");
    kv_add(&l, "empty", "");
    buf_init(&out, &a);
    assert_int_equal(xml_build_flat(&l, &out), PG_OK);
    assert_string_equal(out.data,
                        "<xml><appid><![CDATA[wxd930ea5d5a258f4f]]></appid>"
                        "<total_fee><![CDATA[9900]]></total_fee><empty><![CDATA[]]></empty></xml>");
    arena_free(&a);
}

static void test_build_splits_cdata_terminator(void **state)
{
    arena_t a;
    kv_list_t l;
    buf_t out;
    (void)state;
    arena_init(&a, 0);
    kv_init(&l, &a);
    kv_add(&l, "a", "x]]>y");
    buf_init(&out, &a);
    assert_int_equal(xml_build_flat(&l, &out), PG_OK);
    assert_string_equal(out.data, "<xml><a><![CDATA[x]]]]><![CDATA[>y]]></a></xml>");
    arena_free(&a);
}

static void test_build_parse_round_trip(void **state)
{
    static const char *const values[] = {
        "", "plain", "]]>", "]]]>", "]]>]]>", "a]]>b]]>c]]", "<&>\"'", "  spaced  ",
        "line\nbreak\ttab", "C\xe8\xaf\xad\xe8\xa8\x80 \xf0\x9f\x98\x80", "]", "]]", "<![CDATA[x]]>",
    };
    arena_t a;
    kv_list_t l, back;
    buf_t out;
    size_t i;
    char key[16];
    (void)state;
    arena_init(&a, 0);
    kv_init(&l, &a);
    for (i = 0; i < sizeof values / sizeof values[0]; i++) {
        snprintf(key, sizeof key, "k_%zu", i);
        kv_add(&l, key, values[i]);
    }
    buf_init(&out, &a);
    assert_int_equal(xml_build_flat(&l, &out), PG_OK);
    assert_int_equal(parse(&a, out.data, &back), PG_OK);
    assert_int_equal(back.count, l.count);
    for (i = 0; i < l.count; i++) {
        assert_string_equal(back.items[i].key, l.items[i].key);
        assert_string_equal(back.items[i].value, l.items[i].value);
    }
    arena_free(&a);
}

static void test_build_refuses_bad_keys_and_values(void **state)
{
    static const char *const bad_keys[] = { "", "a b", "a-b", "a>b", "x:y", "\xe4\xb8\xad" };
    static const char *const bad_values[] = { "a\x01", "\x7f\x80", "\xc0\xaf", "\xed\xa0\x80", "\xe4\xb8" };
    arena_t a;
    kv_list_t l;
    buf_t out;
    size_t i;
    (void)state;
    arena_init(&a, 0);
    for (i = 0; i < sizeof bad_keys / sizeof bad_keys[0]; i++) {
        kv_init(&l, &a);
        kv_add(&l, bad_keys[i], "v");
        buf_init(&out, &a);
        assert_int_equal(xml_build_flat(&l, &out), PG_ERR_BAD_INPUT);
        assert_int_equal(out.len, 0);
    }
    for (i = 0; i < sizeof bad_values / sizeof bad_values[0]; i++) {
        kv_init(&l, &a);
        kv_add(&l, "k", bad_values[i]);
        buf_init(&out, &a);
        assert_int_equal(xml_build_flat(&l, &out), PG_ERR_BAD_INPUT);
    }
    arena_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_cdata_and_plain_text),
        cmocka_unit_test(test_parse_keeps_values_exactly),
        cmocka_unit_test(test_parse_empty_and_missing_fields),
        cmocka_unit_test(test_parse_refuses_external_entity),
        cmocka_unit_test(test_parse_refuses_billion_laughs_quickly),
        cmocka_unit_test(test_parse_refuses_nesting_and_other_nodes),
        cmocka_unit_test(test_parse_refuses_repeated_child),
        cmocka_unit_test(test_parse_size_bound),
        cmocka_unit_test(test_parse_root_must_be_allowed),
        cmocka_unit_test(test_parse_refuses_every_truncation),
        cmocka_unit_test(test_parse_encoding_is_always_utf8),
        cmocka_unit_test(test_parse_errors_never_reach_stderr),
        cmocka_unit_test(test_build_exact_bytes),
        cmocka_unit_test(test_build_splits_cdata_terminator),
        cmocka_unit_test(test_build_parse_round_trip),
        cmocka_unit_test(test_build_refuses_bad_keys_and_values),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
