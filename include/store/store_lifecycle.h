/* store_lifecycle: refunds, entitlements, the webhook outbox and the
 * payment columns of active query (sql/002_lifecycle.sql). */
#ifndef STORE_LIFECYCLE_H
#define STORE_LIFECYCLE_H
#include <stdbool.h>
#include <stdint.h>
#include "arena.h"
#include "db.h"
#include "pg_err.h"

typedef struct refund_row {
    int64_t id;
    const char *refund_no;
    int64_t order_id;
    const char *order_no;
    int64_t payment_id;
    const char *payment_no;
    const char *channel;
    int64_t payment_amount_fen;
    int64_t amount_fen;
    const char *kind;            /* merchant | auto */
    const char *status;          /* PENDING | SUCCEEDED | FAILED | ABNORMAL */
    const char *request_hash;
    int64_t attempts;
    const char *reason;
} refund_row_t;

/* The order row locked FOR UPDATE with what refunds already hold:
 * reserved = every merchant refund not FAILED (PENDING, SUCCEEDED, ABNORMAL). */
typedef struct order_lock {
    int64_t id;
    const char *order_no;
    const char *status;
    int64_t amount_fen;
    int64_t refunded_fen;
    int64_t reserved_fen;
    int64_t paid_payment_id;     /* 0 when none */
    const char *paid_payment_no;
    const char *paid_channel;
    int64_t paid_payment_amount_fen;
    const char *user_ref;
    int64_t product_id;
} order_lock_t;

pg_err store_order_lock(db_t *db, arena_t *a, const char *order_no, order_lock_t *out);
pg_err store_order_lock_by_id(db_t *db, arena_t *a, int64_t order_id, order_lock_t *out);

pg_err store_refund_insert(db_t *db, const char *refund_no, int64_t order_id, int64_t payment_id,
                           int64_t amount_fen, const char *reason, const char *kind,
                           const char *request_id, const char *request_hash);
pg_err store_refund_get(db_t *db, arena_t *a, const char *refund_no, bool for_update, refund_row_t *out);
pg_err store_refund_by_request_id(db_t *db, arena_t *a, const char *request_id, refund_row_t *out);
/* Conditional: only from PENDING or ABNORMAL (an abnormal refund handled by
 * hand ends SUCCEEDED, or FAILED when the provider closes it). */
pg_err store_refund_finish(db_t *db, int64_t refund_id, bool succeeded, const char *provider_refund_no,
                           const char *failure, bool *changed);
/* PENDING -> ABNORMAL (only from PENDING); detail goes to failure. */
pg_err store_refund_mark_abnormal(db_t *db, int64_t refund_id, const char *provider_refund_no, const char *detail,
                                  bool *changed);
/* store_refunds_pending also lists ABNORMAL refunds not asked about for this
 * long (seconds, as SQL text): the provider may end them after manual handling. */
#define STORE_REFUND_ABNORMAL_RECHECK_S "3600"
pg_err store_refund_note_attempt(db_t *db, int64_t refund_id, const char *provider_refund_no);
/* The right to send a refund to its provider: an atomic UPDATE that succeeds
 * (*got) only for a PENDING refund whose attempts are still attempts_seen and
 * whose claim is free or expired; it counts the attempt before anything is
 * sent. The claim lasts ttl_s (longer than any provider call). */
pg_err store_refund_claim(db_t *db, int64_t refund_id, int64_t attempts_seen, int ttl_s, bool *got);
pg_err store_refund_release(db_t *db, int64_t refund_id);
pg_err store_refunds_pending(db_t *db, arena_t *a, int min_age_s, db_result_t *out);
pg_err store_order_refunds(db_t *db, arena_t *a, int64_t order_id, db_result_t *out);
pg_err store_order_add_refunded(db_t *db, int64_t order_id, int64_t amount_fen, const char **new_status,
                                arena_t *a);

pg_err store_payment_set_anomaly(db_t *db, int64_t payment_id, const char *anomaly);
/* Claims the right to query a payment now (at most once per interval_s);
 * *claimed false when another process queried it recently. */
pg_err store_payment_claim_query(db_t *db, int64_t payment_id, int interval_s, bool *claimed);
pg_err store_payments_to_sync(db_t *db, arena_t *a, int older_than_s, db_result_t *out);
pg_err store_payments_expired(db_t *db, arena_t *a, int grace_s, db_result_t *out);
/* id, payment_no, channel, status, age_s (seconds since created). */
pg_err store_order_open_payments(db_t *db, arena_t *a, int64_t order_id, db_result_t *out);
/* CREATED orders none of whose payments is open or paid (id, order_no). */
pg_err store_orders_left_open(db_t *db, arena_t *a, db_result_t *out);
/* A CREATED payment's expires_at moved to now (a fresh one replaced it). */
pg_err store_payment_expire_now(db_t *db, int64_t payment_id);
pg_err store_order_mark_closed(db_t *db, int64_t order_id, bool *changed);

pg_err store_entitlement_grant(db_t *db, int64_t order_id);
pg_err store_entitlement_revoke(db_t *db, int64_t order_id);
pg_err store_entitlements_of(db_t *db, arena_t *a, const char *user_ref, db_result_t *out);

pg_err store_webhook_insert(db_t *db, const char *event_id, const char *type, const char *order_no,
                            const char *payload);
pg_err store_webhooks_due(db_t *db, arena_t *a, int limit, db_result_t *out);
/* Leases a due event for lease_s seconds; *claimed false if another took it. */
pg_err store_webhook_claim(db_t *db, int64_t id, int lease_s, bool *claimed);
pg_err store_webhook_delivered(db_t *db, int64_t id);
/* After a failed try: next attempt in delay_s, or DEAD when dead is true. */
pg_err store_webhook_failed(db_t *db, int64_t id, int delay_s, bool dead, const char *error);
pg_err store_webhooks_list(db_t *db, arena_t *a, const char *status, db_result_t *out);
pg_err store_webhook_retry(db_t *db, int64_t id_or_zero_for_all_dead, uint64_t *changed);

#endif
