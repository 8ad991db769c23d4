/* metrics_report: GET /metrics — the shared counters (util/metrics.c) and
 * the gauges the database knows exactly, read at scrape time. */
#include "metrics.h"
#include "metrics_report.h"

#include <string.h>

#include "db.h"

/* ---- gauges read from the database at scrape time ---- */

static const char *lower_state(const char *s, char out[16])
{
    size_t i = 0;
    for (; s && s[i] && i < 15; i++)
        out[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] - 'A' + 'a' : s[i]);
    out[i] = '\0';
    return out;
}

/* Counts of a status column, every state of the list written (0 if absent). */
static pg_err write_state_gauge(buf_t *b, db_t *db, arena_t *a, const char *sql, const char *name,
                                const char *label, const char *const *states, size_t n)
{
    db_result_t r;
    char low[16];
    pg_err rc = db_query(db, a, sql, NULL, 0, &r);
    if (rc != PG_OK)
        return rc;
    for (size_t i = 0; i < n; i++) {
        uint64_t v = 0;
        const char *l[] = { label, lower_state(states[i], low) };
        for (size_t row = 0; row < r.rows; row++) {
            const char *s = db_cell(&r, row, "status");
            if (s && !strcmp(s, states[i]))
                v = (uint64_t)db_cell_i64(&r, row, "n");
        }
        metrics_write_sample(b, name, l, 1, v);
    }
    return PG_OK;
}

static pg_err write_reconciliation(buf_t *b, db_t *db, arena_t *a)
{
    db_result_t r;
    buf_t ts, items;
    pg_err rc = db_query(db, a,
                         "SELECT r.channel, UNIX_TIMESTAMP(r.run_at) AS t, r.amount_mismatch + r.status_mismatch"
                         " + r.fee_mismatch + r.missing_local + r.missing_provider + r.refund_abnormal AS unexplained"
                         " FROM recon_runs r WHERE r.id = (SELECT MAX(r2.id) FROM recon_runs r2"
                         " WHERE r2.channel = r.channel)",
                         NULL, 0, &r);
    if (rc != PG_OK)
        return rc;
    buf_init(&ts, a);
    buf_init(&items, a);
    for (size_t row = 0; row < r.rows; row++) {
        const char *l[2] = { "channel", metrics_channel_label(db_cell(&r, row, "channel")) };
        if (!l[1])
            continue;   /* only the channels we know become labels */
        metrics_write_sample(&ts, "paygate_reconciliation_last_run_timestamp_seconds", l, 1,
                             (uint64_t)db_cell_i64(&r, row, "t"));
        metrics_write_sample(&items, "paygate_reconciliation_unexplained_items", l, 1,
                             (uint64_t)db_cell_i64(&r, row, "unexplained"));
    }
    metrics_write_head(b, "paygate_reconciliation_last_run_timestamp_seconds", "gauge",
               "When the last reconciliation of a channel ran (Unix time).");
    buf_append(b, ts.data, ts.len);
    metrics_write_head(b, "paygate_reconciliation_unexplained_items", "gauge",
               "Unexplained items of the last reconciliation of a channel.");
    buf_append(b, items.data, items.len);
    return PG_OK;
}

static bool write_db_gauges(buf_t *b, db_t *db, arena_t *a)
{
    static const char *const REFUND_STATES[] = { "PENDING", "SUCCEEDED", "FAILED", "ABNORMAL" };
    static const char *const WEBHOOK_STATES[] = { "PENDING", "DEAD" };
    buf_t g;
    buf_init(&g, a);
    metrics_write_head(&g, "paygate_refunds", "gauge", "Refunds by state.");
    if (write_state_gauge(&g, db, a, "SELECT status, COUNT(*) AS n FROM refunds GROUP BY status",
                          "paygate_refunds", "state", REFUND_STATES, 4) != PG_OK)
        return false;
    metrics_write_head(&g, "paygate_webhook_events", "gauge", "Webhook events waiting for delivery (pending) or given up (dead).");
    if (write_state_gauge(&g, db, a,
                          "SELECT status, COUNT(*) AS n FROM webhook_events WHERE status IN ('PENDING','DEAD')"
                          " GROUP BY status",
                          "paygate_webhook_events", "status", WEBHOOK_STATES, 2) != PG_OK)
        return false;
    if (write_reconciliation(&g, db, a) != PG_OK)
        return false;
    buf_append(b, g.data, g.len);
    return true;
}

void metrics_write_all(db_t *db, arena_t *a, buf_t *out)
{
    bool db_ok;
    metrics_write_counters(out);
    db_ok = db && write_db_gauges(out, db, a);
    metrics_write_head(out, "paygate_metrics_database_up", "gauge",
                       "1 when this scrape read the database gauges (refunds, webhook events, reconciliation).");
    metrics_write_sample(out, "paygate_metrics_database_up", NULL, 0, db_ok ? 1 : 0);
}
