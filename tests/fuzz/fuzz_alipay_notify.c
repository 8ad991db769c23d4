/* fuzz_alipay_notify: an Alipay notification body (form-encoded POST) through
 * form_parse and alipay_verify_notify / alipay_verify_return, with the test
 * keys of tests/fixtures/alipay.
 *
 * Input: one flag byte, then the form body.
 *   bit 0  the client checks seller_id (2088102000000001)
 *   bit 1  also re-sign: the parsed form is signed with the fixture "Alipay"
 *          private key (any sign dropped) and verified again, so the checks
 *          behind the signature (app_id, seller_id, status, strict amounts)
 *          are reached with fuzzed values. A correctly signed form must never
 *          be refused as PG_ERR_BAD_SIGNATURE, and what verifies must carry
 *          the amounts the form states. */
#include "alipay.h"
#include "fuzz_common.h"
#include "money.h"

#define APP_ID "2021004100000001"
#define SELLER_ID "2088102000000001"

static crypto_key_t *g_ali_priv, *g_ali_pub;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    g_ali_priv = fuzz_load_key("tests/fixtures/alipay/alipay_private.pem", 1);
    g_ali_pub = fuzz_load_key("tests/fixtures/alipay/alipay_public.pem", 0);
    return 0;
}

static void check_verified(const kv_list_t *form, const alipay_notify_t *n)
{
    char yuan[MONEY_YUAN_BUFSZ];
    const char *refund;

    FUZZ_ASSERT(n->out_trade_no != NULL && *n->out_trade_no != '\0');
    FUZZ_ASSERT(n->total_fen >= 0 && n->total_fen <= MONEY_MAX_FEN);
    money_format_yuan(n->total_fen, yuan);
    FUZZ_ASSERT(strcmp(yuan, kv_get(form, "total_amount")) == 0);
    refund = kv_get(form, "refund_fee");
    if (refund != NULL && *refund != '\0') {
        FUZZ_ASSERT(n->has_refund);
        money_format_yuan(n->refund_fen, yuan);
        FUZZ_ASSERT(strcmp(yuan, refund) == 0);
    }
    FUZZ_ASSERT(strcmp(kv_get(form, "app_id"), APP_ID) == 0);
}

static void verify(arena_t *a, const alipay_client_t *c, const kv_list_t *form, int must_verify)
{
    alipay_notify_t n;
    buf_t reason;
    const char *otn = NULL;
    pg_err rc;

    buf_init(&reason, a);
    rc = alipay_verify_notify(c, form, &n, &reason);
    if (must_verify)
        FUZZ_ASSERT(rc != PG_ERR_BAD_SIGNATURE);
    if (rc == PG_OK)
        check_verified(form, &n);
    rc = alipay_verify_return(c, form, &otn, &reason);
    if (must_verify)
        FUZZ_ASSERT(rc != PG_ERR_BAD_SIGNATURE);
    if (rc == PG_OK)
        FUZZ_ASSERT(otn != NULL && *otn != '\0');
    else
        FUZZ_ASSERT(otn == NULL);
}

/* Signs the form as Alipay would: sign and sign_type dropped, the rest
 * sorted (alipay_sign_content), SHA256withRSA. */
static void resign_and_verify(arena_t *a, const alipay_client_t *c, const kv_list_t *form)
{
    kv_list_t unsigned_form;
    buf_t content, sig;

    fuzz_kv_copy_without(&unsigned_form, a, form, "sign");
    buf_init(&content, a);
    if (alipay_sign_content(&unsigned_form, true, &content) != PG_OK)
        return;   /* repeated or empty key: refused before any signature */
    buf_init(&sig, a);
    FUZZ_ASSERT(crypto_rsa_sha256_sign_b64(g_ali_priv, content.data, content.len, &sig) == PG_OK);
    FUZZ_ASSERT(kv_add(&unsigned_form, "sign", sig.data) == PG_OK);
    verify(a, c, &unsigned_form, 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    alipay_client_t c;
    arena_t a;
    kv_list_t form;
    char *body;
    uint8_t flags;

    if (size < 1)
        return 0;
    flags = data[0];
    memset(&c, 0, sizeof c);
    c.app_id = APP_ID;
    c.seller_id = (flags & 1) ? SELLER_ID : NULL;
    c.alipay_public_key = g_ali_pub;

    fuzz_arena_init(&a);
    body = fuzz_exact_copy(data + 1, size - 1);
    kv_init(&form, &a);
    if (form_parse(body, size - 1, &form) == PG_OK) {
        verify(&a, &c, &form, 0);
        if (flags & 2)
            resign_and_verify(&a, &c, &form);
    }
    free(body);
    arena_free(&a);
    return 0;
}
