/* events: merchant webhook events (SPEC §8). events_queue writes the
 * outbox row inside the caller's transaction; webhooks.c delivers later. */
#ifndef EVENTS_H
#define EVENTS_H
#include "app.h"

/* type: order.paid | order.refunded | order.closed | payment.anomaly.
 * extra_json: NULL or the text of extra members, e.g. "\"refund_no\":\"R1\"".
 * Does nothing when no webhook_url is configured. */
pg_err events_queue(pg_app_t *app, arena_t *a, const char *type, const char *order_no,
                    const char *extra_json);

#endif
