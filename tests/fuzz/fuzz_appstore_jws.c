/* fuzz_appstore_jws: App Store JWS parsing and verification (appstore.c,
 * pki.c) with the test PKI of tests/fixtures/appstore and a fixed clock.
 *
 * Input: one flag byte, then the bytes.
 *   bit 0  the bytes are a notification body {"signedPayload": ...}, else a
 *          bare signedTransactionInfo JWS.
 * Properties: no crash, leak or UB whatever the bytes; on PG_OK the facts
 * are complete (ids, bundle and environment as configured); on an error the
 * output carries no transaction. The verifier (and its chain cache) lives
 * for the process, as in paygate. */
#include "fuzz_common.h"
#include "appstore.h"

#define FUZZ_NOW ((time_t)1767229200)
static appstore_verifier_t *verifier;
static const appstore_expect_t EXPECT = { "com.example.shop", 1234567890, "Production" };

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    buf_t err;
    buf_init(&err, NULL);
    if (appstore_verifier_load("tests/fixtures/appstore/root.pem", &verifier, &err) != PG_OK) {
        fprintf(stderr, "fuzz_appstore_jws: %s (run from the repository root)\n", err.data);
        abort();
    }
    buf_free(&err);
    return 0;
}

static void check_tx(const appstore_transaction_t *t)
{
    FUZZ_ASSERT(t->transaction_id && *t->transaction_id && t->product_id && *t->product_id);
    FUZZ_ASSERT(t->bundle_id && strcmp(t->bundle_id, EXPECT.bundle_id) == 0);
    FUZZ_ASSERT(t->environment && strcmp(t->environment, EXPECT.environment) == 0);
    FUZZ_ASSERT(!t->app_account_token || strlen(t->app_account_token) == 36);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    arena_t a;
    fuzz_arena_init(&a);
    buf_t err;
    buf_init(&err, &a);
    char *body = fuzz_exact_copy(data + 1, size - 1);
    if (data[0] & 1) {
        appstore_notification_t n;
        pg_err rc = appstore_verify_notification(verifier, &EXPECT, &a, body, size - 1, FUZZ_NOW, &n, &err);
        if (rc == PG_OK) {
            FUZZ_ASSERT(n.type && n.uuid);
            if (n.has_transaction)
                check_tx(&n.tx);
        } else {
            FUZZ_ASSERT(!n.has_transaction);
        }
    } else {
        appstore_transaction_t t;
        if (appstore_verify_transaction(verifier, &EXPECT, &a, body, size - 1, FUZZ_NOW, &t, &err) == PG_OK)
            check_tx(&t);
    }
    free(body);
    arena_free(&a);
    return 0;
}
