/* webhooks: delivery of the outbox (SPEC §8). POST JSON to webhook_url
 * with Paygate-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>.
 * A 2xx answer delivers; otherwise the next try comes after an exponential
 * backoff (30 s doubling, at most 1 h), for a day; then the event is DEAD
 * until `paygatectl webhooks retry`. */
#ifndef WEBHOOKS_H
#define WEBHOOKS_H
#include <time.h>
#include "app.h"

typedef struct webhook_stats {
    unsigned delivered;
    unsigned failed;
    unsigned dead;
} webhook_stats_t;

pg_err webhooks_deliver(pg_app_t *app, arena_t *a, webhook_stats_t *st);

/* "t=...,v1=..." for body at time t (tests and the README's example). */
void webhooks_signature(const char *secret, time_t t, const char *body, char out[96]);

/* Seconds until the next try after `attempts` failed tries. */
int webhooks_backoff_s(int attempts);

#endif
