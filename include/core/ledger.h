/* ledger: posting the ledger of debits and credits (sql/003_ledger.sql) inside the
 * transactions that change money state, with the arithmetic of
 * ledger_math.h; settlement batches and the daily report read it back. */
#ifndef LEDGER_H
#define LEDGER_H
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include "app.h"
#include "ledger_math.h"
#include "store.h"

/* How payment *p is split when it is paid: the fee at its channel's rate,
 * the platform's commission, the creator's share (none without a creator). */
pg_err ledger_payment_split(const pg_app_t *app, const payment_t *p, ledger_split_t *out);

/* Payment *p just became PAID (its row locked, split *s recorded on it):
 * clearing, fee, platform, creator entries in one statement (txn
 * "pay:<payment_no>"). A payment becomes PAID once, and the unique
 * txn_id+account key refuses a second posting. */
pg_err ledger_post_payment_in_tx(pg_app_t *app, arena_t *a, const payment_t *p, const ledger_split_t *s,
                                 time_t paid_at);

/* The provider's actual fee differs from what was booked (Stripe: known
 * only from its balance transaction): txn_id ("feeadj:p:<payment_no>",
 * "feeadj:r:<refund_no>") moves fee_entry_delta onto the channel's fee
 * account and the opposite onto the platform's revenue (creators' shares
 * were fixed when paid). Nothing when the delta is 0. */
pg_err ledger_post_fee_adjustment_in_tx(pg_app_t *app, const char *txn_id, const char *channel, int64_t payment_id,
                                        int64_t refund_id, int64_t fee_entry_delta);

/* A refund just SUCCEEDED: the proportional reversal (txn "refund:<no>"). */
pg_err ledger_post_refund_in_tx(pg_app_t *app, arena_t *a, int64_t refund_id);

typedef struct settle_result {
    unsigned batches;
    unsigned skipped;         /* creators with nothing (or a negative balance) to pay */
    int64_t total_fen;
} settle_result_t;

/* Closes one batch per creator for date D (YYYY-MM-DD): every payable entry
 * available on or before D and not yet settled; writes the payout CSV to
 * csv_path (NULL = none). A second run for the same D changes nothing.
 * A batch is exactly the entries read (by id, under FOR UPDATE): its amount
 * is their sum, and an entry committed during the run waits for the next. */
pg_err ledger_settle(pg_app_t *app, arena_t *a, const char *ymd, const char *csv_path, settle_result_t *out,
                     buf_t *msg);

/* The payout CSV of settle date ymd (the batches with their creators), as
 * `paygatectl settle --out` writes it and the console serves it. Text cells
 * that a spreadsheet would run as a formula (= + - @ tab CR first) get a
 * leading apostrophe. */
pg_err ledger_payout_csv(pg_app_t *app, arena_t *a, const char *ymd, buf_t *out);

/* A payout was PAID (its row locked by the caller): the creator's settled
 * balance moves to paidout:creator:<id> (txn "payout:<payout_no>", kind
 * settlement); the unique txn_id+account key refuses a second posting. */
pg_err ledger_post_payout_in_tx(pg_app_t *app, const char *payout_no, const char *creator_id,
                                const char *channel, int64_t amount_fen);

/* Per day and channel between from and to (inclusive): gross, refunds,
 * fees, platform revenue, creator share. */
pg_err ledger_report(pg_app_t *app, arena_t *a, const char *from, const char *to, db_result_t *out);

/* Sum of every entry (must be 0) and the number of transactions that do
 * not sum to zero (must be 0). */
pg_err ledger_check(pg_app_t *app, arena_t *a, int64_t *total_fen, int64_t *unbalanced_txns);

#endif
