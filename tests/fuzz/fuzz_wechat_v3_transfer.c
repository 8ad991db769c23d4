/* fuzz_wechat_v3_transfer: a merchant transfer reply or the decrypted
 * resource of a MCHTRANSFER.BILL.FINISHED notification through
 * wxv3_parse_bill and wxv3_parse_bill_notification, with the fixture
 * merchant.
 *
 * Input: the JSON.
 * Properties: an accepted bill has out_bill_no and a state name, its amount
 * is -1 or in 1..MONEY_MAX_FEN; an accepted notification is a final state
 * with transfer_bill_no and an amount, and is also an accepted bill;
 * failures leave the output cleared. */
#include "fuzz_wechat_v3.h"
#include "wechat_v3_transfer.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_v3_init();
    /* the keys stay reachable (LeakSanitizer) though this target only parses */
    FUZZ_ASSERT(g_v3_wechatpay_priv != NULL && g_v3_wechatpay_pub != NULL && g_v3_platform_pub != NULL);
    return 0;
}

static void check_cleared(const wxv3_bill_t *b)
{
    FUZZ_ASSERT(b->out_bill_no == NULL && b->state_name == NULL && b->transfer_bill_no == NULL &&
                b->package_info == NULL && b->fail_reason == NULL && b->amount_fen == -1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    wxv3_client_t c = fuzz_v3_client();
    wxv3_bill_t b, n;
    arena_t a;
    buf_t reason;
    char *body;
    pg_err rc, rn;

    fuzz_arena_init(&a);
    body = fuzz_exact_copy(data, size);
    buf_init(&reason, &a);
    rc = wxv3_parse_bill(&a, &c, body, size, &b, &reason);
    if (rc == PG_OK) {
        FUZZ_ASSERT(b.out_bill_no != NULL && b.state_name != NULL);
        FUZZ_ASSERT(b.amount_fen == -1 || (b.amount_fen >= 1 && b.amount_fen <= MONEY_MAX_FEN));
    } else {
        check_cleared(&b);
    }
    rn = wxv3_parse_bill_notification(&a, &c, body, size, &n, &reason);
    if (rn == PG_OK) {
        FUZZ_ASSERT(rc == PG_OK);
        FUZZ_ASSERT(n.state == WXV3_BILL_SUCCESS || n.state == WXV3_BILL_FAIL || n.state == WXV3_BILL_CANCELLED);
        FUZZ_ASSERT(n.transfer_bill_no != NULL && n.amount_fen >= 1 && n.amount_fen <= MONEY_MAX_FEN);
    } else {
        check_cleared(&n);
    }
    free(body);
    arena_free(&a);
    return 0;
}
