/* store: the paygate tables (sql/) as functions. Every statement is a
 * prepared statement through db.h; times are UTC; amounts int64 fen.
 * Strings returned live in the caller's arena. */
#ifndef STORE_H
#define STORE_H
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include "arena.h"
#include "db.h"
#include "pg_err.h"

typedef struct product {
    int64_t id;
    const char *sku;
    const char *title;
    int64_t price_fen;
    const char *creator_id;     /* NULL when none */
    bool active;
} product_t;

/* An order with its most recent payment (the one the buyer sees). */
typedef struct order_view {
    int64_t id;
    const char *order_no;
    const char *status;
    const char *user_ref;
    const char *request_hash;
    int64_t product_id;
    const char *product_sku;
    const char *product_title;
    int64_t amount_fen;
    int64_t refunded_fen;
    const char *created_at;     /* ISO 8601 UTC "2026-11-24T12:00:00Z" */
    const char *paid_at;        /* NULL when unpaid */
    const char *payment_no;     /* latest payment */
    const char *channel;
    const char *method;
    const char *payment_status;
    const char *pay_data;       /* what the checkout reply carried (JSON object text) */
    const char *expires_at;     /* ISO 8601 */
    const char *provider_trade_no;
    int64_t payment_id;
    int64_t payment_age_s;      /* seconds since the latest payment was created */
} order_view_t;

typedef struct payment {
    int64_t id;
    int64_t order_id;
    const char *payment_no;
    const char *channel;
    const char *method;
    int64_t amount_fen;
    const char *status;         /* CREATED | PAID | CLOSED */
    const char *order_status;
    const char *order_no;
    const char *creator_id;     /* the product's creator, NULL when none */
} payment_t;

/* A creator id is 1..STORE_CREATOR_ID_MAX of [A-Za-z0-9_.-] (the ledger's
 * account names are built from it: LEDGER_CREATOR_ID_MAX), a name 1..200
 * bytes; PG_ERR_BAD_INPUT otherwise, nothing stored. */
#define STORE_CREATOR_ID_MAX 64
pg_err store_creator_add(db_t *db, const char *id, const char *name);
pg_err store_creator_list(db_t *db, arena_t *a, db_result_t *out);
pg_err store_product_add(db_t *db, const char *sku, const char *title, int64_t price_fen,
                         const char *creator_id);
pg_err store_product_list(db_t *db, arena_t *a, bool active_only, db_result_t *out);
pg_err store_product_by_sku(db_t *db, arena_t *a, const char *sku, product_t *out);

/* A new order with its first payment, in one transaction. PG_ERR_CONFLICT
 * when request_id is already taken (the caller looks the order up). */
typedef struct new_checkout {
    const char *order_no;
    const char *payment_no;
    int64_t product_id;
    const char *user_ref;
    int64_t amount_fen;
    const char *request_id;     /* may be NULL */
    const char *request_hash;   /* may be NULL */
    const char *provider_ref;   /* the provider's name of the payment chosen at creation (Stripe), may be NULL */
    const char *api_version;    /* payments.api_version: the provider API it was made with (WeChat "v3"), NULL = the default */
    const char *channel;
    const char *method;
    const char *pay_data;       /* JSON object text */
    time_t expires_at;
} new_checkout_t;
pg_err store_checkout_insert(db_t *db, const new_checkout_t *c);

/* A further payment of an existing order. */
pg_err store_payment_insert(db_t *db, const char *payment_no, int64_t order_id, const char *channel,
                            const char *method, int64_t amount_fen, const char *pay_data, time_t expires_at);
/* The same, with the provider's name of the payment (provider_trade_no, may be NULL)
 * and the provider API version it was made with (api_version, may be NULL). */
pg_err store_payment_insert_ref(db_t *db, const char *payment_no, int64_t order_id, const char *channel,
                                const char *method, int64_t amount_fen, const char *pay_data, time_t expires_at,
                                const char *provider_ref, const char *api_version);
/* payments.provider_trade_no of payment_no; PG_ERR_NOT_FOUND when the payment or the value is missing. */
pg_err store_payment_provider_ref(db_t *db, arena_t *a, const char *payment_no, const char **out);
/* payments.api_version of a payment: *out NULL when none is recorded (v2);
 * PG_ERR_NOT_FOUND when there is no such payment. */
pg_err store_payment_api_version(db_t *db, arena_t *a, const char *payment_no, const char **out);
pg_err store_order_by_no(db_t *db, arena_t *a, const char *order_no, order_view_t *out);
pg_err store_order_by_request_id(db_t *db, arena_t *a, const char *request_id, order_view_t *out);
pg_err store_order_by_payment_no(db_t *db, arena_t *a, const char *payment_no, order_view_t *out);
/* The order seen through one given payment (the QR page): payment fields are
 * that payment's; *expired tells whether its expires_at has passed. */
pg_err store_payment_view(db_t *db, arena_t *a, const char *payment_no, order_view_t *out, bool *expired);
pg_err store_order_list(db_t *db, arena_t *a, const char *status, db_result_t *out);
pg_err store_order_payments(db_t *db, arena_t *a, int64_t order_id, db_result_t *out);

/* Inside a transaction: the payment row and its order's row locked FOR
 * UPDATE, with the order's status and the product's creator. PG_ERR_NOT_FOUND
 * when there is none for that channel. */
pg_err store_payment_lock(db_t *db, arena_t *a, const char *channel, const char *payment_no,
                          payment_t *out);

/* What a payment records when it is paid. paid_at: UTC seconds, 0 = now. */
typedef struct paid_mark {
    const char *provider_trade_no;
    const char *buyer_ref;
    time_t paid_at;
    int64_t fee_fen;
    const char *creator_id;
} paid_mark_t;

/* Conditional moves (they change nothing unless the rows are in the
 * expected state); *changed tells whether they did. */
/* The locked payment *p (CREATED or CLOSED) becomes PAID and, when its
 * order is still CREATED, the order too, in one statement; *order_changed
 * tells whether the order moved. */
pg_err store_payment_mark_paid(db_t *db, const payment_t *p, const paid_mark_t *m, bool *changed,
                               bool *order_changed);
pg_err store_payment_mark_closed(db_t *db, int64_t payment_id, bool *changed);

typedef struct notification_rec {
    const char *channel;
    const char *kind;           /* "payment", "refund" */
    const char *payment_no;
    const char *notify_id;
    const char *outcome;
    const char *detail;
    const char *raw_body;
    size_t raw_len;
    size_t keep_len;            /* store at most this many bytes of raw_body; 0 = all */
    const char *source;         /* sender address, NULL if unknown */
} notification_rec_t;
/* Stores the record with raw_len and the SHA-256 of the whole body; the
 * body itself cut to keep_len bytes when keep_len is set. */
pg_err store_notification_add(db_t *db, const notification_rec_t *n);
/* Counts one rejected notification from source in the minute of now (in
 * the database: every process shares the count); *count is the minute's
 * count including this one. */
pg_err store_notification_source_count(db_t *db, arena_t *a, const char *source, time_t now, int64_t *count);
/* Deletes notifications that were not accepted and were received more
 * than days ago, and source counts older than a day; *deleted counts the
 * notifications. Accepted ones stay (the payment's evidence). */
pg_err store_notifications_prune(db_t *db, int64_t days, uint64_t *deleted);

/* "2026-11-24 12:00:00" (UTC) for DATETIME parameters. */
void store_format_datetime(time_t t, char out[20]);

#endif
