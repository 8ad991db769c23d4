/* refund: see include/refund.h. */
#include "refund.h"

#include <stdio.h>
#include <string.h>

#include "channel.h"
#include "crypto.h"
#include "events.h"
#include "ledger.h"
#include "log.h"
#include "money.h"
#include "store_lifecycle.h"
#include "text.h"

#define REFUND_NO_LEN 24
#define REFUND_CLAIM_S 120   /* longer than any provider call */

static pg_err fail(refund_result_t *res, buf_t *msg, pg_err rc, const char *code, const char *text)
{
    res->error_code = code;
    buf_puts(msg, text);
    return rc;
}

static void request_hash(const refund_request_t *req, char out[65])
{
    buf_t b;
    buf_init(&b, NULL);
    buf_printf(&b, "order=%s\namount=%s\nreason=%s", req->order_no, req->amount_fen ? req->amount_fen : "*",
               req->reason ? req->reason : "");
    crypto_sha256_hex(b.data, b.len, out);
    buf_free(&b);
}

typedef struct reserve_ctx {
    pg_app_t *app;
    arena_t *a;
    const refund_request_t *req;
    const char *hash;
    int64_t amount_fen;
    bool amount_given;
    char refund_no[REFUND_NO_LEN + 1];
    refund_result_t *res;
    buf_t *msg;
} reserve_ctx_t;

/* A payment made through an app store is refunded by the store (its
 * refund notification records it), never sent by us: no channel refunds it. */
static bool refundable_channel(db_t *db, arena_t *a, int64_t payment_id)
{
    db_val_t p[] = { DB_I(payment_id) };
    db_result_t r;
    if (db_query(db, a, "SELECT channel FROM payments WHERE id = ?", p, 1, &r) != PG_OK || r.rows == 0)
        return true;   /* a database fault shows up at the next statement */
    return channel_find(db_cell(&r, 0, "channel")) != NULL;
}

static pg_err reserve_in_tx(db_t *db, void *arg)
{
    reserve_ctx_t *c = arg;
    order_lock_t o;
    int64_t left;
    pg_err rc = store_order_lock(db, c->a, c->req->order_no, &o);
    if (rc == PG_ERR_NOT_FOUND)
        return fail(c->res, c->msg, PG_ERR_NOT_FOUND, "not_found", "no such order");
    if (rc != PG_OK)
        return rc;
    if (strcmp(o.status, "PAID") && strcmp(o.status, "PARTIALLY_REFUNDED")) {
        buf_printf(c->msg, "order is %s: only paid orders can be refunded", o.status);
        c->res->error_code = "order_not_refundable";
        return PG_ERR_CONFLICT;
    }
    if (o.paid_payment_id == 0)
        return fail(c->res, c->msg, PG_ERR_CONFLICT, "order_not_refundable", "order has no paid payment");
    if (!refundable_channel(db, c->a, o.paid_payment_id))
        return fail(c->res, c->msg, PG_ERR_CONFLICT, "refund_by_store",
                    "an in-app purchase is refunded by the store (App Store, Google Play), not through paygate");
    left = o.amount_fen - o.reserved_fen;
    if (!c->amount_given)
        c->amount_fen = left;
    if (left <= 0 || c->amount_fen > left) {
        buf_printf(c->msg, "refund of %lld fen exceeds the %lld fen left to refund", (long long)c->amount_fen,
                   (long long)(left > 0 ? left : 0));
        c->res->error_code = "refund_exceeds_paid";
        return PG_ERR_CONFLICT;
    }
    /* c->refund_no was chosen before the first attempt: a re-run after a lost
     * COMMIT reply can never make a second refund (unique refund_no). */
    return store_refund_insert(db, c->refund_no, o.id, o.paid_payment_id, c->amount_fen, c->req->reason,
                               "merchant", c->req->request_id, c->hash);
}

/* After a lost COMMIT reply: did the reservation commit? A locking read by
 * refund_no waits for a transaction that is still committing. */
static pg_err reserve_found(db_t *db, void *arg)
{
    reserve_ctx_t *c = arg;
    refund_row_t r;
    pg_err rc = store_refund_get(db, c->a, c->refund_no, true, &r);
    if (rc == PG_OK)
        c->amount_fen = r.amount_fen;
    return rc;
}

static pg_err result_from_row(pg_app_t *app, arena_t *a, const char *refund_no, refund_result_t *res)
{
    refund_row_t r;
    pg_err rc = store_refund_get(app->db, a, refund_no, false, &r);
    if (rc != PG_OK)
        return rc;
    res->refund_no = r.refund_no;
    res->status = r.status;
    res->amount_fen = r.amount_fen;
    return PG_OK;
}

static pg_err validate(const refund_request_t *req, int64_t *amount, refund_result_t *res, buf_t *msg)
{
    if (!req->order_no || !text_is_token(req->order_no, 32, ""))
        return fail(res, msg, PG_ERR_NOT_FOUND, "not_found", "no such order");
    if (req->amount_fen && (money_parse_fen(req->amount_fen, MONEY_MAX_FEN, amount) != PG_OK || *amount <= 0))
        return fail(res, msg, PG_ERR_BAD_INPUT, "invalid_field", "'amount_fen' must be a positive whole number of fen");
    if (req->reason && strlen(req->reason) > 200)
        return fail(res, msg, PG_ERR_BAD_INPUT, "invalid_field", "'reason' is limited to 200 bytes");
    if (req->request_id && !text_is_token(req->request_id, 64, "_.:-"))
        return fail(res, msg, PG_ERR_BAD_INPUT, "invalid_field", "'request_id' must be 1-64 of [A-Za-z0-9_.:-]");
    return PG_OK;
}

static pg_err repeat_of(pg_app_t *app, arena_t *a, const refund_request_t *req, const char *hash,
                        refund_result_t *res, buf_t *msg)
{
    refund_row_t r;
    pg_err rc = store_refund_by_request_id(app->db, a, req->request_id, &r);
    if (rc != PG_OK)
        return rc;
    if (!r.request_hash || !crypto_ct_streq(r.request_hash, hash))
        return fail(res, msg, PG_ERR_CONFLICT, "idempotency_conflict",
                    "request_id was already used for a refund with other fields");
    res->repeated = true;
    if (!strcmp(r.status, "PENDING"))
        (void)refund_drive(app, a, r.refund_no, msg);
    buf_clear(msg);
    return result_from_row(app, a, r.refund_no, res);
}

pg_err refund_create(pg_app_t *app, arena_t *a, const refund_request_t *req, refund_result_t *res, buf_t *msg)
{
    reserve_ctx_t ctx;
    char hash[65];
    pg_err rc;
    memset(res, 0, sizeof *res);
    memset(&ctx, 0, sizeof ctx);
    rc = validate(req, &ctx.amount_fen, res, msg);
    if (rc != PG_OK)
        return rc;
    request_hash(req, hash);
    if (req->request_id) {
        rc = repeat_of(app, a, req, hash, res, msg);
        if (rc != PG_ERR_NOT_FOUND)
            return rc;
    }
    ctx.app = app;
    ctx.a = a;
    ctx.req = req;
    ctx.hash = hash;
    ctx.amount_given = req->amount_fen != NULL;
    ctx.res = res;
    ctx.msg = msg;
    rc = crypto_random_alnum(ctx.refund_no, REFUND_NO_LEN);
    if (rc != PG_OK)
        return rc;
    /* Outcome unknown (COMMIT reply lost): looked up again by refund_no; if it
     * still cannot be told, the client gets the refund_no and a retryable error. */
    rc = db_tx_resolve(app->db, reserve_in_tx, reserve_found, &ctx);
    if (rc == PG_ERR_CONFLICT && !res->error_code && req->request_id)   /* a concurrent twin */
        return repeat_of(app, a, req, hash, res, msg);
    if (rc == PG_ERR_COMMIT_UNKNOWN) {
        log_msg(LOG_ERROR, "refund %s of order %s: the database did not confirm the reservation", ctx.refund_no,
                req->order_no);
        res->refund_no = arena_strdup(a, ctx.refund_no);
        buf_clear(msg);
        buf_printf(msg, "the database did not confirm refund %s: look at the order's refunds before asking again",
                   ctx.refund_no);
        res->error_code = "outcome_unknown";
        return rc;
    }
    if (rc != PG_OK)
        return rc;
    log_msg(LOG_INFO, "refund %s of order %s: %lld fen reserved", ctx.refund_no, req->order_no,
            (long long)ctx.amount_fen);
    (void)refund_drive(app, a, ctx.refund_no, msg);
    buf_clear(msg);
    return result_from_row(app, a, ctx.refund_no, res);
}

typedef struct apply_ctx {
    pg_app_t *app;
    arena_t *a;
    const char *refund_no;
    bool succeeded;
    const char *provider_refund_no;
    const char *failure;
    bool changed;
} apply_ctx_t;

pg_err refund_apply_in_tx(pg_app_t *app, arena_t *a, const char *refund_no, bool succeeded,
                          const char *provider_refund_no, const char *failure, bool *changed)
{
    refund_row_t r;
    order_lock_t o;
    const char *status = NULL;
    char extra[160];
    pg_err rc = store_refund_get(app->db, a, refund_no, false, &r);
    *changed = false;
    if (rc != PG_OK)
        return rc;
    rc = store_order_lock_by_id(app->db, a, r.order_id, &o);   /* order first, then refund: one lock order */
    if (rc == PG_OK)
        rc = store_refund_finish(app->db, r.id, succeeded, provider_refund_no, failure, changed);
    if (rc != PG_OK || !*changed)
        return rc;
    if (!succeeded) {
        log_msg(LOG_WARN, "refund %s of order %s failed: %s", refund_no, r.order_no, failure ? failure : "-");
        return PG_OK;
    }
    rc = ledger_post_refund_in_tx(app, a, r.id);
    if (rc != PG_OK)
        return rc;
    if (strcmp(r.kind, "merchant")) {
        log_msg(LOG_INFO, "automatic refund %s of payment %s done", refund_no, r.payment_no);
        return PG_OK;
    }
    rc = store_order_add_refunded(app->db, r.order_id, r.amount_fen, &status, a);
    if (rc == PG_OK && status && !strcmp(status, "REFUNDED"))
        rc = store_entitlement_revoke(app->db, r.order_id);
    snprintf(extra, sizeof extra, "\"refund_no\":\"%s\",\"refund_amount_fen\":%lld", refund_no,
             (long long)r.amount_fen);
    if (rc == PG_OK)
        rc = events_queue(app, a, "order.refunded", r.order_no, extra);
    return rc;
}

#define REFUND_ABNORMAL_DETAIL "abnormal at the provider: handle it by hand in the merchant platform"

pg_err refund_mark_abnormal_in_tx(pg_app_t *app, arena_t *a, const char *refund_no, const char *provider_refund_no,
                                  bool *changed)
{
    refund_row_t r;
    order_lock_t o;
    char extra[160];
    pg_err rc = store_refund_get(app->db, a, refund_no, false, &r);
    *changed = false;
    if (rc != PG_OK)
        return rc;
    rc = store_order_lock_by_id(app->db, a, r.order_id, &o);   /* order first, then refund: one lock order */
    if (rc == PG_OK)
        rc = store_refund_mark_abnormal(app->db, r.id, provider_refund_no, REFUND_ABNORMAL_DETAIL, changed);
    if (rc != PG_OK || !*changed)
        return rc;
    log_msg(LOG_ERROR,
            "refund %s of order %s (%lld fen, %s) is ABNORMAL: the provider took the money but could not pay "
            "it back to the buyer; handle it by hand in the %s merchant platform (the amount stays reserved)",
            refund_no, r.order_no, (long long)r.amount_fen, r.channel, r.channel);
    snprintf(extra, sizeof extra, "\"refund_no\":\"%s\",\"refund_amount_fen\":%lld,\"refund_status\":\"ABNORMAL\"",
             refund_no, (long long)r.amount_fen);
    return events_queue(app, a, "refund.abnormal", r.order_no, extra);
}

typedef struct abnormal_ctx {
    pg_app_t *app;
    arena_t *a;
    const char *refund_no;
    const char *provider_refund_no;
    bool changed;
} abnormal_ctx_t;

static pg_err abnormal_tx(db_t *db, void *arg)
{
    abnormal_ctx_t *c = arg;
    (void)db;
    return refund_mark_abnormal_in_tx(c->app, c->a, c->refund_no, c->provider_refund_no, &c->changed);
}

static pg_err apply_tx(db_t *db, void *arg)
{
    apply_ctx_t *c = arg;
    (void)db;
    return refund_apply_in_tx(c->app, c->a, c->refund_no, c->succeeded, c->provider_refund_no, c->failure,
                              &c->changed);
}

/* After a lost COMMIT reply: the outcome is recorded when the refund is no
 * longer PENDING (whoever recorded it); otherwise apply_tx runs again
 * (conditional on PENDING, so it is recorded once). */
static pg_err apply_found(db_t *db, void *arg)
{
    apply_ctx_t *c = arg;
    refund_row_t r;
    pg_err rc = store_refund_get(db, c->a, c->refund_no, true, &r);
    if (rc != PG_OK)
        return rc;
    return strcmp(r.status, "PENDING") ? PG_OK : PG_ERR_NOT_FOUND;
}

static pg_err apply(pg_app_t *app, arena_t *a, const char *refund_no, bool succeeded, const char *provider_no,
                    const char *failure)
{
    apply_ctx_t c = { app, a, refund_no, succeeded, provider_no, failure, false };
    /* Still unknown: the refund stays PENDING here and the next pass asks the provider again. */
    return db_tx_resolve(app->db, apply_tx, apply_found, &c);
}

static pg_err handle_outcome(pg_app_t *app, arena_t *a, const refund_row_t *r, pg_err rc,
                             const channel_refund_outcome_t *out, buf_t *msg)
{
    if (rc == PG_ERR_CONFLICT || (rc == PG_OK && out->state == REFUND_REFUSED))
        return apply(app, a, r->refund_no, false, out->provider_refund_no, msg->len ? msg->data : "refused");
    if (rc == PG_ERR_CONFIG || rc == PG_ERR_BAD_INPUT) {   /* nothing was sent: the outcome is known */
        log_msg(LOG_ERROR, "refund %s not sent: %s", r->refund_no, msg->len ? msg->data : pg_err_name(rc));
        return apply(app, a, r->refund_no, false, NULL,
                     msg->len ? msg->data : "not sent: the channel is not configured for refunds");
    }
    if (rc != PG_OK) {
        log_msg(LOG_WARN, "refund %s: outcome unknown (%s): will ask again", r->refund_no, pg_err_name(rc));
        return rc;
    }
    if (out->state == REFUND_DONE)
        return apply(app, a, r->refund_no, true, out->provider_refund_no, NULL);
    if (out->state == REFUND_ABNORMAL && !strcmp(r->status, "PENDING")) {
        abnormal_ctx_t c = { app, a, r->refund_no, out->provider_refund_no, false };
        return db_tx(app->db, abnormal_tx, &c);
    }
    if (out->provider_refund_no)
        return store_refund_note_attempt(app->db, r->id, out->provider_refund_no);
    return PG_OK;
}

/* Only under the claim (which counted the attempt before anything is sent:
 * after a crash the next pass asks before resending). */
static pg_err send_refund(pg_app_t *app, arena_t *a, const pay_channel_t *ch, const refund_row_t *r,
                          const channel_refund_t *cr, buf_t *msg)
{
    channel_refund_outcome_t out;
    pg_err rc;
    memset(&out, 0, sizeof out);
    rc = ch->refund(app, a, cr, &out, msg);
    return handle_outcome(app, a, r, rc, &out, msg);
}

/* An abnormal refund is never sent again, only asked about (hourly, see
 * store_refunds_pending) until the provider ends it after it was handled by
 * hand: SUCCESS -> SUCCEEDED, REFUNDCLOSE -> FAILED. */
static pg_err recheck_abnormal(pg_app_t *app, arena_t *a, const pay_channel_t *ch, const refund_row_t *r,
                               const channel_refund_t *cr, buf_t *msg)
{
    channel_refund_outcome_t out;
    pg_err rc;
    memset(&out, 0, sizeof out);
    rc = ch->refund_query(app, a, cr, &out, msg);
    if (rc == PG_OK && (out.state == REFUND_DONE || out.state == REFUND_REFUSED))
        return handle_outcome(app, a, r, rc, &out, msg);
    if (rc == PG_OK && out.state == REFUND_UNKNOWN)
        log_msg(LOG_ERROR, "abnormal refund %s: the provider no longer knows it; check the merchant platform",
                r->refund_no);
    (void)store_refund_note_attempt(app->db, r->id, out.provider_refund_no);   /* next look in an hour */
    return rc;
}


static pg_err drive_claimed(pg_app_t *app, arena_t *a, const pay_channel_t *ch, const refund_row_t *r,
                            buf_t *msg)
{
    channel_refund_t cr;
    channel_refund_outcome_t out;
    pg_err rc;
    memset(&cr, 0, sizeof cr);
    cr.payment_no = r->payment_no;
    cr.refund_no = r->refund_no;
    cr.payment_amount_fen = r->payment_amount_fen;
    cr.amount_fen = r->amount_fen;
    cr.reason = r->reason;
    if (r->attempts == 0)   /* the claim proved nobody sent it before */
        return send_refund(app, a, ch, r, &cr, msg);
    memset(&out, 0, sizeof out);
    rc = ch->refund_query(app, a, &cr, &out, msg);
    if (rc != PG_OK) {   /* it may have been sent before: a failed query decides nothing */
        log_msg(LOG_WARN, "refund %s: query failed (%s): stays PENDING", r->refund_no, pg_err_name(rc));
        return rc;
    }
    if (out.state == REFUND_UNKNOWN)   /* never arrived: the same refund_no is safe to send */
        return send_refund(app, a, ch, r, &cr, msg);
    return handle_outcome(app, a, r, rc, &out, msg);
}

/* API requests and cron passes may reach the same PENDING refund at once:
 * only the one whose claim succeeds talks to the provider. */
pg_err refund_drive(pg_app_t *app, arena_t *a, const char *refund_no, buf_t *msg)
{
    refund_row_t r;
    const pay_channel_t *ch;
    bool got = false;
    pg_err rc = store_refund_get(app->db, a, refund_no, false, &r);
    if (rc != PG_OK || (strcmp(r.status, "PENDING") && strcmp(r.status, "ABNORMAL")))
        return rc;
    ch = channel_find(r.channel);
    if (!ch || !ch->enabled(app))
        return PG_ERR_UNSUPPORTED;
    if (!strcmp(r.status, "ABNORMAL")) {   /* only asked about, never sent: no claim needed */
        channel_refund_t cr;
        memset(&cr, 0, sizeof cr);
        cr.payment_no = r.payment_no;
        cr.refund_no = r.refund_no;
        cr.payment_amount_fen = r.payment_amount_fen;
        cr.amount_fen = r.amount_fen;
        cr.reason = r.reason;
        return recheck_abnormal(app, a, ch, &r, &cr, msg);
    }
    rc = store_refund_claim(app->db, r.id, r.attempts, REFUND_CLAIM_S, &got);
    if (rc != PG_OK)
        return rc;
    if (!got) {
        log_msg(LOG_INFO, "refund %s: another process is sending or asking about it", refund_no);
        return PG_OK;
    }
    rc = drive_claimed(app, a, ch, &r, msg);
    (void)store_refund_release(app->db, r.id);   /* else it expires */
    return rc;
}

/* Inside the notification's transaction, which is never re-run after a lost
 * COMMIT reply (answered failure; the redelivery finds the payment PAID and
 * is a duplicate), so a fresh refund_no here cannot make a second refund. */
pg_err refund_queue_auto_in_tx(pg_app_t *app, int64_t order_id, int64_t payment_id, int64_t amount_fen,
                               const char *reason, char out[25])
{
    pg_err rc = crypto_random_alnum(out, REFUND_NO_LEN);
    if (rc == PG_OK)
        rc = store_refund_insert(app->db, out, order_id, payment_id, amount_fen, reason, "auto", NULL, NULL);
    return rc;
}
