/* fuzz_bill_alipay_zip: the zip Alipay serves as its trade bill, through
 * bill_parse_alipay_zip (libzip, entry selection by GBK/UTF-8 name, size and
 * entry bounds, GBK -> UTF-8, detail and summary CSV). Input: the zip bytes.
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
    rc = bill_parse_alipay_zip(&a, data, size, &b, &err);
    fuzz_check_bill(rc, &b, 0);
    arena_free(&a);
    return 0;
}
