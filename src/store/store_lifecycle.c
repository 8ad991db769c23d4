/* store_lifecycle: see include/store_lifecycle.h. */
#include "store_lifecycle.h"

#include <string.h>

#define ISO(col) "DATE_FORMAT(" col ", '%Y-%m-%dT%H:%i:%sZ')"

#define ORDER_LOCK_SELECT                                                                          \
    "SELECT o.id, o.order_no, o.status, o.amount_fen, o.refunded_fen, o.user_ref, o.product_id,"   \
    " COALESCE((SELECT SUM(r.amount_fen) FROM refunds r WHERE r.order_id = o.id"                   \
    "   AND r.kind = 'merchant' AND r.status <> 'FAILED'), 0) AS reserved_fen,"                    \
    " p.id AS paid_payment_id, p.payment_no AS paid_payment_no, p.channel AS paid_channel,"        \
    " p.amount_fen AS paid_payment_amount_fen"                                                     \
    " FROM orders o LEFT JOIN payments p ON p.order_id = o.id AND p.status = 'PAID'"               \
    "   AND p.anomaly IS NULL"

static pg_err order_lock_fill(const db_result_t *r, order_lock_t *out)
{
    if (r->rows == 0)
        return PG_ERR_NOT_FOUND;
    out->id = db_cell_i64(r, 0, "id");
    out->order_no = db_cell(r, 0, "order_no");
    out->status = db_cell(r, 0, "status");
    out->amount_fen = db_cell_i64(r, 0, "amount_fen");
    out->refunded_fen = db_cell_i64(r, 0, "refunded_fen");
    out->reserved_fen = db_cell_i64(r, 0, "reserved_fen");
    out->user_ref = db_cell(r, 0, "user_ref");
    out->product_id = db_cell_i64(r, 0, "product_id");
    out->paid_payment_id = db_cell_i64(r, 0, "paid_payment_id");
    out->paid_payment_no = db_cell(r, 0, "paid_payment_no");
    out->paid_channel = db_cell(r, 0, "paid_channel");
    out->paid_payment_amount_fen = db_cell_i64(r, 0, "paid_payment_amount_fen");
    return PG_OK;
}

pg_err store_order_lock(db_t *db, arena_t *a, const char *order_no, order_lock_t *out)
{
    db_val_t p[] = { DB_S(order_no) };
    db_result_t r;
    pg_err rc = db_query(db, a, ORDER_LOCK_SELECT " WHERE o.order_no = ? ORDER BY p.id LIMIT 1 FOR UPDATE",
                         p, 1, &r);
    return rc != PG_OK ? rc : order_lock_fill(&r, out);
}

pg_err store_order_lock_by_id(db_t *db, arena_t *a, int64_t order_id, order_lock_t *out)
{
    db_val_t p[] = { DB_I(order_id) };
    db_result_t r;
    pg_err rc = db_query(db, a, ORDER_LOCK_SELECT " WHERE o.id = ? ORDER BY p.id LIMIT 1 FOR UPDATE", p, 1, &r);
    return rc != PG_OK ? rc : order_lock_fill(&r, out);
}

pg_err store_refund_insert(db_t *db, const char *refund_no, int64_t order_id, int64_t payment_id,
                           int64_t amount_fen, const char *reason, const char *kind,
                           const char *request_id, const char *request_hash)
{
    db_val_t p[] = { DB_S(refund_no), DB_I(order_id), DB_I(payment_id), DB_I(amount_fen), DB_S(reason),
                     DB_S(kind), DB_S(request_id), DB_S(request_hash) };
    return db_exec(db,
                   "INSERT INTO refunds (refund_no, order_id, payment_id, amount_fen, reason, kind, request_id,"
                   " request_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   p, 8, NULL, NULL);
}

#define REFUND_SELECT                                                                              \
    "SELECT r.id, r.refund_no, r.order_id, o.order_no, r.payment_id, p.payment_no, p.channel,"     \
    " p.amount_fen AS payment_amount_fen, r.amount_fen, r.kind, r.status, r.request_hash,"         \
    " r.attempts, r.reason FROM refunds r JOIN orders o ON o.id = r.order_id"                      \
    " JOIN payments p ON p.id = r.payment_id"

static pg_err refund_fill(const db_result_t *r, refund_row_t *out)
{
    if (r->rows == 0)
        return PG_ERR_NOT_FOUND;
    out->id = db_cell_i64(r, 0, "id");
    out->refund_no = db_cell(r, 0, "refund_no");
    out->order_id = db_cell_i64(r, 0, "order_id");
    out->order_no = db_cell(r, 0, "order_no");
    out->payment_id = db_cell_i64(r, 0, "payment_id");
    out->payment_no = db_cell(r, 0, "payment_no");
    out->channel = db_cell(r, 0, "channel");
    out->payment_amount_fen = db_cell_i64(r, 0, "payment_amount_fen");
    out->amount_fen = db_cell_i64(r, 0, "amount_fen");
    out->kind = db_cell(r, 0, "kind");
    out->status = db_cell(r, 0, "status");
    out->request_hash = db_cell(r, 0, "request_hash");
    out->attempts = db_cell_i64(r, 0, "attempts");
    out->reason = db_cell(r, 0, "reason");
    return PG_OK;
}

pg_err store_refund_get(db_t *db, arena_t *a, const char *refund_no, bool for_update, refund_row_t *out)
{
    db_val_t p[] = { DB_S(refund_no) };
    db_result_t r;
    pg_err rc = db_query(db, a,
                         for_update ? REFUND_SELECT " WHERE r.refund_no = ? FOR UPDATE"
                                    : REFUND_SELECT " WHERE r.refund_no = ?",
                         p, 1, &r);
    return rc != PG_OK ? rc : refund_fill(&r, out);
}

pg_err store_refund_by_request_id(db_t *db, arena_t *a, const char *request_id, refund_row_t *out)
{
    db_val_t p[] = { DB_S(request_id) };
    db_result_t r;
    pg_err rc = db_query(db, a, REFUND_SELECT " WHERE r.request_id = ?", p, 1, &r);
    return rc != PG_OK ? rc : refund_fill(&r, out);
}

pg_err store_refund_finish(db_t *db, int64_t refund_id, bool succeeded, const char *provider_refund_no,
                           const char *failure, bool *changed)
{
    db_val_t p[] = { DB_S(succeeded ? "SUCCEEDED" : "FAILED"), DB_S(provider_refund_no), DB_S(failure),
                     DB_I(succeeded ? 1 : 0), DB_I(refund_id) };
    uint64_t n = 0;
    pg_err rc = db_exec(db,
                        "UPDATE refunds SET status = ?, provider_refund_no = COALESCE(?, provider_refund_no),"
                        " failure = LEFT(?, 200), succeeded_at = IF(? = 1, UTC_TIMESTAMP(), NULL)"
                        " WHERE id = ? AND status IN ('PENDING','ABNORMAL')",
                        p, 5, &n, NULL);
    *changed = n == 1;
    return rc;
}

pg_err store_refund_mark_abnormal(db_t *db, int64_t refund_id, const char *provider_refund_no, const char *detail,
                                  bool *changed)
{
    db_val_t p[] = { DB_S(provider_refund_no), DB_S(detail), DB_I(refund_id) };
    uint64_t n = 0;
    pg_err rc = db_exec(db,
                        "UPDATE refunds SET status = 'ABNORMAL', provider_refund_no = COALESCE(?, provider_refund_no),"
                        " failure = LEFT(?, 200), last_attempt_at = UTC_TIMESTAMP()"
                        " WHERE id = ? AND status = 'PENDING'",
                        p, 3, &n, NULL);
    *changed = n == 1;
    return rc;
}

pg_err store_refund_note_attempt(db_t *db, int64_t refund_id, const char *provider_refund_no)
{
    db_val_t p[] = { DB_S(provider_refund_no), DB_I(refund_id) };
    return db_exec(db,
                   "UPDATE refunds SET attempts = attempts + 1, last_attempt_at = UTC_TIMESTAMP(),"
                   " provider_refund_no = COALESCE(?, provider_refund_no) WHERE id = ?",
                   p, 2, NULL, NULL);
}

pg_err store_refund_claim(db_t *db, int64_t refund_id, int64_t attempts_seen, int ttl_s, bool *got)
{
    db_val_t p[] = { DB_I(ttl_s), DB_I(refund_id), DB_I(attempts_seen) };
    uint64_t n = 0;
    pg_err rc = db_exec(db,
                        "UPDATE refunds SET claimed_until = UTC_TIMESTAMP() + INTERVAL ? SECOND,"
                        " attempts = attempts + 1, last_attempt_at = UTC_TIMESTAMP()"
                        " WHERE id = ? AND status = 'PENDING' AND attempts = ?"
                        " AND (claimed_until IS NULL OR claimed_until < UTC_TIMESTAMP())",
                        p, 3, &n, NULL);
    *got = rc == PG_OK && n == 1;
    return rc;
}

pg_err store_refund_release(db_t *db, int64_t refund_id)
{
    db_val_t p[] = { DB_I(refund_id) };
    return db_exec(db, "UPDATE refunds SET claimed_until = NULL WHERE id = ?", p, 1, NULL, NULL);
}

pg_err store_refunds_pending(db_t *db, arena_t *a, int min_age_s, db_result_t *out)
{
    db_val_t p[] = { DB_I(min_age_s) };
    return db_query(db, a,
                    "SELECT refund_no FROM refunds WHERE (status = 'PENDING'"
                    " AND (claimed_until IS NULL OR claimed_until < UTC_TIMESTAMP())"
                    " AND (last_attempt_at IS NULL OR last_attempt_at < UTC_TIMESTAMP() - INTERVAL ? SECOND))"
                    " OR (status = 'ABNORMAL' AND last_attempt_at < UTC_TIMESTAMP() - INTERVAL "
                    STORE_REFUND_ABNORMAL_RECHECK_S " SECOND)"
                    " ORDER BY id LIMIT 200",
                    p, 1, out);
}

pg_err store_order_refunds(db_t *db, arena_t *a, int64_t order_id, db_result_t *out)
{
    db_val_t p[] = { DB_I(order_id) };
    return db_query(db, a,
                    "SELECT r.refund_no, p.payment_no, r.kind, r.amount_fen, r.status, r.reason, r.failure,"
                    " " ISO("r.created_at") " AS created_at, " ISO("r.succeeded_at") " AS succeeded_at"
                    " FROM refunds r JOIN payments p ON p.id = r.payment_id WHERE r.order_id = ? ORDER BY r.id",
                    p, 1, out);
}

pg_err store_order_add_refunded(db_t *db, int64_t order_id, int64_t amount_fen, const char **new_status,
                                arena_t *a)
{
    db_val_t p[] = { DB_I(amount_fen), DB_I(order_id) };
    db_val_t q[] = { DB_I(order_id) };
    db_result_t r;
    pg_err rc = db_exec(db,
                        "UPDATE orders SET refunded_fen = refunded_fen + ?,"
                        " status = IF(refunded_fen >= amount_fen, 'REFUNDED', 'PARTIALLY_REFUNDED')"
                        " WHERE id = ?",
                        p, 2, NULL, NULL);
    if (rc == PG_OK)
        rc = db_query(db, a, "SELECT status FROM orders WHERE id = ?", q, 1, &r);
    if (rc == PG_OK)
        *new_status = r.rows ? db_cell(&r, 0, "status") : NULL;
    return rc;
}

pg_err store_payment_set_anomaly(db_t *db, int64_t payment_id, const char *anomaly)
{
    db_val_t p[] = { DB_S(anomaly), DB_I(payment_id) };
    return db_exec(db, "UPDATE payments SET anomaly = ? WHERE id = ?", p, 2, NULL, NULL);
}

pg_err store_payment_claim_query(db_t *db, int64_t payment_id, int interval_s, bool *claimed)
{
    db_val_t p[] = { DB_I(payment_id), DB_I(interval_s) };
    uint64_t n = 0;
    pg_err rc = db_exec(db,
                        "UPDATE payments SET last_query_at = UTC_TIMESTAMP(), query_count = query_count + 1"
                        " WHERE id = ? AND status = 'CREATED' AND (last_query_at IS NULL"
                        "   OR last_query_at < UTC_TIMESTAMP() - INTERVAL ? SECOND)",
                        p, 2, &n, NULL);
    *claimed = n == 1;
    return rc;
}

pg_err store_payments_to_sync(db_t *db, arena_t *a, int older_than_s, db_result_t *out)
{
    db_val_t p[] = { DB_I(older_than_s) };
    return db_query(db, a,
                    "SELECT id, payment_no, channel FROM payments WHERE status = 'CREATED'"
                    " AND created_at < UTC_TIMESTAMP() - INTERVAL ? SECOND"
                    " AND expires_at > UTC_TIMESTAMP() - INTERVAL 1 DAY ORDER BY id LIMIT 500",
                    p, 1, out);
}

pg_err store_payments_expired(db_t *db, arena_t *a, int grace_s, db_result_t *out)
{
    db_val_t p[] = { DB_I(grace_s) };
    return db_query(db, a,
                    "SELECT p.id, p.payment_no, p.channel, p.order_id,"
                    " TIMESTAMPDIFF(SECOND, p.created_at, UTC_TIMESTAMP()) AS age_s"
                    " FROM payments p WHERE p.status = 'CREATED'"
                    " AND p.expires_at < UTC_TIMESTAMP() - INTERVAL ? SECOND ORDER BY p.id LIMIT 500",
                    p, 1, out);
}

pg_err store_order_open_payments(db_t *db, arena_t *a, int64_t order_id, db_result_t *out)
{
    db_val_t p[] = { DB_I(order_id) };
    return db_query(db, a,
                    "SELECT id, payment_no, channel, status, TIMESTAMPDIFF(SECOND, created_at, UTC_TIMESTAMP()) AS age_s"
                    " FROM payments WHERE order_id = ? AND status = 'CREATED' ORDER BY id",
                    p, 1, out);
}

pg_err store_orders_left_open(db_t *db, arena_t *a, db_result_t *out)
{
    return db_query(db, a,
                    "SELECT o.id, o.order_no FROM orders o WHERE o.status = 'CREATED'"
                    " AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.order_id = o.id AND p.status <> 'CLOSED')"
                    " ORDER BY o.id LIMIT 500",
                    NULL, 0, out);
}

pg_err store_payment_expire_now(db_t *db, int64_t payment_id)
{
    db_val_t p[] = { DB_I(payment_id) };
    return db_exec(db,
                   "UPDATE payments SET expires_at = LEAST(expires_at, UTC_TIMESTAMP()), updated_at = UTC_TIMESTAMP()"
                   " WHERE id = ? AND status = 'CREATED'",
                   p, 1, NULL, NULL);
}

pg_err store_order_mark_closed(db_t *db, int64_t order_id, bool *changed)
{
    db_val_t p[] = { DB_I(order_id) };
    uint64_t n = 0;
    pg_err rc = db_exec(db,
                        "UPDATE orders SET status = 'CLOSED', closed_at = UTC_TIMESTAMP()"
                        " WHERE id = ? AND status = 'CREATED'",
                        p, 1, &n, NULL);
    *changed = n == 1;
    return rc;
}

pg_err store_entitlement_grant(db_t *db, int64_t order_id)
{
    db_val_t p[] = { DB_I(order_id) };
    return db_exec(db,
                   "INSERT INTO entitlements (user_ref, product_id, order_id)"
                   " SELECT user_ref, product_id, id FROM orders WHERE id = ?"
                   " ON DUPLICATE KEY UPDATE status = 'ACTIVE', revoked_at = NULL",
                   p, 1, NULL, NULL);
}

pg_err store_entitlement_revoke(db_t *db, int64_t order_id)
{
    db_val_t p[] = { DB_I(order_id) };
    return db_exec(db,
                   "UPDATE entitlements SET status = 'REVOKED', revoked_at = UTC_TIMESTAMP()"
                   " WHERE order_id = ? AND status = 'ACTIVE'",
                   p, 1, NULL, NULL);
}

pg_err store_entitlements_of(db_t *db, arena_t *a, const char *user_ref, db_result_t *out)
{
    db_val_t p[] = { DB_S(user_ref) };
    return db_query(db, a,
                    "SELECT pr.sku AS product, pr.title, o.order_no, " ISO("e.granted_at") " AS granted_at"
                    " FROM entitlements e JOIN products pr ON pr.id = e.product_id JOIN orders o ON o.id = e.order_id"
                    " WHERE e.user_ref = ? AND e.status = 'ACTIVE' ORDER BY e.id",
                    p, 1, out);
}

pg_err store_webhook_insert(db_t *db, const char *event_id, const char *type, const char *order_no,
                            const char *payload)
{
    db_val_t p[] = { DB_S(event_id), DB_S(type), DB_S(order_no), DB_S(payload) };
    return db_exec(db, "INSERT INTO webhook_events (event_id, type, order_no, payload) VALUES (?, ?, ?, ?)",
                   p, 4, NULL, NULL);
}

pg_err store_webhooks_due(db_t *db, arena_t *a, int limit, db_result_t *out)
{
    db_val_t p[] = { DB_I(limit) };
    return db_query(db, a,
                    "SELECT id, event_id, type, payload, attempts, next_attempt_at,"
                    " TIMESTAMPDIFF(SECOND, created_at, UTC_TIMESTAMP()) AS age_s"
                    " FROM webhook_events WHERE status = 'PENDING' AND next_attempt_at <= UTC_TIMESTAMP()"
                    " ORDER BY id LIMIT ?",
                    p, 1, out);
}

pg_err store_webhook_claim(db_t *db, int64_t id, int lease_s, bool *claimed)
{
    db_val_t p[] = { DB_I(lease_s), DB_I(id) };
    uint64_t n = 0;
    pg_err rc = db_exec(db,
                        "UPDATE webhook_events SET next_attempt_at = UTC_TIMESTAMP() + INTERVAL ? SECOND"
                        " WHERE id = ? AND status = 'PENDING' AND next_attempt_at <= UTC_TIMESTAMP()",
                        p, 2, &n, NULL);
    *claimed = n == 1;
    return rc;
}

pg_err store_webhook_delivered(db_t *db, int64_t id)
{
    db_val_t p[] = { DB_I(id) };
    return db_exec(db,
                   "UPDATE webhook_events SET status = 'DELIVERED', attempts = attempts + 1,"
                   " delivered_at = UTC_TIMESTAMP(), last_error = NULL WHERE id = ?",
                   p, 1, NULL, NULL);
}

pg_err store_webhook_failed(db_t *db, int64_t id, int delay_s, bool dead, const char *error)
{
    db_val_t p[] = { DB_S(dead ? "DEAD" : "PENDING"), DB_I(delay_s), DB_S(error), DB_I(id) };
    return db_exec(db,
                   "UPDATE webhook_events SET status = ?, attempts = attempts + 1,"
                   " next_attempt_at = UTC_TIMESTAMP() + INTERVAL ? SECOND, last_error = LEFT(?, 255)"
                   " WHERE id = ?",
                   p, 4, NULL, NULL);
}

pg_err store_webhooks_list(db_t *db, arena_t *a, const char *status, db_result_t *out)
{
    db_val_t p[] = { DB_S(status), DB_S(status) };
    return db_query(db, a,
                    "SELECT id, event_id, type, order_no, status, attempts, " ISO("next_attempt_at")
                    " AS next_attempt_at, last_error, " ISO("created_at") " AS created_at"
                    " FROM webhook_events WHERE ? IS NULL OR status = ? ORDER BY id DESC LIMIT 500",
                    p, 2, out);
}

pg_err store_webhook_retry(db_t *db, int64_t id, uint64_t *changed)
{
    db_val_t p[] = { DB_I(id), DB_I(id) };
    return db_exec(db,
                   "UPDATE webhook_events SET status = 'PENDING', next_attempt_at = UTC_TIMESTAMP(),"
                   " created_at = UTC_TIMESTAMP() WHERE status <> 'DELIVERED' AND (id = ? OR (? = 0 AND status = 'DEAD'))",
                   p, 2, changed, NULL);
}
