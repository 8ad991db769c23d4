/* fuzz_wechat_refund_notify: a WeChat refund notification through
 * wechat_verify_refund_notify (outer XML, return_code, appid/mch_id,
 * base64 req_info, AES-256-ECB with the fixture API key's MD5, inner XML,
 * strict fees), and wechat_decrypt_req_info on the raw input as base64.
 *
 * Input: one flag byte, then
 *   bit 0 clear: the outer XML body, as received;
 *   bit 0 set:   the decrypted req_info text: the target encrypts it with
 *                the merchant's key and wraps it in a valid outer message,
 *                so the inner reader and the field checks see fuzzed values.
 * Properties: a req_info encrypted with our key is never refused as
 * PG_ERR_BAD_SIGNATURE unless its plaintext is not acceptable flat XML; on
 * PG_OK the facts are complete and the fees in range; on any error the
 * output is cleared. The harness encrypts with OpenSSL's EVP directly:
 * paygate itself only ever decrypts. */
#include <openssl/evp.h>

#include "fuzz_wechat.h"
#include "money.h"

static const char *const inner_roots[] = { "root", "xml", NULL };
static char g_key_hex[33];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    xml_global_init();
    crypto_md5_hex(FUZZ_WX_API_KEY, strlen(FUZZ_WX_API_KEY), false, g_key_hex);
    return 0;
}

static pg_err verify(arena_t *a, const char *body, size_t len)
{
    wechat_client_t c = fuzz_wechat_client(WECHAT_SIGN_MD5);
    wechat_refund_notify_t n;
    buf_t reason;
    pg_err rc;

    buf_init(&reason, a);
    rc = wechat_verify_refund_notify(a, &c, body, len, &n, &reason);
    if (rc == PG_OK) {
        FUZZ_ASSERT(n.out_trade_no != NULL && n.out_refund_no != NULL && n.refund_status != NULL);
        FUZZ_ASSERT(n.total_fee >= 0 && n.total_fee <= MONEY_MAX_FEN);
        FUZZ_ASSERT(n.refund_fee >= 0 && n.refund_fee <= MONEY_MAX_FEN);
    } else {
        FUZZ_ASSERT(n.out_trade_no == NULL && n.refund_fee == 0 && n.total_fee == 0);
    }
    return rc;
}

/* AES-256-ECB with PKCS#7 padding, base64. */
static char *encrypt_b64(arena_t *a, const uint8_t *plain, size_t len)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    unsigned char *cipher = malloc(len + 32);
    int n1 = 0, n2 = 0;
    buf_t b64;

    FUZZ_ASSERT(ctx != NULL && cipher != NULL && len < INT32_MAX);
    FUZZ_ASSERT(EVP_EncryptInit_ex(ctx, EVP_aes_256_ecb(), NULL, (const unsigned char *)g_key_hex, NULL) == 1);
    FUZZ_ASSERT(EVP_EncryptUpdate(ctx, cipher, &n1, plain, (int)len) == 1);
    FUZZ_ASSERT(EVP_EncryptFinal_ex(ctx, cipher + n1, &n2) == 1);
    EVP_CIPHER_CTX_free(ctx);
    buf_init(&b64, a);
    FUZZ_ASSERT(crypto_base64_encode(cipher, (size_t)(n1 + n2), &b64) == PG_OK);
    free(cipher);
    return b64.data;
}

static void wrap_and_verify(arena_t *a, const uint8_t *plain, size_t len)
{
    kv_list_t outer, inner;
    buf_t doc;
    char *copy;
    int inner_ok;
    pg_err rc;

    kv_init(&outer, a);
    kv_add(&outer, "return_code", "SUCCESS");
    kv_add(&outer, "appid", FUZZ_WX_APPID);
    kv_add(&outer, "mch_id", FUZZ_WX_MCH_ID);
    kv_add(&outer, "nonce_str", "cf1a7c7b2ee8e5b4a5ce0b1f2d6e9a31");
    kv_add(&outer, "req_info", encrypt_b64(a, plain, len));
    buf_init(&doc, a);
    FUZZ_ASSERT(xml_build_flat(&outer, &doc) == PG_OK);
    copy = fuzz_exact_copy((const uint8_t *)doc.data, doc.len);
    rc = verify(a, copy, doc.len);
    inner_ok = xml_parse_flat_root(a, (const char *)plain, len, inner_roots, &inner, NULL) == PG_OK;
    if (rc == PG_ERR_BAD_SIGNATURE)
        FUZZ_ASSERT(!inner_ok);
    if (doc.len <= XML_MAX_BYTES && inner_ok)
        FUZZ_ASSERT(rc == PG_OK || rc == PG_ERR_BAD_INPUT);
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    arena_t a;
    kv_list_t info;
    char *body, *b64;
    buf_t err;
    pg_err rc;

    if (size < 1)
        return 0;
    fuzz_arena_init(&a);
    if (data[0] & 1) {
        wrap_and_verify(&a, data + 1, size - 1);
    } else {
        body = fuzz_exact_copy(data + 1, size - 1);
        (void)verify(&a, body, size - 1);
        free(body);
        b64 = fuzz_cstr(&a, data + 1, size - 1);
        buf_init(&err, &a);
        rc = wechat_decrypt_req_info(&a, FUZZ_WX_API_KEY, b64, &info, &err);
        if (rc != PG_OK)
            FUZZ_ASSERT(info.count == 0);
    }
    arena_free(&a);
    return 0;
}
