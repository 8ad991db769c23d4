/* fuzz_bill_alipay_csv: an Alipay detail CSV through bill_parse_alipay_csv
 * (UTF-8) or bill_parse_alipay_csv_gbk (GBK, converted with iconv first),
 * and bill_normalize_date on the same text.
 *
 * Input: one flag byte (bit 0: GBK), then the CSV text.
 * Properties: fuzz_bill.h; a normalised date is 8 or 10 bytes of the
 * requested form. */
#include "fuzz_bill.h"

static void check_date(arena_t *a, const uint8_t *data, size_t size)
{
    char *s = fuzz_cstr(a, data, size), out[11];
    size_t i;

    if (bill_normalize_date(s, true, out) == PG_OK) {
        FUZZ_ASSERT(strlen(out) == 10 && out[4] == '-' && out[7] == '-');
    }
    if (bill_normalize_date(s, false, out) == PG_OK) {
        FUZZ_ASSERT(strlen(out) == 8);
        for (i = 0; i < 8; i++)
            FUZZ_ASSERT(out[i] >= '0' && out[i] <= '9');
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    arena_t a;
    bill_t b;
    buf_t err;
    char *csv;
    pg_err rc;

    if (size < 1)
        return 0;
    fuzz_arena_init(&a);
    buf_init(&err, &a);
    memset(&b, 0, sizeof b);
    csv = fuzz_exact_copy(data + 1, size - 1);
    if (data[0] & 1)
        rc = bill_parse_alipay_csv_gbk(&a, csv, size - 1, &b, &err);
    else
        rc = bill_parse_alipay_csv(&a, csv, size - 1, &b, &err);
    fuzz_check_bill(rc, &b, 1);
    if (size - 1 <= 16)
        check_date(&a, data + 1, size - 1);
    free(csv);
    arena_free(&a);
    return 0;
}
