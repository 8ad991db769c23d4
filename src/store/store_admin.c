/* store_admin: see include/store/store_admin.h. */
#include "store_admin.h"

#include <string.h>

#define ISO(col) "DATE_FORMAT(" col ", '%Y-%m-%dT%H:%i:%sZ')"

pg_err store_admin_user_add(db_t *db, const char *username, const char *role, const char *password_hash)
{
    db_val_t p[] = { DB_S(username), DB_S(role), DB_S(password_hash) };
    return db_exec(db, "INSERT INTO admin_users (username, role, password_hash) VALUES (?, ?, ?)", p, 3, NULL, NULL);
}

pg_err store_admin_user_by_name(db_t *db, arena_t *a, const char *username, admin_user_row_t *out)
{
    db_val_t p[] = { DB_S(username) };
    db_result_t r;
    pg_err rc = db_query(db, a, "SELECT id, username, role, password_hash, active FROM admin_users WHERE username = ?",
                         p, 1, &r);
    if (rc != PG_OK)
        return rc;
    if (r.rows == 0)
        return PG_ERR_NOT_FOUND;
    out->id = db_cell_i64(&r, 0, "id");
    out->username = db_cell(&r, 0, "username");
    out->role = db_cell(&r, 0, "role");
    out->password_hash = db_cell(&r, 0, "password_hash");
    out->active = db_cell_i64(&r, 0, "active") != 0;
    return PG_OK;
}

pg_err store_admin_user_list(db_t *db, arena_t *a, db_result_t *out)
{
    return db_query(db, a,
                    "SELECT u.username, u.role, u.active, " ISO("u.created_at") " AS created_at,"
                    " (SELECT COUNT(*) FROM admin_sessions s WHERE s.user_id = u.id) AS sessions"
                    " FROM admin_users u ORDER BY u.username",
                    NULL, 0, out);
}

pg_err store_admin_user_set_active(db_t *db, const char *username, bool active, uint64_t *changed)
{
    db_val_t p[] = { DB_I(active ? 1 : 0), DB_S(username) };
    db_val_t q[] = { DB_S(username) };
    uint64_t n = 0;
    pg_err rc = db_exec(db,
                        "UPDATE admin_users SET active = ?, updated_at = UTC_TIMESTAMP() WHERE username = ?",
                        p, 2, &n, NULL);
    if (rc == PG_OK && n == 0) {
        db_result_t r;
        arena_t a;
        arena_init(&a, 0);   /* "matched but unchanged" counts as found */
        rc = db_query(db, &a, "SELECT id FROM admin_users WHERE username = ?", q, 1, &r);
        n = rc == PG_OK ? r.rows : 0;
        arena_free(&a);
    }
    if (rc == PG_OK && !active)
        rc = db_exec(db, "DELETE s FROM admin_sessions s JOIN admin_users u ON u.id = s.user_id WHERE u.username = ?",
                     q, 1, NULL, NULL);
    *changed = n;
    return rc;
}

pg_err store_admin_failures_count(db_t *db, arena_t *a, const char *username, const char *address, int window_s,
                                  int64_t *by_user, int64_t *by_address)
{
    db_val_t p[] = { DB_S(username), DB_I(window_s), DB_S(address), DB_I(window_s) };
    db_result_t r;
    pg_err rc = db_query(db, a,
                         "SELECT (SELECT COUNT(*) FROM admin_login_failures WHERE username = ?"
                         "   AND failed_at > UTC_TIMESTAMP() - INTERVAL ? SECOND) AS by_user,"
                         " (SELECT COUNT(*) FROM admin_login_failures WHERE address = ?"
                         "   AND failed_at > UTC_TIMESTAMP() - INTERVAL ? SECOND) AS by_address",
                         p, 4, &r);
    if (rc != PG_OK)
        return rc;
    *by_user = db_cell_i64(&r, 0, "by_user");
    *by_address = db_cell_i64(&r, 0, "by_address");
    return PG_OK;
}

pg_err store_admin_failure_add(db_t *db, const char *username, const char *address)
{
    db_val_t p[] = { DB_S(username), DB_S(address) };
    /* old rows go on the way: the table holds about one window's failures */
    db_exec(db, "DELETE FROM admin_login_failures WHERE failed_at < UTC_TIMESTAMP() - INTERVAL 1 DAY LIMIT 1000",
            NULL, 0, NULL, NULL);
    return db_exec(db, "INSERT INTO admin_login_failures (username, address) VALUES (?, ?)", p, 2, NULL, NULL);
}

pg_err store_admin_failures_clear(db_t *db, const char *username)
{
    db_val_t p[] = { DB_S(username) };
    return db_exec(db, "DELETE FROM admin_login_failures WHERE username = ?", p, 1, NULL, NULL);
}

pg_err store_admin_session_insert(db_t *db, const char *token_hash, int64_t user_id, const char *csrf_token,
                                  const char *address)
{
    db_val_t p[] = { DB_S(token_hash), DB_I(user_id), DB_S(csrf_token), DB_S(address) };
    return db_exec(db, "INSERT INTO admin_sessions (token_hash, user_id, csrf_token, address) VALUES (?, ?, ?, ?)",
                   p, 4, NULL, NULL);
}

pg_err store_admin_session_get(db_t *db, arena_t *a, const char *token_hash, int idle_s, int absolute_s,
                               admin_session_row_t *out)
{
    db_val_t p[] = { DB_S(token_hash), DB_I(idle_s), DB_I(absolute_s) };
    db_result_t r;
    pg_err rc = db_query(db, a,
                         "SELECT s.user_id, u.username, u.role, s.csrf_token,"
                         " TIMESTAMPDIFF(SECOND, s.last_seen_at, UTC_TIMESTAMP()) AS idle_s"
                         " FROM admin_sessions s JOIN admin_users u ON u.id = s.user_id"
                         " WHERE s.token_hash = ? AND u.active = 1"
                         " AND s.last_seen_at > UTC_TIMESTAMP() - INTERVAL ? SECOND"
                         " AND s.created_at > UTC_TIMESTAMP() - INTERVAL ? SECOND",
                         p, 3, &r);
    if (rc != PG_OK)
        return rc;
    if (r.rows == 0)
        return PG_ERR_NOT_FOUND;
    out->user_id = db_cell_i64(&r, 0, "user_id");
    out->username = db_cell(&r, 0, "username");
    out->role = db_cell(&r, 0, "role");
    out->csrf_token = db_cell(&r, 0, "csrf_token");
    out->idle_s = db_cell_i64(&r, 0, "idle_s");
    return PG_OK;
}

pg_err store_admin_session_touch(db_t *db, const char *token_hash)
{
    db_val_t p[] = { DB_S(token_hash) };
    return db_exec(db, "UPDATE admin_sessions SET last_seen_at = UTC_TIMESTAMP() WHERE token_hash = ?", p, 1, NULL,
                   NULL);
}

pg_err store_admin_session_delete(db_t *db, const char *token_hash)
{
    db_val_t p[] = { DB_S(token_hash) };
    return db_exec(db, "DELETE FROM admin_sessions WHERE token_hash = ?", p, 1, NULL, NULL);
}

pg_err store_admin_sessions_prune(db_t *db, int idle_s, int absolute_s)
{
    db_val_t p[] = { DB_I(idle_s), DB_I(absolute_s) };
    return db_exec(db,
                   "DELETE FROM admin_sessions WHERE last_seen_at < UTC_TIMESTAMP() - INTERVAL ? SECOND"
                   " OR created_at < UTC_TIMESTAMP() - INTERVAL ? SECOND LIMIT 1000",
                   p, 2, NULL, NULL);
}

pg_err store_admin_audit_add(db_t *db, const char *username, const char *action, const char *target,
                             const char *outcome, const char *detail, const char *address)
{
    db_val_t p[] = { DB_S(username), DB_S(action), DB_S(target), DB_S(outcome), DB_S(detail), DB_S(address) };
    return db_exec(db,
                   "INSERT INTO admin_audit (username, action, target, outcome, detail, address)"
                   " VALUES (LEFT(?, 64), ?, LEFT(?, 64), LEFT(?, 40), LEFT(?, 255), ?)",
                   p, 6, NULL, NULL);
}

pg_err store_admin_audit_list(db_t *db, arena_t *a, int64_t before_id, int limit, db_result_t *out)
{
    db_val_t p[] = { DB_I(before_id), DB_I(before_id), DB_I(limit) };
    return db_query(db, a,
                    "SELECT id, DATE_FORMAT(at, '%Y-%m-%dT%H:%i:%sZ') AS at, username, action, target, outcome,"
                    " detail, address FROM admin_audit WHERE (? = 0 OR id < ?) ORDER BY id DESC LIMIT ?",
                    p, 3, out);
}

pg_err store_admin_attention(db_t *db, arena_t *a, db_result_t *out)
{
    return db_query(db, a,
                    "SELECT (SELECT COUNT(*) FROM payments WHERE status = 'CREATED'"
                    "   AND expires_at > UTC_TIMESTAMP()) AS payments_waiting,"
                    " (SELECT COUNT(*) FROM refunds WHERE status = 'PENDING') AS refunds_pending,"
                    " (SELECT COUNT(*) FROM refunds WHERE status = 'FAILED') AS refunds_failed,"
                    " (SELECT COUNT(*) FROM refunds WHERE status = 'ABNORMAL') AS refunds_abnormal,"
                    " (SELECT COUNT(*) FROM webhook_events WHERE status = 'DEAD') AS webhooks_dead,"
                    " (SELECT COUNT(*) FROM recon_items i JOIN (SELECT MAX(id) AS id FROM recon_runs"
                    "   GROUP BY channel, bill_date) r ON r.id = i.run_id WHERE i.category <> 'matched')"
                    "   AS recon_unexplained",
                    NULL, 0, out);
}

pg_err store_admin_payouts_by_status(db_t *db, arena_t *a, bool *exists, db_result_t *out)
{
    db_result_t t;
    pg_err rc = db_query(db, a,
                         "SELECT COUNT(*) AS n FROM information_schema.columns WHERE table_schema = DATABASE()"
                         " AND table_name = 'payouts' AND column_name = 'status'",
                         NULL, 0, &t);
    *exists = false;
    if (rc != PG_OK || db_cell_i64(&t, 0, "n") == 0)
        return rc;
    *exists = true;
    return db_query(db, a, "SELECT status, COUNT(*) AS n FROM payouts GROUP BY status ORDER BY status", NULL, 0,
                    out);
}

pg_err store_admin_orders(db_t *db, arena_t *a, const admin_order_filter_t *f, db_result_t *out)
{
    const char *q = f->q && *f->q ? f->q : NULL;
    db_val_t p[] = {
        DB_I(f->before_id), DB_I(f->before_id),
        DB_S(q), DB_S(q), DB_S(q), DB_S(q), DB_S(q), DB_S(q),
        DB_S(f->status), DB_S(f->status),
        DB_S(f->channel), DB_S(f->channel),
        DB_S(f->payment_status), DB_S(f->payment_status),
        DB_S(f->from), DB_S(f->from), DB_S(f->to), DB_S(f->to),
        DB_I(f->limit),
    };
    return db_query(db, a,
                    "SELECT o.id, o.order_no, o.status, o.amount_fen, o.refunded_fen, pr.sku, pr.title, o.user_ref,"
                    " " ISO("o.created_at") " AS created_at,"
                    " (SELECT p.channel FROM payments p WHERE p.order_id = o.id ORDER BY p.id DESC LIMIT 1) AS channel"
                    " FROM orders o JOIN products pr ON pr.id = o.product_id"
                    " WHERE (? = 0 OR o.id < ?)"
                    " AND (? IS NULL OR o.order_no = ? OR o.user_ref = ? OR pr.sku = ?"
                    "   OR EXISTS (SELECT 1 FROM payments p WHERE p.order_id = o.id"
                    "     AND (p.payment_no = ? OR p.provider_trade_no = ?)))"
                    " AND (? IS NULL OR o.status = ?)"
                    " AND (? IS NULL OR EXISTS (SELECT 1 FROM payments p WHERE p.order_id = o.id AND p.channel = ?))"
                    " AND (? IS NULL OR EXISTS (SELECT 1 FROM payments p WHERE p.order_id = o.id AND p.status = ?"
                    "   AND p.expires_at > UTC_TIMESTAMP()))"
                    " AND (? IS NULL OR o.created_at >= ?)"
                    " AND (? IS NULL OR o.created_at < ? + INTERVAL 1 DAY)"
                    " ORDER BY o.id DESC LIMIT ?",
                    p, sizeof p / sizeof p[0], out);
}

pg_err store_admin_order_notifications(db_t *db, arena_t *a, int64_t order_id, db_result_t *out)
{
    db_val_t p[] = { DB_I(order_id) };
    return db_query(db, a,
                    "SELECT n.id, n.channel, n.kind, n.payment_no, n.outcome, n.detail, n.raw_body, n.raw_len,"
                    " n.source, DATE_FORMAT(n.received_at, '%Y-%m-%dT%H:%i:%sZ') AS received_at"
                    " FROM notifications n WHERE n.payment_no IN (SELECT payment_no FROM payments WHERE order_id = ?)"
                    " ORDER BY n.id LIMIT 200",
                    p, 1, out);
}

pg_err store_admin_order_ledger(db_t *db, arena_t *a, int64_t order_id, db_result_t *out)
{
    db_val_t p[] = { DB_I(order_id), DB_I(order_id) };
    return db_query(db, a,
                    "SELECT e.txn_id, e.account, e.amount_fen, e.kind, e.channel,"
                    " DATE_FORMAT(e.business_date, '%Y-%m-%d') AS business_date, " ISO("e.posted_at") " AS posted_at"
                    " FROM ledger_entries e WHERE e.payment_id IN (SELECT id FROM payments WHERE order_id = ?)"
                    " OR e.refund_id IN (SELECT id FROM refunds WHERE order_id = ?) ORDER BY e.id",
                    p, 2, out);
}

pg_err store_admin_order_webhooks(db_t *db, arena_t *a, const char *order_no, db_result_t *out)
{
    db_val_t p[] = { DB_S(order_no) };
    return db_query(db, a,
                    "SELECT id, event_id, type, status, attempts, last_error, " ISO("created_at") " AS created_at"
                    " FROM webhook_events WHERE order_no = ? ORDER BY id",
                    p, 1, out);
}

pg_err store_admin_order_entitlement(db_t *db, arena_t *a, int64_t order_id, db_result_t *out)
{
    db_val_t p[] = { DB_I(order_id) };
    return db_query(db, a,
                    "SELECT user_ref, status, " ISO("granted_at") " AS granted_at, " ISO("revoked_at") " AS revoked_at"
                    " FROM entitlements WHERE order_id = ?",
                    p, 1, out);
}

pg_err store_admin_refunds_by_status(db_t *db, arena_t *a, const char *status, db_result_t *out)
{
    db_val_t p[] = { DB_S(status) };
    return db_query(db, a,
                    "SELECT r.refund_no, o.order_no, r.amount_fen, r.status, r.reason, r.failure,"
                    " " ISO("r.created_at") " AS created_at FROM refunds r JOIN orders o ON o.id = r.order_id"
                    " WHERE r.status = ? ORDER BY r.id DESC LIMIT 200",
                    p, 1, out);
}

pg_err store_admin_recon_runs(db_t *db, arena_t *a, db_result_t *out)
{
    return db_query(db, a,
                    "SELECT id, channel, DATE_FORMAT(bill_date, '%Y-%m-%d') AS bill_date, matched, amount_mismatch,"
                    " status_mismatch, fee_mismatch, missing_local, missing_provider, refund_abnormal,"
                    " " ISO("run_at") " AS run_at FROM recon_runs ORDER BY bill_date DESC, id DESC LIMIT 100",
                    NULL, 0, out);
}

pg_err store_admin_recon_run(db_t *db, arena_t *a, int64_t run_id, db_result_t *out)
{
    db_val_t p[] = { DB_I(run_id) };
    return db_query(db, a,
                    "SELECT category, kind, out_trade_no, out_refund_no, local_fen, bill_fen, detail FROM recon_items"
                    " WHERE run_id = ? AND category <> 'matched' ORDER BY category, id LIMIT 1000",
                    p, 1, out);
}

pg_err store_admin_settlement_batches(db_t *db, arena_t *a, db_result_t *out)
{
    return db_query(db, a,
                    "SELECT b.batch_no, b.creator_id, c.name, DATE_FORMAT(b.settle_date, '%Y-%m-%d') AS settle_date,"
                    " b.amount_fen, b.entries, " ISO("b.created_at") " AS created_at"
                    " FROM settlement_batches b JOIN creators c ON c.id = b.creator_id"
                    " ORDER BY b.settle_date DESC, b.creator_id LIMIT 200",
                    NULL, 0, out);
}

pg_err store_admin_payouts(db_t *db, arena_t *a, const char *status, db_result_t *out)
{
    db_val_t p[] = { DB_S(status) };
    return db_query(db, a,
                    "SELECT p.payout_no, p.creator_id, c.name, p.amount_fen, p.channel, p.status, p.reason,"
                    " p.attempts, DATE_FORMAT(b.settle_date, '%Y-%m-%d') AS settle_date,"
                    " " ISO("p.updated_at") " AS updated_at, " ISO("p.paid_at") " AS paid_at, p.package_info"
                    " FROM payouts p JOIN settlement_batches b ON b.id = p.batch_id"
                    " JOIN creators c ON c.id = p.creator_id"
                    " WHERE p.status = ? ORDER BY p.id DESC LIMIT 200",
                    p, 1, out);
}
