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

#include "crypto.h"
#include "wechat_v3_transfer.h"

#define KEYS "../fixtures/keys/"

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
                              "创作者收益结算", "岗位类型", "内容创作者", "报酬说明", "内容销售分成",
                              NULL, NULL, NULL };
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
        { "CANCELING", WXV3_BILL_PENDING },
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

/* user_name (already encrypted) and notify_url go into the body when set. */
static void test_build_transfer_user_name_and_notify_url(void **state)
{
    wxv3_client_t c = client();
    wxv3_transfer_req_t r = req();
    arena_t a;
    buf_t path, body;
    json_t *root;
    json_error_t jerr;
    (void)state;
    arena_init(&a, 0);
    buf_init(&path, &a);
    buf_init(&body, &a);
    r.user_name_cipher = "Q2lwaGVydGV4dA==";
    r.notify_url = "https://pay.example.com/notify/wechat/transfer";
    assert_int_equal(wxv3_build_transfer(&c, &r, &path, &body), PG_OK);
    root = json_loads(body.data, 0, &jerr);
    assert_non_null(root);
    assert_string_equal(json_string_value(json_object_get(root, "user_name")), "Q2lwaGVydGV4dA==");
    assert_string_equal(json_string_value(json_object_get(root, "notify_url")), r.notify_url);
    json_decref(root);
    arena_free(&a);
}

/* From 2000 yuan a transfer without the payee's name is not sent at all
 * (the client has no gateway: an attempt to send would be PG_ERR_CONFIG). */
static void test_transfer_needs_a_name_from_2000_yuan(void **state)
{
    wxv3_client_t c = client();
    wxv3_transfer_req_t r = req();
    char code[WXV3_CODE_MAX];
    wxv3_bill_t b;
    arena_t a;
    buf_t err;
    (void)state;
    arena_init(&a, 0);
    buf_init(&err, &a);
    r.amount_fen = WXV3_TRANSFER_NAME_REQUIRED_FEN;
    assert_int_equal(wxv3_transfer(&a, &c, &r, 0, &b, code, &err), PG_ERR_BAD_INPUT);
    assert_non_null(strstr(err.data, "real name"));
    r.amount_fen = WXV3_TRANSFER_NAME_REQUIRED_FEN - 1;   /* below: optional, so it would be sent */
    assert_int_equal(wxv3_transfer(&a, &c, &r, 0, &b, code, &err), PG_ERR_CONFIG);
    arena_free(&a);
}

/* The name is encrypted under the WeChat Pay public key (public-key mode)
 * and named by its id; it decrypts with the matching private key only. */
static void test_encrypt_field_under_the_wechatpay_key(void **state)
{
    wxv3_client_t c = client();
    crypto_key_t *pub = NULL, *priv = NULL, *other = NULL;
    wxv3_platform_key_t plat;
    const char *serial = NULL;
    buf_t ct, pt, err;
    (void)state;
    buf_init(&ct, NULL);
    buf_init(&pt, NULL);
    buf_init(&err, NULL);
    assert_int_equal(crypto_key_load_public(KEYS "app_public.pem", &pub, &err), PG_OK);
    assert_int_equal(crypto_key_load_private(KEYS "app_private_pkcs8.pem", &priv, &err), PG_OK);
    assert_int_equal(crypto_key_load_private(KEYS "other_private.pem", &other, &err), PG_OK);
    assert_int_equal(wxv3_encrypt_field(&c, "张三", &ct, &serial), PG_ERR_CONFIG);   /* no key at all */
    assert_null(serial);
    c.pubkey_id = "PUB_KEY_ID_0114232134912410000000000000";
    c.pubkey = pub;
    assert_int_equal(wxv3_encrypt_field(&c, "张三", &ct, &serial), PG_OK);
    assert_string_equal(serial, c.pubkey_id);
    assert_int_equal(crypto_rsa_oaep_sha1_decrypt_b64(priv, ct.data, &pt), PG_OK);
    assert_int_equal(pt.len, strlen("张三"));
    assert_memory_equal(pt.data, "张三", pt.len);
    buf_clear(&pt);
    assert_int_not_equal(crypto_rsa_oaep_sha1_decrypt_b64(other, ct.data, &pt), PG_OK);
    /* platform-certificate mode: the certificate's serial */
    c.pubkey_id = NULL;
    c.pubkey = NULL;
    plat.serial = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1";
    plat.key = pub;
    c.platform = &plat;
    c.platform_count = 1;
    buf_clear(&ct);
    assert_int_equal(wxv3_encrypt_field(&c, "张三", &ct, &serial), PG_OK);
    assert_string_equal(serial, plat.serial);
    crypto_key_free(pub);
    crypto_key_free(priv);
    crypto_key_free(other);
    buf_free(&ct);
    buf_free(&pt);
    buf_free(&err);
}

static pg_err parse_note(arena_t *a, const char *json, wxv3_bill_t *b)
{
    wxv3_client_t c = client();
    buf_t reason;
    buf_init(&reason, a);
    return wxv3_parse_bill_notification(a, &c, json, strlen(json), b, &reason);
}

/* MCHTRANSFER.BILL.FINISHED's resource: final states only, ours only. */
static void test_parse_bill_notification(void **state)
{
    arena_t a;
    wxv3_bill_t b;
    (void)state;
    arena_init(&a, 0);
    assert_int_equal(parse_note(&a, "{\"out_bill_no\":\"S20031201abcdEFGH\",\"transfer_bill_no\":\"1330000071100999991182020050700019480001\","
                                    "\"state\":\"SUCCESS\",\"mch_id\":\"1900000100\",\"transfer_amount\":6930,"
                                    "\"openid\":\"o-x\",\"create_time\":\"2025-01-01T12:00:00+08:00\","
                                    "\"update_time\":\"2025-01-01T12:00:05+08:00\"}", &b), PG_OK);
    assert_int_equal(b.state, WXV3_BILL_SUCCESS);
    assert_int_equal(b.amount_fen, 6930);
    assert_int_equal(parse_note(&a, "{\"out_bill_no\":\"S20031201abcdEFGH\",\"transfer_bill_no\":\"1\",\"state\":\"FAIL\","
                                    "\"fail_reason\":\"PAYEE_ACCOUNT_ABNORMAL\",\"mch_id\":\"1900000100\",\"transfer_amount\":1}",
                                &b), PG_OK);
    assert_string_equal(b.fail_reason, "PAYEE_ACCOUNT_ABNORMAL");
    /* not final, no mch_id, another mch_id, no amount, no transfer_bill_no, duplicate key */
    assert_int_equal(parse_note(&a, "{\"out_bill_no\":\"S2003x\",\"transfer_bill_no\":\"1\",\"state\":\"WAIT_USER_CONFIRM\","
                                    "\"mch_id\":\"1900000100\",\"transfer_amount\":1}", &b), PG_ERR_BAD_INPUT);
    assert_int_equal(parse_note(&a, "{\"out_bill_no\":\"S2003x\",\"transfer_bill_no\":\"1\",\"state\":\"SUCCESS\","
                                    "\"transfer_amount\":1}", &b), PG_ERR_BAD_INPUT);
    assert_int_equal(parse_note(&a, "{\"out_bill_no\":\"S2003x\",\"transfer_bill_no\":\"1\",\"state\":\"SUCCESS\","
                                    "\"mch_id\":\"1900000999\",\"transfer_amount\":1}", &b), PG_ERR_MISMATCH);
    assert_int_equal(parse_note(&a, "{\"out_bill_no\":\"S2003x\",\"transfer_bill_no\":\"1\",\"state\":\"SUCCESS\","
                                    "\"mch_id\":\"1900000100\"}", &b), PG_ERR_BAD_INPUT);
    assert_int_equal(parse_note(&a, "{\"out_bill_no\":\"S2003x\",\"state\":\"SUCCESS\","
                                    "\"mch_id\":\"1900000100\",\"transfer_amount\":1}", &b), PG_ERR_BAD_INPUT);
    assert_int_equal(parse_note(&a, "{\"out_bill_no\":\"S2003x\",\"transfer_bill_no\":\"1\",\"state\":\"SUCCESS\","
                                    "\"mch_id\":\"1900000100\",\"transfer_amount\":1,\"transfer_amount\":2}", &b),
                     PG_ERR_BAD_INPUT);
    arena_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_build_transfer_body),
        cmocka_unit_test(test_build_transfer_refusals),
        cmocka_unit_test(test_parse_bill_states),
        cmocka_unit_test(test_parse_bill_refusals),
        cmocka_unit_test(test_build_transfer_user_name_and_notify_url),
        cmocka_unit_test(test_transfer_needs_a_name_from_2000_yuan),
        cmocka_unit_test(test_encrypt_field_under_the_wechatpay_key),
        cmocka_unit_test(test_parse_bill_notification),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
