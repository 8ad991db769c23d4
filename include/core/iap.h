/* iap: in-app purchases from the app stores (SPEC 12.5) as orders. A store
 * adapter (appstore.c) verifies what the store signed and reduces it to an
 * iap_event_t; iap_apply records it in one transaction, keyed by the store's
 * transaction (iap_purchases unique key, so concurrent duplicates give one
 * order): order + PAID payment on the store's channel, ledger entries with
 * the store's commission as the channel fee, entitlement, webhook event; a
 * store refund records a refund and revokes; a reversed refund grants again.
 * A purchase whose product or buyer is unknown is kept as an anomaly. */
#ifndef IAP_H
#define IAP_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include "app.h"

typedef enum { IAP_PURCHASE, IAP_REFUND, IAP_REFUND_REVERSED, IAP_OTHER } iap_kind_t;

typedef struct iap_event {
    const char *channel;             /* "appstore" */
    iap_kind_t kind;
    const char *store_txn_id;        /* NULL for IAP_OTHER without a transaction */
    const char *original_txn_id;
    const char *store_product_id;
    const char *account_token;       /* appAccountToken, NULL when none */
    const char *environment;
    const char *currency;
    int64_t price_milli;             /* < 0 unknown */
    time_t purchased_at;
    const char *payload;
    const char *purchase_token;      /* Google: the token (store_txn_id is its SHA-256) */
    const char *user_ref;            /* the shop said whose it is (POST /iap/...); NULL from a notification */
    /* the notification log (NULL raw_body: a posted transaction, not logged) */
    const char *notify_id;
    const char *notify_type;
    const char *raw_body;
    size_t raw_len;
    const char *source;
} iap_event_t;

typedef struct iap_result {
    bool ack;                        /* notification: answer 200 */
    bool created;                    /* a new order was recorded */
    const char *outcome;             /* accepted | duplicate | ignored | anomaly | bad_signature | mismatch | bad_input */
    const char *detail;
    const char *order_no;            /* NULL when no order */
    const char *anomaly;
} iap_result_t;

/* PG_OK recorded (res says how); PG_ERR_MISMATCH the transaction belongs to
 * another user; PG_ERR_DB / PG_ERR_COMMIT_UNKNOWN: answer failure. */
pg_err iap_apply(pg_app_t *app, arena_t *a, const iap_event_t *ev, iap_result_t *res);

/* POST /notify/appstore. Always fills res (res->ack: answer 200). */
void iap_notify_appstore(pg_app_t *app, arena_t *a, const char *source, const char *body, size_t len,
                         iap_result_t *res);
/* POST /iap/appstore: user and the app's signed transaction. */
pg_err iap_post_appstore(pg_app_t *app, arena_t *a, const char *user, const char *signed_transaction,
                         iap_result_t *res, buf_t *msg);
/* The App Store Server API's word on a transaction, recorded like a
 * posted one (paygatectl appstore lookup, POST /iap/appstore with
 * transaction_id): user NULL = the buyer of its appAccountToken. */
pg_err iap_appstore_lookup(pg_app_t *app, arena_t *a, const char *user, const char *transaction_id,
                           iap_result_t *res, buf_t *msg);

/* POST /notify/googleplay: bearer is the push's Authorization token. */
void iap_notify_googleplay(pg_app_t *app, arena_t *a, const char *source, const char *bearer, const char *body,
                           size_t len, iap_result_t *res);
/* POST /iap/googleplay: user, the Play product id and the purchase token. */
pg_err iap_post_googleplay(pg_app_t *app, arena_t *a, const char *user, const char *product, const char *token,
                           iap_result_t *res, buf_t *msg);
/* Cron: acknowledges every recorded Play purchase still unacknowledged
 * (Google refunds those after 3 days); alerts (error log) on any older than
 * two days. *done counts the acknowledged. */
pg_err iap_acknowledge_pending(pg_app_t *app, arena_t *a, unsigned *done);

/* GET /iap/account-token: the user's stable UUID, derived from a keyed hash
 * of the user (not guessable from it) and stored for the way back. */
pg_err iap_account_token(pg_app_t *app, arena_t *a, const char *user, const char **token);

#endif
