/* store_admin: the console's tables (sql/015_admin.sql) and the read models
 * of its pages (orders search, an order's evidence, today's counts,
 * reconciliation, settlement, catalogue, audit). Prepared statements only;
 * times ISO 8601 UTC; amounts int64 fen. */
#ifndef STORE_ADMIN_H
#define STORE_ADMIN_H
#include <stdbool.h>
#include <stdint.h>
#include "arena.h"
#include "db.h"
#include "pg_err.h"

typedef struct admin_user_row {
    int64_t id;
    const char *username;
    const char *role;            /* viewer | operator | owner */
    const char *password_hash;
    bool active;
} admin_user_row_t;

typedef struct admin_session_row {
    int64_t user_id;
    const char *username;
    const char *role;
    const char *csrf_token;
    int64_t idle_s;              /* seconds since last seen */
} admin_session_row_t;

pg_err store_admin_user_add(db_t *db, const char *username, const char *role, const char *password_hash);
pg_err store_admin_user_by_name(db_t *db, arena_t *a, const char *username, admin_user_row_t *out);
pg_err store_admin_user_list(db_t *db, arena_t *a, db_result_t *out);
/* Sets active; disabling also deletes the account's sessions. *changed: rows found. */
pg_err store_admin_user_set_active(db_t *db, const char *username, bool active, uint64_t *changed);

/* Failed logins within the last window_s seconds, for that account and
 * for that address. */
pg_err store_admin_failures_count(db_t *db, arena_t *a, const char *username, const char *address, int window_s,
                                  int64_t *by_user, int64_t *by_address);
pg_err store_admin_failure_add(db_t *db, const char *username, const char *address);
pg_err store_admin_failures_clear(db_t *db, const char *username);

pg_err store_admin_session_insert(db_t *db, const char *token_hash, int64_t user_id, const char *csrf_token,
                                  const char *address);
/* The session of token_hash if it is within both limits and its account is
 * active; PG_ERR_NOT_FOUND otherwise. */
pg_err store_admin_session_get(db_t *db, arena_t *a, const char *token_hash, int idle_s, int absolute_s,
                               admin_session_row_t *out);
pg_err store_admin_session_touch(db_t *db, const char *token_hash);
pg_err store_admin_session_delete(db_t *db, const char *token_hash);
pg_err store_admin_sessions_prune(db_t *db, int idle_s, int absolute_s);

pg_err store_admin_audit_add(db_t *db, const char *username, const char *action, const char *target,
                             const char *outcome, const char *detail, const char *address);
pg_err store_admin_audit_list(db_t *db, arena_t *a, int64_t before_id, int limit, db_result_t *out);

/* --- read models of the pages --- */

/* One row: payments_waiting, refunds_pending, refunds_failed,
 * refunds_abnormal, webhooks_dead, recon_unexplained (latest run of each
 * channel and day). */
pg_err store_admin_attention(db_t *db, arena_t *a, db_result_t *out);
/* Payouts by status when a payouts table exists (*exists false otherwise). */
pg_err store_admin_payouts_by_status(db_t *db, arena_t *a, bool *exists, db_result_t *out);

typedef struct admin_order_filter {
    const char *q;               /* order_no, payment_no, provider trade no, user or product sku */
    const char *status;
    const char *channel;
    const char *from;            /* YYYY-MM-DD (UTC day of created_at), inclusive */
    const char *to;
    const char *payment_status;  /* CREATED: orders with a waiting payment */
    int64_t before_id;           /* keyset: orders with id < before_id; 0 = newest */
    int limit;
} admin_order_filter_t;
pg_err store_admin_orders(db_t *db, arena_t *a, const admin_order_filter_t *f, db_result_t *out);

pg_err store_admin_order_notifications(db_t *db, arena_t *a, int64_t order_id, db_result_t *out);
pg_err store_admin_order_ledger(db_t *db, arena_t *a, int64_t order_id, db_result_t *out);
pg_err store_admin_order_webhooks(db_t *db, arena_t *a, const char *order_no, db_result_t *out);
pg_err store_admin_order_entitlement(db_t *db, arena_t *a, int64_t order_id, db_result_t *out);

pg_err store_admin_refunds_by_status(db_t *db, arena_t *a, const char *status, db_result_t *out);
pg_err store_admin_recon_runs(db_t *db, arena_t *a, db_result_t *out);
pg_err store_admin_recon_run(db_t *db, arena_t *a, int64_t run_id, db_result_t *out);
pg_err store_admin_settlement_batches(db_t *db, arena_t *a, db_result_t *out);
/* The latest 200 payouts in status (PENDING, PAID, FAILED) with their
 * creator's name, batch settle date, reason and attempts (never an account). */
pg_err store_admin_payouts(db_t *db, arena_t *a, const char *status, db_result_t *out);

#endif
