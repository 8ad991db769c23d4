/* fuzz_alipay_response: an Alipay gateway reply body (JSON) through the
 * raw-substring extraction that signature checks rely on
 * (alipay_extract_response) and the reply check (alipay_check_response),
 * with the test keys of tests/fixtures/alipay.
 *
 * Input: one flag byte, then the body.
 *   bits 0-2  which method's reply is expected (table below)
 *   bit 7     also re-sign: the extracted span is signed with the fixture
 *             "Alipay" private key and wrapped as {"<key>":span,"sign":...};
 *             that reply must pass the signature check (so the signed-path
 *             code reading code/sub_code/msg sees fuzzed objects).
 * Properties: the span lies inside the body and runs from '{' to its '}';
 * PG_OK means a verified reply with code 10000 and reply.json = the span;
 * the fixed-size reply fields are always terminated. */
#include "alipay.h"
#include "fuzz_common.h"

static const char *const methods[] = {
    "alipay.trade.query",
    "alipay.trade.precreate",
    "alipay.trade.refund",
    "alipay.trade.fastpay.refund.query",
    "alipay.trade.close",
    "alipay.data.dataservice.bill.downloadurl.query",
    "alipay.trade.page.pay",
    "error",   /* its reply key is error_response itself */
};

static crypto_key_t *g_ali_priv, *g_ali_pub;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    g_ali_priv = fuzz_load_key("tests/fixtures/alipay/alipay_private.pem", 1);
    g_ali_pub = fuzz_load_key("tests/fixtures/alipay/alipay_public.pem", 0);
    return 0;
}

static char *reply_key(arena_t *a, const char *method)
{
    char *key = arena_printf(a, "%s_response", method);
    size_t i;
    FUZZ_ASSERT(key != NULL);
    for (i = 0; key[i] != '\0'; i++)
        if (key[i] == '.')
            key[i] = '_';
    return key;
}

static void check_reply_fields(const alipay_reply_t *r)
{
    FUZZ_ASSERT(memchr(r->code, '\0', sizeof r->code) != NULL);
    FUZZ_ASSERT(memchr(r->sub_code, '\0', sizeof r->sub_code) != NULL);
    FUZZ_ASSERT(memchr(r->sub_msg, '\0', sizeof r->sub_msg) != NULL);
}

static pg_err check(arena_t *a, const alipay_client_t *c, const char *method, const char *body,
                    size_t len)
{
    alipay_reply_t reply;
    buf_t err;
    pg_err rc;

    buf_init(&err, a);
    rc = alipay_check_response(a, c, method, body, len, &reply, &err);
    check_reply_fields(&reply);
    if (rc == PG_OK) {
        FUZZ_ASSERT(reply.json != NULL && reply.json >= body && reply.json + reply.json_len <= body + len);
        FUZZ_ASSERT(strcmp(reply.code, "10000") == 0);
    }
    if (reply.json != NULL)
        FUZZ_ASSERT(reply.json >= body && reply.json + reply.json_len <= body + len);
    return rc;
}

/* The same span, signed and wrapped in a minimal reply. */
static void resign(arena_t *a, const alipay_client_t *c, const char *method, const char *key,
                   const char *span, size_t span_len)
{
    buf_t sig, body;
    char *copy;
    pg_err rc;

    buf_init(&sig, a);
    FUZZ_ASSERT(crypto_rsa_sha256_sign_b64(g_ali_priv, span, span_len, &sig) == PG_OK);
    buf_init(&body, a);
    buf_puts(&body, "{\"");
    buf_puts(&body, key);
    buf_puts(&body, "\":");
    buf_append(&body, span, span_len);
    buf_puts(&body, ",\"sign\":\"");
    buf_puts(&body, sig.data);
    buf_puts(&body, "\"}");
    FUZZ_ASSERT(!body.failed);
    copy = fuzz_exact_copy((const uint8_t *)body.data, body.len);
    rc = check(a, c, method, copy, body.len);
    /* The wrapper is well formed and the signature right: only the object's
     * own content (not JSON, or code != 10000) may be refused. */
    FUZZ_ASSERT(rc == PG_OK || rc == PG_ERR_UPSTREAM);
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    alipay_client_t c;
    arena_t a;
    const char *method, *span = NULL, *key;
    size_t span_len = 0, blen;
    char *body, *sign = NULL;
    uint8_t flags;
    pg_err rc;

    if (size < 1)
        return 0;
    flags = data[0];
    method = methods[flags & 7];
    memset(&c, 0, sizeof c);
    c.app_id = "2021004100000001";
    c.alipay_public_key = g_ali_pub;

    fuzz_arena_init(&a);
    blen = size - 1;
    body = fuzz_exact_copy(data + 1, blen);
    key = reply_key(&a, method);

    rc = alipay_extract_response(&a, body, blen, key, &span, &span_len, &sign);
    if (rc != PG_OK) {
        key = "error_response";
        rc = alipay_extract_response(&a, body, blen, key, &span, &span_len, &sign);
    }
    if (rc == PG_OK) {
        FUZZ_ASSERT(span != NULL && span >= body && span_len >= 2 && span + span_len <= body + blen);
        FUZZ_ASSERT(span[0] == '{' && span[span_len - 1] == '}');
    }

    (void)check(&a, &c, method, body, blen);
    if (rc == PG_OK && (flags & 0x80))
        resign(&a, &c, method, key, span, span_len);

    free(body);
    arena_free(&a);
    return 0;
}
