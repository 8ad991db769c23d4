/* refund: the use case "give money back", for the shop (API, CLI) and for
 * late payments and payments made twice. A refund row is reserved first (so two refunds
 * can never exceed what was paid), then sent to the provider with its own
 * refund_no as the provider's idempotency key; an unknown outcome stays
 * PENDING and is settled by refund_drive (query first, resend only when the
 * provider has never seen it). States: PENDING -> SUCCEEDED | FAILED |
 * ABNORMAL (provider-side trouble to handle by hand; -> SUCCEEDED or FAILED
 * when the provider ends it). Every state but FAILED holds its amount. */
#ifndef REFUND_H
#define REFUND_H
#include <stdbool.h>
#include <stdint.h>
#include "app.h"

typedef struct refund_request {
    const char *order_no;
    const char *amount_fen;    /* decimal text, NULL = all that is left */
    const char *reason;
    const char *request_id;
} refund_request_t;

typedef struct refund_result {
    const char *refund_no;
    const char *status;        /* PENDING | SUCCEEDED | FAILED | ABNORMAL */
    int64_t amount_fen;
    bool repeated;             /* idempotent repeat of request_id */
    const char *error_code;    /* on failure: invalid_field, not_found, refund_exceeds_paid, ... */
} refund_result_t;

pg_err refund_create(pg_app_t *app, arena_t *a, const refund_request_t *req, refund_result_t *res, buf_t *msg);

/* Moves a PENDING refund on: sends it, or asks the provider about it. */
pg_err refund_drive(pg_app_t *app, arena_t *a, const char *refund_no, buf_t *msg);

/* Records the provider's final word on a refund, once (inside the caller's
 * transaction): the order's refunded_fen and status, the entitlement, the
 * webhook event. *changed false when it was already recorded. */
pg_err refund_apply_in_tx(pg_app_t *app, arena_t *a, const char *refund_no, bool succeeded,
                          const char *provider_refund_no, const char *failure, bool *changed);

/* The provider says the refund is abnormal (WeChat CHANGE: it took the money
 * but could not pay the buyer; handled by hand in the merchant platform):
 * PENDING -> ABNORMAL once, inside the caller's transaction, with an error
 * log line and a refund.abnormal webhook event. The amount stays reserved
 * against the paid amount; refund_drive keeps asking (hourly) until the
 * provider ends it. *changed false when it was not PENDING. */
pg_err refund_mark_abnormal_in_tx(pg_app_t *app, arena_t *a, const char *refund_no, const char *provider_refund_no,
                                  bool *changed);

/* A new automatic refund of a whole payment (a late payment, or one made twice),
 * inside the caller's transaction; the refund_no is written to out[25]. */
pg_err refund_queue_auto_in_tx(pg_app_t *app, int64_t order_id, int64_t payment_id, int64_t amount_fen,
                               const char *reason, char out[25]);

#endif
