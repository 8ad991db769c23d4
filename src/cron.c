/* cron: see include/cron.h. */
#include "cron.h"

#include <string.h>
#include <time.h>

#include "ledger.h"
#include "ledger_math.h"
#include "log.h"
#include "reconcile.h"
#include "refund.h"
#include "store_lifecycle.h"

static pg_err drive_refunds(pg_app_t *app, arena_t *a, int min_age_s, cron_report_t *r)
{
    db_result_t pending;
    pg_err rc = store_refunds_pending(app->db, a, min_age_s, &pending);
    if (rc != PG_OK)
        return rc;
    for (size_t i = 0; i < pending.rows; i++) {
        refund_row_t row;
        buf_t msg;
        buf_init(&msg, a);
        r->refunds_examined++;
        /* Sends only under the refund's claim; an unknown outcome stays PENDING for the next pass. */
        (void)refund_drive(app, a, db_cell(&pending, i, "refund_no"), &msg);
        if (store_refund_get(app->db, a, db_cell(&pending, i, "refund_no"), false, &row) == PG_OK &&
            !strcmp(row.status, "PENDING"))
            r->refunds_open++;
    }
    return PG_OK;
}

pg_err cron_sync(pg_app_t *app, arena_t *a, int older_than_s, cron_report_t *r)
{
    pg_err rc = lifecycle_sync(app, a, older_than_s, &r->synced);
    if (rc == PG_OK)
        rc = drive_refunds(app, a, older_than_s / 2, r);
    return rc;
}

/* Yesterday in Beijing time, once: settle it and reconcile each enabled
 * channel (a reconciliation run already stored for that day means done). */
static pg_err daily_duties(pg_app_t *app, arena_t *a, cron_report_t *r)
{
    static const char *const channels[] = { "alipay", "wechat" };
    char today[11], yesterday[11];
    settle_result_t st;
    buf_t msg;
    pg_err rc = ledger_available_date(time(NULL), false, 0, today);
    if (rc == PG_OK)
        rc = ledger_date_add_days(today, -1, yesterday);
    if (rc != PG_OK)
        return rc;
    buf_init(&msg, a);
    /* A lost COMMIT reply: found again by batch_no, or the pass fails and the next one settles. */
    rc = ledger_settle(app, a, yesterday, NULL, &st, &msg);
    if (rc != PG_OK)
        return rc;
    r->settled_batches = st.batches;
    for (size_t i = 0; i < 2; i++) {
        db_val_t p[] = { DB_S(channels[i]), DB_S(yesterday) };
        db_result_t done;
        recon_summary_t s;
        bool enabled = i == 0 ? app->cfg->alipay.enabled : app->cfg->wechat.enabled;
        if (!enabled)
            continue;
        rc = db_query(app->db, a, "SELECT COUNT(*) AS n FROM recon_runs WHERE channel = ? AND bill_date = ?", p, 2,
                      &done);
        if (rc != PG_OK)
            return rc;
        if (db_cell_i64(&done, 0, "n") > 0)
            continue;
        buf_clear(&msg);
        if (reconcile_run(app, a, channels[i], yesterday, NULL, &s, &msg) != PG_OK) {
            log_msg(LOG_WARN, "cron: reconciliation of %s %s failed: %s (next pass tries again)", channels[i],
                    yesterday, msg.data);
            continue;
        }
        r->recon_unexplained += reconcile_unexplained(&s);
        if (reconcile_unexplained(&s))
            log_msg(LOG_ERROR, "reconciliation %s %s: %u unexplained item(s): run `paygatectl reconcile --channel %s"
                    " --date %s`", channels[i], yesterday, reconcile_unexplained(&s), channels[i], yesterday);
    }
    r->daily_done = true;
    return PG_OK;
}

static pg_err take_lock(pg_app_t *app, arena_t *a, bool *got)
{
    db_result_t res;
    pg_err rc = db_query(app->db, a, "SELECT GET_LOCK('paygate_cron', 0) AS got", NULL, 0, &res);
    *got = rc == PG_OK && db_cell_i64(&res, 0, "got") == 1;
    return rc;
}

pg_err cron_run(pg_app_t *app, arena_t *a, cron_report_t *r)
{
    db_result_t res;
    bool got = false;
    pg_err rc;
    memset(r, 0, sizeof *r);
    rc = take_lock(app, a, &got);
    if (rc != PG_OK)
        return rc;
    if (!got) {
        r->skipped = true;
        log_msg(LOG_INFO, "cron: another pass is running; nothing done");
        return PG_OK;
    }
    rc = lifecycle_expire(app, a, CRON_EXPIRY_GRACE_S, &r->expired);
    if (rc == PG_OK)
        rc = cron_sync(app, a, CRON_SYNC_AFTER_S, r);
    if (rc == PG_OK)
        rc = webhooks_deliver(app, a, &r->webhooks);
    if (rc == PG_OK)
        rc = daily_duties(app, a, r);
    (void)db_query(app->db, a, "SELECT RELEASE_LOCK('paygate_cron')", NULL, 0, &res);
    return rc;
}
