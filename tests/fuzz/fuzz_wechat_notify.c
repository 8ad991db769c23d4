/* fuzz_wechat_notify: a WeChat payment notification body through
 * wechat_verify_notify (XML reader, return_code, v2 sign, appid/mch_id,
 * strict total_fee, result_code), with the fixture merchant's API key.
 *
 * Input: one flag byte, then the XML body.
 *   bit 0  the merchant is configured for HMAC-SHA256 (else MD5)
 *   bit 1  also re-sign: the parsed message gets a correct sign and is
 *          verified again, so the checks behind the sign see fuzzed values.
 * Properties: a correctly signed message is never PG_ERR_BAD_SIGNATURE; on
 * PG_OK the facts are complete (out_trade_no, total_fee in range, a paid
 * notification has its transaction_id) and total_fee is what was sent; on
 * any error the output is cleared. */
#include "fuzz_wechat.h"
#include "money.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    xml_global_init();
    return 0;
}

static pg_err verify(arena_t *a, const wechat_client_t *c, const char *body, size_t len)
{
    wechat_notify_t n;
    buf_t reason;
    pg_err rc;

    buf_init(&reason, a);
    rc = wechat_verify_notify(a, c, body, len, &n, &reason);
    if (rc == PG_OK) {
        FUZZ_ASSERT(n.out_trade_no != NULL && *n.out_trade_no != '\0');
        FUZZ_ASSERT(n.total_fee >= 0 && n.total_fee <= MONEY_MAX_FEN);
        if (n.paid)
            FUZZ_ASSERT(n.transaction_id != NULL && *n.transaction_id != '\0');
    } else {
        FUZZ_ASSERT(n.out_trade_no == NULL && n.total_fee == 0 && !n.paid);
    }
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
    (void)verify(&a, &c, body, size - 1);
    if (flags & 2) {
        signed_body = fuzz_wechat_resign(&a, body, size - 1, c.sign_type, &signed_len);
        if (signed_body != NULL) {
            FUZZ_ASSERT(verify(&a, &c, signed_body, signed_len) != PG_ERR_BAD_SIGNATURE);
            free(signed_body);
        }
    }
    free(body);
    arena_free(&a);
    return 0;
}
