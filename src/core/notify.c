/* notify: exactly-once recording of provider notifications. See include/notify.h. */
#include "notify.h"

#include <string.h>
#include <time.h>
#include <stdio.h>
#include <strings.h>
#include "alipay.h"
#include "events.h"
#include "ledger.h"
#include "lifecycle.h"
#include "log.h"
#include "payout.h"
#include "refund.h"
#include "store.h"
#include "store_lifecycle.h"
#include "stripe.h"
#include "wechat.h"
#include "wechat_v3.h"
#include "wechat_v3_certs.h"

typedef struct apply_ctx {
    pg_app_t *app;
    arena_t *a;
    const payment_event_t *ev;
    notify_result_t *res;
} apply_ctx_t;

static void set_outcome(notify_result_t *res, bool ack, const char *outcome, const char *detail)
{
    res->ack = ack;
    res->outcome = outcome;
    res->detail = detail;
}

/* The money arrived for an order that was no longer open: keep it on record,
 * give it back automatically, and tell the shop. */
static pg_err apply_anomaly(pg_app_t *app, arena_t *a, const payment_t *p, notify_result_t *res)
{
    const char *anomaly = !strcmp(p->order_status, "CLOSED") ? "late_payment" : "double_payment";
    char refund_no[25] = "", extra[200];
    pg_err rc = store_payment_set_anomaly(app->db, p->id, anomaly);
    if (rc == PG_OK)
        rc = refund_queue_auto_in_tx(app, p->order_id, p->id, p->amount_fen, anomaly, refund_no);
    if (rc != PG_OK)   /* no refund number was made: nothing to format */
        return rc;
    snprintf(extra, sizeof extra, "\"anomaly\":\"%s\",\"anomaly_payment_no\":\"%s\",\"refund_no\":\"%s\"",
             anomaly, p->payment_no, refund_no);
    rc = events_queue(app, a, "payment.anomaly", p->order_no, extra);
    if (rc != PG_OK)
        return rc;
    log_msg(LOG_WARN, "%s: payment %s of order %s (%s); automatic refund %s queued", anomaly, p->payment_no,
            p->order_no, p->order_status, refund_no);
    set_outcome(res, true, "accepted", anomaly);
    return PG_OK;
}

static pg_err apply_paid(pg_app_t *app, arena_t *a, const payment_event_t *ev, const payment_t *p,
                         notify_result_t *res)
{
    paid_mark_t mark = { ev->provider_trade_no, ev->buyer_ref, ev->paid_at, 0, p->creator_id };
    ledger_split_t split;
    bool changed = false, order_changed = false;
    pg_err rc;
    if (!strcmp(p->status, "PAID")) {
        set_outcome(res, true, "duplicate", "payment already recorded as paid");
        return PG_OK;
    }
    rc = ledger_payment_split(app, p, &split);
    mark.fee_fen = split.fee_fen;
    if (rc == PG_OK)
        rc = store_payment_mark_paid(app->db, p, &mark, &changed, &order_changed);
    if (rc == PG_OK && changed)   /* the money is in, whatever the order's state: book it */
        rc = ledger_post_payment_in_tx(app, a, p, &split, ev->paid_at);
    if (rc != PG_OK)
        return rc;
    if (!order_changed)
        return apply_anomaly(app, a, p, res);
    rc = store_entitlement_grant(app->db, p->order_id);
    if (rc == PG_OK)
        rc = events_queue(app, a, "order.paid", p->order_no, NULL);
    if (rc == PG_OK)
        set_outcome(res, true, "accepted", "paid");
    return rc;
}

/* What is already taken of payment p: its refunds that did not fail, and
 * whether provider_refund_no is one of them (by its key, or as the provider's
 * number of a refund we made). */
static pg_err provider_refund_seen(pg_app_t *app, arena_t *a, const payment_t *p, const char *provider_refund_no,
                                   int64_t *taken, bool *seen, const char **anomaly)
{
    db_val_t q[] = { DB_S(provider_refund_no), DB_S(provider_refund_no), DB_I(p->id), DB_I(p->id), DB_I(p->id) };
    db_result_t r;
    pg_err rc = db_query(app->db, a,
                         "SELECT (SELECT COUNT(*) FROM refunds WHERE (refund_no = ? OR provider_refund_no = ?)"
                         " AND payment_id = ?) AS seen,"
                         " (SELECT COALESCE(SUM(amount_fen), 0) FROM refunds WHERE payment_id = ?"
                         " AND status <> 'FAILED' AND reversed_at IS NULL) AS taken,"
                         " (SELECT anomaly FROM payments WHERE id = ?) AS anomaly",
                         q, 5, &r);
    if (rc != PG_OK)
        return rc;
    *seen = db_cell_i64(&r, 0, "seen") > 0;
    *taken = db_cell_i64(&r, 0, "taken");
    *anomaly = db_cell(&r, 0, "anomaly");
    return PG_OK;
}

/* A refund the provider made on its own (a Stripe Dashboard refund): a
 * refund row keyed by the provider's refund id, then the same bookkeeping
 * as ours (ledger, refunded_fen, REFUNDED and revocation when full,
 * order.refunded). Seen before (by that key, or as the provider's number
 * of one of ours): a duplicate. More than what is left of the payment: an
 * anomaly, logged and kept, nothing applied. The payment row is locked. */
static pg_err apply_provider_refund(pg_app_t *app, arena_t *a, const payment_event_t *ev, const payment_t *p,
                                    notify_result_t *res)
{
    const char *key = ev->provider_refund_no, *anomaly = NULL;
    int64_t taken = 0;
    bool seen = false, changed = false;
    pg_err rc;
    if (!key || !*key || strlen(key) > 32 || ev->refund_fen <= 0) {
        set_outcome(res, false, "mismatch", "provider refund without a usable id or amount");
        return PG_ERR_MISMATCH;
    }
    rc = provider_refund_seen(app, a, p, key, &taken, &seen, &anomaly);
    if (rc != PG_OK)
        return rc;
    if (seen) {
        set_outcome(res, true, "duplicate", "refund already recorded");
        return PG_OK;
    }
    if (strcmp(p->status, "PAID") || taken + ev->refund_fen > p->amount_fen) {
        log_msg(LOG_ERROR, "%s refund %s of payment %s (%lld) is more than is left of it (%lld of %lld taken, %s): "
                "not applied, check it in the provider's dashboard", ev->channel, key, p->payment_no,
                (long long)ev->refund_fen, (long long)taken, (long long)p->amount_fen, p->status);
        set_outcome(res, true, "amount_mismatch", "anomaly: provider refund beyond what was paid, not applied");
        return PG_OK;
    }
    rc = store_refund_insert(app->db, key, p->order_id, p->id, ev->refund_fen, "refunded at the provider",
                             anomaly && *anomaly ? "auto" : "merchant", NULL, NULL);
    if (rc == PG_OK)
        rc = refund_apply_in_tx(app, a, key, true, key, NULL, &changed);
    if (rc == PG_OK)
        set_outcome(res, true, changed ? "accepted" : "duplicate", "refunded at the provider");
    return rc;
}

static pg_err apply_refund(pg_app_t *app, arena_t *a, const payment_event_t *ev, notify_result_t *res)
{
    bool changed = false;
    pg_err rc;
    refund_row_t r;
    if (!ev->refund_no) {
        set_outcome(res, true, "ignored", "refund not made through paygate");
        return PG_OK;
    }
    rc = store_refund_get(app->db, a, ev->refund_no, false, &r);
    if (rc == PG_OK && (strcmp(r.payment_no, ev->payment_no) || (ev->refund_fen && ev->refund_fen != r.amount_fen))) {
        set_outcome(res, false, "amount_mismatch", "refund does not match ours (payment or amount)");
        return PG_ERR_MISMATCH;
    }
    if (ev->refund_abnormal)
        rc = refund_mark_abnormal_in_tx(app, a, ev->refund_no, ev->provider_refund_no, &changed);
    else
        rc = refund_apply_in_tx(app, a, ev->refund_no, ev->refund_succeeded, ev->provider_refund_no,
                                ev->refund_succeeded ? NULL : "refund failed at the provider", &changed);
    if (rc == PG_ERR_NOT_FOUND) {
        set_outcome(res, true, "ignored", "refund not made through paygate");
        return PG_OK;
    }
    if (rc == PG_OK)
        set_outcome(res, true, changed ? "accepted" : "duplicate",
                    ev->refund_abnormal ? "refund abnormal" : ev->refund_succeeded ? "refunded" : "refund failed");
    return rc;
}

static pg_err apply_in_tx(db_t *db, void *arg)
{
    apply_ctx_t *c = arg;
    const payment_event_t *ev = c->ev;
    notify_result_t *res = c->res;
    payment_t p;
    bool changed = false, order_closed = false;
    notification_rec_t rec;
    pg_err rc = store_payment_lock(db, c->a, ev->channel, ev->payment_no, &p);
    if (rc == PG_ERR_NOT_FOUND) {
        set_outcome(res, false, "unknown_payment", "no such payment");
        return PG_ERR_NOT_FOUND;
    }
    if (rc != PG_OK)
        return rc;
    res->order_no = p.order_no;
    if ((ev->kind == PAY_EVENT_PAID || ev->kind == PAY_EVENT_REFUND) && ev->amount_fen != p.amount_fen) {
        set_outcome(res, false, "amount_mismatch", "amount differs from the payment's");
        return PG_ERR_MISMATCH;
    }
    switch (ev->kind) {
    case PAY_EVENT_WAITING:
        set_outcome(res, true, "ignored", "buyer has not paid yet");
        break;
    case PAY_EVENT_PAID:
        rc = apply_paid(c->app, c->a, ev, &p, res);
        break;
    case PAY_EVENT_CLOSED:
        if (!strcmp(p.status, "PAID")) {
            set_outcome(res, true, "ignored", "closed after payment (refund): handled with refunds");
            break;
        }
        rc = store_payment_mark_closed(db, p.id, &changed);
        if (rc == PG_OK)   /* the last open payment closed: so is the order */
            rc = lifecycle_close_idle_order_in_tx(c->app, c->a, p.order_id, p.order_no, &order_closed);
        set_outcome(res, true, changed || order_closed ? "accepted" : "duplicate",
                    order_closed ? "payment and order closed" : "payment closed");
        break;
    case PAY_EVENT_REFUND:
        rc = ev->refund_by_provider ? apply_provider_refund(c->app, c->a, ev, &p, res)
                                    : apply_refund(c->app, c->a, ev, res);
        break;
    }
    if (rc != PG_OK)
        return rc;
    memset(&rec, 0, sizeof rec);
    rec.channel = ev->channel;
    rec.kind = ev->kind_name ? ev->kind_name : ev->kind == PAY_EVENT_REFUND ? "refund" : "payment";
    rec.payment_no = ev->payment_no;
    rec.notify_id = ev->notify_id;
    rec.outcome = res->outcome;
    rec.detail = res->detail;
    rec.raw_body = ev->raw_body;
    rec.raw_len = ev->raw_len;
    rec.source = ev->source;
    /* Only an accepted notification is evidence worth its whole body. */
    rec.keep_len = strcmp(res->outcome, "accepted") ? NOTIFY_REJECTED_KEEP_BYTES : 0;
    return store_notification_add(db, &rec);
}

/* Rejected notifications are logged outside the (rolled back) transaction:
 * their first bytes with length and hash, and from one source only so many
 * a minute (counted in the database, so across processes); beyond that
 * they are counted, not stored. */
static void record_rejection(pg_app_t *app, arena_t *a, const payment_event_t *ev, const notify_result_t *res)
{
    notification_rec_t rec;
    int64_t count = 0, limit = app->cfg->server.rejected_notifications_per_minute;
    if (store_notification_source_count(app->db, a, ev->source, time(NULL), &count) != PG_OK) {
        log_msg(LOG_ERROR, "could not count a rejected %s notification: %s", ev->channel, db_last_error(app->db));
        return;
    }
    if (count > limit) {
        if (count == limit + 1)
            log_msg(LOG_WARN, "%s notifications rejected from %s: more than %lld this minute, the rest are only counted",
                    ev->channel, ev->source ? ev->source : "-", (long long)limit);
        return;
    }
    memset(&rec, 0, sizeof rec);
    rec.channel = ev->channel;
    rec.kind = ev->kind_name ? ev->kind_name : ev->kind == PAY_EVENT_REFUND ? "refund" : "payment";
    rec.payment_no = ev->payment_no;
    rec.notify_id = ev->notify_id;
    rec.outcome = res->outcome;
    rec.detail = res->detail;
    rec.raw_body = ev->raw_body;
    rec.raw_len = ev->raw_len;
    rec.keep_len = NOTIFY_REJECTED_KEEP_BYTES;
    rec.source = ev->source;
    if (store_notification_add(app->db, &rec) != PG_OK)
        log_msg(LOG_ERROR, "could not store a rejected %s notification: %s", ev->channel,
                db_last_error(app->db));
}

static void log_rejection(const char *channel, const char *outcome, const char *detail);

static bool take_digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++, (*p)++) {
        if (**p < '0' || **p > '9')
            return false;
        v = v * 10 + (**p - '0');
    }
    *out = v;
    return true;
}

static bool take_sep(const char **p, char c, bool compact)
{
    if (compact)
        return true;
    if (**p != c)
        return false;
    (*p)++;
    return true;
}

time_t notify_beijing_time(const char *s)
{
    struct tm tm;
    time_t t, now = time(NULL);
    bool compact;
    const char *p = s;
    int y, mo, d, h, mi, sec;
    if (!s)
        return 0;
    compact = strlen(s) == 14;
    if (!take_digits(&p, 4, &y) || !take_sep(&p, '-', compact) || !take_digits(&p, 2, &mo) ||
        !take_sep(&p, '-', compact) || !take_digits(&p, 2, &d) || !take_sep(&p, ' ', compact) ||
        !take_digits(&p, 2, &h) || !take_sep(&p, ':', compact) || !take_digits(&p, 2, &mi) ||
        !take_sep(&p, ':', compact) || !take_digits(&p, 2, &sec))
        return 0;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return 0;
    memset(&tm, 0, sizeof tm);
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    t = timegm(&tm) - 8 * 3600;   /* Beijing is UTC+8 all year */
    if (t > now + 300 || t < now - 40 * 86400)
        return 0;
    return t;
}

static bool fits(const char *s, size_t max)
{
    return !s || strlen(s) <= max;
}

pg_err notify_apply(pg_app_t *app, arena_t *a, const payment_event_t *ev, notify_result_t *res)
{
    apply_ctx_t ctx = { app, a, ev, res };
    pg_err rc;
    res->payment_no = ev->payment_no;
    /* Signed is not the same as sane: values that cannot be ours are refused. */
    if (!fits(ev->payment_no, 32) || !fits(ev->provider_trade_no, 255) || !fits(ev->buyer_ref, 128) ||
        !fits(ev->refund_no, 32) || !fits(ev->provider_refund_no, 64) || !fits(ev->notify_id, 128)) {
        set_outcome(res, false, "bad_input", "a field is longer than any value we issue or store");
        log_rejection(ev->channel, res->outcome, res->detail);
        record_rejection(app, a, ev, res);
        return PG_OK;
    }
    /* COMMIT reply lost: answered failure (never acknowledged unconfirmed); the
     * provider redelivers, and the redelivery finds the payment (the key: its
     * payment_no) already moved and is a duplicate with no second effect. */
    /* On a Galera cluster the payment may have been made through another
     * node a moment ago: the transaction reads causally, so a genuine
     * notification never meets "unknown payment" for a row not yet applied
     * here (no effect on a single server). */
    (void)db_causal_reads(app->db, true);
    rc = db_tx(app->db, apply_in_tx, &ctx);
    (void)db_causal_reads(app->db, false);
    if (rc == PG_OK)
        return PG_OK;
    if (rc == PG_ERR_COMMIT_UNKNOWN) {
        set_outcome(res, false, "commit_unknown", "database did not confirm the commit: the provider sends it again");
        res->retry_later = true;
        log_msg(LOG_WARN, "%s notification for %s: commit not confirmed, answered failure", ev->channel,
                ev->payment_no ? ev->payment_no : "-");
        return rc;
    }
    if (rc == PG_ERR_NOT_FOUND || rc == PG_ERR_MISMATCH) {
        record_rejection(app, a, ev, res);
        return PG_OK;
    }
    set_outcome(res, false, NULL, "database error");
    res->retry_later = true;
    log_msg(LOG_ERROR, "%s notification for %s not recorded: %s", ev->channel,
            ev->payment_no ? ev->payment_no : "-", db_last_error(app->db));
    return rc;
}

/* Probes and forgeries can come in floods: one log line per 10 s per
 * process is enough (the first ones a minute from each source are stored
 * with their reason). */
static void log_rejection(const char *channel, const char *outcome, const char *detail)
{
    static time_t last;
    static unsigned suppressed;
    time_t now = time(NULL);
    if (now - last < 10) {
        suppressed++;
        return;
    }
    log_msg(LOG_WARN, "%s notification rejected (%s): %s%s", channel, outcome, detail,
            suppressed ? " (and earlier rejections not logged)" : "");
    last = now;
    suppressed = 0;
}

static void reject(pg_app_t *app, arena_t *a, const char *source, const char *channel, const char *body, size_t len,
                   const char *payment_no, const char *outcome, const char *detail, notify_result_t *res)
{
    payment_event_t ev;
    memset(&ev, 0, sizeof ev);
    ev.channel = channel;
    ev.source = source;
    ev.payment_no = payment_no;
    ev.raw_body = body;
    ev.raw_len = len;
    set_outcome(res, false, outcome, detail);
    res->payment_no = payment_no;
    log_rejection(channel, outcome, detail);
    record_rejection(app, a, &ev, res);
}

static const char *outcome_of(pg_err rc)
{
    return rc == PG_ERR_BAD_SIGNATURE ? "bad_signature" : rc == PG_ERR_MISMATCH ? "mismatch" : "bad_input";
}

static pay_event_kind_t alipay_event_kind(const alipay_notify_t *n)
{
    if (n->has_refund)
        return PAY_EVENT_REFUND;
    switch (n->status) {
    case ALIPAY_TRADE_SUCCESS:
    case ALIPAY_TRADE_FINISHED:
        return PAY_EVENT_PAID;
    case ALIPAY_TRADE_CLOSED:
        return PAY_EVENT_CLOSED;
    default:
        return PAY_EVENT_WAITING;
    }
}

/* We only speak RSA2 in UTF-8: a message that claims otherwise is refused
 * even when its signature verifies. */
static bool alipay_envelope_ok(const kv_list_t *form)
{
    const char *sign_type = kv_get(form, "sign_type"), *charset = kv_get(form, "charset");
    if (kv_count_key(form, "sign_type") > 1 || kv_count_key(form, "charset") > 1)
        return false;
    if (sign_type && strcmp(sign_type, "RSA2"))
        return false;
    return !charset || !strcasecmp(charset, "utf-8") || !strcasecmp(charset, "utf8");
}

void notify_alipay(pg_app_t *app, arena_t *a, const char *source, const char *body, size_t len,
                   notify_result_t *res)
{
    kv_list_t form;
    alipay_notify_t n;
    payment_event_t ev;
    buf_t reason;
    pg_err rc;
    memset(res, 0, sizeof *res);
    kv_init(&form, a);
    buf_init(&reason, a);
    if (!app->cfg->alipay.enabled) {
        set_outcome(res, false, NULL, "alipay channel disabled");
        return;
    }
    if (form_parse(body, len, &form) != PG_OK) {
        reject(app, a, source, "alipay", body, len, NULL, "bad_input", "body is not a valid form", res);
        return;
    }
    if (!alipay_envelope_ok(&form)) {
        reject(app, a, source, "alipay", body, len, kv_get(&form, "out_trade_no"), "bad_input",
               "sign_type must be RSA2 and charset utf-8", res);
        return;
    }
    rc = alipay_verify_notify(&app->alipay, &form, &n, &reason);
    if (rc != PG_OK) {
        reject(app, a, source, "alipay", body, len, kv_get(&form, "out_trade_no"), outcome_of(rc),
               reason.len ? reason.data : pg_err_name(rc), res);
        return;
    }
    memset(&ev, 0, sizeof ev);
    ev.channel = "alipay";
    ev.kind = alipay_event_kind(&n);
    ev.payment_no = n.out_trade_no;
    ev.notify_id = n.notify_id;
    ev.provider_trade_no = n.trade_no;
    ev.buyer_ref = n.buyer_id;
    ev.paid_at = notify_beijing_time(n.gmt_payment);
    ev.amount_fen = n.total_fen;
    ev.refund_no = n.out_biz_no;
    ev.refund_succeeded = true;   /* Alipay notifies refunds that happened */
    ev.raw_body = body;
    ev.raw_len = len;
    ev.source = source;
    (void)notify_apply(app, a, &ev, res);
}

static void notify_wechat_v3(pg_app_t *app, arena_t *a, const char *source, const wxv3_sig_headers_t *h,
                             const char *body, size_t len, notify_result_t *res);

static bool looks_json(const char *body, size_t len)
{
    size_t i = 0;
    while (i < len && (body[i] == ' ' || body[i] == '\t' || body[i] == '\r' || body[i] == '\n'))
        i++;
    return i < len && body[i] == '{';
}

void notify_wechat(pg_app_t *app, arena_t *a, const char *source, const wxv3_sig_headers_t *h, const char *body,
                   size_t len, notify_result_t *res)
{
    wechat_notify_t n;
    payment_event_t ev;
    buf_t reason;
    pg_err rc;
    memset(res, 0, sizeof *res);
    buf_init(&reason, a);
    if (!app->cfg->wechat.enabled) {
        set_outcome(res, false, NULL, "wechat channel disabled");
        return;
    }
    if (looks_json(body, len)) {
        notify_wechat_v3(app, a, source, h, body, len, res);
        return;
    }
    rc = wechat_verify_notify(a, &app->wechat, body, len, &n, &reason);
    if (rc != PG_OK) {
        /* The payment number of an unverified message is only a hint for the log. */
        reject(app, a, source, "wechat", body, len, NULL, outcome_of(rc), reason.len ? reason.data : pg_err_name(rc), res);
        return;
    }
    memset(&ev, 0, sizeof ev);
    ev.channel = "wechat";
    ev.kind = n.paid ? PAY_EVENT_PAID : PAY_EVENT_WAITING;
    ev.payment_no = n.out_trade_no;
    ev.provider_trade_no = n.transaction_id;
    ev.buyer_ref = n.openid;
    ev.paid_at = notify_beijing_time(n.time_end);
    ev.amount_fen = n.total_fee;
    ev.raw_body = body;
    ev.raw_len = len;
    ev.source = source;
    (void)notify_apply(app, a, &ev, res);
}

void notify_wechat_refund(pg_app_t *app, arena_t *a, const char *source, const wxv3_sig_headers_t *h,
                          const char *body, size_t len, notify_result_t *res)
{
    wechat_refund_notify_t n;
    payment_event_t ev;
    buf_t reason;
    pg_err rc;
    memset(res, 0, sizeof *res);
    buf_init(&reason, a);
    memset(&ev, 0, sizeof ev);
    ev.channel = "wechat";
    ev.kind = PAY_EVENT_REFUND;
    ev.raw_body = body;
    ev.raw_len = len;
    ev.source = source;
    if (!app->cfg->wechat.enabled) {
        set_outcome(res, false, NULL, "wechat channel disabled");
        return;
    }
    if (looks_json(body, len)) {
        notify_wechat_v3(app, a, source, h, body, len, res);
        return;
    }
    rc = wechat_verify_refund_notify(a, &app->wechat, body, len, &n, &reason);
    if (rc != PG_OK) {
        reject(app, a, source, "wechat", body, len, NULL, outcome_of(rc), reason.len ? reason.data : pg_err_name(rc), res);
        return;
    }
    if (!strcmp(n.refund_status, "PROCESSING")) {
        set_outcome(res, true, "ignored", "refund still processing");
        return;
    }
    ev.payment_no = n.out_trade_no;
    ev.amount_fen = n.total_fee;
    ev.refund_no = n.out_refund_no;
    ev.refund_succeeded = !strcmp(n.refund_status, "SUCCESS");
    ev.refund_abnormal = !strcmp(n.refund_status, "CHANGE");
    ev.refund_fen = n.refund_fee;
    ev.provider_refund_no = n.refund_id;
    (void)notify_apply(app, a, &ev, res);
}

/* ---- WeChat Pay API v3 notifications ---------------------------------- */

static const char *v3_outcome(pg_err rc)
{
    return rc == PG_ERR_BAD_SIGNATURE || rc == PG_ERR_NOT_FOUND ? "bad_signature"
           : rc == PG_ERR_MISMATCH                              ? "mismatch"
                                                                : "bad_input";
}

/* TRANSACTION.SUCCESS: the decrypted transaction. */
static pg_err v3_payment_event(arena_t *a, const wxv3_client_t *c, const wxv3_event_t *e, payment_event_t *ev,
                               buf_t *reason)
{
    wxv3_transaction_t t;
    pg_err rc = wxv3_parse_transaction(a, c, e->plaintext, e->plaintext_len, &t, reason);
    if (rc != PG_OK)
        return rc;
    ev->kind = !strcmp(t.trade_state, "SUCCESS") ? PAY_EVENT_PAID : PAY_EVENT_WAITING;
    ev->payment_no = t.out_trade_no;
    ev->provider_trade_no = t.transaction_id;
    ev->buyer_ref = t.openid;
    ev->paid_at = notify_beijing_time(wxv3_beijing_time(a, t.success_time));
    ev->amount_fen = t.total_fen;
    return PG_OK;
}

/* REFUND.*: the decrypted refund; *processing when there is nothing to record yet. */
static pg_err v3_refund_event(arena_t *a, const wxv3_client_t *c, const wxv3_event_t *e, payment_event_t *ev,
                              bool *processing, buf_t *reason)
{
    wxv3_refund_t r;
    pg_err rc = wxv3_parse_refund(a, c, true, e->plaintext, e->plaintext_len, &r, reason);
    if (rc != PG_OK)
        return rc;
    if (!r.out_trade_no) {
        buf_set_error(reason, "refund notification without out_trade_no");
        return PG_ERR_BAD_INPUT;
    }
    *processing = !strcmp(r.status, "PROCESSING");
    ev->kind = PAY_EVENT_REFUND;
    ev->payment_no = r.out_trade_no;
    ev->amount_fen = r.total_fen;
    ev->refund_no = r.out_refund_no;
    ev->refund_fen = r.refund_fen;
    ev->refund_succeeded = !strcmp(r.status, "SUCCESS");
    ev->refund_abnormal = !strcmp(r.status, "ABNORMAL");
    ev->provider_refund_no = r.refund_id;
    return PG_OK;
}

/* The signature first (an unknown serial refreshes the platform
 * certificates once, rate-limited), then the envelope and its resource. */
static pg_err v3_open(pg_app_t *app, arena_t *a, const wxv3_sig_headers_t *h, const char *body, size_t len,
                      wxv3_client_t **client, wxv3_event_t *e, buf_t *reason)
{
    time_t now = time(NULL);
    wxv3_client_t *c = app_wechat_v3(app, a, now);
    pg_err rc;
    *client = c;
    if (!c) {
        buf_set_error(reason, "API v3 notification, but the v3 keys are not configured");
        return PG_ERR_BAD_SIGNATURE;
    }
    if (app->wechat_certs) {
        rc = wxv3_certstore_verify(app->wechat_certs, a, c, h, body, len, now, reason);
        if (rc != PG_OK)
            return rc;
    }
    return wxv3_open_notification(a, c, h, body, len, now, e, reason);
}

static void notify_wechat_v3(pg_app_t *app, arena_t *a, const char *source, const wxv3_sig_headers_t *h,
                             const char *body, size_t len, notify_result_t *res)
{
    static const wxv3_sig_headers_t none = { NULL, NULL, NULL, NULL };
    wxv3_client_t *c;
    wxv3_event_t e;
    payment_event_t ev;
    buf_t reason;
    bool processing = false, refund;
    pg_err rc;
    res->v3 = true;
    buf_init(&reason, a);
    rc = v3_open(app, a, h ? h : &none, body, len, &c, &e, &reason);
    if (rc != PG_OK) {
        reject(app, a, source, "wechat", body, len, NULL, v3_outcome(rc), reason.len ? reason.data : pg_err_name(rc),
               res);
        res->v3 = true;
        return;
    }
    memset(&ev, 0, sizeof ev);
    ev.channel = "wechat";
    ev.notify_id = e.id;
    ev.raw_body = body;
    ev.raw_len = len;
    ev.source = source;
    refund = !strncmp(e.event_type, "REFUND.", 7);
    if (refund)
        rc = v3_refund_event(a, c, &e, &ev, &processing, &reason);
    else if (!strncmp(e.event_type, "TRANSACTION.", 12))
        rc = v3_payment_event(a, c, &e, &ev, &reason);
    else {
        buf_set_error(&reason, "event type %s not acted on", e.event_type);
        rc = PG_ERR_BAD_INPUT;
    }
    if (rc != PG_OK) {
        reject(app, a, source, "wechat", body, len, NULL, v3_outcome(rc), reason.len ? reason.data : pg_err_name(rc),
               res);
        res->v3 = true;
        return;
    }
    if (processing) {
        set_outcome(res, true, "ignored", "refund still processing");
        return;
    }
    (void)notify_apply(app, a, &ev, res);
}

static void transfer_reject(pg_app_t *app, arena_t *a, const char *source, const char *body, size_t len,
                            const char *out_bill_no, pg_err rc, const buf_t *reason, notify_result_t *res)
{
    reject(app, a, source, "wechat", body, len, out_bill_no, v3_outcome(rc), reason->len ? reason->data : pg_err_name(rc),
           res);
    res->v3 = true;
}

void notify_wechat_transfer(pg_app_t *app, arena_t *a, const char *source, const wxv3_sig_headers_t *h,
                            const char *body, size_t len, notify_result_t *res)
{
    static const wxv3_sig_headers_t none = { NULL, NULL, NULL, NULL };
    wxv3_client_t *c;
    wxv3_event_t e;
    wxv3_bill_t bill;
    payment_event_t ev;
    buf_t reason;
    pg_err rc;
    memset(res, 0, sizeof *res);
    res->v3 = true;
    buf_init(&reason, a);
    rc = v3_open(app, a, h ? h : &none, body, len, &c, &e, &reason);
    if (rc == PG_OK && (strcmp(e.event_type, "MCHTRANSFER.BILL.FINISHED") != 0 ||
                        strcmp(e.original_type, "mch_payment") != 0)) {
        buf_set_error(&reason, "event type %s (%s) is not a transfer's", e.event_type, e.original_type);
        rc = PG_ERR_BAD_INPUT;
    }
    if (rc == PG_OK)
        rc = wxv3_parse_bill_notification(a, c, e.plaintext, e.plaintext_len, &bill, &reason);
    if (rc == PG_OK && (!fits(bill.transfer_bill_no, 64) || !fits(e.id, 128))) {
        buf_set_error(&reason, "a field is longer than any value we store");
        rc = PG_ERR_BAD_INPUT;
    }
    if (rc != PG_OK) {
        transfer_reject(app, a, source, body, len, NULL, rc, &reason, res);
        return;
    }
    memset(&ev, 0, sizeof ev);
    ev.channel = "wechat";
    ev.kind_name = "payout";
    ev.notify_id = e.id;
    ev.payment_no = bill.out_bill_no;
    ev.raw_body = body;
    ev.raw_len = len;
    ev.source = source;
    rc = payout_apply_notice(app, a, &bill, &ev, res);
    res->v3 = true;
    if (rc == PG_ERR_NOT_FOUND || rc == PG_ERR_MISMATCH) {
        log_rejection("wechat", res->outcome, res->detail);
        record_rejection(app, a, &ev, res);
    }
}

/* An event we take note of but that moves nothing: stored (its first bytes,
 * as for rejections) and acknowledged, so that Stripe stops sending it. */
static void stripe_ignore(pg_app_t *app, const stripe_event_t *se, const char *source, const char *payment_no,
                          const char *body, size_t len, const char *detail, notify_result_t *res)
{
    notification_rec_t rec;
    memset(&rec, 0, sizeof rec);
    rec.channel = "stripe";
    rec.kind = se->kind == STRIPE_EVENT_REFUND || se->kind == STRIPE_EVENT_CHARGE_REFUNDED ? "refund" : "payment";
    rec.payment_no = payment_no && strlen(payment_no) <= 32 ? payment_no : NULL;
    rec.notify_id = se->id && strlen(se->id) <= 128 ? se->id : NULL;
    rec.outcome = "ignored";
    rec.detail = detail;
    rec.raw_body = body;
    rec.raw_len = len;
    rec.keep_len = NOTIFY_REJECTED_KEEP_BYTES;
    rec.source = source;
    res->payment_no = rec.payment_no;
    if (store_notification_add(app->db, &rec) != PG_OK) {
        set_outcome(res, false, NULL, "database error");
        log_msg(LOG_ERROR, "stripe event %s not stored: %s", rec.notify_id ? rec.notify_id : "-",
                db_last_error(app->db));
        return;
    }
    set_outcome(res, true, "ignored", detail);
}

/* A checkout.session.* event as a payment event; NULL detail when it is ours to apply. */
static const char *stripe_session_event(const pg_app_t *app, const stripe_event_t *se, payment_event_t *ev)
{
    const stripe_session_t *s = &se->session;
    if (s->payment_no && strcmp(s->payment_no, s->client_reference_id))
        return "session's metadata and client_reference_id differ";
    if (!s->currency || strcmp(s->currency, app->cfg->stripe.currency))
        return "session in another currency";
    ev->payment_no = s->client_reference_id;
    ev->provider_trade_no = s->id;
    ev->amount_fen = s->amount_total;
    ev->paid_at = se->created;
    switch (se->kind) {
    case STRIPE_EVENT_SESSION_COMPLETED:
        ev->kind = s->payment_status && !strcmp(s->payment_status, "paid") ? PAY_EVENT_PAID : PAY_EVENT_WAITING;
        break;
    case STRIPE_EVENT_SESSION_ASYNC_PAID:
        ev->kind = PAY_EVENT_PAID;
        break;
    default:   /* async payment failed, session expired: the buyer cannot pay it any more */
        ev->kind = PAY_EVENT_CLOSED;
        break;
    }
    return NULL;
}

/* Stripe could not be asked (timeout, 5xx): answer failure, Stripe sends
 * the event again. */
static const char STRIPE_ASK_LATER[] = "stripe: the payment intent could not be read, try again later";

/* Whose payment a payment intent is: metadata[payment_no] (set by our
 * session), read back from Stripe. NULL with *problem when not ours, or
 * STRIPE_ASK_LATER when Stripe did not answer. */
static const char *stripe_intent_payment(pg_app_t *app, arena_t *a, const char *pi, const char *hint,
                                         int64_t *amount, const char **problem)
{
    stripe_intent_t in;
    stripe_error_t e;
    buf_t err;
    pg_err rc;
    buf_init(&err, a);
    *problem = NULL;
    if (!pi) {
        *problem = "refund without a payment intent";
        return NULL;
    }
    rc = stripe_intent_retrieve(&app->stripe, a, pi, &in, &e, &err);
    if (rc != PG_OK) {
        *problem = rc == PG_ERR_NOT_FOUND || rc == PG_ERR_BAD_INPUT ? "payment intent unknown to Stripe"
                                                                    : STRIPE_ASK_LATER;
        if (*problem == STRIPE_ASK_LATER)
            log_msg(LOG_WARN, "stripe: payment intent %s not read: %s", pi, err.len ? err.data : pg_err_name(rc));
        return NULL;
    }
    if (!in.payment_no || (hint && strcmp(hint, in.payment_no)) || !in.currency ||
        strcmp(in.currency, app->cfg->stripe.currency)) {
        *problem = "payment intent not made by paygate (or in another currency)";
        return NULL;
    }
    *amount = in.amount;
    return in.payment_no;
}

/* A refund Stripe made without our numbers (the Dashboard): recorded under
 * its id once it succeeded. */
static const char *stripe_provider_refund(pg_app_t *app, arena_t *a, const stripe_refund_t *r, payment_event_t *ev,
                                          const char **ignore)
{
    const char *problem = NULL;
    if (strcmp(r->status, "succeeded")) {
        *ignore = "refund made outside paygate, not (yet) succeeded";
        return NULL;
    }
    if (!r->currency || strcmp(r->currency, app->cfg->stripe.currency) || r->amount <= 0)
        return "refund in another currency or without its amount";
    ev->payment_no = stripe_intent_payment(app, a, r->payment_intent, r->payment_no, &ev->amount_fen, &problem);
    if (!ev->payment_no) {
        if (problem == STRIPE_ASK_LATER)
            return problem;
        *ignore = problem;
        return NULL;
    }
    ev->kind = PAY_EVENT_REFUND;
    ev->refund_fen = r->amount;
    ev->refund_succeeded = true;
    ev->provider_refund_no = r->id;
    ev->refund_by_provider = true;
    return NULL;
}

/* A refund event: ours when it carries our refund and payment numbers;
 * otherwise made at Stripe. *ignore says why it changes nothing. */
static const char *stripe_refund_event(pg_app_t *app, arena_t *a, const stripe_event_t *se, payment_event_t *ev,
                                       const char **ignore)
{
    const stripe_refund_t *r = &se->refund;
    *ignore = NULL;
    if (!r->refund_no || !r->payment_no)
        return stripe_provider_refund(app, a, r, ev, ignore);
    if (!r->currency || strcmp(r->currency, app->cfg->stripe.currency) || r->payment_amount < 0 || r->amount < 0)
        return "refund in another currency or without its amounts";
    if (!strcmp(r->status, "pending") || !strcmp(r->status, "requires_action")) {
        *ignore = "refund still processing";
        return NULL;
    }
    ev->kind = PAY_EVENT_REFUND;
    ev->payment_no = r->payment_no;
    ev->amount_fen = r->payment_amount;
    ev->refund_no = r->refund_no;
    ev->refund_fen = r->amount;
    ev->refund_succeeded = !strcmp(r->status, "succeeded");
    ev->provider_refund_no = r->id;
    return NULL;
}

#define STRIPE_REFUNDS_MAX 100

/* charge.refunded names no refund (the charge's refunds list is not sent
 * since API 2022-11-15): the payment intent's refunds are read back, and
 * each succeeded one made outside paygate is applied as its own event (ours
 * come with their refund_no and are recorded through the refund API and
 * refund.* events). More refunded than charged: an anomaly. */
static void stripe_charge_refunded(pg_app_t *app, arena_t *a, const char *source, const stripe_event_t *se,
                                   const char *body, size_t len, notify_result_t *res)
{
    stripe_refund_t *list = arena_alloc(a, STRIPE_REFUNDS_MAX * sizeof *list);
    const char *problem = NULL, *ignore = "charge.refunded: every refund of it was made through paygate";
    stripe_error_t e;
    buf_t err;
    size_t n = 0;
    int64_t paid = -1;
    const char *payment_no;
    buf_init(&err, a);
    if (!se->charge_currency || strcmp(se->charge_currency, app->cfg->stripe.currency) ||
        se->charge_amount < 0 || se->charge_amount_refunded < 0 || se->charge_amount_refunded > se->charge_amount) {
        reject(app, a, source, "stripe", body, len, NULL, "amount_mismatch",
               "anomaly: charge in another currency or refunded beyond its amount", res);
        return;
    }
    payment_no = stripe_intent_payment(app, a, se->charge_payment_intent, NULL, &paid, &problem);
    if (problem == STRIPE_ASK_LATER) {
        set_outcome(res, false, NULL, problem);
        res->retry_later = true;
        return;
    }
    if (!payment_no) {
        stripe_ignore(app, se, source, NULL, body, len, problem, res);
        return;
    }
    if (!list || stripe_refund_list(&app->stripe, a, se->charge_payment_intent, list, STRIPE_REFUNDS_MAX, &n, &e,
                                    &err) != PG_OK) {
        set_outcome(res, false, NULL, "stripe: the charge's refunds could not be read");
        res->retry_later = true;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        payment_event_t ev;
        const char *skip = NULL;
        if (list[i].refund_no && list[i].payment_no)
            continue;
        memset(&ev, 0, sizeof ev);
        ev.channel = "stripe";
        ev.notify_id = se->id;
        ev.raw_body = body;
        ev.raw_len = len;
        ev.source = source;
        problem = stripe_provider_refund(app, a, &list[i], &ev, &skip);
        if (problem == STRIPE_ASK_LATER) {
            set_outcome(res, false, NULL, problem);
            res->retry_later = true;
            return;
        }
        if (problem || skip)
            continue;
        if (notify_apply(app, a, &ev, res) != PG_OK || !res->ack)
            return;
        ignore = NULL;
    }
    if (ignore)
        stripe_ignore(app, se, source, payment_no, body, len, ignore, res);
}

/* Connect events name another account; a test-mode event must not move a
 * live shop's money (nor the other way round). */
static const char *stripe_account_problem(const pg_app_t *app, const stripe_event_t *se)
{
    const char *key = app->cfg->stripe.secret_key;
    bool live_key = key && strstr(key, "_live_") != NULL;
    if (se->account)
        return "event for another (connected) account";
    if (se->livemode != live_key)
        return se->livemode ? "live-mode event for a test-mode key" : "test-mode event for a live-mode key";
    return NULL;
}

static void stripe_dispatch(pg_app_t *app, arena_t *a, const char *source, const stripe_event_t *se,
                            const char *body, size_t len, notify_result_t *res)
{
    payment_event_t ev;
    const char *problem = NULL, *ignore = NULL;
    memset(&ev, 0, sizeof ev);
    ev.channel = "stripe";
    ev.notify_id = se->id;
    ev.raw_body = body;
    ev.raw_len = len;
    ev.source = source;
    switch (se->kind) {
    case STRIPE_EVENT_SESSION_COMPLETED:
    case STRIPE_EVENT_SESSION_ASYNC_PAID:
    case STRIPE_EVENT_SESSION_ASYNC_FAILED:
    case STRIPE_EVENT_SESSION_EXPIRED:
        if (!se->session.client_reference_id)
            ignore = "session not made by paygate (no client_reference_id)";
        else
            problem = stripe_session_event(app, se, &ev);
        break;
    case STRIPE_EVENT_REFUND:
        problem = stripe_refund_event(app, a, se, &ev, &ignore);
        break;
    case STRIPE_EVENT_CHARGE_REFUNDED:
        stripe_charge_refunded(app, a, source, se, body, len, res);
        return;
    default:
        ignore = "event type not acted on";
        break;
    }
    if (problem == STRIPE_ASK_LATER) {
        set_outcome(res, false, NULL, problem);
        res->retry_later = true;
        return;
    }
    if (problem) {
        reject(app, a, source, "stripe", body, len, ev.payment_no, "mismatch", problem, res);
        return;
    }
    if (ignore) {
        stripe_ignore(app, se, source, ev.payment_no, body, len, ignore, res);
        return;
    }
    (void)notify_apply(app, a, &ev, res);
}

void notify_stripe(pg_app_t *app, arena_t *a, const char *source, const char *signature, const char *body,
                   size_t len, notify_result_t *res)
{
    stripe_event_t se;
    buf_t reason;
    const char *problem;
    pg_err rc;
    memset(res, 0, sizeof *res);
    buf_init(&reason, a);
    if (!app->cfg->stripe.enabled) {
        set_outcome(res, false, NULL, "stripe channel disabled");
        return;
    }
    /* Nothing of the body is read before its signature holds. */
    rc = stripe_verify_signature(app->cfg->stripe.webhook_secret, signature, body, len, time(NULL),
                                 STRIPE_SIGNATURE_TOLERANCE_S, &reason);
    if (rc != PG_OK) {
        reject(app, a, source, "stripe", body, len, NULL, outcome_of(rc), reason.len ? reason.data : pg_err_name(rc),
               res);
        return;
    }
    rc = stripe_event_parse(a, body, len, &se, &reason);
    if (rc != PG_OK) {
        reject(app, a, source, "stripe", body, len, NULL, "bad_input", reason.len ? reason.data : pg_err_name(rc),
               res);
        return;
    }
    problem = stripe_account_problem(app, &se);
    if (problem) {
        reject(app, a, source, "stripe", body, len, NULL, "mismatch", problem, res);
        return;
    }
    stripe_dispatch(app, a, source, &se, body, len, res);
}
