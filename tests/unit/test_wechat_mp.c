/* WeChat Official Account adapter (src/channel/wechat_mp.c): the JS-SDK
 * signature against the worked example of WeChat's JS-SDK documentation
 * (附录1 签名算法; also `printf 'jsapi_ticket=…&url=http://mp.weixin.qq.com?params=value' | sha1sum`),
 * and the strict reading of stable_token / getticket replies. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "wechat_mp.h"

#define DOC_TICKET "sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg"

static void test_signature_known_vector(void **state)
{
    char sig[41];
    (void)state;
    assert_int_equal(wxmp_jssdk_signature(DOC_TICKET, "Wm3WZYTPz0wzccnW", 1414587457,
                                          "http://mp.weixin.qq.com?params=value", sig), PG_OK);
    assert_string_equal(sig, "0f9de62fce790f9a083d5c99e95740ceb90c27ed");
    /* the #fragment is not part of the signed URL */
    assert_int_equal(wxmp_jssdk_signature(DOC_TICKET, "Wm3WZYTPz0wzccnW", 1414587457,
                                          "http://mp.weixin.qq.com?params=value#frag", sig), PG_OK);
    assert_string_equal(sig, "0f9de62fce790f9a083d5c99e95740ceb90c27ed");
    /* any other field changes it */
    assert_int_equal(wxmp_jssdk_signature(DOC_TICKET, "Wm3WZYTPz0wzccnW", 1414587458,
                                          "http://mp.weixin.qq.com?params=value", sig), PG_OK);
    assert_string_not_equal(sig, "0f9de62fce790f9a083d5c99e95740ceb90c27ed");
    assert_int_equal(wxmp_jssdk_signature("", "n", 1, "http://x", sig), PG_ERR_BAD_INPUT);
    assert_int_equal(wxmp_jssdk_signature(DOC_TICKET, "", 1, "http://x", sig), PG_ERR_BAD_INPUT);
    assert_int_equal(wxmp_jssdk_signature(DOC_TICKET, "n", 1, "", sig), PG_ERR_BAD_INPUT);
}

static pg_err parse(pg_err (*fn)(arena_t *, const char *, size_t, wxmp_credential_t *, buf_t *), const char *body,
                    wxmp_credential_t *out, arena_t *a)
{
    buf_t err;
    buf_init(&err, a);
    return fn(a, body, strlen(body), out, &err);
}

static void test_replies(void **state)
{
    arena_t a;
    wxmp_credential_t c;
    (void)state;
    arena_init(&a, 0);
    assert_int_equal(parse(wxmp_parse_token_reply, "{\"access_token\":\"ACCESS_TOKEN\",\"expires_in\":7200}", &c, &a),
                     PG_OK);
    assert_string_equal(c.value, "ACCESS_TOKEN");
    assert_int_equal(c.expires_in, 7200);
    assert_int_equal(parse(wxmp_parse_ticket_reply,
                           "{\"errcode\":0,\"errmsg\":\"ok\",\"ticket\":\"T-1_x\",\"expires_in\":7200}", &c, &a), PG_OK);
    assert_string_equal(c.value, "T-1_x");
    /* refusals: the errcode is kept, token errors recognised */
    assert_int_equal(parse(wxmp_parse_token_reply, "{\"errcode\":40125,\"errmsg\":\"invalid appsecret\"}", &c, &a),
                     PG_ERR_UPSTREAM);
    assert_int_equal(c.errcode, 40125);
    assert_false(wxmp_is_token_error(c.errcode));
    assert_int_equal(parse(wxmp_parse_ticket_reply, "{\"errcode\":42001,\"errmsg\":\"access_token expired\"}", &c, &a),
                     PG_ERR_UPSTREAM);
    assert_true(wxmp_is_token_error(c.errcode));
    assert_true(wxmp_is_token_error(40001) && wxmp_is_token_error(40014));
    /* not a usable reply */
    assert_int_equal(parse(wxmp_parse_ticket_reply, "{\"errcode\":0,\"ticket\":\"\",\"expires_in\":7200}", &c, &a),
                     PG_ERR_BAD_INPUT);
    assert_int_equal(parse(wxmp_parse_ticket_reply, "{\"errcode\":0,\"ticket\":\"a b\",\"expires_in\":7200}", &c, &a),
                     PG_ERR_BAD_INPUT);
    assert_int_equal(parse(wxmp_parse_ticket_reply, "{\"errcode\":0,\"ticket\":\"t\",\"expires_in\":0}", &c, &a),
                     PG_ERR_BAD_INPUT);
    assert_int_equal(parse(wxmp_parse_ticket_reply, "{\"errcode\":0,\"ticket\":\"t\",\"expires_in\":\"7200\"}", &c, &a),
                     PG_ERR_BAD_INPUT);
    assert_int_equal(parse(wxmp_parse_token_reply, "{\"access_token\":\"a\",\"access_token\":\"b\",\"expires_in\":1}",
                           &c, &a), PG_ERR_BAD_INPUT);
    assert_int_equal(parse(wxmp_parse_token_reply, "[]", &c, &a), PG_ERR_BAD_INPUT);
    assert_int_equal(parse(wxmp_parse_token_reply, "not json", &c, &a), PG_ERR_BAD_INPUT);
    arena_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signature_known_vector),
        cmocka_unit_test(test_replies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
