/* fuzz_wechat_reply: a WeChat gateway reply body (unifiedorder, orderquery,
 * refund, ...) through wechat_check_reply (XML reader, return_code, v2 sign,
 * appid/mch_id, result_code, err_code copy), with the fixture merchant.
 *
 * Input: one flag byte, then the XML body.
 *   bit 0  the merchant is configured for HMAC-SHA256 (else MD5)
 *   bit 1  also re-sign: the parsed reply gets a correct sign and is checked
 *          again, so the result_code / err_code handling sees fuzzed values.
 * Properties: a correctly signed reply is never PG_ERR_BAD_SIGNATURE;
 * err_code is always a terminated string, empty unless a signed reply
 * carried a result_code other than SUCCESS; on PG_OK the reply list holds
 * return_code and result_code SUCCESS. */
#include "fuzz_wechat.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    xml_global_init();
    return 0;
}

static pg_err check(arena_t *a, const wechat_client_t *c, const char *body, size_t len)
{
    kv_list_t reply;
    char err_code[64];
    buf_t err;
    pg_err rc;

    memset(err_code, 'x', sizeof err_code);
    buf_init(&err, a);
    rc = wechat_check_reply(a, c, body, len, &reply, err_code, &err);
    FUZZ_ASSERT(memchr(err_code, '\0', sizeof err_code) != NULL);
    if (rc == PG_OK) {
        FUZZ_ASSERT(strcmp(kv_get(&reply, "return_code"), "SUCCESS") == 0);
        FUZZ_ASSERT(strcmp(kv_get(&reply, "result_code"), "SUCCESS") == 0);
        FUZZ_ASSERT(err_code[0] == '\0');
    }
    if (rc == PG_ERR_BAD_SIGNATURE || rc == PG_ERR_MISMATCH)
        FUZZ_ASSERT(err_code[0] == '\0');
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    wechat_client_t c;
    arena_t a;
    char *body, *signed_body;
    size_t signed_len = 0;
    uint8_t flags;

    if (size < 1)
        return 0;
    flags = data[0];
    c = fuzz_wechat_client((flags & 1) ? WECHAT_SIGN_HMAC_SHA256 : WECHAT_SIGN_MD5);
    fuzz_arena_init(&a);
    body = fuzz_exact_copy(data + 1, size - 1);
    (void)check(&a, &c, body, size - 1);
    if (flags & 2) {
        signed_body = fuzz_wechat_resign(&a, body, size - 1, c.sign_type, &signed_len);
        if (signed_body != NULL) {
            FUZZ_ASSERT(check(&a, &c, signed_body, signed_len) != PG_ERR_BAD_SIGNATURE);
            free(signed_body);
        }
    }
    free(body);
    arena_free(&a);
    return 0;
}
