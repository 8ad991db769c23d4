/* ledger: posting the ledger of debits and credits (sql/003_ledger.sql) inside the
 * transactions that change money state, with the arithmetic of
 * ledger_math.h; settlement batches and the daily report read it back. */
#ifndef LEDGER_H
#define LEDGER_H
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include "app.h"

/* A payment just became PAID: clearing, fee, platform, creator entries
 * (txn "pay:<payment_no>"), once; records fee_fen and creator_id on it. */
pg_err ledger_post_payment_in_tx(pg_app_t *app, arena_t *a, int64_t payment_id, time_t paid_at);

/* A refund just SUCCEEDED: the proportional reversal (txn "refund:<no>"). */
pg_err ledger_post_refund_in_tx(pg_app_t *app, arena_t *a, int64_t refund_id);

typedef struct settle_result {
    unsigned batches;
    unsigned skipped;         /* creators with nothing (or a negative balance) to pay */
    int64_t total_fen;
} settle_result_t;

/* Closes one batch per creator for date D (YYYY-MM-DD): every payable entry
 * available on or before D and not yet settled; writes the payout CSV to
 * csv_path (NULL = none). A second run for the same D changes nothing. */
pg_err ledger_settle(pg_app_t *app, arena_t *a, const char *ymd, const char *csv_path, settle_result_t *out,
                     buf_t *msg);

/* Per day and channel between from and to (inclusive): gross, refunds,
 * fees, platform revenue, creator share. */
pg_err ledger_report(pg_app_t *app, arena_t *a, const char *from, const char *to, db_result_t *out);

/* Sum of every entry (must be 0) and the number of transactions that do
 * not sum to zero (must be 0). */
pg_err ledger_check(pg_app_t *app, arena_t *a, int64_t *total_fen, int64_t *unbalanced_txns);

#endif
