/* ledger_math: payment/refund splits, ledger entries, settlement dates.
 * Hand-computed cases, an exhaustive sweep of small amounts, a generated
 * table of 120,000 (amount, rate, commission) cases each followed by a random
 * run of refunds, and calendar arithmetic on the Beijing day. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include "ledger_math.h"

/* ---- helpers --------------------------------------------------------------- */

static void assert_split(const ledger_split_t *s, int64_t amount, int64_t fee,
                         int64_t platform, int64_t creator)
{
    assert_int_equal(s->amount_fen, amount);
    assert_int_equal(s->fee_fen, fee);
    assert_int_equal(s->platform_fen, platform);
    assert_int_equal(s->creator_fen, creator);
}

static int64_t entries_sum(const ledger_entry_t *e, size_t n)
{
    int64_t sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += e[i].amount_fen;
    return sum;
}

static int64_t entry_amount(const ledger_entry_t *e, size_t n, const char *account)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(e[i].account, account) == 0)
            return e[i].amount_fen;
    return 0;
}

static bool entry_present(const ledger_entry_t *e, size_t n, const char *account)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(e[i].account, account) == 0)
            return true;
    return false;
}

/* splitmix64: fixed seed, so the generated table is the same on every run. */
static uint64_t rng_state = 0x5eed1ed9e5ULL;

static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* uniform-ish in [lo, hi] (the modulo bias is irrelevant here) */
static int64_t rng_range(int64_t lo, int64_t hi)
{
    return lo + (int64_t)(rng_next() % (uint64_t)(hi - lo + 1));
}

/* ---- hand-written payment splits ------------------------------------------ */

static void test_ledger_split_payment_worked_example(void **state)
{
    (void)state;
    /* A = 9900, r = 60 bp, c = 3000 bp:
     *   F = round_half_up(9900 * 60 / 10000) = round_half_up(59.4) = 59
     *   N = 9900 - 59 = 9841
     *   C = floor(9841 * 7000 / 10000) = floor(6888.7) = 6888
     *   P = 9841 - 6888 = 2953   (2952.3 of commission + the 0.7 remainder) */
    ledger_split_t s;
    assert_int_equal(ledger_split_payment(9900, 60, 3000, true, &s), PG_OK);
    assert_split(&s, 9900, 59, 2953, 6888);

    ledger_entry_t e[LEDGER_MAX_ENTRIES];
    size_t n = ledger_entries_payment("alipay", "cr_7", &s, e);
    assert_int_equal(n, 4);
    assert_string_equal(e[0].account, "clearing:alipay");
    assert_int_equal(e[0].amount_fen, 9900);
    assert_string_equal(e[1].account, "fees:alipay");
    assert_int_equal(e[1].amount_fen, -59);
    assert_string_equal(e[2].account, "revenue:platform");
    assert_int_equal(e[2].amount_fen, -2953);
    assert_string_equal(e[3].account, "payable:creator:cr_7");
    assert_int_equal(e[3].amount_fen, -6888);
    assert_int_equal(entries_sum(e, n), 0);
}

static void test_ledger_split_payment_fee_rounds_half_up(void **state)
{
    (void)state;
    ledger_split_t s;
    /* 5 * 1000 / 10000 = 0.5 -> 1; N = 4; C = floor(4 * 0.7) = floor(2.8) = 2; P = 2 */
    assert_int_equal(ledger_split_payment(5, 1000, 3000, true, &s), PG_OK);
    assert_split(&s, 5, 1, 2, 2);
    /* 4 * 1000 / 10000 = 0.4 -> 0; N = 4; same creator split */
    assert_int_equal(ledger_split_payment(4, 1000, 3000, true, &s), PG_OK);
    assert_split(&s, 4, 0, 2, 2);
    /* 1 fen at 60 bp: fee 0.006 -> 0; C = floor(0.7) = 0: the fen goes to the platform */
    assert_int_equal(ledger_split_payment(1, 60, 3000, true, &s), PG_OK);
    assert_split(&s, 1, 0, 1, 0);
}

static void test_ledger_split_payment_remainder_goes_to_platform(void **state)
{
    (void)state;
    ledger_split_t s;
    /* N = 10, c = 3333: creator exactly 6.667 -> 6; platform 3.333 + 0.667 = 4 */
    assert_int_equal(ledger_split_payment(10, 0, 3333, true, &s), PG_OK);
    assert_split(&s, 10, 0, 4, 6);
    /* c = 0: everything after the fee to the creator, platform 0 (entry omitted) */
    assert_int_equal(ledger_split_payment(9900, 60, 0, true, &s), PG_OK);
    assert_split(&s, 9900, 59, 0, 9841);
    ledger_entry_t e[LEDGER_MAX_ENTRIES];
    size_t n = ledger_entries_payment("wechat", "cr", &s, e);
    assert_int_equal(n, 3);
    assert_false(entry_present(e, n, "revenue:platform"));
    assert_int_equal(entries_sum(e, n), 0);
    /* c = 10000: everything after the fee to the platform, creator entry omitted */
    assert_int_equal(ledger_split_payment(9900, 60, 10000, true, &s), PG_OK);
    assert_split(&s, 9900, 59, 9841, 0);
    n = ledger_entries_payment("wechat", "cr", &s, e);
    assert_int_equal(n, 3);
    assert_false(entry_present(e, n, "payable:creator:cr"));
}

static void test_ledger_split_payment_without_creator_all_to_platform(void **state)
{
    (void)state;
    ledger_split_t s;
    assert_int_equal(ledger_split_payment(9900, 60, 3000, false, &s), PG_OK);
    assert_split(&s, 9900, 59, 9841, 0);
    ledger_entry_t e[LEDGER_MAX_ENTRIES];
    size_t n = ledger_entries_payment("alipay", NULL, &s, e);
    assert_int_equal(n, 3);
    assert_int_equal(entry_amount(e, n, "revenue:platform"), -9841);
    assert_int_equal(entries_sum(e, n), 0);

    /* a split computed with a creator but posted without one: the creator
     * share is posted to the platform, nothing is lost */
    assert_int_equal(ledger_split_payment(9900, 60, 3000, true, &s), PG_OK);
    n = ledger_entries_payment("alipay", "", &s, e);
    assert_int_equal(n, 3);
    assert_int_equal(entry_amount(e, n, "revenue:platform"), -(2953 + 6888));
    assert_int_equal(entries_sum(e, n), 0);
}

static void test_ledger_split_payment_max_amount_does_not_overflow(void **state)
{
    (void)state;
    ledger_split_t s;
    /* 10^10 * 60 / 10^4 = 6 * 10^7; N = 9.94 * 10^9; C = 0.7 N exactly */
    assert_int_equal(ledger_split_payment(MONEY_MAX_FEN, 60, 3000, true, &s), PG_OK);
    assert_split(&s, MONEY_MAX_FEN, 60000000, 2982000000, 6958000000);
    /* rate 10000 bp: the channel keeps all of it */
    assert_int_equal(ledger_split_payment(MONEY_MAX_FEN, 10000, 3000, true, &s), PG_OK);
    assert_split(&s, MONEY_MAX_FEN, MONEY_MAX_FEN, 0, 0);
    ledger_entry_t e[LEDGER_MAX_ENTRIES];
    assert_int_equal(ledger_entries_payment("alipay", "c", &s, e), 2);
    /* 10^10 - 1 at 9999 bp and 1 bp commission */
    assert_int_equal(ledger_split_payment(MONEY_MAX_FEN - 1, 9999, 1, true, &s), PG_OK);
    /* F = round_half_up(9999999999 * 9999 / 10000) = round_half_up(9998999999.0001)
     *   = 9998999999; N = 1000000; C = floor(1000000 * 9999 / 10000) = 999900; P = 100 */
    assert_split(&s, MONEY_MAX_FEN - 1, 9998999999, 100, 999900);
}

static void test_ledger_split_payment_rejects_out_of_range(void **state)
{
    (void)state;
    ledger_split_t s = {-7, -7, -7, -7};
    assert_int_equal(ledger_split_payment(0, 60, 3000, true, &s), PG_ERR_BAD_INPUT);
    assert_int_equal(ledger_split_payment(-1, 60, 3000, true, &s), PG_ERR_BAD_INPUT);
    assert_int_equal(ledger_split_payment(MONEY_MAX_FEN + 1, 60, 3000, true, &s), PG_ERR_BAD_INPUT);
    assert_int_equal(ledger_split_payment(INT64_MAX, 60, 3000, true, &s), PG_ERR_BAD_INPUT);
    assert_int_equal(ledger_split_payment(100, -1, 3000, true, &s), PG_ERR_BAD_INPUT);
    assert_int_equal(ledger_split_payment(100, 10001, 3000, true, &s), PG_ERR_BAD_INPUT);
    assert_int_equal(ledger_split_payment(100, 60, -1, true, &s), PG_ERR_BAD_INPUT);
    assert_int_equal(ledger_split_payment(100, 60, 10001, true, &s), PG_ERR_BAD_INPUT);
    assert_int_equal(ledger_split_payment(100, 60, 3000, true, NULL), PG_ERR_BAD_INPUT);
    assert_split(&s, -7, -7, -7, -7);   /* untouched */
}

/* ---- hand-written refunds ---------------------------------------------------- */

static void test_ledger_split_refund_worked_example(void **state)
{
    (void)state;
    ledger_split_t pay, r;
    assert_int_equal(ledger_split_payment(9900, 60, 3000, true, &pay), PG_OK);
    /* Refund 3300 of 9900 (nothing before):
     *   fee_cum(3300)     = round_half_up(59 * 3300 / 9900) = round_half_up(19.67) = 20
     *   net_cum(3300)     = 3300 - 20 = 3280
     *   creator_cum(3300) = floor(6888 * 3280 / 9841) = floor(2295.77) = 2295
     *   platform          = 3300 - 20 - 2295 = 985 */
    assert_int_equal(ledger_split_refund(&pay, 0, 3300, &r), PG_OK);
    assert_split(&r, 3300, 20, 985, 2295);
    ledger_entry_t e[LEDGER_MAX_ENTRIES];
    size_t n = ledger_entries_refund("alipay", "cr_7", &r, e);
    assert_int_equal(n, 4);
    assert_string_equal(e[0].account, "clearing:alipay");
    assert_int_equal(e[0].amount_fen, -3300);
    assert_int_equal(entry_amount(e, n, "fees:alipay"), 20);
    assert_int_equal(entry_amount(e, n, "revenue:platform"), 985);
    assert_int_equal(entry_amount(e, n, "payable:creator:cr_7"), 2295);
    assert_int_equal(entries_sum(e, n), 0);
    /* Then 1 fen: fee_cum(3301) = round_half_up(19.67) = 20 -> 0;
     * creator_cum(3301) = floor(6888 * 3281 / 9841) = floor(2296.47) = 2296 -> 1 */
    assert_int_equal(ledger_split_refund(&pay, 3300, 1, &r), PG_OK);
    assert_split(&r, 1, 0, 0, 1);
    /* Then the remaining 6599: fee 59 - 20 = 39, creator 6888 - 2296 = 4592,
     * platform 6599 - 39 - 4592 = 1968; platform total 985 + 0 + 1968 = 2953 */
    assert_int_equal(ledger_split_refund(&pay, 3301, 6599, &r), PG_OK);
    assert_split(&r, 6599, 39, 1968, 4592);
    /* full refund at once reverses the payment exactly */
    assert_int_equal(ledger_split_refund(&pay, 0, 9900, &r), PG_OK);
    assert_split(&r, 9900, 59, 2953, 6888);
}

/* The rule creator_cum(x) = floor(C * x / A) would make the platform's part
 * go +1 then -1 here; splitting the net keeps every part >= 0. */
static void test_ledger_split_refund_platform_part_never_negative(void **state)
{
    (void)state;
    ledger_split_t pay, r;
    /* A = 3, rate 5000: F = round_half_up(1.5) = 2, N = 1, c = 0 -> C = 1, P = 0 */
    assert_int_equal(ledger_split_payment(3, 5000, 0, true, &pay), PG_OK);
    assert_split(&pay, 3, 2, 0, 1);
    int64_t naive_platform[3];
    for (int64_t x = 0; x < 3; x++) {
        int64_t fee0 = (2 * 2 * x + 3) / 6, fee1 = (2 * 2 * (x + 1) + 3) / 6;
        int64_t cr0 = x / 3, cr1 = (x + 1) / 3;
        naive_platform[x] = 1 - (fee1 - fee0) - (cr1 - cr0);
    }
    assert_int_equal(naive_platform[1], 1);    /* platform would pass zero */
    assert_int_equal(naive_platform[2], -1);   /* and then give a fen back */
    /* ours: fee 1, creator 0 | fee 0, creator 1 | fee 1, creator 0 */
    assert_int_equal(ledger_split_refund(&pay, 0, 1, &r), PG_OK);
    assert_split(&r, 1, 1, 0, 0);
    assert_int_equal(ledger_split_refund(&pay, 1, 1, &r), PG_OK);
    assert_split(&r, 1, 0, 0, 1);
    assert_int_equal(ledger_split_refund(&pay, 2, 1, &r), PG_OK);
    assert_split(&r, 1, 1, 0, 0);
}

static void test_ledger_split_refund_rejects_out_of_range(void **state)
{
    (void)state;
    ledger_split_t pay, r = {-7, -7, -7, -7};
    assert_int_equal(ledger_split_payment(9900, 60, 3000, true, &pay), PG_OK);
    assert_int_equal(ledger_split_refund(&pay, 0, 0, &r), PG_ERR_BAD_INPUT);
    assert_int_equal(ledger_split_refund(&pay, 0, -1, &r), PG_ERR_BAD_INPUT);
    assert_int_equal(ledger_split_refund(&pay, -1, 10, &r), PG_ERR_BAD_INPUT);
    assert_int_equal(ledger_split_refund(&pay, 0, 9901, &r), PG_ERR_BAD_INPUT);
    assert_int_equal(ledger_split_refund(&pay, 9000, 901, &r), PG_ERR_BAD_INPUT);
    assert_int_equal(ledger_split_refund(&pay, 9900, 1, &r), PG_ERR_BAD_INPUT);
    assert_int_equal(ledger_split_refund(&pay, INT64_MAX, INT64_MAX, &r), PG_ERR_BAD_INPUT);
    assert_int_equal(ledger_split_refund(&pay, 1, INT64_MAX, &r), PG_ERR_BAD_INPUT);
    assert_int_equal(ledger_split_refund(NULL, 0, 1, &r), PG_ERR_BAD_INPUT);
    assert_int_equal(ledger_split_refund(&pay, 0, 1, NULL), PG_ERR_BAD_INPUT);
    ledger_split_t bad = pay;
    bad.platform_fen += 1;   /* parts no longer sum to the amount */
    assert_int_equal(ledger_split_refund(&bad, 0, 1, &r), PG_ERR_BAD_INPUT);
    bad = pay;
    bad.creator_fen = -1;
    bad.platform_fen = pay.platform_fen + pay.creator_fen + 1;
    assert_int_equal(ledger_split_refund(&bad, 0, 1, &r), PG_ERR_BAD_INPUT);
    assert_split(&r, -7, -7, -7, -7);
    /* exactly the rest is fine */
    assert_int_equal(ledger_split_refund(&pay, 9000, 900, &r), PG_OK);
}

static void test_ledger_entries_reject_bad_names_and_splits(void **state)
{
    (void)state;
    ledger_split_t s;
    ledger_entry_t e[LEDGER_MAX_ENTRIES];
    assert_int_equal(ledger_split_payment(9900, 60, 3000, true, &s), PG_OK);
    assert_int_equal(ledger_entries_payment(NULL, "c", &s, e), 0);
    assert_int_equal(ledger_entries_payment("", "c", &s, e), 0);
    assert_int_equal(ledger_entries_payment("alipay", "c", NULL, e), 0);
    /* "payable:creator:" is 16 chars: the longest creator id (64) fills the
     * account column's 80 exactly; one more does not fit */
    char id[70];
    memset(id, 'a', sizeof id);
    id[LEDGER_CREATOR_ID_MAX] = '\0';
    size_t n = ledger_entries_payment("alipay", id, &s, e);
    assert_int_equal(n, 4);
    assert_int_equal(strlen(e[3].account), LEDGER_ACCOUNT_MAX);
    assert_int_equal(ledger_entries_refund("alipay", id, &s, e), 4);
    char acct64[LEDGER_ACCOUNT_SZ];
    assert_int_equal(ledger_account_settled(id, acct64), PG_OK);
    assert_int_equal(strlen(acct64), LEDGER_ACCOUNT_MAX);
    id[LEDGER_CREATOR_ID_MAX] = 'a';
    id[LEDGER_CREATOR_ID_MAX + 1] = '\0';
    assert_int_equal(ledger_entries_refund("alipay", id, &s, e), 0);
    assert_int_equal(ledger_account_payable(id, acct64), PG_ERR_BAD_INPUT);
    char ch[80];
    memset(ch, 'w', sizeof ch);
    ch[79] = '\0';
    assert_int_equal(ledger_entries_payment(ch, "c", &s, e), 0);
    ledger_split_t bad = s;
    bad.fee_fen += 1;
    assert_int_equal(ledger_entries_payment("alipay", "c", &bad, e), 0);
    ledger_split_t zero = {0, 0, 0, 0};
    assert_int_equal(ledger_entries_refund("alipay", "c", &zero, e), 0);

    char acct[LEDGER_ACCOUNT_SZ];
    assert_int_equal(ledger_account_settled("cr_7", acct), PG_OK);
    assert_string_equal(acct, "settled:creator:cr_7");
    assert_int_equal(ledger_account_payable("", acct), PG_ERR_BAD_INPUT);
}

/* ---- exhaustive small amounts ---------------------------------------------- */

/* For every small amount, a grid of rates and commissions, and every x:
 * refunding one fen at x gives parts >= 0 (the cumulative shares are
 * non-decreasing), and one refund of x equals the sum of x single-fen
 * refunds (the result does not depend on how the refund was cut). */
static void test_ledger_refund_cumulative_shares_monotone_exhaustive(void **state)
{
    (void)state;
    static const int64_t extra[] = {1, 2, 3, 5, 7, 33, 60, 4999, 5001, 6667, 9998, 9999};
    int64_t bps[64];
    size_t nbps = 0;
    for (int64_t v = 0; v <= 10000; v += 250)
        bps[nbps++] = v;
    for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++)
        bps[nbps++] = extra[i];

    for (int64_t a = 1; a <= 40; a++)
        for (size_t i = 0; i < nbps; i++)
            for (size_t j = 0; j < nbps; j++) {
                ledger_split_t pay, step, whole;
                assert_int_equal(ledger_split_payment(a, bps[i], bps[j], true, &pay), PG_OK);
                ledger_split_t cum = {0, 0, 0, 0};
                for (int64_t x = 0; x < a; x++) {
                    assert_int_equal(ledger_split_refund(&pay, x, 1, &step), PG_OK);
                    if (step.fee_fen < 0 || step.platform_fen < 0 || step.creator_fen < 0 ||
                        step.fee_fen + step.platform_fen + step.creator_fen != 1)
                        fail_msg("A=%lld r=%lld c=%lld x=%lld: bad step",
                                 (long long)a, (long long)bps[i], (long long)bps[j],
                                 (long long)x);
                    cum.amount_fen += 1;
                    cum.fee_fen += step.fee_fen;
                    cum.platform_fen += step.platform_fen;
                    cum.creator_fen += step.creator_fen;
                    assert_int_equal(ledger_split_refund(&pay, 0, x + 1, &whole), PG_OK);
                    if (memcmp(&whole, &cum, sizeof cum) != 0)
                        fail_msg("A=%lld r=%lld c=%lld x=%lld: path dependent",
                                 (long long)a, (long long)bps[i], (long long)bps[j],
                                 (long long)x);
                }
                assert_memory_equal(&cum, &pay, sizeof pay);
            }
}

/* ---- generated table ------------------------------------------------------- */

enum { ACC_CLEARING, ACC_FEES, ACC_PLATFORM, ACC_CREATOR, ACC_N };

struct balances {
    int64_t v[ACC_N];
};

static void post(struct balances *b, const ledger_entry_t *e, size_t n,
                 const char *channel, const char *creator)
{
    for (size_t i = 0; i < n; i++) {
        const char *a = e[i].account;
        int k = -1;
        if (strncmp(a, "clearing:", 9) == 0 && strcmp(a + 9, channel) == 0)
            k = ACC_CLEARING;
        else if (strncmp(a, "fees:", 5) == 0 && strcmp(a + 5, channel) == 0)
            k = ACC_FEES;
        else if (strcmp(a, "revenue:platform") == 0)
            k = ACC_PLATFORM;
        else if (creator && strncmp(a, "payable:creator:", 16) == 0 &&
                 strcmp(a + 16, creator) == 0)
            k = ACC_CREATOR;
        if (k < 0)
            fail_msg("unexpected account %s", a);   /* does not return */
        if (e[i].amount_fen == 0)
            fail_msg("zero entry posted to %s", a);
        b->v[k] += e[i].amount_fen;
    }
}

static int64_t gen_amount(void)
{
    static const int64_t edge[] = {1, 2, 3, 99, 100, 101, 9900, 10000,
                                   MONEY_MAX_FEN - 1, MONEY_MAX_FEN};
    switch (rng_next() % 4) {
    case 0:
        return edge[rng_next() % (sizeof edge / sizeof edge[0])];
    case 1:
        return rng_range(1, 1000);
    case 2: {   /* spread over every magnitude up to 10^10 */
        int bits = (int)rng_range(1, 34);
        int64_t v = (int64_t)(rng_next() >> (64 - bits));
        return v < 1 ? 1 : v > MONEY_MAX_FEN ? MONEY_MAX_FEN : v;
    }
    default:
        return rng_range(1, MONEY_MAX_FEN);
    }
}

static int64_t gen_bp(void)
{
    static const int64_t edge[] = {0, 1, 38, 60, 600, 3000, 5000, 9999, 10000};
    if (rng_next() % 3 == 0)
        return edge[rng_next() % (sizeof edge / sizeof edge[0])];
    return rng_range(0, 10000);
}

static void check_payment_split(const ledger_split_t *s, int64_t a, int64_t r,
                                int64_t c, bool has_creator)
{
    assert_int_equal(s->amount_fen, a);
    if (s->fee_fen < 0 || s->platform_fen < 0 || s->creator_fen < 0)
        fail_msg("A=%lld r=%lld c=%lld: negative share", (long long)a, (long long)r,
                 (long long)c);
    assert_int_equal(s->fee_fen + s->platform_fen + s->creator_fen, a);
    /* fee is the half-up rounding of A*r/10000:
     * 10000F - 5000 <= A*r < 10000F + 5000 */
    __int128 ar = (__int128)a * r, f4 = (__int128)s->fee_fen * 10000;
    assert_true(f4 - 5000 <= ar && ar < f4 + 5000);
    assert_int_equal(s->fee_fen, money_fee_fen(a, r));
    /* creator is the floor of N*(10000-c)/10000: 10000C <= N(10000-c) < 10000(C+1) */
    int64_t net = a - s->fee_fen;
    if (has_creator) {
        __int128 want = (__int128)net * (10000 - c), c4 = (__int128)s->creator_fen * 10000;
        assert_true(c4 <= want && want < c4 + 10000);
    } else {
        assert_int_equal(s->creator_fen, 0);
    }
    assert_int_equal(s->platform_fen, net - s->creator_fen);
}

static void run_case(int64_t a, int64_t r, int64_t c, bool has_creator)
{
    const char *channel = (rng_next() & 1) ? "alipay" : "wechat";
    const char *creator = has_creator ? "cr_42" : NULL;
    ledger_split_t pay, ref;
    ledger_entry_t e[LEDGER_MAX_ENTRIES];
    struct balances b = {{0}};

    assert_int_equal(ledger_split_payment(a, r, c, has_creator, &pay), PG_OK);
    check_payment_split(&pay, a, r, c, has_creator);
    size_t n = ledger_entries_payment(channel, creator, &pay, e);
    assert_true(n >= 1 && n <= LEDGER_MAX_ENTRIES);
    assert_int_equal(entries_sum(e, n), 0);
    post(&b, e, n, channel, creator);
    assert_int_equal(b.v[ACC_CLEARING], a);
    assert_int_equal(b.v[ACC_FEES], -pay.fee_fen);
    assert_int_equal(b.v[ACC_PLATFORM], -pay.platform_fen);
    assert_int_equal(b.v[ACC_CREATOR], -pay.creator_fen);

    /* 1..5 refunds, the last one taking whatever is left */
    int k = (int)rng_range(1, 5);
    int64_t done = 0;
    for (int i = 0; i < k && done < a; i++) {
        int64_t left = a - done;
        int64_t amt = i == k - 1 ? left : (rng_next() % 5 == 0 ? 1 : rng_range(1, left));
        assert_int_equal(ledger_split_refund(&pay, done, amt, &ref), PG_OK);
        if (ref.fee_fen < 0 || ref.platform_fen < 0 || ref.creator_fen < 0)
            fail_msg("A=%lld r=%lld c=%lld before=%lld R=%lld: negative refund part",
                     (long long)a, (long long)r, (long long)c, (long long)done,
                     (long long)amt);
        assert_int_equal(ref.fee_fen + ref.platform_fen + ref.creator_fen, amt);
        n = ledger_entries_refund(channel, creator, &ref, e);
        assert_true(n >= 1 && n <= LEDGER_MAX_ENTRIES);
        assert_int_equal(entries_sum(e, n), 0);
        post(&b, e, n, channel, creator);
        done += amt;
        /* no account crosses zero in the wrong direction */
        if (b.v[ACC_CLEARING] < 0 || b.v[ACC_FEES] > 0 || b.v[ACC_PLATFORM] > 0 ||
            b.v[ACC_CREATOR] > 0)
            fail_msg("A=%lld r=%lld c=%lld after %lld refunded: account past zero",
                     (long long)a, (long long)r, (long long)c, (long long)done);
    }
    assert_int_equal(done, a);
    for (int i = 0; i < ACC_N; i++)
        assert_int_equal(b.v[i], 0);
}

static void test_ledger_generated_table_balances_and_full_refund_returns_to_zero(void **state)
{
    (void)state;
    static const int64_t edge_a[] = {1, 2, 3, MONEY_MAX_FEN - 1, MONEY_MAX_FEN};
    static const int64_t edge_bp[] = {0, 1, 5000, 9999, 10000};
    size_t cases = 0;
    rng_state = 0x5eed1ed9e5ULL;
    /* every combination of the edges, with and without a creator */
    for (size_t i = 0; i < 5; i++)
        for (size_t j = 0; j < 5; j++)
            for (size_t l = 0; l < 5; l++)
                for (int h = 0; h < 2; h++) {
                    run_case(edge_a[i], edge_bp[j], edge_bp[l], h);
                    cases++;
                }
    while (cases < 120000) {
        int64_t a = gen_amount(), r = gen_bp(), c = gen_bp();
        run_case(a, r, c, rng_next() % 8 != 0);
        cases++;
    }
    assert_true(cases >= 100000);
}

/* ---- dates ------------------------------------------------------------------- */

static void assert_date_rejected(const char *s)
{
    int y = -1, m = -1, d = -1;
    if (ledger_date_parse(s, &y, &m, &d) != PG_ERR_BAD_INPUT)
        fail_msg("accepted date \"%s\"", s ? s : "(null)");
    assert_int_equal(y, -1);
    assert_int_equal(m, -1);
    assert_int_equal(d, -1);
}

static void assert_add(const char *from, int days, const char *want)
{
    char out[LEDGER_DATE_SZ];
    if (ledger_date_add_days(from, days, out) != PG_OK)
        fail_msg("%s %+d rejected", from, days);
    if (strcmp(out, want) != 0)
        fail_msg("%s %+d = %s, want %s", from, days, out, want);
}

static void test_ledger_date_parse_is_strict(void **state)
{
    (void)state;
    int y, m, d;
    assert_int_equal(ledger_date_parse("2024-02-29", &y, &m, &d), PG_OK);
    assert_int_equal(y, 2024);
    assert_int_equal(m, 2);
    assert_int_equal(d, 29);
    assert_int_equal(ledger_date_parse("2000-02-29", &y, &m, &d), PG_OK);
    assert_int_equal(ledger_date_parse("0001-01-01", &y, &m, &d), PG_OK);
    assert_int_equal(ledger_date_parse("9999-12-31", &y, &m, &d), PG_OK);
    assert_date_rejected("2026-02-29");   /* 2026 is not a leap year */
    assert_date_rejected("1900-02-29");   /* centuries are not, unless /400 */
    assert_date_rejected("2024-02-30");
    assert_date_rejected("2024-04-31");
    assert_date_rejected("2024-13-01");
    assert_date_rejected("2024-00-10");
    assert_date_rejected("2024-01-00");
    assert_date_rejected("2024-01-32");
    assert_date_rejected("0000-01-01");
    assert_date_rejected("2024-2-29");
    assert_date_rejected("2024-02-1");
    assert_date_rejected("24-02-01");
    assert_date_rejected("2024-01-01 ");
    assert_date_rejected(" 2024-01-01");
    assert_date_rejected("2024/01/01");
    assert_date_rejected("20240101");
    assert_date_rejected("2024-01-1a");
    assert_date_rejected("+024-01-01");
    assert_date_rejected("2024-01-01T00");
    assert_date_rejected("");
    assert_date_rejected("2024");
    assert_date_rejected(NULL);
}

static void test_ledger_date_add_days_crosses_month_and_year_ends(void **state)
{
    (void)state;
    assert_add("2024-01-31", 1, "2024-02-01");
    assert_add("2024-04-30", 1, "2024-05-01");
    assert_add("2024-02-28", 1, "2024-02-29");   /* 2024 leap */
    assert_add("2024-02-29", 1, "2024-03-01");
    assert_add("2026-02-28", 1, "2026-03-01");   /* 2026 not */
    assert_add("2025-12-31", 1, "2026-01-01");
    assert_add("2024-12-25", 7, "2025-01-01");
    assert_add("2024-01-31", 30, "2024-03-01");
    assert_add("2026-01-31", 30, "2026-03-02");
    assert_add("2024-02-29", 365, "2025-02-28");
    assert_add("2024-02-29", 366, "2025-03-01");
    assert_add("2100-02-28", 1, "2100-03-01");   /* 2100 not a leap year */
    assert_add("2000-02-28", 1, "2000-02-29");
    assert_add("2026-03-15", 0, "2026-03-15");
    assert_add("2024-03-01", -1, "2024-02-29");
    assert_add("2026-01-01", -1, "2025-12-31");
    assert_add("2026-03-02", -30, "2026-01-31");
    char out[LEDGER_DATE_SZ];
    assert_int_equal(ledger_date_add_days("9999-12-31", 1, out), PG_ERR_BAD_INPUT);
    assert_int_equal(ledger_date_add_days("0001-01-01", -1, out), PG_ERR_BAD_INPUT);
    assert_int_equal(ledger_date_add_days("2026-02-29", 1, out), PG_ERR_BAD_INPUT);
    assert_int_equal(ledger_date_add_days("2026-01-01", INT32_MAX, out), PG_ERR_BAD_INPUT);
    assert_int_equal(ledger_date_add_days("2026-01-01", INT32_MIN, out), PG_ERR_BAD_INPUT);
    assert_int_equal(ledger_date_add_days("2026-01-01", 1, NULL), PG_ERR_BAD_INPUT);
}

/* Every day from 1900 to 2200: +1 day agrees with a plain calendar walk, and
 * format and parse round-trip. */
static void test_ledger_date_add_days_matches_calendar_walk(void **state)
{
    (void)state;
    static const int len[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y = 1900, m = 1, d = 1;
    char cur[LEDGER_DATE_SZ] = "1900-01-01", next[LEDGER_DATE_SZ];
    assert_int_equal(ledger_days_from_civil(1970, 1, 1), 0);
    int64_t day = ledger_days_from_civil(y, m, d);
    while (y < 2200) {
        bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        int ml = len[m - 1] + (m == 2 && leap);
        if (++d > ml) {
            d = 1;
            if (++m > 12) {
                m = 1;
                y++;
            }
        }
        day++;
        assert_int_equal(ledger_date_add_days(cur, 1, next), PG_OK);
        int py, pm, pd;
        assert_int_equal(ledger_date_parse(next, &py, &pm, &pd), PG_OK);
        if (py != y || pm != m || pd != d)
            fail_msg("%s + 1 = %s, want %04d-%02d-%02d", cur, next, y, m, d);
        assert_int_equal(ledger_days_from_civil(y, m, d), day);
        int cy, cm, cd;
        ledger_civil_from_days(day, &cy, &cm, &cd);
        assert_true(cy == y && cm == m && cd == d);
        memcpy(cur, next, sizeof cur);
    }
}

static void assert_available(time_t t, bool delayed, int delay, const char *want)
{
    char out[LEDGER_DATE_SZ];
    if (ledger_available_date(t, delayed, delay, out) != PG_OK)
        fail_msg("t=%lld delayed=%d delay=%d rejected", (long long)t, delayed, delay);
    if (strcmp(out, want) != 0)
        fail_msg("t=%lld delayed=%d delay=%d: %s, want %s", (long long)t, delayed,
                 delay, out, want);
}

static void test_ledger_available_date_uses_beijing_day(void **state)
{
    (void)state;
    /* 2026-03-15 15:59:59 UTC is 23:59:59 in Beijing; one second later it
     * is 2026-03-16 00:00:00 Beijing */
    assert_available(1773590399, false, 0, "2026-03-15");
    assert_available(1773590400, false, 0, "2026-03-16");
    assert_available(1773590399, false, 7, "2026-03-15");   /* realtime ignores the delay */
    assert_available(1773590399, true, 0, "2026-03-15");
    assert_available(1773590399, true, 7, "2026-03-22");
    assert_available(1773590400, true, 7, "2026-03-23");
    assert_available(1773590399, true, 30, "2026-04-14");
    assert_available(1773590400, true, 30, "2026-04-15");
    /* year end: 2025-12-31 16:00 UTC is New Year in Beijing */
    assert_available(1767196799, false, 0, "2025-12-31");
    assert_available(1767196800, false, 0, "2026-01-01");
    assert_available(1767196799, true, 1, "2026-01-01");
    assert_available(1767196799, true, 7, "2026-01-07");
    assert_available(1767196800, true, 30, "2026-01-31");
    /* February: 2024-02-10 (Beijing) + 30 crosses Feb 29; 2026 has none */
    assert_available(1707494400, true, 30, "2024-03-11");
    assert_available(1770652800, true, 30, "2026-03-12");
    assert_available(1709136000, false, 0, "2024-02-29");   /* 2024-02-28 16:00 UTC */
    assert_available(1709136000, true, 1, "2024-03-01");
    assert_available(1772294399, true, 1, "2026-03-01");    /* 2026-02-28 23:59:59 Beijing */
    /* the epoch: 1970-01-01 00:00 UTC is 08:00 in Beijing; before it, floor */
    assert_available(0, false, 0, "1970-01-01");
    assert_available(-28800, false, 0, "1970-01-01");
    assert_available(-28801, false, 0, "1969-12-31");
    assert_int_equal(ledger_beijing_day(-28801), -1);
    assert_int_equal(ledger_beijing_day(-28800), 0);

    char out[LEDGER_DATE_SZ] = "unchanged";
    assert_int_equal(ledger_available_date(1773590399, true, -1, out), PG_ERR_BAD_INPUT);
    assert_int_equal(ledger_available_date(1773590399, true, LEDGER_MAX_DELAY_DAYS + 1, out),
                     PG_ERR_BAD_INPUT);
    assert_int_equal(ledger_available_date((time_t)INT64_MAX, false, 0, out), PG_ERR_BAD_INPUT);
    assert_int_equal(ledger_available_date((time_t)INT64_MIN, false, 0, out), PG_ERR_BAD_INPUT);
    assert_string_equal(out, "unchanged");
    assert_int_equal(ledger_available_date(0, false, 0, NULL), PG_ERR_BAD_INPUT);
}

static void test_ledger_date_bounds_are_the_beijing_day(void **state)
{
    (void)state;
    time_t s, e;
    assert_int_equal(ledger_date_bounds("2026-03-16", &s, &e), PG_OK);
    assert_int_equal(s, 1773590400);
    assert_int_equal(e, 1773590400 + 86400);
    char out[LEDGER_DATE_SZ];
    assert_available(s, false, 0, "2026-03-16");
    assert_int_equal(ledger_available_date(s - 1, false, 0, out), PG_OK);
    assert_string_equal(out, "2026-03-15");
    assert_available(e - 1, false, 0, "2026-03-16");
    assert_int_equal(ledger_date_bounds("2026-02-29", &s, &e), PG_ERR_BAD_INPUT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ledger_split_payment_worked_example),
        cmocka_unit_test(test_ledger_split_payment_fee_rounds_half_up),
        cmocka_unit_test(test_ledger_split_payment_remainder_goes_to_platform),
        cmocka_unit_test(test_ledger_split_payment_without_creator_all_to_platform),
        cmocka_unit_test(test_ledger_split_payment_max_amount_does_not_overflow),
        cmocka_unit_test(test_ledger_split_payment_rejects_out_of_range),
        cmocka_unit_test(test_ledger_split_refund_worked_example),
        cmocka_unit_test(test_ledger_split_refund_platform_part_never_negative),
        cmocka_unit_test(test_ledger_split_refund_rejects_out_of_range),
        cmocka_unit_test(test_ledger_entries_reject_bad_names_and_splits),
        cmocka_unit_test(test_ledger_refund_cumulative_shares_monotone_exhaustive),
        cmocka_unit_test(test_ledger_generated_table_balances_and_full_refund_returns_to_zero),
        cmocka_unit_test(test_ledger_date_parse_is_strict),
        cmocka_unit_test(test_ledger_date_add_days_crosses_month_and_year_ends),
        cmocka_unit_test(test_ledger_date_add_days_matches_calendar_walk),
        cmocka_unit_test(test_ledger_available_date_uses_beijing_day),
        cmocka_unit_test(test_ledger_date_bounds_are_the_beijing_day),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
