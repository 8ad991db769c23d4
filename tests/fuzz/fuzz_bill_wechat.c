/* fuzz_bill_wechat: a WeChat downloadbill body through bill_parse_wechat
 * (gzip detection and bounded inflate, backtick fields split at ",`",
 * header/summary by name, five-decimal fees). Input: the body as received.
 * Properties: fuzz_bill.h (rows complete, amounts in range, strict UTF-8). */
#include "fuzz_bill.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    arena_t a;
    bill_t b;
    buf_t err;
    pg_err rc;

    fuzz_arena_init(&a);
    buf_init(&err, &a);
    memset(&b, 0, sizeof b);
    rc = bill_parse_wechat(&a, data, size, &b, &err);
    fuzz_check_bill(rc, &b, 1);
    arena_free(&a);
    return 0;
}
