/* ledger_math: the pure arithmetic of the balanced ledger and of
 * settlement dates. No database, no allocation, integer arithmetic only
 * (products in __int128), so every rule here is unit-tested exhaustively and
 * the storage layer only posts what these functions return.
 *
 * Accounts are strings:
 *   "clearing:<channel>"            money the channel holds for us (+)
 *   "fees:<channel>"                the channel's fee (-)
 *   "revenue:platform"              platform commission and rounding (-)
 *   "payable:creator:<creator_id>"  creator share not yet settled (-)
 *   "settled:creator:<creator_id>"  creator share closed in a batch
 * Every set of entries returned here sums to exactly zero. */
#ifndef LEDGER_MATH_H
#define LEDGER_MATH_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include "money.h"
#include "pg_err.h"

#define LEDGER_MAX_ENTRIES 4
/* An account name is at most ledger_entries.account's VARCHAR(80) long;
 * the longest ones are "payable:creator:" / "settled:creator:" (16) + a
 * creator id of up to LEDGER_CREATOR_ID_MAX (64) = 80, so every creator
 * that can be created has accounts (checked at compile time in ledger.c). */
#define LEDGER_ACCOUNT_MAX 80
#define LEDGER_ACCOUNT_SZ  (LEDGER_ACCOUNT_MAX + 1)
#define LEDGER_CREATOR_ID_MAX 64         /* creators.id VARCHAR(64), [A-Za-z0-9_.-] */
#define LEDGER_DATE_SZ     11            /* "YYYY-MM-DD" + NUL */
#define LEDGER_BEIJING_OFFSET_S (8 * 3600)   /* UTC+8, no daylight saving */
#define LEDGER_MAX_DELAY_DAYS 3660

typedef struct ledger_entry {
    char    account[LEDGER_ACCOUNT_SZ];
    int64_t amount_fen;
} ledger_entry_t;

/* One money movement split into its parts; always
 * amount_fen == fee_fen + platform_fen + creator_fen, all >= 0. */
typedef struct ledger_split {
    int64_t amount_fen, fee_fen, platform_fen, creator_fen;
} ledger_split_t;

/* A paid payment: 1 <= amount_fen <= MONEY_MAX_FEN, 0 <= rate_bp <= 10000,
 * 0 <= commission_bp <= 10000.
 *   fee      F = round_half_up(A * rate / 10000)          (money_fee_fen)
 *   net      N = A - F
 *   creator  C = floor(N * (10000 - commission) / 10000)  (0 without creator)
 *   platform P = N - C        (so the rounding remainder goes to the platform)
 * PG_ERR_BAD_INPUT on out-of-range arguments; *out untouched then. */
pg_err ledger_split_payment(int64_t amount_fen, int64_t rate_bp,
                            int64_t commission_bp, bool has_creator,
                            ledger_split_t *out);

/* A refund of refund_fen (> 0) of the payment split *payment, of which
 * refunded_before_fen (>= 0) was already refunded; before + refund must not
 * exceed the payment amount. Cumulative rounding, x = fen refunded so far:
 *   fee_cum(x)      = round_half_up(F * x / A)
 *   net_cum(x)      = x - fee_cum(x)
 *   creator_cum(x)  = floor(C * net_cum(x) / N)     (0 when N == 0)
 *   platform_cum(x) = net_cum(x) - creator_cum(x)
 * and this refund's parts are cum(before + refund) - cum(before). Each cum is
 * non-decreasing and ends at the payment's part for x = A, so no part is ever
 * negative or larger than what is left of it, and refunds totalling A reverse
 * the payment exactly (proof in ledger_math.c).
 * PG_ERR_BAD_INPUT on an inconsistent payment split or out-of-range amounts. */
pg_err ledger_split_refund(const ledger_split_t *payment,
                           int64_t refunded_before_fen, int64_t refund_fen,
                           ledger_split_t *out);

/* Entries of a payment: clearing +A, fees -F, revenue:platform -P,
 * payable:creator:<id> -C; zero amounts omitted. creator_id NULL or "" means
 * no creator: the creator share (if any) is posted to the platform instead.
 * Returns the number of entries, 0 on bad input (NULL/empty channel, an
 * account name that does not fit, an inconsistent split). */
size_t ledger_entries_payment(const char *channel, const char *creator_id,
                              const ledger_split_t *s,
                              ledger_entry_t out[LEDGER_MAX_ENTRIES]);
/* Entries of a refund (the split from ledger_split_refund): clearing -R,
 * fees +f, revenue:platform +p, payable:creator:<id> +cr. Same rules. */
size_t ledger_entries_refund(const char *channel, const char *creator_id,
                             const ledger_split_t *r,
                             ledger_entry_t out[LEDGER_MAX_ENTRIES]);

/* Account names; PG_ERR_BAD_INPUT when empty or too long to fit. */
pg_err ledger_account_clearing(const char *channel, char out[LEDGER_ACCOUNT_SZ]);
pg_err ledger_account_fees(const char *channel, char out[LEDGER_ACCOUNT_SZ]);
pg_err ledger_account_payable(const char *creator_id, char out[LEDGER_ACCOUNT_SZ]);
pg_err ledger_account_settled(const char *creator_id, char out[LEDGER_ACCOUNT_SZ]);
/* paidout:creator:<id> -- what was transferred to the creator (payouts). */
pg_err ledger_account_paidout(const char *creator_id, char out[LEDGER_ACCOUNT_SZ]);
#define LEDGER_ACCOUNT_PLATFORM "revenue:platform"

/* Settlement: a payment paid at paid_at (unix seconds) becomes available to
 * settle in `delayed` mode on the Beijing-time calendar day
 * paid_day + delay_days (0 <= delay_days <= LEDGER_MAX_DELAY_DAYS);
 * realtime: paid_day (delay_days ignored). Dates as "YYYY-MM-DD", years
 * 0001..9999 (proleptic Gregorian). */
pg_err ledger_available_date(time_t paid_at, bool delayed, int delay_days,
                             char out[LEDGER_DATE_SZ]);
/* Strict parse, then add (or subtract) days across month ends and leap
 * years. PG_ERR_BAD_INPUT for a bad date or a result outside 0001..9999. */
pg_err ledger_date_add_days(const char *ymd, int days, char out[LEDGER_DATE_SZ]);
/* Strict: exactly "DDDD-DD-DD", year >= 1, month 1..12, day valid for the
 * month (Feb 29 only in leap years). Outputs untouched on failure. */
pg_err ledger_date_parse(const char *ymd, int *y, int *m, int *d);

/* Helpers: days since 1970-01-01 of a valid civil date, and back. */
int64_t ledger_days_from_civil(int y, int m, int d);
void    ledger_civil_from_days(int64_t days, int *y, int *m, int *d);
/* The Beijing calendar day (days since 1970-01-01) containing paid_at. */
int64_t ledger_beijing_day(time_t t);
/* [start, end) unix seconds of the Beijing calendar day ymd. */
pg_err  ledger_date_bounds(const char *ymd, time_t *start, time_t *end);

#endif
