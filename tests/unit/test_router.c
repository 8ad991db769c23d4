/* Router and request-path tests: which handler a method and path reach. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "http.h"
#include "router.h"

enum { R_HEALTHZ = 1, R_CHECKOUT, R_NOTIFY, R_ORDER, R_REFUND };

static const route_t ROUTES[] = {
    { "GET", "/healthz", R_HEALTHZ },
    { "GET|POST", "/checkout", R_CHECKOUT },
    { "POST", "/notify/alipay", R_NOTIFY },
    { "GET", "/orders/*", R_ORDER },
    { "POST", "/orders/*/refund", R_REFUND },
};
#define N (sizeof ROUTES / sizeof ROUTES[0])

static void test_router_matches_exact_path_and_method(void **state)
{
    route_match_t m;
    (void)state;
    router_match(ROUTES, N, "GET", "/healthz", &m);
    assert_int_equal(m.id, R_HEALTHZ);
    assert_int_equal(m.method_allowed, 1);
    router_match(ROUTES, N, "POST", "/checkout", &m);
    assert_int_equal(m.id, R_CHECKOUT);
    assert_int_equal(m.method_allowed, 1);
    router_match(ROUTES, N, "GET", "/checkout", &m);
    assert_int_equal(m.method_allowed, 1);
}

static void test_router_reports_wrong_method_for_known_path(void **state)
{
    route_match_t m;
    (void)state;
    router_match(ROUTES, N, "GET", "/notify/alipay", &m);
    assert_int_equal(m.id, R_NOTIFY);
    assert_int_equal(m.method_allowed, 0);
    router_match(ROUTES, N, "PUT", "/checkout", &m);
    assert_int_equal(m.method_allowed, 0);
}

static void test_router_unknown_paths_match_nothing(void **state)
{
    static const char *const paths[] = { "/", "", "/healthz/", "/healthzz", "/notify", "/notify/alipay/x",
                                         "/orders", "/orders/", "/orders//refund", "/HEALTHZ" };
    route_match_t m;
    (void)state;
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        router_match(ROUTES, N, "GET", paths[i], &m);
        assert_int_equal(m.id, -1);
    }
}

static void test_router_captures_one_segment(void **state)
{
    route_match_t m;
    (void)state;
    router_match(ROUTES, N, "GET", "/orders/AbC123", &m);
    assert_int_equal(m.id, R_ORDER);
    assert_int_equal(m.param_len, 6);
    assert_memory_equal(m.param, "AbC123", 6);
    router_match(ROUTES, N, "POST", "/orders/XYZ/refund", &m);
    assert_int_equal(m.id, R_REFUND);
    assert_int_equal(m.method_allowed, 1);
    assert_int_equal(m.param_len, 3);
    assert_memory_equal(m.param, "XYZ", 3);
}

static void route_path(const char *uri, const char *base, pg_err want, const char *want_path)
{
    arena_t a;
    http_request_t r;
    arena_init(&a, 0);
    memset(&r, 0, sizeof r);
    r.request_uri = uri;
    assert_int_equal(http_request_route_path(&r, &a, base), want);
    if (want == PG_OK)
        assert_string_equal(r.path, want_path);
    arena_free(&a);
}

static void test_request_path_is_relative_to_base_url(void **state)
{
    (void)state;
    route_path("/pay/checkout?x=1", "/pay", PG_OK, "/checkout");
    route_path("/pay", "/pay", PG_OK, "/");
    route_path("/pay/orders/AB", "/pay", PG_OK, "/orders/AB");
    route_path("/healthz", "", PG_OK, "/healthz");
    route_path("/payment/checkout", "/pay", PG_ERR_NOT_FOUND, NULL);
    route_path("/other/checkout", "/pay", PG_ERR_NOT_FOUND, NULL);
}

static void test_request_query_is_strictly_decoded(void **state)
{
    arena_t a;
    http_request_t r;
    (void)state;
    arena_init(&a, 0);
    memset(&r, 0, sizeof r);
    r.request_uri = "/pay/return/alipay?a=1%2B2&b=x+y&c";
    assert_int_equal(http_request_route_path(&r, &a, "/pay"), PG_OK);
    assert_string_equal(kv_get(&r.query, "a"), "1+2");
    assert_string_equal(kv_get(&r.query, "b"), "x y");
    assert_string_equal(kv_get(&r.query, "c"), "");
    route_path("/pay/checkout?a=%zz", "/pay", PG_ERR_BAD_INPUT, NULL);
    route_path("/pay/checkout?a=%4", "/pay", PG_ERR_BAD_INPUT, NULL);
    arena_free(&a);
}

static void test_request_fields_merge_query_form_and_json(void **state)
{
    arena_t a;
    http_request_t r;
    kv_list_t f;
    (void)state;
    arena_init(&a, 0);
    memset(&r, 0, sizeof r);
    r.request_uri = "/pay/checkout?sig=s1";
    assert_int_equal(http_request_route_path(&r, &a, "/pay"), PG_OK);
    r.content_type = "application/x-www-form-urlencoded; charset=utf-8";
    r.body = "product=course-c&user=u%40x";
    r.body_len = strlen(r.body);
    assert_int_equal(http_request_fields(&r, &a, &f), PG_OK);
    assert_string_equal(kv_get(&f, "sig"), "s1");
    assert_string_equal(kv_get(&f, "user"), "u@x");
    r.content_type = "application/json";
    r.body = "{\"product\":\"ebook\",\"amount_fen\":100}";
    r.body_len = strlen(r.body);
    assert_int_equal(http_request_fields(&r, &a, &f), PG_OK);
    assert_string_equal(kv_get(&f, "product"), "ebook");
    assert_string_equal(kv_get(&f, "amount_fen"), "100");
    r.body = "{\"product\":[1]}";
    r.body_len = strlen(r.body);
    assert_int_equal(http_request_fields(&r, &a, &f), PG_ERR_BAD_INPUT);
    r.body = "{\"product\":\"a\",\"product\":\"b\"}";
    r.body_len = strlen(r.body);
    assert_int_equal(http_request_fields(&r, &a, &f), PG_ERR_BAD_INPUT);
    r.content_type = "text/xml";
    assert_int_equal(http_request_fields(&r, &a, &f), PG_ERR_UNSUPPORTED);
    arena_free(&a);
}

static void test_bearer_token_is_extracted(void **state)
{
    http_request_t r;
    (void)state;
    memset(&r, 0, sizeof r);
    assert_null(http_bearer_token(&r));
    r.authorization = "Basic abc";
    assert_null(http_bearer_token(&r));
    r.authorization = "Bearer ";
    assert_null(http_bearer_token(&r));
    r.authorization = "Bearer k-123";
    assert_string_equal(http_bearer_token(&r), "k-123");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_router_matches_exact_path_and_method),
        cmocka_unit_test(test_router_reports_wrong_method_for_known_path),
        cmocka_unit_test(test_router_unknown_paths_match_nothing),
        cmocka_unit_test(test_router_captures_one_segment),
        cmocka_unit_test(test_request_path_is_relative_to_base_url),
        cmocka_unit_test(test_request_query_is_strictly_decoded),
        cmocka_unit_test(test_request_fields_merge_query_form_and_json),
        cmocka_unit_test(test_bearer_token_is_extracted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
