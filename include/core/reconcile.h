/* reconcile: a provider's bill for one day against our payments and refunds
 * (SPEC §7). The bill is imported first (again harmlessly: rows are keyed
 * by their content), then every row is matched by our numbers and every
 * local movement of that day looked up in the bill. */
#ifndef RECONCILE_H
#define RECONCILE_H
#include "app.h"

typedef struct recon_summary {
    int64_t run_id;
    unsigned rows;               /* bill rows for the day */
    unsigned imported;           /* new rows stored by this run */
    unsigned matched;
    unsigned amount_mismatch;
    unsigned status_mismatch;
    unsigned fee_mismatch;
    unsigned missing_local;      /* the provider has it, we do not (e.g. a notification lost, never synced) */
    unsigned missing_provider;   /* we have it, the bill does not */
    unsigned refund_abnormal;    /* refunds ABNORMAL at the provider (WeChat CHANGE) by that day: by hand */
} recon_summary_t;

/* channel alipay|wechat, ymd YYYY-MM-DD (Beijing day), bill_file NULL =
 * download. PG_OK even with discrepancies (unexplained() says). */
pg_err reconcile_run(pg_app_t *app, arena_t *a, const char *channel, const char *ymd, const char *bill_file,
                     recon_summary_t *out, buf_t *msg);
unsigned reconcile_unexplained(const recon_summary_t *s);
/* The items of a run that did not match. */
pg_err reconcile_items(pg_app_t *app, arena_t *a, int64_t run_id, bool all, db_result_t *out);

#endif
