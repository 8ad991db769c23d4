/* cron: see include/cron.h. */
#include "cron.h"
#include "payout.h"
#include "iap.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "crypto.h"

#include "ledger.h"
#include "ledger_math.h"
#include "log.h"
#include "channel.h"
#include "reconcile.h"
#include "refund.h"
#include "store.h"
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
    static const char *const channels[] = { "alipay", "wechat", "stripe" };
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
    for (size_t i = 0; i < sizeof channels / sizeof channels[0]; i++) {
        db_val_t p[] = { DB_S(channels[i]), DB_S(yesterday) };
        db_result_t done;
        recon_summary_t s;
        const pay_channel_t *ch = channel_find(channels[i]);
        bool enabled = ch && ch->enabled(app);
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

/* After settling: every payout due (new batches, unknown outcomes to query,
 * low balances to retry). A failure is logged; the next pass tries again. */
static pg_err cron_payouts(pg_app_t *app, arena_t *a, cron_report_t *r)
{
    payout_run_t run;
    buf_t msg;
    if (!app->cfg->payouts.enabled)
        return PG_OK;
    buf_init(&msg, a);
    if (payout_run(app, a, NULL, &run, &msg) != PG_OK) {
        log_msg(LOG_WARN, "cron: payouts failed: %s (next pass tries again)", msg.len ? msg.data : "database error");
        return PG_OK;
    }
    r->payouts_paid = run.paid;
    r->payouts_failed = run.failed;
    return PG_OK;
}

pg_err cron_prune_notifications(pg_app_t *app, cron_report_t *r)
{
    uint64_t deleted = 0;
    pg_err rc = store_notifications_prune(app->db, app->cfg->server.notification_retention_days, &deleted);
    r->notifications_pruned = deleted;
    if (rc == PG_OK && deleted > 0)
        log_msg(LOG_INFO, "cron: pruned %llu rejected notification(s) older than %lld days",
                (unsigned long long)deleted, (long long)app->cfg->server.notification_retention_days);
    return rc;
}

/* The lease (sql/005_cron_lease.sql). Times are the server's clock. */
#define CRON_LEASE_NAME "cron"

typedef struct cron_lease {
    arena_t *a;
    char holder[65];
    bool takeover;      /* also take it when it expired (the start of a pass) */
    bool held;
} cron_lease_t;

static pg_err lease_claim_tx(db_t *db, void *arg)
{
    cron_lease_t *l = arg;
    db_val_t u[] = { DB_S(l->holder), DB_S(l->holder), DB_I(CRON_LEASE_TTL_S), DB_S(CRON_LEASE_NAME),
                     DB_S(l->holder), DB_I(l->takeover ? 1 : 0) };
    db_val_t q[] = { DB_S(CRON_LEASE_NAME) };
    db_result_t r;
    pg_err rc;
    l->held = false;
    /* ours already, or (starting) free: one statement, the row locked */
    rc = db_exec(db,
                 "UPDATE cron_leases SET taken_at = IF(holder = ?, taken_at, UTC_TIMESTAMP(6)),"
                 " holder = ?, expires_at = UTC_TIMESTAMP(6) + INTERVAL ? SECOND"
                 " WHERE name = ? AND (holder = ? OR (? AND expires_at <= UTC_TIMESTAMP(6)))",
                 u, 6, NULL, NULL);
    if (rc == PG_OK)
        rc = db_query(db, l->a, "SELECT holder FROM cron_leases WHERE name = ?", q, 1, &r);
    if (rc != PG_OK)
        return rc;
    if (r.rows == 1) {
        l->held = !strcmp(db_cell(&r, 0, "holder"), l->holder);
    } else if (l->takeover) {   /* first pass ever: the row is made, ours */
        db_val_t n[] = { DB_S(CRON_LEASE_NAME), DB_S(l->holder), DB_I(CRON_LEASE_TTL_S) };
        rc = db_exec(db,
                     "INSERT INTO cron_leases (name, holder, expires_at, taken_at)"
                     " VALUES (?, ?, UTC_TIMESTAMP(6) + INTERVAL ? SECOND, UTC_TIMESTAMP(6))",
                     n, 3, NULL, NULL);
        l->held = rc == PG_OK;
        if (rc == PG_ERR_CONFLICT)   /* another pass made it first: its lease */
            rc = PG_OK;
    }
    return rc;
}

static pg_err lease_take(pg_app_t *app, cron_lease_t *l)
{
    char suffix[9], host[41] = "";
    pg_err rc = crypto_random_alnum(suffix, 8);
    if (rc != PG_OK)
        return rc;
    if (gethostname(host, sizeof host - 1) != 0)
        host[0] = '\0';
    host[sizeof host - 1] = '\0';
    snprintf(l->holder, sizeof l->holder, "%s:%ld:%s", host, (long)getpid(), suffix);
    l->takeover = true;
    return db_tx(app->db, lease_claim_tx, l);
}

/* Between duties: still ours? Renewed then; otherwise the pass stops. */
static pg_err lease_keep(pg_app_t *app, cron_lease_t *l, cron_report_t *r)
{
    pg_err rc;
    l->takeover = false;
    rc = db_tx(app->db, lease_claim_tx, l);
    if (rc == PG_OK && !l->held)
        rc = PG_ERR_CONFLICT;
    if (rc != PG_OK) {
        r->lease_lost = true;
        log_msg(LOG_ERROR, "cron %s: the lease %s; pass stopped, the next pass does the rest", l->holder,
                rc == PG_ERR_CONFLICT ? "was taken over by another pass" : "could not be renewed");
    }
    return rc;
}

static void lease_give_back(pg_app_t *app, const cron_lease_t *l)
{
    db_val_t p[] = { DB_S(CRON_LEASE_NAME), DB_S(l->holder) };
    (void)db_exec(app->db, "UPDATE cron_leases SET expires_at = UTC_TIMESTAMP(6) WHERE name = ? AND holder = ?", p,
                  2, NULL, NULL);
}

pg_err cron_run(pg_app_t *app, arena_t *a, cron_report_t *r)
{
    cron_lease_t lease;
    pg_err rc;
    memset(r, 0, sizeof *r);
    memset(&lease, 0, sizeof lease);
    lease.a = a;
    rc = lease_take(app, &lease);
    if (rc != PG_OK)
        return rc;
    if (!lease.held) {
        r->skipped = true;
        log_msg(LOG_INFO, "cron: another pass holds the lease; nothing done");
        return PG_OK;
    }
    rc = lifecycle_expire(app, a, CRON_EXPIRY_GRACE_S, &r->expired);
    if (rc == PG_OK)
        rc = lease_keep(app, &lease, r);
    if (rc == PG_OK)
        rc = cron_sync(app, a, CRON_SYNC_AFTER_S, r);
    if (rc == PG_OK)
        rc = lease_keep(app, &lease, r);
    if (rc == PG_OK)
        rc = webhooks_deliver(app, a, &r->webhooks);
    if (rc == PG_OK)
        rc = lease_keep(app, &lease, r);
    if (rc == PG_OK)
        rc = daily_duties(app, a, r);
    if (rc == PG_OK)
        rc = lease_keep(app, &lease, r);
    if (rc == PG_OK)
        rc = cron_payouts(app, a, r);
    if (rc == PG_OK)
        rc = lease_keep(app, &lease, r);
    if (rc == PG_OK)
        rc = cron_prune_notifications(app, r);
    if (rc == PG_OK)
        rc = iap_acknowledge_pending(app, a, &r->iap_acknowledged);
    if (!r->lease_lost)
        lease_give_back(app, &lease);
    return rc;
}
