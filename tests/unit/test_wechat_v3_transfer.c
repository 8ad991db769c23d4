/* WeChat Pay v3 merchant transfer adapter (src/channel/wechat_v3_transfer.c):
 * the request body's fields and bounds, and the strict reading of a bill
 * (state set, ours or refused). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include <jansson.h>

#include "wechat_v3_transfer.h"

static wxv3_client_t client(void)
{
    wxv3_client_t c;
    memset(&c, 0, sizeof c);
    c.appid = "wx8888888888888888";
    c.mchid = "1900000100";
    return c;
}

static wxv3_transfer_req_t req(void)
{
    wxv3_transfer_req_t r = { "S20031201abcdEFGH", "o-MYE42l80oelYMDE34nYD456Xoy", 6930, "1005",
                              "创作者收益结算", "岗位类型", "内容创作者", "报酬说明", "内容销售分成" };
    return r;
}

static void test_build_transfer_body(void **state)
{
    wxv3_client_t c = client();
    wxv3_transfer_req_t r = req();
    arena_t a;
    buf_t path, body;
    json_t *root, *infos;
    json_error_t jerr;
    (void)state;
    arena_init(&a, 0);
    buf_init(&path, &a);
    buf_init(&body, &a);
    assert_int_equal(wxv3_build_transfer(&c, &r, &path, &body), PG_OK);
    assert_string_equal(path.data, "/v3/fund-app/mch-transfer/transfer-bills");
    root = json_loads(body.data, 0, &jerr);
    assert_non_null(root);
    assert_string_equal(json_string_value(json_object_get(root, "appid")), c.appid);
    assert_string_equal(json_string_value(json_object_get(root, "out_bill_no")), r.out_bill_no);
    assert_string_equal(json_string_value(json_object_get(root, "transfer_scene_id")), "1005");
    assert_string_equal(json_string_value(json_object_get(root, "openid")), r.openid);
    assert_true(json_is_integer(json_object_get(root, "transfer_amount")));
    assert_int_equal(json_integer_value(json_object_get(root, "transfer_amount")), 6930);
    infos = json_object_get(root, "transfer_scene_report_infos");
    assert_int_equal(json_array_size(infos), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(infos, 1), "info_type")), "报酬说明");
    assert_null(json_object_get(root, "mchid"));   /* the mchid travels in the Authorization header */
    json_decref(root);
    arena_free(&a);
}

static void test_build_transfer_refusals(void **state)
{
    wxv3_client_t c = client();
    wxv3_transfer_req_t r;
    arena_t a;
    buf_t path, body;
    const char *bad_nos[] = { "S2003-1201", "S20", "S20031201abcdEFGH0123456789abcdefX", NULL };
    (void)state;
    arena_init(&a, 0);
    buf_init(&path, &a);
    buf_init(&body, &a);
    for (size_t i = 0; bad_nos[i]; i++) {
        r = req();
        r.out_bill_no = bad_nos[i];
        assert_int_equal(wxv3_build_transfer(&c, &r, &path, &body), PG_ERR_BAD_INPUT);
    }
    r = req();
    r.amount_fen = 0;
    assert_int_equal(wxv3_build_transfer(&c, &r, &path, &body), PG_ERR_BAD_INPUT);
    r = req();
    r.openid = "";
    assert_int_equal(wxv3_build_transfer(&c, &r, &path, &body), PG_ERR_BAD_INPUT);
    c.appid = NULL;
    r = req();
    assert_int_equal(wxv3_build_transfer(&c, &r, &path, &body), PG_ERR_CONFIG);
    assert_int_equal(body.len, 0);
    arena_free(&a);
}

static pg_err parse(arena_t *a, const char *json, wxv3_bill_t *b)
{
    wxv3_client_t c = client();
    buf_t reason;
    buf_init(&reason, a);
    return wxv3_parse_bill(a, &c, json, strlen(json), b, &reason);
}

static void test_parse_bill_states(void **state)
{
    static const struct { const char *name; wxv3_bill_state_t want; } cases[] = {
        { "ACCEPTED", WXV3_BILL_PENDING }, { "PROCESSING", WXV3_BILL_PENDING },
        { "TRANSFERING", WXV3_BILL_PENDING }, { "WAIT_USER_CONFIRM", WXV3_BILL_WAIT_USER },
        { "SUCCESS", WXV3_BILL_SUCCESS }, { "FAIL", WXV3_BILL_FAIL }, { "CANCELLED", WXV3_BILL_CANCELLED },
    };
    arena_t a;
    wxv3_bill_t b;
    (void)state;
    arena_init(&a, 0);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *json = arena_printf(&a, "{\"out_bill_no\":\"S1\",\"transfer_bill_no\":\"133\",\"state\":\"%s\","
                                        "\"package_info\":\"pkg\",\"mch_id\":\"1900000100\","
                                        "\"appid\":\"wx8888888888888888\",\"transfer_amount\":6930}",
                                        cases[i].name);
        assert_int_equal(parse(&a, json, &b), PG_OK);
        assert_int_equal(b.state, cases[i].want);
        assert_string_equal(b.package_info, "pkg");
        assert_int_equal(b.amount_fen, 6930);
    }
    arena_free(&a);
}

static void test_parse_bill_refusals(void **state)
{
    static const char *bad[] = {
        "{\"out_bill_no\":\"S1\",\"state\":\"DONE\"}",                         /* unknown state */
        "{\"out_bill_no\":\"S1\"}",                                            /* no state */
        "{\"state\":\"SUCCESS\"}",                                             /* no out_bill_no */
        "{\"out_bill_no\":\"S1\",\"state\":\"SUCCESS\",\"state\":\"FAIL\"}",   /* duplicate key */
        "{\"out_bill_no\":\"S1\",\"state\":\"SUCCESS\",\"transfer_amount\":69.3}",
        "[\"SUCCESS\"]", "",
    };
    arena_t a;
    wxv3_bill_t b;
    (void)state;
    arena_init(&a, 0);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(parse(&a, bad[i], &b), PG_ERR_BAD_INPUT);
        assert_null(b.state_name);
    }
    assert_int_equal(parse(&a, "{\"out_bill_no\":\"S1\",\"state\":\"SUCCESS\",\"mch_id\":\"1900000999\"}", &b),
                     PG_ERR_MISMATCH);
    assert_int_equal(parse(&a, "{\"out_bill_no\":\"S1\",\"state\":\"SUCCESS\",\"appid\":\"wxother\"}", &b),
                     PG_ERR_MISMATCH);
    arena_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_build_transfer_body),
        cmocka_unit_test(test_build_transfer_refusals),
        cmocka_unit_test(test_parse_bill_states),
        cmocka_unit_test(test_parse_bill_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
