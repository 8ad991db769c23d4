/* cron: one safe pass of every periodic duty (paygatectl cron): close
 * expired payments, sync payments and refunds waiting for the provider,
 * deliver webhooks; once a day (Beijing time) settle and reconcile
 * yesterday. A lease row (cron_leases, sql/005) keeps two passes from
 * overlapping: taken at the start, renewed between duties, given back at
 * the end; a pass that finds it taken over (or cannot renew it) stops. */
#ifndef CRON_H
#define CRON_H
#include <stdbool.h>
#include "app.h"
#include "lifecycle.h"
#include "webhooks.h"

typedef struct cron_report {
    bool skipped;                 /* another pass held the lease */
    bool lease_lost;              /* stopped: the lease was taken over or could not be renewed */
    lifecycle_stats_t expired;
    lifecycle_stats_t synced;
    unsigned refunds_examined;
    unsigned refunds_open;        /* still PENDING afterwards */
    webhook_stats_t webhooks;
    bool daily_done;              /* settlement and reconciliation for yesterday ran in this pass */
    unsigned settled_batches;
    unsigned recon_unexplained;
    unsigned payouts_paid;        /* [payouts] enabled: paid / failed in this pass */
    unsigned payouts_failed;
    unsigned long long notifications_pruned;   /* rejected notifications past [server] notification_retention_days */
    unsigned iap_acknowledged;    /* Google Play purchases acknowledged late */
} cron_report_t;

/* Payments and refunds waiting longer than this are asked about. */
#define CRON_SYNC_AFTER_S 60
#define CRON_EXPIRY_GRACE_S 60
/* A lease not renewed for this long is free: the longest a crashed pass
 * blocks cron, and the longest one duty may take without renewal. */
#define CRON_LEASE_TTL_S 300

pg_err cron_sync(pg_app_t *app, arena_t *a, int older_than_s, cron_report_t *r);
pg_err cron_run(pg_app_t *app, arena_t *a, cron_report_t *r);
/* Retention: deletes notifications that were not accepted and are older
 * than [server] notification_retention_days (part of every pass). */
pg_err cron_prune_notifications(pg_app_t *app, cron_report_t *r);

#endif
