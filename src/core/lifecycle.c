/* lifecycle: see include/lifecycle.h. */
#include "lifecycle.h"

#include <stdio.h>
#include <string.h>

#include "channel.h"
#include "events.h"
#include "log.h"
#include "notify.h"
#include "store.h"
#include "store_lifecycle.h"

/* What the provider said, recorded through the notification transaction
 * (paid: the order is paid; closed: the payment, and the order if nothing
 * is left open). *state tells the caller what the query said. */
static pg_err query_and_record(pg_app_t *app, arena_t *a, const pay_channel_t *ch, const char *payment_no,
                               channel_trade_state_t *state, lifecycle_stats_t *st, buf_t *err)
{
    channel_trade_t t;
    payment_event_t ev;
    notify_result_t res;
    pg_err rc = ch->query(app, a, payment_no, &t, err);
    *state = TRADE_UNKNOWN;
    if (rc != PG_OK) {
        st->failed++;
        log_msg(LOG_WARN, "query of %s payment %s failed: %s", ch->name, payment_no, err->data);
        return rc;
    }
    *state = t.state;
    if (t.state != TRADE_PAID && t.state != TRADE_CLOSED)
        return PG_OK;
    memset(&ev, 0, sizeof ev);
    ev.channel = ch->name;
    ev.kind = t.state == TRADE_PAID ? PAY_EVENT_PAID : PAY_EVENT_CLOSED;
    ev.kind_name = "query";
    ev.payment_no = payment_no;
    ev.provider_trade_no = t.provider_trade_no;
    ev.buyer_ref = t.buyer_ref;
    ev.paid_at = notify_beijing_time(t.paid_time);
    ev.amount_fen = t.amount_fen;
    ev.raw_body = arena_printf(a, "%s query: %s %s %lld", ch->name, t.state == TRADE_PAID ? "PAID" : "CLOSED",
                               t.provider_trade_no ? t.provider_trade_no : "-", (long long)t.amount_fen);
    ev.raw_len = strlen(ev.raw_body);
    /* PG_ERR_COMMIT_UNKNOWN: not counted; the next pass queries again and finds it recorded. */
    rc = notify_apply(app, a, &ev, &res);
    if (rc == PG_OK && res.outcome && !strcmp(res.outcome, "accepted")) {
        if (t.state == TRADE_PAID)
            st->paid++;
        else
            st->closed++;
        log_msg(LOG_INFO, "query recorded %s payment %s as %s", ch->name, payment_no,
                t.state == TRADE_PAID ? "paid" : "closed");
    }
    return rc;
}

pg_err lifecycle_sync_payment(pg_app_t *app, arena_t *a, int64_t payment_id, const char *payment_no,
                              const char *channel, int interval_s, lifecycle_stats_t *st)
{
    const pay_channel_t *ch = channel_find(channel);
    channel_trade_state_t state;
    buf_t err;
    bool claimed = false;
    pg_err rc;
    if (!ch || !ch->enabled(app))
        return PG_ERR_UNSUPPORTED;
    rc = store_payment_claim_query(app->db, payment_id, interval_s, &claimed);
    if (rc != PG_OK || !claimed)
        return rc;
    st->examined++;
    buf_init(&err, a);
    return query_and_record(app, a, ch, payment_no, &state, st, &err);
}

pg_err lifecycle_sync(pg_app_t *app, arena_t *a, int older_than_s, lifecycle_stats_t *st)
{
    db_result_t due;
    pg_err rc = store_payments_to_sync(app->db, a, older_than_s, &due);
    if (rc != PG_OK)
        return rc;
    for (size_t i = 0; i < due.rows; i++)
        (void)lifecycle_sync_payment(app, a, db_cell_i64(&due, i, "id"), db_cell(&due, i, "payment_no"),
                                     db_cell(&due, i, "channel"), older_than_s, st);
    return PG_OK;
}

typedef struct close_ctx {
    pg_app_t *app;
    arena_t *a;
    int64_t order_id;
    const char *order_no;
    bool whole_order;        /* the shop's close: every payment and the order */
    int64_t payment_id;      /* expiry: this payment, and the order if nothing is left open */
    unsigned payments_closed;
    bool order_closed;
} close_ctx_t;

static pg_err close_in_tx(db_t *db, void *arg)
{
    close_ctx_t *c = arg;
    order_lock_t o;
    db_result_t open;
    size_t left = 0;
    pg_err rc = store_order_lock_by_id(db, c->a, c->order_id, &o);
    c->payments_closed = 0;
    c->order_closed = false;
    if (rc == PG_OK)
        rc = store_order_open_payments(db, c->a, c->order_id, &open);
    for (size_t i = 0; rc == PG_OK && i < open.rows; i++) {
        bool changed = false;
        if (!c->whole_order && db_cell_i64(&open, i, "id") != c->payment_id) {
            left++;
            continue;
        }
        rc = store_payment_mark_closed(db, db_cell_i64(&open, i, "id"), &changed);
        c->payments_closed += changed;
    }
    if (rc == PG_OK && left == 0 && !strcmp(o.status, "CREATED"))
        rc = lifecycle_close_idle_order_in_tx(c->app, c->a, c->order_id, o.order_no, &c->order_closed);
    return rc;
}

/* After a lost COMMIT reply: closed when the payment (expiry) or every payment
 * and the order (the shop's close) is no longer open, keyed by their ids;
 * else close_in_tx runs again (its updates are conditional on CREATED, its
 * event queued only on a change, so it happens once). */
static pg_err close_found(db_t *db, void *arg)
{
    close_ctx_t *c = arg;
    order_lock_t o;
    db_result_t open;
    pg_err rc = store_order_lock_by_id(db, c->a, c->order_id, &o);
    if (rc == PG_OK)
        rc = store_order_open_payments(db, c->a, c->order_id, &open);
    if (rc != PG_OK)
        return rc;
    for (size_t i = 0; i < open.rows; i++) {
        if (c->whole_order || db_cell_i64(&open, i, "id") == c->payment_id)
            return PG_ERR_NOT_FOUND;
    }
    return c->whole_order && !strcmp(o.status, "CREATED") ? PG_ERR_NOT_FOUND : PG_OK;
}

pg_err lifecycle_close_idle_order_in_tx(pg_app_t *app, arena_t *a, int64_t order_id, const char *order_no,
                                        bool *closed)
{
    db_result_t open;
    pg_err rc = store_order_open_payments(app->db, a, order_id, &open);
    *closed = false;
    if (rc != PG_OK || open.rows > 0)
        return rc;
    rc = store_order_mark_closed(app->db, order_id, closed);   /* only from CREATED */
    if (rc == PG_OK && *closed)
        rc = events_queue(app, a, "order.closed", order_no, NULL);
    return rc;
}

/* At the provider first. A refusal to close says nothing by itself (Alipay
 * refuses a trade that is paid and one that is already closed alike): the
 * trade is queried and what the query says is recorded. PG_ERR_CONFLICT only
 * when the query says paid. */
static pg_err close_at_provider(pg_app_t *app, arena_t *a, const char *payment_no, const char *channel,
                                lifecycle_stats_t *st, buf_t *msg)
{
    const pay_channel_t *ch = channel_find(channel);
    channel_trade_state_t state;
    pg_err rc;
    if (!ch || !ch->enabled(app))
        return PG_ERR_UNSUPPORTED;
    rc = ch->close(app, a, payment_no, msg);
    if (rc != PG_ERR_CONFLICT)
        return rc;
    buf_clear(msg);
    rc = query_and_record(app, a, ch, payment_no, &state, st, msg);
    if (rc != PG_OK)
        return rc;
    if (state == TRADE_PAID)
        return PG_ERR_CONFLICT;
    if (state == TRADE_WAITING) {
        buf_printf(msg, "%s refused to close payment %s, which it still shows as unpaid", channel, payment_no);
        return PG_ERR_UPSTREAM;
    }
    return PG_OK;   /* closed there (recorded), or never seen: nothing to close */
}

/* Seconds until every open payment may be closed at its provider (WeChat:
 * not within 5 minutes of creating it); 0 when all may be. */
static int close_wait_s(const db_result_t *open)
{
    int wait = 0;
    for (size_t i = 0; i < open->rows; i++) {
        const pay_channel_t *ch = channel_find(db_cell(open, i, "channel"));
        int64_t left = ch ? ch->min_close_age_s - db_cell_i64(open, i, "age_s") : 0;
        if (left > wait)
            wait = (int)left;
    }
    return wait;
}

pg_err lifecycle_close_order(pg_app_t *app, arena_t *a, const char *order_no, const char **error_code,
                             int *retry_after_s, buf_t *msg)
{
    order_view_t o;
    db_result_t open;
    close_ctx_t c;
    lifecycle_stats_t st;
    pg_err rc = store_order_by_no(app->db, a, order_no, &o);
    *error_code = NULL;
    *retry_after_s = 0;
    memset(&st, 0, sizeof st);
    if (rc == PG_ERR_NOT_FOUND)
        *error_code = "not_found";
    if (rc != PG_OK)
        return rc;
    if (!strcmp(o.status, "CLOSED"))
        return PG_OK;
    if (strcmp(o.status, "CREATED")) {
        *error_code = "order_not_open";
        buf_printf(msg, "order is %s: only unpaid orders can be closed", o.status);
        return PG_ERR_CONFLICT;
    }
    rc = store_order_open_payments(app->db, a, o.id, &open);
    if (rc == PG_OK && (*retry_after_s = close_wait_s(&open)) > 0) {
        *error_code = "too_early_to_close";
        buf_printf(msg, "the provider does not close a payment within 5 minutes of its creation: "
                        "try again in %d s", *retry_after_s);
        return PG_ERR_CONFLICT;
    }
    for (size_t i = 0; rc == PG_OK && i < open.rows; i++)
        rc = close_at_provider(app, a, db_cell(&open, i, "payment_no"), db_cell(&open, i, "channel"), &st, msg);
    if (rc == PG_ERR_CONFLICT) {
        *error_code = "order_not_open";
        buf_clear(msg);
        buf_puts(msg, "the order was paid meanwhile");
        return rc;
    }
    if (rc != PG_OK) {
        *error_code = rc == PG_ERR_TIMEOUT ? "upstream_timeout" : "upstream_error";
        return rc;
    }
    memset(&c, 0, sizeof c);
    c.app = app;
    c.a = a;
    c.order_id = o.id;
    c.whole_order = true;
    rc = db_tx_resolve(app->db, close_in_tx, close_found, &c);   /* still unknown: 503, the shop closes again */
    if (rc == PG_OK)
        log_msg(LOG_INFO, "order %s closed (%u payment%s)", order_no, c.payments_closed,
                c.payments_closed == 1 ? "" : "s");
    return rc;
}

static void expire_payment(pg_app_t *app, arena_t *a, const db_result_t *due, size_t i, lifecycle_stats_t *st)
{
    const pay_channel_t *ch = channel_find(db_cell(due, i, "channel"));
    const char *payment_no = db_cell(due, i, "payment_no");
    unsigned failed_before;
    close_ctx_t c;
    buf_t msg;
    pg_err rc;
    if (ch && db_cell_i64(due, i, "age_s") < ch->min_close_age_s)
        return;   /* WeChat: not within 5 minutes of creating it; a later pass */
    buf_init(&msg, a);
    st->examined++;
    failed_before = st->failed;
    rc = close_at_provider(app, a, payment_no, db_cell(due, i, "channel"), st, &msg);
    if (rc == PG_ERR_CONFLICT)
        return;   /* paid: recorded by the query (counted there) */
    if (rc != PG_OK) {
        st->failed += st->failed == failed_before;   /* a failed query counted itself */
        log_msg(LOG_WARN, "expiry: closing payment %s failed: %s", payment_no, msg.data);
        return;
    }
    memset(&c, 0, sizeof c);
    c.app = app;
    c.a = a;
    c.order_id = db_cell_i64(due, i, "order_id");
    c.payment_id = db_cell_i64(due, i, "id");
    /* still unknown: the next pass finds the payment CLOSED (not due) or closes it then */
    if (db_tx_resolve(app->db, close_in_tx, close_found, &c) == PG_OK) {
        st->closed += c.payments_closed;
        st->orders_closed += c.order_closed;
    }
}

/* Orders left CREATED with every payment closed (closed by the provider
 * before this release closed the order with its last payment). */
static void close_left_open(pg_app_t *app, arena_t *a, lifecycle_stats_t *st)
{
    db_result_t left;
    if (store_orders_left_open(app->db, a, &left) != PG_OK)
        return;
    for (size_t i = 0; i < left.rows; i++) {
        close_ctx_t c;
        memset(&c, 0, sizeof c);
        c.app = app;
        c.a = a;
        c.order_id = db_cell_i64(&left, i, "id");
        /* a sweep: still unknown is simply found again by the next pass */
        if (db_tx(app->db, close_in_tx, &c) == PG_OK)
            st->orders_closed += c.order_closed;
    }
}

pg_err lifecycle_expire(pg_app_t *app, arena_t *a, int grace_s, lifecycle_stats_t *st)
{
    db_result_t due;
    pg_err rc = store_payments_expired(app->db, a, grace_s, &due);
    if (rc != PG_OK)
        return rc;
    for (size_t i = 0; i < due.rows; i++)
        expire_payment(app, a, &due, i, st);
    close_left_open(app, a, st);
    return PG_OK;
}
