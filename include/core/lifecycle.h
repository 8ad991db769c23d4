/* lifecycle: closing orders (the shop's cancel, and expiry) and active
 * query (sync). Both go to the provider first and then record what it said
 * through the same transactions as notifications. */
#ifndef LIFECYCLE_H
#define LIFECYCLE_H
#include <stdbool.h>
#include <stdint.h>
#include "app.h"

/* POST /orders/{no}/close, paygatectl close. Closes every open payment at
 * its provider, then the order. Closing a closed order is PG_OK. error_code:
 * not_found, order_not_open (paid meanwhile: only when a query said paid),
 * too_early_to_close (PG_ERR_CONFLICT; WeChat closes no payment younger
 * than 5 minutes: *retry_after_s says when), upstream_*. */
pg_err lifecycle_close_order(pg_app_t *app, arena_t *a, const char *order_no, const char **error_code,
                             int *retry_after_s, buf_t *msg);

/* Inside a transaction that holds the order's row and closed one of its
 * payments: the order, if still CREATED and with no open payment left,
 * becomes CLOSED and order.closed is queued (*closed). */
pg_err lifecycle_close_idle_order_in_tx(pg_app_t *app, arena_t *a, int64_t order_id, const char *order_no,
                                        bool *closed);

typedef struct lifecycle_stats {
    unsigned examined;
    unsigned paid;        /* recorded as paid by a query */
    unsigned closed;      /* payments closed */
    unsigned orders_closed;
    unsigned failed;      /* provider did not answer: next pass */
} lifecycle_stats_t;

/* Unpaid payments past expires_at + grace_s: closed at the provider, then
 * here (WeChat ones only once 5 minutes old); then any CREATED order left
 * with no open payment is closed. */
pg_err lifecycle_expire(pg_app_t *app, arena_t *a, int grace_s, lifecycle_stats_t *st);

/* Payments waiting longer than older_than_s for a notification: asked at
 * the provider (each at most once per interval); paid ones recorded. */
pg_err lifecycle_sync(pg_app_t *app, arena_t *a, int older_than_s, lifecycle_stats_t *st);

/* One payment, if not queried within interval_s (GET /orders polling). */
pg_err lifecycle_sync_payment(pg_app_t *app, arena_t *a, int64_t payment_id, const char *payment_no,
                              const char *channel, int interval_s, lifecycle_stats_t *st);

#endif
