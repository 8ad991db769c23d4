/* fuzz_stripe_event: a Stripe webhook delivery through
 * stripe_verify_signature and stripe_event_parse, with a fixed secret and
 * clock (no randomness: a crash replays).
 *
 * Input: one flag byte, then the body.
 *   bit 0  sign the body correctly (else the header is the body's first
 *          line up to 200 bytes, i.e. fuzzed)
 *   bit 1  flip the body's last byte after signing (a tampered body)
 * Properties: a correctly signed, untampered body always verifies; a
 * tampered one never does; parsing never crashes, and on PG_OK an event
 * has its id and type, a session kind has its session id, a refund its
 * id and status; amounts are either absent (-1) or non-negative. */
#include "fuzz_common.h"
#include "stripe.h"

#define FUZZ_SECRET "whsec_fuzz"
#define FUZZ_NOW 1700000000

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

static void check_parse(arena_t *a, const char *body, size_t len)
{
    stripe_event_t e;
    buf_t why;
    buf_init(&why, a);
    if (stripe_event_parse(a, body, len, &e, &why) != PG_OK)
        return;
    FUZZ_ASSERT(e.id != NULL && e.type != NULL);
    switch (e.kind) {
    case STRIPE_EVENT_SESSION_COMPLETED:
    case STRIPE_EVENT_SESSION_ASYNC_PAID:
    case STRIPE_EVENT_SESSION_ASYNC_FAILED:
    case STRIPE_EVENT_SESSION_EXPIRED:
        FUZZ_ASSERT(e.session.id != NULL && e.session.amount_total >= -1);
        break;
    case STRIPE_EVENT_REFUND:
        FUZZ_ASSERT(e.refund.id != NULL && e.refund.status != NULL);
        FUZZ_ASSERT(e.refund.amount >= -1 && e.refund.payment_amount >= -1);
        break;
    default:
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    arena_t a;
    buf_t header, why;
    char *body;
    size_t len;
    pg_err rc;
    if (size < 1)
        return 0;
    fuzz_arena_init(&a);
    buf_init(&header, &a);
    buf_init(&why, &a);
    len = size - 1;
    body = fuzz_exact_copy(data + 1, len);
    if (data[0] & 1) {
        FUZZ_ASSERT(stripe_signature_header(FUZZ_SECRET, FUZZ_NOW, body, len, &header) == PG_OK);
    } else {
        size_t n = 0;
        while (n < len && n < 200 && body[n] != '\n' && body[n] != '\0')
            n++;
        buf_append(&header, body, n);
        buf_putc(&header, '\0');
        header.len--;
    }
    if ((data[0] & 2) && len > 0)
        body[len - 1] ^= 0x01;
    rc = stripe_verify_signature(FUZZ_SECRET, header.data ? header.data : "", body, len, FUZZ_NOW,
                                 STRIPE_SIGNATURE_TOLERANCE_S, &why);
    if ((data[0] & 1) && !((data[0] & 2) && len > 0))
        FUZZ_ASSERT(rc == PG_OK);
    if ((data[0] & 1) && (data[0] & 2) && len > 0)
        FUZZ_ASSERT(rc == PG_ERR_BAD_SIGNATURE);
    check_parse(&a, body, len);
    free(body);
    arena_free(&a);
    return 0;
}
