/* store_payout: creators' payout accounts and the payouts table
 * (sql/014_payouts.sql). Claims are atomic conditional UPDATEs, safe to run
 * again after a reconnect (db_exec's rule). */
#ifndef STORE_PAYOUT_H
#define STORE_PAYOUT_H
#include <stdbool.h>
#include <stdint.h>
#include "arena.h"
#include "db.h"
#include "pg_err.h"

/* Sets the given fields (NULL = unchanged, "" = cleared) of creator id.
 * PG_ERR_NOT_FOUND when there is no such creator. */
pg_err store_creator_update(db_t *db, const char *id, const char *name, const char *alipay_account,
                            const char *real_name, const char *wechat_openid);

/* Creators with their payout accounts masked (never the whole account). */
pg_err store_creator_list_masked(db_t *db, arena_t *a, db_result_t *out);

/* One PENDING payout per settlement batch of at least min_fen (settled on
 * ymd, or on any day when ymd is NULL) whose creator has an account for
 * channel and which has none yet; payout_no = batch_no. *created counts the
 * new ones, *waiting the batches whose creator has no account. Batches
 * settled before start_date ([payouts] start_date) are never paid out. */
pg_err store_payouts_create(db_t *db, const char *ymd, const char *start_date, const char *channel,
                            int64_t min_fen, uint64_t *created, uint64_t *waiting);

/* PENDING payouts nobody holds: id, payout_no, creator_id, amount_fen,
 * channel, sent, attempts, alipay_account, real_name, wechat_openid. */
pg_err store_payouts_due(db_t *db, arena_t *a, const char *ymd, db_result_t *out);

/* Claims payout id for ttl_s seconds when it is PENDING, free (or its claim
 * expired) and its attempts are still attempts_seen; marks it sent (a
 * transfer may leave from now on). *got = this caller owns it. */
pg_err store_payout_claim(db_t *db, int64_t id, int64_t attempts_seen, int ttl_s, bool *got);

/* Gives a claimed PENDING payout back with reason (NULL keeps it);
 * not_sent = the provider certainly has no transfer for it. */
pg_err store_payout_release(db_t *db, int64_t id, const char *reason, bool not_sent);

/* Gives a claimed open payout back as WAITING_CONFIRMATION while the payee
 * must confirm the WeChat transfer: reason and package_info (NULL clears
 * it) kept. */
pg_err store_payout_wait_user(db_t *db, int64_t id, const char *reason, const char *package_info);

/* Gives a claimed open payout back as PENDING (sent) while the provider is
 * still moving the money: no longer waiting for the payee (package_info
 * cleared), reason kept. */
pg_err store_payout_processing(db_t *db, int64_t id, const char *reason);

/* Inside a transaction: locks payout id; *status gets PENDING/PAID/FAILED
 * (arena string), with payout_no, creator_id, channel, amount. */
typedef struct payout_row {
    int64_t id;
    const char *payout_no, *creator_id, *channel, *status;
    int64_t amount_fen;
    int64_t bill_gen;              /* WeChat: bills sent before the current one */
} payout_row_t;
pg_err store_payout_lock(db_t *db, arena_t *a, int64_t id, payout_row_t *out);
/* PENDING -> PAID / FAILED (in the caller's transaction). */
pg_err store_payout_set_paid(db_t *db, int64_t id, const char *provider_order_id);
pg_err store_payout_set_failed(db_t *db, int64_t id, const char *reason);

/* The WeChat payout whose out_bill_no (its payout_no without '-') is
 * out_bill_no: *id, or PG_ERR_NOT_FOUND. A plain read; lock it with
 * store_payout_lock. */
pg_err store_payout_find_wechat_bill(db_t *db, const char *out_bill_no, int64_t *id);

/* One payout for its confirmation page: payout_no, status, amount_fen,
 * channel, package_info. PG_ERR_NOT_FOUND when there is none. */
pg_err store_payout_get(db_t *db, arena_t *a, const char *payout_no, db_result_t *out);

/* FAILED -> PENDING for payout_no (the operator fixed the account).
 * *changed = 0 when it is not FAILED. */
pg_err store_payout_retry(db_t *db, const char *payout_no, uint64_t *changed);

/* payout_no, creator_id, amount_fen, channel, status, reason,
 * provider_order_id, package_info, settle_date, paid_at; status NULL = all. */
pg_err store_payout_list(db_t *db, arena_t *a, const char *status, db_result_t *out);

/* Payout totals per status between two settle dates (report). */
pg_err store_payout_totals(db_t *db, arena_t *a, const char *from, const char *to, db_result_t *out);

/* The webhook outbox row of a payout event (no order). */
pg_err store_payout_event(db_t *db, const char *event_id, const char *type, const char *payload);

#endif
