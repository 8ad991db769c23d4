/* fuzz_money: strict amount parsing (money_parse_yuan for Alipay,
 * money_parse_fen for WeChat), formatting and the fee formula.
 *
 * Properties: whatever parses is canonical (formatting the result gives the
 * input back byte for byte, so no two texts mean one amount), stays within
 * [0, max_fen], and never overflows; formatting any int64 and parsing it
 * back is the identity for non-negative values; money_fee_fen agrees with a
 * 128-bit reference or saturates. */
#include <inttypes.h>

#include "fuzz_common.h"
#include "money.h"

static int64_t load_i64(const uint8_t *p)
{
    uint64_t v = 0;
    int i;
    for (i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return (int64_t)v;
}

static void check_text(const char *s)
{
    static const int64_t maxes[] = { MONEY_MAX_FEN, INT64_MAX, 0, 100 };
    char buf[MONEY_YUAN_BUFSZ], dec[32];
    int64_t fen;
    size_t i;

    for (i = 0; i < sizeof maxes / sizeof maxes[0]; i++) {
        fen = -1;
        if (money_parse_yuan(s, maxes[i], &fen) == PG_OK) {
            FUZZ_ASSERT(fen >= 0 && fen <= maxes[i]);
            money_format_yuan(fen, buf);
            FUZZ_ASSERT(strcmp(buf, s) == 0);
        }
        fen = -1;
        if (money_parse_fen(s, maxes[i], &fen) == PG_OK) {
            FUZZ_ASSERT(fen >= 0 && fen <= maxes[i]);
            snprintf(dec, sizeof dec, "%" PRId64, fen);
            FUZZ_ASSERT(strcmp(dec, s) == 0);
        }
    }
}

static void check_numbers(int64_t v, int64_t rate)
{
    char buf[MONEY_YUAN_BUFSZ];
    int64_t back = -1, fee;

    money_format_yuan(v, buf);
    FUZZ_ASSERT(strlen(buf) >= 4 && strlen(buf) < MONEY_YUAN_BUFSZ);
    if (v >= 0) {
        FUZZ_ASSERT(money_parse_yuan(buf, INT64_MAX, &back) == PG_OK);
        FUZZ_ASSERT(back == v);
    } else {
        FUZZ_ASSERT(buf[0] == '-');
        FUZZ_ASSERT(money_parse_yuan(buf, INT64_MAX, &back) == PG_ERR_BAD_INPUT);
    }

    fee = money_fee_fen(v, rate);
    if (v <= 0 || rate <= 0) {
        FUZZ_ASSERT(fee == 0);
    } else {
        __int128 want = ((__int128)v * rate + 5000) / 10000;
        FUZZ_ASSERT(want > INT64_MAX ? fee == INT64_MAX : fee == (int64_t)want);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    arena_t a;

    fuzz_arena_init(&a);
    check_text(fuzz_cstr(&a, data, size));
    if (size >= 16)
        check_numbers(load_i64(data), load_i64(data + 8));
    arena_free(&a);
    return 0;
}
