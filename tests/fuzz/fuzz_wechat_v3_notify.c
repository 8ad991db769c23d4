/* fuzz_wechat_v3_notify: a WeChat Pay v3 notification through
 * wxv3_open_notification (signature by Wechatpay-Serial, clock, envelope
 * JSON, AEAD_AES_256_GCM resource) and the resource parsers
 * wxv3_parse_transaction / wxv3_parse_refund, with the fixture merchant of
 * tests/fixtures/wechat_v3; also wxv3_decrypt on the raw input as base64.
 *
 * Input: one flag byte, then
 *   bit 0 and 1 clear: the notification body as received, with the headers
 *          of a fixed (wrong) signature: it must never open;
 *   bit 0 set: the decrypted resource: the harness encrypts it with the
 *          api_v3_key, wraps it in a valid envelope and signs the envelope
 *          with the fixture WeChat Pay key, so the parsers see fuzzed
 *          plaintext; bit 2 picks the refund parser's event (else payment);
 *   bit 1 set (bit 0 clear): the envelope itself, signed by the harness, so
 *          the envelope reader and the decryption see fuzzed values.
 * Properties: an unsigned body never opens; a signed envelope around a
 * resource encrypted with our key always opens and yields exactly that
 * plaintext (within the size bound); accepted facts are complete, ours and in
 * range; every failure leaves the outputs cleared. */
#include "fuzz_wechat_v3.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_v3_init();
    return 0;
}

static void parse_resource(arena_t *a, const wxv3_client_t *c, const char *plain, size_t len)
{
    wxv3_transaction_t t;
    wxv3_refund_t r;

    fuzz_v3_check_transaction(wxv3_parse_transaction(a, c, plain, len, &t, NULL), &t);
    fuzz_v3_check_refund(wxv3_parse_refund(a, c, true, plain, len, &r, NULL), &r, true);
}

static void open_signed(arena_t *a, const wxv3_client_t *c, const char *body, size_t len,
                        const uint8_t *plain, size_t plain_len)
{
    wxv3_sig_headers_t h = fuzz_v3_sign(a, body, len);
    wxv3_event_t ev;
    char *copy = fuzz_exact_copy((const uint8_t *)body, len);
    pg_err rc = wxv3_open_notification(a, c, &h, copy, len, FUZZ_V3_NOW, &ev, NULL);

    FUZZ_ASSERT(rc != PG_ERR_NOT_FOUND);
    if (plain != NULL && len <= WXV3_BODY_MAX) {
        FUZZ_ASSERT(rc == PG_OK);
        FUZZ_ASSERT(ev.plaintext_len == plain_len && memcmp(ev.plaintext, plain, plain_len) == 0);
    }
    if (rc == PG_OK) {
        FUZZ_ASSERT(ev.id != NULL && ev.event_type != NULL && ev.plaintext != NULL);
        parse_resource(a, c, ev.plaintext, ev.plaintext_len);
    } else {
        FUZZ_ASSERT(ev.plaintext == NULL && ev.id == NULL);
    }
    free(copy);
}

static void wrap_resource(arena_t *a, const wxv3_client_t *c, const uint8_t *plain, size_t len, bool refund)
{
    const char *aad = refund ? "refund" : "transaction";
    char *ct = fuzz_v3_encrypt(a, plain, len, "fdasflkja484", aad);
    buf_t body;

    buf_init(&body, a);
    buf_printf(&body,
               "{\"id\":\"EV-1\",\"create_time\":\"2026-11-24T20:15:00+08:00\",\"resource_type\":"
               "\"encrypt-resource\",\"event_type\":\"%s\",\"summary\":\"s\",\"resource\":{"
               "\"original_type\":\"%s\",\"algorithm\":\"AEAD_AES_256_GCM\",\"ciphertext\":\"%s\","
               "\"associated_data\":\"%s\",\"nonce\":\"fdasflkja484\"}}",
               refund ? "REFUND.SUCCESS" : "TRANSACTION.SUCCESS", aad, ct, aad);
    FUZZ_ASSERT(!body.failed);
    /* A ciphertext too long for a string member is refused before decryption. */
    open_signed(a, c, body.data, body.len, strlen(ct) <= WXV3_BODY_MAX ? plain : NULL, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    wxv3_client_t c = fuzz_v3_client();
    wxv3_sig_headers_t h;
    wxv3_event_t ev;
    arena_t a;
    buf_t out;
    char *body;
    pg_err rc;

    if (size < 1)
        return 0;
    fuzz_arena_init(&a);
    if (data[0] & 1) {
        wrap_resource(&a, &c, data + 1, size - 1, (data[0] & 4) != 0);
    } else if (data[0] & 2) {
        open_signed(&a, &c, (const char *)data + 1, size - 1, NULL, 0);
    } else {
        h.timestamp = FUZZ_V3_TS;
        h.nonce = FUZZ_V3_NONCE;
        h.signature = "aTowv/jThwdgABaPFG1xJl0uMNdPPyV2uJ3gkRnx8Gp3/svVW1/V1sPmzPauBNYAn1ckMuI9nMeNjQj4hRWWFYV2sP==";
        h.serial = FUZZ_V3_PUBKEY_ID;
        body = fuzz_exact_copy(data + 1, size - 1);
        rc = wxv3_open_notification(&a, &c, &h, body, size - 1, FUZZ_V3_NOW, &ev, NULL);
        FUZZ_ASSERT(rc != PG_OK && ev.plaintext == NULL);
        free(body);
        parse_resource(&a, &c, (const char *)data + 1, size - 1);
        buf_init(&out, &a);
        rc = wxv3_decrypt(FUZZ_V3_KEY, fuzz_cstr(&a, data + 1, size - 1), "fdasflkja484", "transaction", &out);
        FUZZ_ASSERT(rc != PG_OK || out.len + 16 <= size);
        if (rc != PG_OK)
            FUZZ_ASSERT(out.len == 0);
    }
    arena_free(&a);
    return 0;
}
