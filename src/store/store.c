/* store: paygate's tables through prepared statements. See include/store.h. */
#include "store.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include "crypto.h"

#include "text.h"

#define ISO(col) "DATE_FORMAT(" col ", '%Y-%m-%dT%H:%i:%sZ')"

void store_format_datetime(time_t t, char out[20])
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 20, "%Y-%m-%d %H:%M:%S", &tm);
}

pg_err store_creator_add(db_t *db, const char *id, const char *name)
{
    db_val_t p[] = { DB_S(id), DB_S(name) };
    if (!text_is_token(id, STORE_CREATOR_ID_MAX, "_.-") || !name || !*name || strlen(name) > 200)
        return PG_ERR_BAD_INPUT;
    return db_exec(db, "INSERT INTO creators (id, name) VALUES (?, ?)", p, 2, NULL, NULL);
}

pg_err store_creator_list(db_t *db, arena_t *a, db_result_t *out)
{
    return db_query(db, a,
                    "SELECT c.id, c.name, COUNT(p.id) AS products, " ISO("c.created_at") " AS created_at"
                    " FROM creators c LEFT JOIN products p ON p.creator_id = c.id"
                    " GROUP BY c.id, c.name, c.created_at ORDER BY c.id",
                    NULL, 0, out);
}

pg_err store_product_add(db_t *db, const char *sku, const char *title, int64_t price_fen,
                         const char *creator_id)
{
    db_val_t p[] = { DB_S(sku), DB_S(title), DB_I(price_fen), DB_S(creator_id) };
    return db_exec(db, "INSERT INTO products (sku, title, price_fen, creator_id) VALUES (?, ?, ?, ?)",
                   p, 4, NULL, NULL);
}

pg_err store_product_list(db_t *db, arena_t *a, bool active_only, db_result_t *out)
{
    db_val_t p[] = { DB_I(active_only ? 1 : 0) };
    return db_query(db, a,
                    "SELECT id, sku, title, price_fen, creator_id, active, appstore_id, googleplay_id FROM products"
                    " WHERE active = 1 OR ? = 0 ORDER BY id",
                    p, 1, out);
}

pg_err store_product_by_sku(db_t *db, arena_t *a, const char *sku, product_t *out)
{
    db_val_t p[] = { DB_S(sku) };
    db_result_t r;
    pg_err rc = db_query(db, a,
                         "SELECT id, sku, title, price_fen, creator_id, active FROM products WHERE sku = ?",
                         p, 1, &r);
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

static pg_err checkout_tx(db_t *db, void *ctx)
{
    const new_checkout_t *c = ctx;
    char expires[20];
    uint64_t order_id = 0;
    pg_err rc;
    db_val_t o[] = { DB_S(c->order_no), DB_I(c->product_id), DB_S(c->user_ref), DB_I(c->amount_fen),
                     DB_S(c->request_id), DB_S(c->request_hash) };
    store_format_datetime(c->expires_at, expires);
    rc = db_exec(db,
                 "INSERT INTO orders (order_no, product_id, user_ref, amount_fen, request_id, request_hash)"
                 " VALUES (?, ?, ?, ?, ?, ?)",
                 o, 6, NULL, &order_id);
    if (rc != PG_OK)
        return rc;
    {
        db_val_t p[] = { DB_S(c->payment_no), DB_I((int64_t)order_id), DB_S(c->channel), DB_S(c->method),
                         DB_I(c->amount_fen), DB_S(c->pay_data), DB_S(expires), DB_S(c->provider_ref),
                         DB_S(c->api_version) };
        rc = db_exec(db,
                     "INSERT INTO payments (payment_no, order_id, channel, method, amount_fen, pay_data, expires_at,"
                     " provider_trade_no, api_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     p, 9, NULL, NULL);
    }
    return rc;
}

pg_err store_payment_insert(db_t *db, const char *payment_no, int64_t order_id, const char *channel,
                            const char *method, int64_t amount_fen, const char *pay_data, time_t expires_at)
{
    return store_payment_insert_ref(db, payment_no, order_id, channel, method, amount_fen, pay_data, expires_at,
                                    NULL, NULL);
}

pg_err store_payment_insert_ref(db_t *db, const char *payment_no, int64_t order_id, const char *channel,
                                const char *method, int64_t amount_fen, const char *pay_data, time_t expires_at,
                                const char *provider_ref, const char *api_version)
{
    char expires[20];
    store_format_datetime(expires_at, expires);
    {
        db_val_t p[] = { DB_S(payment_no), DB_I(order_id), DB_S(channel), DB_S(method), DB_I(amount_fen),
                         DB_S(pay_data), DB_S(expires), DB_S(provider_ref), DB_S(api_version) };
        return db_exec(db,
                       "INSERT INTO payments (payment_no, order_id, channel, method, amount_fen, pay_data, expires_at,"
                       " provider_trade_no, api_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       p, 9, NULL, NULL);
    }
}

pg_err store_payment_provider_ref(db_t *db, arena_t *a, const char *payment_no, const char **out)
{
    db_val_t p[] = { DB_S(payment_no) };
    db_result_t r;
    pg_err rc = db_query(db, a, "SELECT provider_trade_no FROM payments WHERE payment_no = ?", p, 1, &r);
    *out = NULL;
    if (rc != PG_OK)
        return rc;
    *out = r.rows ? db_cell(&r, 0, "provider_trade_no") : NULL;
    return *out ? PG_OK : PG_ERR_NOT_FOUND;
}

pg_err store_payment_api_version(db_t *db, arena_t *a, const char *payment_no, const char **out)
{
    db_val_t p[] = { DB_S(payment_no) };
    db_result_t r;
    pg_err rc = db_query(db, a, "SELECT api_version FROM payments WHERE payment_no = ?", p, 1, &r);
    *out = NULL;
    if (rc != PG_OK)
        return rc;
    if (!r.rows)
        return PG_ERR_NOT_FOUND;
    *out = db_cell(&r, 0, "api_version");
    return PG_OK;
}

/* After a lost COMMIT reply: the order is there by its order_no (chosen
 * before the first attempt, with the payment_no) or checkout_tx runs again. */
static pg_err checkout_found(db_t *db, void *ctx)
{
    const new_checkout_t *c = ctx;
    db_val_t p[] = { DB_S(c->order_no) };
    db_result_t r;
    arena_t a;
    pg_err rc;
    arena_init(&a, 1024);
    rc = db_query(db, &a, "SELECT id FROM orders WHERE order_no = ? FOR UPDATE", p, 1, &r);
    if (rc == PG_OK && r.rows == 0)
        rc = PG_ERR_NOT_FOUND;
    arena_free(&a);
    return rc;
}

pg_err store_checkout_insert(db_t *db, const new_checkout_t *c)
{
    /* Still unknown: the shop gets a retryable 503 (its request_id finds the order). */
    return db_tx_resolve(db, checkout_tx, checkout_found, (void *)(uintptr_t)c);
}

#define ORDER_VIEW_SELECT                                                                        \
    "SELECT o.id, o.order_no, o.status, o.user_ref, o.request_hash, o.product_id, o.amount_fen," \
    " o.refunded_fen, " ISO("o.created_at") " AS created_at, " ISO("o.paid_at") " AS paid_at,"   \
    " pr.sku, pr.title, p.payment_no, p.channel, p.method, p.status AS payment_status,"          \
    " p.pay_data, " ISO("p.expires_at") " AS expires_at, p.provider_trade_no, p.id AS payment_id," \
    " TIMESTAMPDIFF(SECOND, p.created_at, UTC_TIMESTAMP()) AS payment_age_s"                     \
    " FROM orders o JOIN products pr ON pr.id = o.product_id JOIN payments p ON p.order_id = o.id"

/* One order found by COND, with its paid payment, else its latest one. */
#define ORDER_VIEW_WHERE(cond) \
    ORDER_VIEW_SELECT " WHERE " cond " ORDER BY (p.status = 'PAID') DESC, p.id DESC LIMIT 1"

static pg_err order_view_fill(const db_result_t *r, order_view_t *out)
{
    if (r->rows == 0)
        return PG_ERR_NOT_FOUND;
    out->id = db_cell_i64(r, 0, "id");
    out->order_no = db_cell(r, 0, "order_no");
    out->status = db_cell(r, 0, "status");
    out->user_ref = db_cell(r, 0, "user_ref");
    out->request_hash = db_cell(r, 0, "request_hash");
    out->product_id = db_cell_i64(r, 0, "product_id");
    out->product_sku = db_cell(r, 0, "sku");
    out->product_title = db_cell(r, 0, "title");
    out->amount_fen = db_cell_i64(r, 0, "amount_fen");
    out->refunded_fen = db_cell_i64(r, 0, "refunded_fen");
    out->created_at = db_cell(r, 0, "created_at");
    out->paid_at = db_cell(r, 0, "paid_at");
    out->payment_no = db_cell(r, 0, "payment_no");
    out->channel = db_cell(r, 0, "channel");
    out->method = db_cell(r, 0, "method");
    out->payment_status = db_cell(r, 0, "payment_status");
    out->pay_data = db_cell(r, 0, "pay_data");
    out->expires_at = db_cell(r, 0, "expires_at");
    out->provider_trade_no = db_cell(r, 0, "provider_trade_no");
    out->payment_id = db_cell_i64(r, 0, "payment_id");
    out->payment_age_s = db_cell_i64(r, 0, "payment_age_s");
    return PG_OK;
}

pg_err store_order_by_no(db_t *db, arena_t *a, const char *order_no, order_view_t *out)
{
    db_val_t p[] = { DB_S(order_no) };
    db_result_t r;
    pg_err rc = db_query(db, a, ORDER_VIEW_WHERE("o.order_no = ?"), p, 1, &r);
    return rc != PG_OK ? rc : order_view_fill(&r, out);
}

pg_err store_order_by_request_id(db_t *db, arena_t *a, const char *request_id, order_view_t *out)
{
    db_val_t p[] = { DB_S(request_id) };
    db_result_t r;
    pg_err rc = db_query(db, a, ORDER_VIEW_WHERE("o.request_id = ?"), p, 1, &r);
    return rc != PG_OK ? rc : order_view_fill(&r, out);
}

pg_err store_order_by_payment_no(db_t *db, arena_t *a, const char *payment_no, order_view_t *out)
{
    db_val_t p[] = { DB_S(payment_no) };
    db_result_t r;
    pg_err rc = db_query(db, a, ORDER_VIEW_WHERE("o.id = (SELECT order_id FROM payments WHERE payment_no = ?)"),
                         p, 1, &r);
    return rc != PG_OK ? rc : order_view_fill(&r, out);
}

pg_err store_payment_view(db_t *db, arena_t *a, const char *payment_no, order_view_t *out, bool *expired)
{
    db_val_t p[] = { DB_S(payment_no) };
    db_result_t r;
    pg_err rc = db_query(db, a,
                         "SELECT o.id, o.order_no, o.status, o.user_ref, o.request_hash, o.product_id, o.amount_fen,"
                         " o.refunded_fen, " ISO("o.created_at") " AS created_at, " ISO("o.paid_at") " AS paid_at,"
                         " pr.sku, pr.title, p.payment_no, p.channel, p.method, p.status AS payment_status,"
                         " p.pay_data, " ISO("p.expires_at") " AS expires_at, p.provider_trade_no,"
                         " p.id AS payment_id, TIMESTAMPDIFF(SECOND, p.created_at, UTC_TIMESTAMP()) AS payment_age_s,"
                         " (p.expires_at < UTC_TIMESTAMP()) AS expired"
                         " FROM payments p JOIN orders o ON o.id = p.order_id JOIN products pr ON pr.id = o.product_id"
                         " WHERE p.payment_no = ?",
                         p, 1, &r);
    if (rc != PG_OK)
        return rc;
    *expired = db_cell_i64(&r, 0, "expired") == 1;
    return order_view_fill(&r, out);
}

pg_err store_order_list(db_t *db, arena_t *a, const char *status, db_result_t *out)
{
    db_val_t p[] = { DB_S(status), DB_S(status) };
    return db_query(db, a,
                    "SELECT o.order_no, o.status, o.amount_fen, o.refunded_fen, pr.sku, o.user_ref,"
                    " " ISO("o.created_at") " AS created_at, " ISO("o.paid_at") " AS paid_at"
                    " FROM orders o JOIN products pr ON pr.id = o.product_id"
                    " WHERE ? IS NULL OR o.status = ? ORDER BY o.id DESC LIMIT 1000",
                    p, 2, out);
}

pg_err store_order_payments(db_t *db, arena_t *a, int64_t order_id, db_result_t *out)
{
    db_val_t p[] = { DB_I(order_id) };
    return db_query(db, a,
                    "SELECT payment_no, channel, method, amount_fen, status, anomaly, provider_trade_no,"
                    " " ISO("created_at") " AS created_at, " ISO("expires_at") " AS expires_at,"
                    " " ISO("paid_at") " AS paid_at FROM payments WHERE order_id = ? ORDER BY id",
                    p, 1, out);
}

/* Locks the payment and its order, nothing else: the product's creator comes
 * from a subquery, which FOR UPDATE does not lock. (A join would X-lock the
 * product row until COMMIT, so every notification and every checkout of the
 * same course — its order INSERT takes a shared lock on the product through
 * the foreign key — would queue behind one another.) */
pg_err store_payment_lock(db_t *db, arena_t *a, const char *channel, const char *payment_no,
                          payment_t *out)
{
    db_val_t p[] = { DB_S(payment_no), DB_S(channel) };
    db_result_t r;
    pg_err rc = db_query(db, a,
                         "SELECT p.id, p.order_id, p.payment_no, p.channel, p.method, p.amount_fen, p.status,"
                         " o.status AS order_status, o.order_no,"
                         " (SELECT pr.creator_id FROM products pr WHERE pr.id = o.product_id) AS creator_id"
                         " FROM payments p JOIN orders o ON o.id = p.order_id"
                         " WHERE p.payment_no = ? AND p.channel = ? FOR UPDATE",
                         p, 2, &r);
    if (rc != PG_OK)
        return rc;
    if (r.rows == 0)
        return PG_ERR_NOT_FOUND;
    out->id = db_cell_i64(&r, 0, "id");
    out->order_id = db_cell_i64(&r, 0, "order_id");
    out->payment_no = db_cell(&r, 0, "payment_no");
    out->channel = db_cell(&r, 0, "channel");
    out->method = db_cell(&r, 0, "method");
    out->amount_fen = db_cell_i64(&r, 0, "amount_fen");
    out->status = db_cell(&r, 0, "status");
    out->order_status = db_cell(&r, 0, "order_status");
    out->order_no = db_cell(&r, 0, "order_no");
    out->creator_id = db_cell(&r, 0, "creator_id");
    return PG_OK;
}

#define PAYMENT_SET_PAID                                                                            \
    " SET p.status = 'PAID', p.provider_trade_no = ?, p.buyer_ref = ?,"                             \
    " p.paid_at = IF(? = 0, UTC_TIMESTAMP(), FROM_UNIXTIME(?)), p.updated_at = UTC_TIMESTAMP(),"     \
    " p.fee_fen = ?, p.creator_id = ?"

pg_err store_payment_mark_paid(db_t *db, const payment_t *p, const paid_mark_t *m, bool *changed,
                               bool *order_changed)
{
    db_val_t v[] = { DB_S(m->provider_trade_no), DB_S(m->buyer_ref), DB_I((int64_t)m->paid_at),
                     DB_I((int64_t)m->paid_at), DB_I(m->fee_fen), DB_S(m->creator_id),
                     DB_I((int64_t)m->paid_at), DB_I((int64_t)m->paid_at), DB_I(p->id) };
    bool with_order = !strcmp(p->order_status, "CREATED");
    uint64_t n = 0;
    pg_err rc;
    if (with_order)   /* both rows are locked: they move together or not at all */
        rc = db_exec(db,
                     "UPDATE payments p JOIN orders o ON o.id = p.order_id" PAYMENT_SET_PAID ","
                     " o.status = 'PAID', o.paid_at = IF(? = 0, UTC_TIMESTAMP(), FROM_UNIXTIME(?))"
                     " WHERE p.id = ? AND p.status IN ('CREATED', 'CLOSED') AND o.status = 'CREATED'",
                     v, 9, &n, NULL);
    else
        rc = db_exec(db,
                     "UPDATE payments p" PAYMENT_SET_PAID " WHERE p.id = ? AND p.status IN ('CREATED', 'CLOSED')",
                     (db_val_t[]){ v[0], v[1], v[2], v[3], v[4], v[5], v[8] }, 7, &n, NULL);
    *changed = n >= 1;
    *order_changed = with_order && n == 2;
    return rc;
}

pg_err store_payment_mark_closed(db_t *db, int64_t payment_id, bool *changed)
{
    db_val_t p[] = { DB_I(payment_id) };
    uint64_t n = 0;
    pg_err rc = db_exec(db,
                        "UPDATE payments SET status = 'CLOSED', closed_at = UTC_TIMESTAMP(),"
                        " updated_at = UTC_TIMESTAMP() WHERE id = ? AND status = 'CREATED'",
                        p, 1, &n, NULL);
    *changed = n == 1;
    return rc;
}

/* Copies at most max bytes of s, replacing every byte that is not part of a
 * valid UTF-8 sequence (and control bytes) with '?': hostile values go to
 * utf8mb4 columns for the log, never to an error. */
static void text_for_column(const char *s, char *out, size_t max)
{
    size_t o = 0;
    const unsigned char *p = (const unsigned char *)s;
    while (s && *p && o + 1 < max) {
        size_t len = *p < 0x80 ? 1 : (*p & 0xE0) == 0xC0 ? 2 : (*p & 0xF0) == 0xE0 ? 3 : (*p & 0xF8) == 0xF0 ? 4 : 0;
        bool ok = len > 0 && !(len == 2 && *p < 0xC2) && !(len == 4 && *p > 0xF4) && o + len < max;
        for (size_t k = 1; ok && k < len; k++)
            ok = (p[k] & 0xC0) == 0x80;
        if (ok && len == 1 && (*p < 0x20 || *p == 0x7F))
            ok = false;
        if (!ok) {
            out[o++] = '?';
            p++;
            continue;
        }
        memcpy(out + o, p, len);
        o += len;
        p += len;
    }
    out[o] = '\0';
}

pg_err store_notification_add(db_t *db, const notification_rec_t *n)
{
    char detail[256], payment_no[65], notify_id[129], source[46], sha[65];
    size_t len = n->raw_body ? n->raw_len : 0;
    size_t keep = n->keep_len && n->keep_len < len ? n->keep_len : len;
    db_val_t p[10];
    text_for_column(n->detail ? n->detail : "", detail, sizeof detail);
    text_for_column(n->payment_no, payment_no, sizeof payment_no);
    text_for_column(n->notify_id, notify_id, sizeof notify_id);
    text_for_column(n->source, source, sizeof source);
    crypto_sha256_hex(n->raw_body ? n->raw_body : "", len, sha);
    p[0] = DB_S(n->channel);
    p[1] = DB_S(n->kind);
    p[2] = DB_S(n->payment_no ? payment_no : NULL);
    p[3] = DB_S(n->notify_id ? notify_id : NULL);
    p[4] = DB_S(n->outcome);
    p[5] = DB_S(detail);
    p[6] = DB_B(n->raw_body ? n->raw_body : "", keep);
    p[7] = DB_I((int64_t)len);
    p[8] = DB_S(sha[0] ? sha : NULL);
    p[9] = DB_S(n->source ? source : NULL);
    return db_exec(db,
                   "INSERT INTO notifications (channel, kind, payment_no, notify_id, outcome, detail, raw_body,"
                   " raw_len, raw_sha256, source)"
                   " VALUES (?, ?, LEFT(?, 64), LEFT(?, 128), ?, ?, ?, ?, ?, ?)",
                   p, 10, NULL, NULL);
}

pg_err store_notification_source_count(db_t *db, arena_t *a, const char *source, time_t now, int64_t *count)
{
    char minute[20], src[46];
    db_result_t r;
    db_val_t p[2];
    pg_err rc;
    store_format_datetime(now - now % 60, minute);
    text_for_column(source ? source : "-", src, sizeof src);
    p[0] = DB_S(src);
    p[1] = DB_S(minute);
    *count = 0;
    rc = db_exec(db,
                 "INSERT INTO notification_sources (source, minute, rejected) VALUES (?, ?, 1)"
                 " ON DUPLICATE KEY UPDATE rejected = rejected + 1",
                 p, 2, NULL, NULL);
    if (rc == PG_OK)
        rc = db_query(db, a, "SELECT rejected FROM notification_sources WHERE source = ? AND minute = ?", p, 2, &r);
    if (rc == PG_OK && r.rows == 1)
        *count = db_cell_i64(&r, 0, "rejected");
    return rc;
}

pg_err store_notifications_prune(db_t *db, int64_t days, uint64_t *deleted)
{
    db_val_t p[1] = { DB_I(days) };
    uint64_t n = 0;
    pg_err rc;
    *deleted = 0;
    /* In slices: a flood's worth of rows never holds locks for long. */
    do {
        rc = db_exec(db,
                     "DELETE FROM notifications WHERE outcome <> 'accepted'"
                     " AND received_at < UTC_TIMESTAMP(3) - INTERVAL ? DAY LIMIT 5000",
                     p, 1, &n, NULL);
        if (rc == PG_OK)
            *deleted += n;
    } while (rc == PG_OK && n == 5000);
    if (rc == PG_OK)
        rc = db_exec(db, "DELETE FROM notification_sources WHERE minute < UTC_TIMESTAMP() - INTERVAL 1 DAY",
                     NULL, 0, NULL, NULL);
    return rc;
}
