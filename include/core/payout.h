/* payout: pays settlement batches to the creators' own accounts (SPEC
 * §12.3) by Alipay transfer (certificate mode). A payout is never sent
 * twice: it is sent only under an atomic claim that also marks it "sent";
 * a payout marked sent is asked about (transfer query) before anything is
 * sent again, and only a signed "no such transfer" allows that; the batch
 * number is the transfer's idempotency key (out_biz_no) besides. */
#ifndef PAYOUT_H
#define PAYOUT_H
#include "app.h"

typedef struct payout_run {
    unsigned created;        /* new payouts for batches */
    unsigned waiting;        /* batches whose creator has no payout account */
    unsigned paid;
    unsigned failed;
    unsigned pending;        /* left PENDING: processing, unknown outcome, balance too low */
    unsigned skipped;        /* claimed by another run */
    int64_t paid_fen;
} payout_run_t;

/* Pays every payout due (settled on ymd, or any day when ymd is NULL).
 * PG_ERR_CONFIG when payouts are not enabled or cannot be sent. */
pg_err payout_run(pg_app_t *app, arena_t *a, const char *ymd, payout_run_t *out, buf_t *msg);

/* FAILED -> PENDING for the batch (after the operator fixed the account);
 * PG_ERR_NOT_FOUND when it is not a FAILED payout. */
pg_err payout_retry(pg_app_t *app, const char *payout_no);

#endif
