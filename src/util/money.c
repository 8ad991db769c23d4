/* money: strict parsing and formatting of fen amounts. Provider amounts are
 * signed data, so anything that is not exactly the documented form is refused
 * rather than normalised. Integer arithmetic only, with explicit overflow
 * checks: no input can wrap an int64. */
#include "money.h"

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

static bool money_is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Accumulates v = v*10 + d; false on int64 overflow. */
static bool money_push_digit(int64_t *v, char c)
{
    int64_t d = c - '0';
    if (*v > (INT64_MAX - d) / 10)
        return false;
    *v = *v * 10 + d;
    return true;
}

/* Reads a run of digits without a leading zero (except a lone "0").
 * Returns the number of digits consumed, 0 on a malformed run or overflow. */
static size_t money_read_integer(const char *s, int64_t *out)
{
    size_t i = 0;
    int64_t v = 0;
    while (money_is_digit(s[i])) {
        if (!money_push_digit(&v, s[i]))
            return 0;
        i++;
    }
    if (i == 0 || (i > 1 && s[0] == '0'))
        return 0;
    *out = v;
    return i;
}

pg_err money_parse_yuan(const char *s, int64_t max_fen, int64_t *out_fen)
{
    if (!s)
        return PG_ERR_BAD_INPUT;
    int64_t yuan;
    size_t n = money_read_integer(s, &yuan);
    if (n == 0 || s[n] != '.')
        return PG_ERR_BAD_INPUT;
    const char *frac = s + n + 1;
    if (!money_is_digit(frac[0]) || !money_is_digit(frac[1]) || frac[2] != '\0')
        return PG_ERR_BAD_INPUT;
    int64_t cents = (frac[0] - '0') * 10 + (frac[1] - '0');
    if (yuan > (INT64_MAX - cents) / 100)
        return PG_ERR_BAD_INPUT;
    int64_t fen = yuan * 100 + cents;
    if (fen > max_fen)
        return PG_ERR_BAD_INPUT;
    *out_fen = fen;
    return PG_OK;
}

pg_err money_parse_fen(const char *s, int64_t max_fen, int64_t *out_fen)
{
    if (!s)
        return PG_ERR_BAD_INPUT;
    int64_t fen;
    size_t n = money_read_integer(s, &fen);
    if (n == 0 || s[n] != '\0')
        return PG_ERR_BAD_INPUT;
    if (fen > max_fen)
        return PG_ERR_BAD_INPUT;
    *out_fen = fen;
    return PG_OK;
}

void money_format_yuan(int64_t fen, char out[MONEY_YUAN_BUFSZ])
{
    /* Work on the unsigned magnitude so INT64_MIN formats too. */
    bool negative = fen < 0;
    uint64_t mag = negative ? (uint64_t)0 - (uint64_t)fen : (uint64_t)fen;
    char tmp[MONEY_YUAN_BUFSZ];
    size_t pos = sizeof(tmp);
    tmp[--pos] = '\0';
    tmp[--pos] = (char)('0' + mag % 10);
    mag /= 10;
    tmp[--pos] = (char)('0' + mag % 10);
    mag /= 10;
    tmp[--pos] = '.';
    do {
        tmp[--pos] = (char)('0' + mag % 10);
        mag /= 10;
    } while (mag);
    if (negative)
        tmp[--pos] = '-';
    memcpy(out, tmp + pos, sizeof(tmp) - pos);
}

int64_t money_fee_fen(int64_t amount_fen, int64_t rate_bp)
{
    if (amount_fen <= 0 || rate_bp <= 0)
        return 0;
    /* amount*rate/10000 split so no product can overflow before the check:
     * with amount = q*10000 + r and rate = qr*10000 + rr,
     * amount*rate/10000 = amount*qr + q*rr + r*rr/10000, and only the last
     * term (r*rr < 10^8) has a fractional part, which is rounded half up. */
    int64_t q = amount_fen / 10000, r = amount_fen % 10000;
    int64_t qr = rate_bp / 10000, rr = rate_bp % 10000;
    int64_t t1, t2, sum;
    int64_t t3 = (r * rr + 5000) / 10000;
    if (__builtin_mul_overflow(amount_fen, qr, &t1) ||
        __builtin_mul_overflow(q, rr, &t2) ||
        __builtin_add_overflow(t1, t2, &sum) ||
        __builtin_add_overflow(sum, t3, &sum))
        return INT64_MAX;   /* saturate: no real amount gets here */
    return sum;
}

static const char *const ZERO_DECIMAL[] = { "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga",
                                            "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf", NULL };

bool money_zero_decimal(const char *currency)
{
    for (size_t i = 0; currency && ZERO_DECIMAL[i]; i++) {
        if (!strcmp(ZERO_DECIMAL[i], currency))
            return true;
    }
    return false;
}
