/* metrics: the CIDR matcher, the access rule, the exposition writer
 * (escaping) and the shared counters file across processes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "metrics.h"

static bool in(const char *cidr, const char *addr)
{
    buf_t err;
    buf_init(&err, NULL);
    assert_int_equal(metrics_allow_check(cidr, &err), PG_OK);
    buf_free(&err);
    return metrics_addr_allowed(cidr, addr);
}

static pg_err parse(const char *cidr)
{
    buf_t err;
    pg_err rc;
    buf_init(&err, NULL);
    rc = metrics_allow_check(cidr, &err);
    buf_free(&err);
    return rc;
}

static void test_metrics_cidr_ipv4(void **state)
{
    (void)state;
    assert_true(in("127.0.0.1/32", "127.0.0.1"));
    assert_false(in("127.0.0.1/32", "127.0.0.2"));
    assert_true(in("127.0.0.1", "127.0.0.1"));
    assert_true(in("10.0.0.0/8", "10.255.1.2"));
    assert_false(in("10.0.0.0/8", "11.0.0.1"));
    assert_true(in("192.168.4.0/22", "192.168.7.255"));
    assert_false(in("192.168.4.0/22", "192.168.8.0"));
    assert_true(in("0.0.0.0/0", "8.8.8.8"));
    assert_false(in("0.0.0.0/0", "::1"));            /* families never mix */
    assert_true(in("127.0.0.0/8", "::ffff:127.0.0.9")); /* IPv4-mapped counts as IPv4 */
    assert_false(in("127.0.0.0/8", "not an address"));
    assert_false(in("127.0.0.0/8", ""));
}

static void test_metrics_cidr_ipv6(void **state)
{
    (void)state;
    assert_true(in("::1", "::1"));
    assert_false(in("::1", "::2"));
    assert_false(in("::1", "127.0.0.1"));
    assert_true(in("2001:db8::/32", "2001:db8:ffff::1"));
    assert_false(in("2001:db8::/32", "2001:db9::1"));
    assert_true(in("fe80::/10", "febf::1"));
    assert_false(in("fe80::/10", "fec0::1"));
    assert_true(in(" ::/0 ", "2001:db8::1"));
}

static void test_metrics_cidr_rejects_malformed(void **state)
{
    (void)state;
    assert_int_equal(parse("127.0.0.1/33"), PG_ERR_BAD_INPUT);
    assert_int_equal(parse("::1/129"), PG_ERR_BAD_INPUT);
    assert_int_equal(parse("127.0.0.1/"), PG_ERR_BAD_INPUT);
    assert_int_equal(parse("127.0.0.1/-1"), PG_ERR_BAD_INPUT);
    assert_int_equal(parse("127.0.0.1/8x"), PG_ERR_BAD_INPUT);
    assert_int_equal(parse("localhost"), PG_ERR_BAD_INPUT);
    assert_int_equal(parse("300.0.0.1"), PG_ERR_BAD_INPUT);
    assert_int_equal(parse("10.0.0.0/0008"), PG_ERR_BAD_INPUT);
}

static void test_metrics_allow_list_and_token(void **state)
{
    buf_t err;
    (void)state;
    buf_init(&err, NULL);
    assert_int_equal(metrics_allow_check("127.0.0.1/32, ::1", &err), PG_OK);
    assert_int_equal(metrics_allow_check("127.0.0.1/32, nonsense", &err), PG_ERR_BAD_INPUT);
    assert_non_null(strstr(err.data, "nonsense"));
    buf_free(&err);
    assert_true(metrics_addr_allowed("127.0.0.1/32, ::1", "::1"));
    assert_true(metrics_addr_allowed("127.0.0.1/32, ::1", "127.0.0.1"));
    assert_false(metrics_addr_allowed("127.0.0.1/32, ::1", "10.1.1.1"));
    assert_false(metrics_addr_allowed("", "127.0.0.1"));
    assert_false(metrics_addr_allowed(NULL, "127.0.0.1"));
    assert_false(metrics_addr_allowed("127.0.0.1", NULL));
    /* the token: exact, and an empty or absent one never matches */
    assert_true(metrics_access_ok(NULL, "scrape-token-0123456789", "10.1.1.1", "scrape-token-0123456789"));
    assert_false(metrics_access_ok(NULL, "scrape-token-0123456789", "10.1.1.1", "scrape-token-012345678"));
    assert_false(metrics_access_ok(NULL, "", "10.1.1.1", ""));
    assert_false(metrics_access_ok(NULL, NULL, "10.1.1.1", NULL));
    assert_false(metrics_access_ok("127.0.0.1", NULL, "10.1.1.1", "x"));
    assert_true(metrics_access_ok("10.0.0.0/8", NULL, "10.1.1.1", NULL));
}

static void test_metrics_label_values_are_escaped(void **state)
{
    buf_t b;
    const char *labels[] = { "route", "a\"b\\c\nd", "status", "" };
    (void)state;
    buf_init(&b, NULL);
    metrics_append_label_value(&b, "plain");
    assert_string_equal(b.data, "plain");
    buf_clear(&b);
    metrics_write_sample(&b, "paygate_x_total", labels, 2, 42);
    assert_string_equal(b.data, "paygate_x_total{route=\"a\\\"b\\\\c\\nd\",status=\"\"} 42\n");
    buf_clear(&b);
    metrics_write_sample(&b, "paygate_up", NULL, 0, 1);
    assert_string_equal(b.data, "paygate_up 1\n");
    buf_free(&b);
}

static char g_path[256];

static int setup_file(void **state)
{
    (void)state;
    snprintf(g_path, sizeof g_path, "/tmp/paygate-test-metrics-%d.metrics", (int)getpid());
    unlink(g_path);
    return 0;
}

static int teardown_file(void **state)
{
    (void)state;
    metrics_close();
    unlink(g_path);
    return 0;
}

static char *scrape(void)
{
    buf_t b;
    buf_init(&b, NULL);
    metrics_write_counters(&b);
    return b.data;
}

static void count_in_child(int n)
{
    pid_t pid = fork();
    int status = 0;
    assert_true(pid >= 0);
    if (pid == 0) {
        if (metrics_open(g_path, NULL) != PG_OK)
            _exit(3);
        for (int i = 0; i < n; i++)
            metrics_request("/healthz", 200, 1500);
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void test_metrics_totals_across_processes(void **state)
{
    char *text;
    (void)state;
    assert_int_equal(metrics_open(g_path, NULL), PG_OK);
    metrics_request("/healthz", 200, 700);
    count_in_child(5);
    count_in_child(7);
    metrics_request("/no/such/route", 404, 20000000);   /* not a label: "other" */
    metrics_checkout("bitcoin", "page", PG_OK, false);
    metrics_notification("alipay", "payment", NULL);
    text = scrape();
    assert_non_null(strstr(text, "paygate_http_requests_total{route=\"/healthz\",status=\"200\"} 13\n"));
    assert_non_null(strstr(text, "paygate_http_request_duration_seconds_bucket{route=\"/healthz\",le=\"0.001\"} 1\n"));
    assert_non_null(strstr(text, "paygate_http_request_duration_seconds_bucket{route=\"/healthz\",le=\"0.0025\"} 13\n"));
    assert_non_null(strstr(text, "paygate_http_request_duration_seconds_sum{route=\"/healthz\"} 0.0187\n"));
    assert_non_null(strstr(text, "paygate_http_request_duration_seconds_count{route=\"/healthz\"} 13\n"));
    assert_non_null(strstr(text, "paygate_http_requests_total{route=\"other\",status=\"404\"} 1\n"));
    assert_non_null(strstr(text, "paygate_http_request_duration_seconds_bucket{route=\"other\",le=\"10\"} 0\n"));
    assert_non_null(strstr(text, "paygate_http_request_duration_seconds_bucket{route=\"other\",le=\"+Inf\"} 1\n"));
    assert_non_null(strstr(text, "paygate_checkouts_total{channel=\"unknown\",method=\"page\",result=\"created\"} 1\n"));
    assert_non_null(strstr(text, "paygate_notifications_total{channel=\"alipay\",kind=\"payment\",outcome=\"error\"} 1\n"));
    assert_non_null(strstr(text, "paygate_metrics_shared 1\n"));
    assert_null(strstr(text, "bitcoin"));
    free(text);
}

/* A file of another layout (an older paygate) is replaced, not misread. */
static void test_metrics_file_of_another_layout_is_replaced(void **state)
{
    char junk[4096];
    FILE *f = fopen(g_path, "wb");
    char *text;
    (void)state;
    memset(junk, 0x5a, sizeof junk);
    assert_non_null(f);
    assert_int_equal(fwrite(junk, 1, sizeof junk, f), sizeof junk);
    fclose(f);
    assert_int_equal(metrics_open(g_path, NULL), PG_OK);
    metrics_request("/healthz", 200, 10);
    text = scrape();
    assert_non_null(strstr(text, "paygate_http_requests_total{route=\"/healthz\",status=\"200\"} 1\n"));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_cidr_ipv4),
        cmocka_unit_test(test_metrics_cidr_ipv6),
        cmocka_unit_test(test_metrics_cidr_rejects_malformed),
        cmocka_unit_test(test_metrics_allow_list_and_token),
        cmocka_unit_test(test_metrics_label_values_are_escaped),
        cmocka_unit_test_setup_teardown(test_metrics_totals_across_processes, setup_file, teardown_file),
        cmocka_unit_test_setup_teardown(test_metrics_file_of_another_layout_is_replaced, setup_file, teardown_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
