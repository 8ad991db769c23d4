/* store_iap: see include/store/store_iap.h. */
#include "store_iap.h"

#include <string.h>

static const char *store_col(const char *channel)
{
    return !strcmp(channel, "googleplay") ? "googleplay" : "appstore";
}

pg_err store_product_by_store_id(db_t *db, arena_t *a, const char *channel, const char *store_product_id,
                                 product_t *out)
{
    db_val_t p[] = { DB_S(store_product_id) };
    db_result_t r;
    /* literal statements: the statement cache keeps the pointers */
    const char *sql = !strcmp(store_col(channel), "googleplay")
        ? "SELECT id, sku, title, price_fen, creator_id, active FROM products WHERE googleplay_id = ?"
        : "SELECT id, sku, title, price_fen, creator_id, active FROM products WHERE appstore_id = ?";
    pg_err rc = db_query(db, a, sql, p, 1, &r);
    if (rc != PG_OK)
        return rc;
    if (r.rows == 0)
        return PG_ERR_NOT_FOUND;
    out->id = db_cell_i64(&r, 0, "id");
    out->sku = db_cell(&r, 0, "sku");
    out->title = db_cell(&r, 0, "title");
    out->price_fen = db_cell_i64(&r, 0, "price_fen");
    out->creator_id = db_cell(&r, 0, "creator_id");
    out->active = db_cell_i64(&r, 0, "active") == 1;
    return PG_OK;
}

pg_err store_product_set_store_id(db_t *db, const char *sku, const char *channel, const char *store_product_id)
{
    db_val_t p[] = { *store_product_id ? DB_S(store_product_id) : DB_NULL, DB_S(sku) };
    uint64_t affected = 0;
    const char *sql = !strcmp(store_col(channel), "googleplay")
        ? "UPDATE products SET googleplay_id = ? WHERE sku = ?"
        : "UPDATE products SET appstore_id = ? WHERE sku = ?";
    pg_err rc = db_exec(db, sql, p, 2, &affected, NULL);
    if (rc != PG_OK)
        return rc;
    if (affected == 0) {
        db_val_t q[] = { DB_S(sku) };
        db_result_t r;
        arena_t a;
        arena_init(&a, 0);
        rc = db_query(db, &a, "SELECT id FROM products WHERE sku = ?", q, 1, &r);
        if (rc == PG_OK && r.rows == 0)
            rc = PG_ERR_NOT_FOUND;
        arena_free(&a);
    }
    return rc;
}

pg_err store_account_token_ensure(db_t *db, arena_t *a, const char *user_ref, const char *candidate,
                                  const char **token)
{
    db_val_t ins[] = { DB_S(candidate), DB_S(user_ref) };
    db_val_t q[] = { DB_S(user_ref) };
    db_result_t r;
    pg_err rc = db_exec(db, "INSERT IGNORE INTO iap_account_tokens (token, user_ref) VALUES (?, ?)", ins, 2,
                        NULL, NULL);
    if (rc == PG_OK)
        rc = db_query(db, a, "SELECT token FROM iap_account_tokens WHERE user_ref = ?", q, 1, &r);
    if (rc == PG_OK && r.rows == 0)
        rc = PG_ERR_CONFLICT;   /* the token was taken by another user: cannot happen with an HMAC-derived one */
    if (rc == PG_OK)
        *token = db_cell(&r, 0, "token");
    return rc;
}

pg_err store_account_token_user(db_t *db, arena_t *a, const char *token, const char **user_ref)
{
    db_val_t q[] = { DB_S(token) };
    db_result_t r;
    pg_err rc = db_query(db, a, "SELECT user_ref FROM iap_account_tokens WHERE token = ?", q, 1, &r);
    if (rc == PG_OK && r.rows == 0)
        rc = PG_ERR_NOT_FOUND;
    if (rc == PG_OK)
        *user_ref = db_cell(&r, 0, "user_ref");
    return rc;
}

pg_err store_iap_lock(db_t *db, arena_t *a, const char *channel, const char *store_txn_id, iap_row_t *out)
{
    db_val_t q[] = { DB_S(channel), DB_S(store_txn_id) };
    db_result_t r;
    pg_err rc = db_query(db, a,
                         "SELECT i.id, i.status, i.anomaly, i.user_ref, i.order_id, i.payment_id, o.order_no,"
                         " i.refund_no, i.acknowledged"
                         " FROM iap_purchases i LEFT JOIN orders o ON o.id = i.order_id"
                         " WHERE i.channel = ? AND i.store_txn_id = ? FOR UPDATE",
                         q, 2, &r);
    if (rc != PG_OK)
        return rc;
    if (r.rows == 0)
        return PG_ERR_NOT_FOUND;
    out->id = db_cell_i64(&r, 0, "id");
    out->status = db_cell(&r, 0, "status");
    out->anomaly = db_cell(&r, 0, "anomaly");
    out->user_ref = db_cell(&r, 0, "user_ref");
    out->order_id = db_cell_i64(&r, 0, "order_id");
    out->payment_id = db_cell_i64(&r, 0, "payment_id");
    out->order_no = db_cell(&r, 0, "order_no");
    out->refund_no = db_cell(&r, 0, "refund_no");
    out->acknowledged = db_cell_i64(&r, 0, "acknowledged") == 1;
    return PG_OK;
}

pg_err store_iap_insert(db_t *db, const iap_new_t *n, int64_t *id)
{
    char when[20];
    uint64_t new_id = 0;
    if (n->purchased_at)
        store_format_datetime(n->purchased_at, when);
    db_val_t p[] = {
        DB_S(n->channel), DB_S(n->store_txn_id), DB_S(n->original_txn_id), DB_S(n->store_product_id),
        DB_S(n->account_token), DB_S(n->user_ref), n->product_id ? DB_I(n->product_id) : DB_NULL,
        n->order_id ? DB_I(n->order_id) : DB_NULL, n->payment_id ? DB_I(n->payment_id) : DB_NULL,
        DB_S(n->status), DB_S(n->anomaly), n->price_milli >= 0 ? DB_I(n->price_milli) : DB_NULL,
        DB_S(n->currency), DB_S(n->environment), DB_S(n->purchase_token), DB_S(n->payload),
        n->purchased_at ? DB_S(when) : DB_NULL,
    };
    pg_err rc = db_exec(db,
                        "INSERT INTO iap_purchases (channel, store_txn_id, original_txn_id, store_product_id,"
                        " account_token, user_ref, product_id, order_id, payment_id, status, anomaly, price_milli,"
                        " currency, environment, purchase_token, payload, purchased_at)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        p, sizeof p / sizeof p[0], NULL, &new_id);
    if (id)
        *id = (int64_t)new_id;
    return rc;
}

pg_err store_iap_set_state(db_t *db, int64_t id, const char *status, const char *refund_no)
{
    db_val_t p[] = { DB_S(status), DB_S(refund_no), DB_I(id) };
    return db_exec(db,
                   "UPDATE iap_purchases SET status = ?, refund_no = COALESCE(?, refund_no),"
                   " updated_at = UTC_TIMESTAMP() WHERE id = ?",
                   p, 3, NULL, NULL);
}

pg_err store_iap_set_acknowledged(db_t *db, int64_t id)
{
    db_val_t p[] = { DB_I(id) };
    return db_exec(db, "UPDATE iap_purchases SET acknowledged = 1, updated_at = UTC_TIMESTAMP() WHERE id = ?",
                   p, 1, NULL, NULL);
}

pg_err store_refund_reverse(db_t *db, arena_t *a, const char *refund_no, bool *changed)
{
    db_val_t q[] = { DB_S(refund_no) };
    db_result_t r;
    uint64_t affected = 0;
    *changed = false;
    pg_err rc = db_query(db, a,
                         "SELECT id, order_id, amount_fen FROM refunds"
                         " WHERE refund_no = ? AND status = 'SUCCEEDED' AND reversed_at IS NULL FOR UPDATE",
                         q, 1, &r);
    if (rc != PG_OK || r.rows == 0)
        return rc;
    int64_t refund_id = db_cell_i64(&r, 0, "id"), order_id = db_cell_i64(&r, 0, "order_id");
    int64_t amount = db_cell_i64(&r, 0, "amount_fen");
    db_val_t mark[] = { DB_I(refund_id) };
    rc = db_exec(db, "UPDATE refunds SET reversed_at = UTC_TIMESTAMP() WHERE id = ? AND reversed_at IS NULL",
                 mark, 1, &affected, NULL);
    if (rc != PG_OK || affected == 0)
        return rc;
    db_val_t led[] = { DB_S(refund_no), DB_S(refund_no) };
    rc = db_exec(db,
                 "INSERT INTO ledger_entries (txn_id, account, amount_fen, kind, channel, payment_id, refund_id,"
                 " creator_id, available_on, business_date)"
                 " SELECT CONCAT('unrefund:', ?), account, -amount_fen, 'payment', channel, payment_id, refund_id,"
                 " creator_id, available_on, business_date FROM ledger_entries WHERE txn_id = CONCAT('refund:', ?)",
                 led, 2, NULL, NULL);
    db_val_t ord[] = { DB_I(amount), DB_I(order_id) };
    if (rc == PG_OK)
        rc = db_exec(db,
                     "UPDATE orders SET refunded_fen = refunded_fen - ?,"
                     " status = IF(refunded_fen = 0, 'PAID', 'PARTIALLY_REFUNDED')"
                     " WHERE id = ? AND status IN ('REFUNDED', 'PARTIALLY_REFUNDED')",
                     ord, 2, NULL, NULL);
    if (rc == PG_OK)
        *changed = true;
    return rc;
}

pg_err store_entitlement_active(db_t *db, arena_t *a, const char *user_ref, int64_t product_id,
                                int64_t except_order_id, bool *has)
{
    db_val_t q[] = { DB_S(user_ref), DB_I(product_id), DB_I(except_order_id) };
    db_result_t r;
    pg_err rc = db_query(db, a,
                         "SELECT id FROM entitlements WHERE user_ref = ? AND product_id = ? AND status = 'ACTIVE'"
                         " AND order_id <> ? LIMIT 1 FOR UPDATE",
                         q, 3, &r);
    *has = rc == PG_OK && r.rows > 0;
    return rc;
}

pg_err store_iap_order_insert(db_t *db, const new_checkout_t *c, int64_t *order_id)
{
    char expires[20];
    uint64_t id = 0;
    db_val_t o[] = { DB_S(c->order_no), DB_I(c->product_id), DB_S(c->user_ref), DB_I(c->amount_fen) };
    store_format_datetime(c->expires_at, expires);
    pg_err rc = db_exec(db, "INSERT INTO orders (order_no, product_id, user_ref, amount_fen) VALUES (?, ?, ?, ?)",
                        o, 4, NULL, &id);
    if (rc != PG_OK)
        return rc;
    *order_id = (int64_t)id;
    db_val_t p[] = { DB_S(c->payment_no), DB_I((int64_t)id), DB_S(c->channel), DB_S(c->method),
                     DB_I(c->amount_fen), DB_S(c->pay_data), DB_S(expires) };
    return db_exec(db,
                   "INSERT INTO payments (payment_no, order_id, channel, method, amount_fen, pay_data, expires_at)"
                   " VALUES (?, ?, ?, ?, ?, ?, ?)",
                   p, 7, NULL, NULL);
}
