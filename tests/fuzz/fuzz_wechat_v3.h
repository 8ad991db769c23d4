/* fuzz_wechat_v3: the v3 test merchant of tests/fixtures/wechat_v3 (both
 * verification modes configured) and the harness-side signing and
 * encryption the v3 targets share. The harness encrypts with OpenSSL's EVP
 * directly and signs with the fixture WeChat Pay key: paygate itself only
 * ever decrypts and verifies with those. */
#ifndef FUZZ_WECHAT_V3_H
#define FUZZ_WECHAT_V3_H
#include <openssl/evp.h>

#include "fuzz_common.h"
#include "crypto_v3.h"
#include "money.h"
#include "wechat_v3.h"

#define FUZZ_V3_DIR "tests/fixtures/wechat_v3/"
#define FUZZ_V3_MCHID "1900009191"
#define FUZZ_V3_APPID "wxd930ea5d5a258f4f"
#define FUZZ_V3_KEY "a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb"
#define FUZZ_V3_PUBKEY_ID "PUB_KEY_ID_0119000091912026112400000000000001"
#define FUZZ_V3_NOW ((time_t)1795522500)
#define FUZZ_V3_TS "1795522500"
#define FUZZ_V3_NONCE "fuzzNonce0001"

static crypto_key_t *g_v3_wechatpay_priv, *g_v3_wechatpay_pub, *g_v3_platform_pub;
static char g_v3_platform_serial[CRYPTO_X509_SERIAL_MAX + 1];
static wxv3_platform_key_t g_v3_platform_map[1];

static inline void fuzz_v3_init(void)
{
    size_t len;
    char *pem;

    g_v3_wechatpay_priv = fuzz_load_key(FUZZ_V3_DIR "wechatpay_key.pem", 1);
    g_v3_wechatpay_pub = fuzz_load_key(FUZZ_V3_DIR "wechatpay_pub.pem", 0);
    g_v3_platform_pub = fuzz_load_key(FUZZ_V3_DIR "platform_cert.pem", 0);
    pem = fuzz_read_file(FUZZ_V3_DIR "platform_cert.pem", &len);
    FUZZ_ASSERT(crypto_x509_serial_hex(pem, len, g_v3_platform_serial, NULL) == PG_OK);
    free(pem);
    g_v3_platform_map[0].serial = g_v3_platform_serial;
    g_v3_platform_map[0].key = g_v3_platform_pub;
}

static inline wxv3_client_t fuzz_v3_client(void)
{
    wxv3_client_t c;
    memset(&c, 0, sizeof c);
    c.appid = FUZZ_V3_APPID;
    c.mchid = FUZZ_V3_MCHID;
    c.api_v3_key = FUZZ_V3_KEY;
    c.pubkey_id = FUZZ_V3_PUBKEY_ID;
    c.pubkey = g_v3_wechatpay_pub;
    c.platform = g_v3_platform_map;
    c.platform_count = 1;
    return c;
}

/* Headers that sign body with the fixture WeChat Pay key (public-key mode). */
static inline wxv3_sig_headers_t fuzz_v3_sign(arena_t *a, const char *body, size_t len)
{
    wxv3_sig_headers_t h;
    buf_t msg, sig;

    buf_init(&msg, a);
    buf_init(&sig, a);
    buf_puts(&msg, FUZZ_V3_TS "\n" FUZZ_V3_NONCE "\n");
    buf_append(&msg, body, len);
    buf_putc(&msg, '\n');
    FUZZ_ASSERT(!msg.failed);
    FUZZ_ASSERT(crypto_rsa_sha256_sign_b64(g_v3_wechatpay_priv, msg.data, msg.len, &sig) == PG_OK);
    h.timestamp = FUZZ_V3_TS;
    h.nonce = FUZZ_V3_NONCE;
    h.signature = sig.data;
    h.serial = FUZZ_V3_PUBKEY_ID;
    return h;
}

/* base64(AES-256-GCM(plain) || tag) with the fixture api_v3_key. */
static inline char *fuzz_v3_encrypt(arena_t *a, const uint8_t *plain, size_t len, const char *nonce,
                                    const char *aad)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    unsigned char *out = malloc(len + 16 + 1);
    int n1 = 0, n2 = 0, n3 = 0;
    buf_t b64;

    FUZZ_ASSERT(ctx != NULL && out != NULL && len < INT32_MAX);
    FUZZ_ASSERT(EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1);
    FUZZ_ASSERT(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, (int)strlen(nonce), NULL) == 1);
    FUZZ_ASSERT(EVP_EncryptInit_ex(ctx, NULL, NULL, (const unsigned char *)FUZZ_V3_KEY,
                                   (const unsigned char *)nonce) == 1);
    FUZZ_ASSERT(EVP_EncryptUpdate(ctx, NULL, &n3, (const unsigned char *)aad, (int)strlen(aad)) == 1);
    FUZZ_ASSERT(EVP_EncryptUpdate(ctx, out, &n1, plain, (int)len) == 1);
    FUZZ_ASSERT(EVP_EncryptFinal_ex(ctx, out + n1, &n2) == 1);
    FUZZ_ASSERT(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, out + n1 + n2) == 1);
    EVP_CIPHER_CTX_free(ctx);
    buf_init(&b64, a);
    FUZZ_ASSERT(crypto_base64_encode(out, (size_t)(n1 + n2) + 16, &b64) == PG_OK);
    free(out);
    return b64.data;
}

/* Checks the facts of an accepted transaction / refund. */
static inline void fuzz_v3_check_transaction(pg_err rc, const wxv3_transaction_t *t)
{
    if (rc == PG_OK) {
        FUZZ_ASSERT(t->out_trade_no != NULL && t->trade_state != NULL);
        FUZZ_ASSERT(strcmp(t->mchid, FUZZ_V3_MCHID) == 0 && strcmp(t->appid, FUZZ_V3_APPID) == 0);
        FUZZ_ASSERT(t->total_fen >= -1 && t->total_fen <= MONEY_MAX_FEN);
        if (strcmp(t->trade_state, "SUCCESS") == 0)
            FUZZ_ASSERT(t->transaction_id != NULL && t->total_fen >= 1);
    } else {
        FUZZ_ASSERT(t->out_trade_no == NULL && t->total_fen == -1);
    }
}

static inline void fuzz_v3_check_refund(pg_err rc, const wxv3_refund_t *r, bool notification)
{
    if (rc == PG_OK) {
        FUZZ_ASSERT(r->out_refund_no != NULL && r->refund_id != NULL && r->status != NULL);
        FUZZ_ASSERT(r->refund_fen >= 1 && r->refund_fen <= r->total_fen && r->total_fen <= MONEY_MAX_FEN);
        if (notification)
            FUZZ_ASSERT(r->mchid != NULL && strcmp(r->mchid, FUZZ_V3_MCHID) == 0);
    } else {
        FUZZ_ASSERT(r->out_refund_no == NULL && r->refund_fen == 0);
    }
}

#endif
