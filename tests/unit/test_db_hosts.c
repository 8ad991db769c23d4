/* [database] host lists: db_hosts_parse (names, ports, IPv6 in brackets,
 * refusals). No server needed. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "db.h"

static size_t parse_ok(const char *list, int default_port, db_host_t *h)
{
    size_t n = 99;
    buf_t msg;
    buf_init(&msg, NULL);
    assert_int_equal(db_hosts_parse(list, default_port, h, &n, &msg), PG_OK);
    assert_int_equal(msg.len, 0);
    buf_free(&msg);
    return n;
}

static void parse_bad(const char *list)
{
    db_host_t h[DB_MAX_HOSTS];
    size_t n;
    buf_t msg;
    buf_init(&msg, NULL);
    assert_int_equal(db_hosts_parse(list, 3306, h, &n, &msg), PG_ERR_CONFIG);
    assert_true(msg.len > 0);
    buf_free(&msg);
}

static void one_host_takes_the_default_port(void **state)
{
    db_host_t h[DB_MAX_HOSTS];
    (void)state;
    assert_int_equal(parse_ok("127.0.0.1", 3307, h), 1);
    assert_string_equal(h[0].name, "127.0.0.1");
    assert_int_equal(h[0].port, 3307);
    assert_int_equal(parse_ok("db-1.example.com", 3306, h), 1);
    assert_string_equal(h[0].name, "db-1.example.com");
}

static void three_hosts_in_order_with_ports(void **state)
{
    db_host_t h[DB_MAX_HOSTS];
    (void)state;
    assert_int_equal(parse_ok("h1, h2:3307 ,[::1]:3308,[fe80::1%eth0],::1", 3306, h), 5);
    assert_string_equal(h[0].name, "h1");
    assert_int_equal(h[0].port, 3306);
    assert_string_equal(h[1].name, "h2");
    assert_int_equal(h[1].port, 3307);
    assert_string_equal(h[2].name, "::1");
    assert_int_equal(h[2].port, 3308);
    assert_string_equal(h[3].name, "fe80::1%eth0");
    assert_int_equal(h[3].port, 3306);
    assert_string_equal(h[4].name, "::1");   /* a bare IPv6 address: default port */
    assert_int_equal(h[4].port, 3306);
}

static void refusals(void **state)
{
    (void)state;
    parse_bad("");
    parse_bad("h1,,h2");
    parse_bad("h1,");
    parse_bad("h1:0");
    parse_bad("h1:65536");
    parse_bad("h1:33o6");
    parse_bad("h1:");
    parse_bad("[::1");
    parse_bad("[::1]3306");
    parse_bad("[]:3306");
    parse_bad("h 1");
    parse_bad("h1;drop");
    parse_bad("h1,h2,h3,h4,h5,h6,h7,h8,h9");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(one_host_takes_the_default_port),
        cmocka_unit_test(three_hosts_in_order_with_ports),
        cmocka_unit_test(refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
