/* ledger_math: split payments and refunds into ledger entries, and compute
 * settlement dates on the Beijing calendar. Integer arithmetic only; every
 * product that could exceed int64 (fee * refunded can reach 10^20) is done
 * in __int128, and every argument is range-checked first, so no input can
 * wrap.
 *
 * Why refunds split the net (not the amount) between creator and platform:
 * the obvious rule creator_cum(x) = floor(C * x / A) next to
 * fee_cum(x) = round_half_up(F * x / A) leaves the platform with
 * x - fee_cum - creator_cum, which is not monotone. Example: A = 3,
 * rate 5000 bp, commission 0 -> F = 2, N = 1, C = 1, P = 0; refunding one fen
 * at a time gives platform parts 0, +1, -1: the platform account first
 * crosses past zero and then a refund takes a fen from it. So the refund is
 * split the way the payment was: the fee first, then the net between creator
 * and platform.
 *
 * Proof that every refund part is in [0, what is left of it]. Let
 * 0 <= F <= A, N = A - F, 0 <= C <= N, P = N - C, x in [0, A].
 *  - fee_cum(x) = floor((2*F*x + A) / (2*A)). Its argument grows by
 *    F/A <= 1 when x grows by 1, so fee_cum steps by 0 or 1; fee_cum(0) = 0,
 *    fee_cum(A) = floor(F + 1/2) = F.
 *  - net_cum(x) = x - fee_cum(x) therefore also steps by 0 or 1:
 *    non-decreasing, net_cum(0) = 0, net_cum(A) = N.
 *  - creator_cum(x) = floor(C * net_cum(x) / N) is a non-decreasing function
 *    of a non-decreasing function; it is 0 at x = 0 and C at x = A.
 *  - platform_cum(x) = net_cum - floor(C * net_cum / N)
 *                    = ceil((N - C) * net_cum / N) = ceil(P * net_cum / N):
 *    non-decreasing, 0 at x = 0, P at x = A. (N == 0 forces C = P = 0.)
 * A refund's part is cum(before + R) - cum(before) of a non-decreasing
 * function, so it is >= 0, the sum of parts so far is cum(x) <= the payment's
 * part, and after refunds totalling A each part has been reversed exactly.
 * The platform part p = R - f - cr equals platform_cum(before + R) -
 * platform_cum(before), and f + cr + p = R, so each refund's entries sum to
 * zero. tests/unit/test_ledger_math.c also checks this exhaustively for
 * small amounts. */
#include "ledger_math.h"

#include <string.h>

#define LEDGER_BP 10000

typedef __int128 ledger_i128;

/* ---- splits ------------------------------------------------------------ */

static bool ledger_split_valid(const ledger_split_t *s)
{
    if (!s)
        return false;
    if (s->amount_fen < 0 || s->amount_fen > MONEY_MAX_FEN ||
        s->fee_fen < 0 || s->platform_fen < 0 || s->creator_fen < 0)
        return false;
    /* each part <= amount <= 10^10, so the sum cannot overflow */
    if (s->fee_fen > s->amount_fen || s->platform_fen > s->amount_fen ||
        s->creator_fen > s->amount_fen)
        return false;
    return s->fee_fen + s->platform_fen + s->creator_fen == s->amount_fen;
}

pg_err ledger_split_payment(int64_t amount_fen, int64_t rate_bp,
                            int64_t commission_bp, bool has_creator,
                            ledger_split_t *out)
{
    if (!out || amount_fen <= 0 || amount_fen > MONEY_MAX_FEN ||
        rate_bp < 0 || rate_bp > LEDGER_BP ||
        commission_bp < 0 || commission_bp > LEDGER_BP)
        return PG_ERR_BAD_INPUT;
    int64_t fee = money_fee_fen(amount_fen, rate_bp);
    if (fee < 0 || fee > amount_fen)
        return PG_ERR_INTERNAL;   /* cannot happen for rate <= 10000 */
    int64_t net = amount_fen - fee;
    int64_t creator = 0;
    if (has_creator)
        creator = (int64_t)((ledger_i128)net * (LEDGER_BP - commission_bp) / LEDGER_BP);
    out->amount_fen = amount_fen;
    out->fee_fen = fee;
    out->creator_fen = creator;
    out->platform_fen = net - creator;
    return PG_OK;
}

/* Cumulative fee reversed after x fen refunded: round_half_up(F * x / A). */
static int64_t ledger_fee_cum(const ledger_split_t *p, int64_t x)
{
    ledger_i128 a = p->amount_fen;
    return (int64_t)(((ledger_i128)2 * p->fee_fen * x + a) / (2 * a));
}

/* Cumulative creator share reversed: floor(C * net_cum(x) / N). */
static int64_t ledger_creator_cum(const ledger_split_t *p, int64_t x)
{
    int64_t net = p->amount_fen - p->fee_fen;
    if (net <= 0)
        return 0;
    int64_t net_cum = x - ledger_fee_cum(p, x);
    return (int64_t)((ledger_i128)p->creator_fen * net_cum / net);
}

pg_err ledger_split_refund(const ledger_split_t *payment,
                           int64_t refunded_before_fen, int64_t refund_fen,
                           ledger_split_t *out)
{
    if (!out || !ledger_split_valid(payment) || payment->amount_fen <= 0)
        return PG_ERR_BAD_INPUT;
    int64_t a = payment->amount_fen;
    if (refunded_before_fen < 0 || refunded_before_fen > a ||
        refund_fen <= 0 || refund_fen > a - refunded_before_fen)
        return PG_ERR_BAD_INPUT;
    int64_t x0 = refunded_before_fen, x1 = refunded_before_fen + refund_fen;
    int64_t f = ledger_fee_cum(payment, x1) - ledger_fee_cum(payment, x0);
    int64_t cr = ledger_creator_cum(payment, x1) - ledger_creator_cum(payment, x0);
    int64_t p = refund_fen - f - cr;
    if (f < 0 || cr < 0 || p < 0)
        return PG_ERR_INTERNAL;   /* excluded by the proof above */
    out->amount_fen = refund_fen;
    out->fee_fen = f;
    out->creator_fen = cr;
    out->platform_fen = p;
    return PG_OK;
}

/* ---- accounts and entries ---------------------------------------------- */

static pg_err ledger_account_name(const char *prefix, const char *name,
                                  char out[LEDGER_ACCOUNT_SZ])
{
    if (!name || !*name || !out)
        return PG_ERR_BAD_INPUT;
    size_t lp = strlen(prefix), ln = strlen(name);
    if (lp + ln >= LEDGER_ACCOUNT_SZ)
        return PG_ERR_BAD_INPUT;
    memcpy(out, prefix, lp);
    memcpy(out + lp, name, ln + 1);
    return PG_OK;
}

pg_err ledger_account_clearing(const char *channel, char out[LEDGER_ACCOUNT_SZ])
{
    return ledger_account_name("clearing:", channel, out);
}

pg_err ledger_account_fees(const char *channel, char out[LEDGER_ACCOUNT_SZ])
{
    return ledger_account_name("fees:", channel, out);
}

pg_err ledger_account_payable(const char *creator_id, char out[LEDGER_ACCOUNT_SZ])
{
    return ledger_account_name("payable:creator:", creator_id, out);
}

pg_err ledger_account_settled(const char *creator_id, char out[LEDGER_ACCOUNT_SZ])
{
    return ledger_account_name("settled:creator:", creator_id, out);
}

pg_err ledger_account_paidout(const char *creator_id, char out[LEDGER_ACCOUNT_SZ])
{
    return ledger_account_name("paidout:creator:", creator_id, out);
}

/* sign = +1 for a payment (clearing gains), -1 for a refund. */
static size_t ledger_entries(const char *channel, const char *creator_id,
                             const ledger_split_t *s, int sign,
                             ledger_entry_t out[LEDGER_MAX_ENTRIES])
{
    ledger_entry_t e[LEDGER_MAX_ENTRIES];
    bool has_creator = creator_id && *creator_id;
    if (!out || !ledger_split_valid(s) || s->amount_fen <= 0)
        return 0;
    memset(e, 0, sizeof e);
    if (ledger_account_clearing(channel, e[0].account) != PG_OK ||
        ledger_account_fees(channel, e[1].account) != PG_OK)
        return 0;
    memcpy(e[2].account, LEDGER_ACCOUNT_PLATFORM, sizeof LEDGER_ACCOUNT_PLATFORM);
    if (has_creator && ledger_account_payable(creator_id, e[3].account) != PG_OK)
        return 0;
    e[0].amount_fen = sign * s->amount_fen;
    e[1].amount_fen = -sign * s->fee_fen;
    e[2].amount_fen = -sign * (s->platform_fen + (has_creator ? 0 : s->creator_fen));
    e[3].amount_fen = has_creator ? -sign * s->creator_fen : 0;
    size_t n = 0;
    for (size_t i = 0; i < LEDGER_MAX_ENTRIES; i++)
        if (e[i].amount_fen != 0)
            out[n++] = e[i];
    return n;
}

size_t ledger_entries_payment(const char *channel, const char *creator_id,
                              const ledger_split_t *s,
                              ledger_entry_t out[LEDGER_MAX_ENTRIES])
{
    return ledger_entries(channel, creator_id, s, +1, out);
}

size_t ledger_entries_refund(const char *channel, const char *creator_id,
                             const ledger_split_t *r,
                             ledger_entry_t out[LEDGER_MAX_ENTRIES])
{
    return ledger_entries(channel, creator_id, r, -1, out);
}

/* ---- dates --------------------------------------------------------------- */

#define LEDGER_SECONDS_PER_DAY 86400

static bool ledger_is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int ledger_days_in_month(int y, int m)
{
    static const int len[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && ledger_is_leap(y) ? 29 : len[m - 1];
}

/* Proleptic Gregorian, counted in 400-year eras of 146097 days starting
 * March 1 so that the leap day is the last day of the year. */
int64_t ledger_days_from_civil(int y, int m, int d)
{
    int64_t yy = (int64_t)y - (m <= 2);
    int64_t era = (yy >= 0 ? yy : yy - 399) / 400;
    int64_t yoe = yy - era * 400;
    int64_t doy = (153 * (int64_t)(m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

void ledger_civil_from_days(int64_t days, int *y, int *m, int *d)
{
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int mm = (int)(mp < 10 ? mp + 3 : mp - 9);
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = mm;
    *y = (int)(yoe + era * 400 + (mm <= 2));
}

static bool ledger_day_in_range(int64_t days)
{
    return days >= ledger_days_from_civil(1, 1, 1) &&
           days <= ledger_days_from_civil(9999, 12, 31);
}

static void ledger_put_digits(char *p, int v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

/* days must satisfy ledger_day_in_range. */
static void ledger_format_day(int64_t days, char out[LEDGER_DATE_SZ])
{
    int y, m, d;
    ledger_civil_from_days(days, &y, &m, &d);
    ledger_put_digits(out, y, 4);
    out[4] = '-';
    ledger_put_digits(out + 5, m, 2);
    out[7] = '-';
    ledger_put_digits(out + 8, d, 2);
    out[10] = '\0';
}

static bool ledger_read_digits(const char *p, int width, int *out)
{
    int v = 0;
    for (int i = 0; i < width; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return true;
}

pg_err ledger_date_parse(const char *ymd, int *y, int *m, int *d)
{
    int yy, mm, dd;
    if (!ymd || !y || !m || !d)
        return PG_ERR_BAD_INPUT;
    /* strnlen-free length check: the 11th byte must be the terminator */
    for (int i = 0; i < 10; i++)
        if (ymd[i] == '\0')
            return PG_ERR_BAD_INPUT;
    if (ymd[10] != '\0' || ymd[4] != '-' || ymd[7] != '-' ||
        !ledger_read_digits(ymd, 4, &yy) ||
        !ledger_read_digits(ymd + 5, 2, &mm) ||
        !ledger_read_digits(ymd + 8, 2, &dd))
        return PG_ERR_BAD_INPUT;
    if (yy < 1 || mm < 1 || mm > 12 || dd < 1 || dd > ledger_days_in_month(yy, mm))
        return PG_ERR_BAD_INPUT;
    *y = yy;
    *m = mm;
    *d = dd;
    return PG_OK;
}

pg_err ledger_date_add_days(const char *ymd, int days, char out[LEDGER_DATE_SZ])
{
    int y, m, d;
    if (!out || ledger_date_parse(ymd, &y, &m, &d) != PG_OK)
        return PG_ERR_BAD_INPUT;
    int64_t day = ledger_days_from_civil(y, m, d) + days;   /* int + small: no overflow */
    if (!ledger_day_in_range(day))
        return PG_ERR_BAD_INPUT;
    ledger_format_day(day, out);
    return PG_OK;
}

int64_t ledger_beijing_day(time_t t)
{
    /* __int128 so that t near the int64 limits cannot overflow */
    ledger_i128 s = (ledger_i128)t + LEDGER_BEIJING_OFFSET_S;
    ledger_i128 q = s / LEDGER_SECONDS_PER_DAY;
    if (s % LEDGER_SECONDS_PER_DAY < 0)
        q -= 1;   /* floor, not truncation, before 1970 */
    return (int64_t)q;
}

pg_err ledger_available_date(time_t paid_at, bool delayed, int delay_days,
                             char out[LEDGER_DATE_SZ])
{
    if (!out)
        return PG_ERR_BAD_INPUT;
    if (delayed && (delay_days < 0 || delay_days > LEDGER_MAX_DELAY_DAYS))
        return PG_ERR_BAD_INPUT;
    int64_t day = ledger_beijing_day(paid_at);
    if (!ledger_day_in_range(day))
        return PG_ERR_BAD_INPUT;
    if (delayed)
        day += delay_days;
    if (!ledger_day_in_range(day))
        return PG_ERR_BAD_INPUT;
    ledger_format_day(day, out);
    return PG_OK;
}

pg_err ledger_date_bounds(const char *ymd, time_t *start, time_t *end)
{
    int y, m, d;
    if (!start || !end || ledger_date_parse(ymd, &y, &m, &d) != PG_OK)
        return PG_ERR_BAD_INPUT;
    int64_t s = ledger_days_from_civil(y, m, d) * LEDGER_SECONDS_PER_DAY -
                LEDGER_BEIJING_OFFSET_S;
    *start = (time_t)s;
    *end = (time_t)(s + LEDGER_SECONDS_PER_DAY);
    return PG_OK;
}
