/* store_iap: the in-app purchase tables (sql/013_iap.sql): store product
 * ids on products, account tokens, one iap_purchases row per store
 * transaction, and the ledger reversal of a refund a store took back. */
#ifndef STORE_IAP_H
#define STORE_IAP_H
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include "arena.h"
#include "db.h"
#include "pg_err.h"
#include "store.h"

/* channel "appstore" | "googleplay". PG_ERR_NOT_FOUND when no product has that id. */
pg_err store_product_by_store_id(db_t *db, arena_t *a, const char *channel, const char *store_product_id,
                                 product_t *out);
/* Sets (or with "" clears) a product's store id; PG_ERR_NOT_FOUND no such
 * SKU, PG_ERR_CONFLICT another product has that store id. */
pg_err store_product_set_store_id(db_t *db, const char *sku, const char *channel, const char *store_product_id);

/* The user's token: candidate is stored unless the user has one already;
 * *token is what is stored (arena). */
pg_err store_account_token_ensure(db_t *db, arena_t *a, const char *user_ref, const char *candidate,
                                  const char **token);
pg_err store_account_token_user(db_t *db, arena_t *a, const char *token, const char **user_ref);

typedef struct iap_row {
    int64_t id;
    const char *status;          /* PAID | REFUNDED | ANOMALY */
    const char *anomaly;
    const char *user_ref;
    int64_t order_id;            /* 0 when none */
    int64_t payment_id;
    const char *order_no;        /* NULL when none */
    const char *refund_no;
    bool acknowledged;
} iap_row_t;

/* The purchase row locked FOR UPDATE; PG_ERR_NOT_FOUND when none. */
pg_err store_iap_lock(db_t *db, arena_t *a, const char *channel, const char *store_txn_id, iap_row_t *out);

typedef struct iap_new {
    const char *channel;
    const char *store_txn_id;
    const char *original_txn_id;
    const char *store_product_id;
    const char *account_token;
    const char *user_ref;
    int64_t product_id;          /* 0 = unknown */
    int64_t order_id;            /* 0 = none */
    int64_t payment_id;
    const char *status;
    const char *anomaly;
    int64_t price_milli;         /* < 0 = unknown */
    const char *currency;
    const char *environment;
    const char *purchase_token;
    const char *payload;
    time_t purchased_at;         /* 0 = unknown */
} iap_new_t;
/* PG_ERR_CONFLICT when the transaction is already recorded (the caller's
 * transaction must then be rolled back and run again: it will find it). */
pg_err store_iap_insert(db_t *db, const iap_new_t *n, int64_t *id);
pg_err store_iap_set_state(db_t *db, int64_t id, const char *status, const char *refund_no);
pg_err store_iap_set_acknowledged(db_t *db, int64_t id);

/* Refund refund_no was taken back by the store: its ledger transaction is
 * posted again with opposite signs (txn "unrefund:<refund_no>"), the refund
 * marked reversed_at, the order's refunded_fen lowered and the order PAID
 * again. *changed false when it was already reversed. */
pg_err store_refund_reverse(db_t *db, arena_t *a, const char *refund_no, bool *changed);

/* An ACTIVE entitlement of user_ref to product_id through another order than
 * except_order_id: *has true when there is one. */
pg_err store_entitlement_active(db_t *db, arena_t *a, const char *user_ref, int64_t product_id,
                                int64_t except_order_id, bool *has);

/* Inside the caller's transaction: the order and its payment of a store
 * purchase (both CREATED; the caller marks the payment paid). */
pg_err store_iap_order_insert(db_t *db, const new_checkout_t *c, int64_t *order_id);

#endif
