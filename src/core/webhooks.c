/* webhooks: see include/webhooks.h. */
#include "webhooks.h"

#include <stdio.h>
#include <string.h>

#include "crypto.h"
#include "httpc.h"
#include "log.h"
#include "store_lifecycle.h"

#define WEBHOOK_LIFETIME_S (24 * 3600)
#define WEBHOOK_LEASE_S 120
#define WEBHOOK_BATCH 100
#define WEBHOOK_MAX_BATCHES 50
#define WEBHOOK_PASS_S 50

void webhooks_signature(const char *secret, time_t t, const char *body, char out[96])
{
    char hex[65];
    buf_t b;
    buf_init(&b, NULL);
    buf_printf(&b, "%lld.%s", (long long)t, body);
    crypto_hmac_sha256_hex(secret, strlen(secret), b.data, b.len, false, hex);
    buf_free(&b);
    snprintf(out, 96, "t=%lld,v1=%s", (long long)t, hex);
}

int webhooks_backoff_s(int attempts)
{
    int delay = 30;
    for (int i = 1; i < attempts && delay < 3600; i++)
        delay *= 2;
    return delay > 3600 ? 3600 : delay;
}

static pg_err post_event(pg_app_t *app, arena_t *a, const char *payload, buf_t *err)
{
    char sig[96];
    const char *headers[2];
    httpc_opts_t opts;
    httpc_response_t resp;
    pg_err rc;
    memset(&opts, 0, sizeof opts);
    opts.connect_timeout_ms = 3000;
    opts.total_timeout_ms = 5000;
    opts.max_response = 64 * 1024;
    webhooks_signature(app->cfg->merchant.webhook_secret, time(NULL), payload, sig);
    headers[0] = arena_printf(a, "Paygate-Signature: %s", sig);
    headers[1] = NULL;
    rc = httpc_post_headers(a, app->cfg->merchant.webhook_url, "application/json", headers, payload,
                            strlen(payload), &opts, &resp, err);
    if (rc == PG_OK && (resp.status < 200 || resp.status > 299)) {
        buf_printf(err, "HTTP %ld", resp.status);
        rc = PG_ERR_UPSTREAM;
    }
    return rc;
}

static pg_err deliver_batch(pg_app_t *app, arena_t *a, webhook_stats_t *st, size_t *taken)
{
    db_result_t due;
    pg_err rc = store_webhooks_due(app->db, a, WEBHOOK_BATCH, &due);
    *taken = 0;
    if (rc != PG_OK)
        return rc;
    *taken = due.rows;
    for (size_t i = 0; i < due.rows; i++) {
        int64_t id = db_cell_i64(&due, i, "id");
        int attempts = (int)db_cell_i64(&due, i, "attempts") + 1;
        bool claimed = false, dead;
        buf_t err;
        /* A lease, so that two cron passes never send the same event at once. */
        if (store_webhook_claim(app->db, id, WEBHOOK_LEASE_S, &claimed) != PG_OK || !claimed)
            continue;
        buf_init(&err, a);
        if (post_event(app, a, db_cell(&due, i, "payload"), &err) == PG_OK) {
            /* No db_tx here: single conditional statements. A lost reply at worst sends the
             * event again after the lease (at least once; receivers dedupe by event_id). */
            (void)store_webhook_delivered(app->db, id);
            st->delivered++;
            continue;
        }
        dead = db_cell_i64(&due, i, "age_s") + webhooks_backoff_s(attempts) > WEBHOOK_LIFETIME_S;
        (void)store_webhook_failed(app->db, id, webhooks_backoff_s(attempts), dead, err.data);
        if (dead) {
            st->dead++;
            log_msg(LOG_ERROR, "webhook %s is DEAD after %d tries: %s", db_cell(&due, i, "event_id"), attempts,
                    err.data);
        } else {
            st->failed++;
        }
    }
    return PG_OK;
}

/* Batches until nothing is due, bounded so that one pass ends in time. */
pg_err webhooks_deliver(pg_app_t *app, arena_t *a, webhook_stats_t *st)
{
    time_t started = time(NULL);
    size_t taken = 0;
    pg_err rc = PG_OK;
    if (!app->cfg->merchant.webhook_url || !*app->cfg->merchant.webhook_url)
        return PG_OK;
    for (int batch = 0; batch < WEBHOOK_MAX_BATCHES && time(NULL) - started < WEBHOOK_PASS_S; batch++) {
        rc = deliver_batch(app, a, st, &taken);
        if (rc != PG_OK || taken < WEBHOOK_BATCH)
            break;
    }
    return rc;
}
