/* fuzz_wechat_v3_reply: a WeChat Pay v3 gateway reply body through
 * wxv3_check_reply (status, signature, error body), wxv3_parse_prepay (each
 * kind), wxv3_parse_transaction (query), wxv3_parse_refund (refund and
 * refund query) and wxv3_parse_certificates, with the fixture merchant.
 *
 * Input: one flag byte, then the JSON body.
 *   bit 0  sign the body with the fixture WeChat Pay key (else a fixed wrong
 *          signature): a signed 200 reply must verify, an unsigned one never;
 *   bit 1  the HTTP status is 400 (else 200): the error body is read.
 * Properties: code is always a terminated string, empty on 200; accepted
 * facts are complete and in range; failures leave outputs cleared. */
#include "fuzz_wechat_v3.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_v3_init();
    return 0;
}

static void parse_all(arena_t *a, const wxv3_client_t *c, const char *body, size_t len)
{
    static const wxv3_kind_t kinds[] = { WXV3_NATIVE, WXV3_JSAPI, WXV3_H5 };
    wxv3_prepay_t p;
    wxv3_transaction_t t;
    wxv3_refund_t r;
    wxv3_cert_entry_t *certs;
    size_t n;
    pg_err rc;

    for (size_t i = 0; i < 3; i++) {
        rc = wxv3_parse_prepay(a, kinds[i], body, len, &p);
        if (rc == PG_OK)
            FUZZ_ASSERT((p.code_url != NULL) + (p.prepay_id != NULL) + (p.h5_url != NULL) == 1);
        else
            FUZZ_ASSERT(p.code_url == NULL && p.prepay_id == NULL && p.h5_url == NULL);
    }
    fuzz_v3_check_transaction(wxv3_parse_transaction(a, c, body, len, &t, NULL), &t);
    fuzz_v3_check_refund(wxv3_parse_refund(a, c, false, body, len, &r, NULL), &r, false);
    rc = wxv3_parse_certificates(a, c, body, len, &certs, &n, NULL);
    if (rc == PG_OK) {
        FUZZ_ASSERT(n >= 1 && n <= 16 && certs != NULL);
        for (size_t i = 0; i < n; i++)
            FUZZ_ASSERT(certs[i].pem != NULL && certs[i].serial_no != NULL);
    } else {
        FUZZ_ASSERT(n == 0 && certs == NULL);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    wxv3_client_t c = fuzz_v3_client();
    wxv3_sig_headers_t h;
    char code[WXV3_CODE_MAX];
    arena_t a;
    buf_t err;
    char *body;
    size_t len;
    long status;
    pg_err rc;

    if (size < 1)
        return 0;
    fuzz_arena_init(&a);
    len = size - 1;
    body = fuzz_exact_copy(data + 1, len);
    status = (data[0] & 2) ? 400 : 200;
    if (data[0] & 1) {
        h = fuzz_v3_sign(&a, body, len);
    } else {
        h.timestamp = FUZZ_V3_TS;
        h.nonce = FUZZ_V3_NONCE;
        h.signature = "aTowv/jThwdgABaPFG1xJl0uMNdPPyV2uJ3gkRnx8Gp3/svVW1/V1sPmzPauBNYAn1ckMuI9nMeNjQj4hRWWFYV2sP==";
        h.serial = FUZZ_V3_PUBKEY_ID;
    }
    memset(code, 'x', sizeof code);
    buf_init(&err, &a);
    rc = wxv3_check_reply(&c, status, &h, body, len, FUZZ_V3_NOW, code, &err);
    FUZZ_ASSERT(memchr(code, '\0', sizeof code) != NULL);
    if (status == 200) {
        FUZZ_ASSERT(code[0] == '\0');
        if (len <= WXV3_CERTS_BODY_MAX)
            FUZZ_ASSERT((rc == PG_OK) == ((data[0] & 1) != 0));
    } else {
        FUZZ_ASSERT(rc == PG_ERR_UPSTREAM || rc == PG_ERR_TOO_LARGE);
    }
    parse_all(&a, &c, body, len);
    free(body);
    arena_free(&a);
    return 0;
}
