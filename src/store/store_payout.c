/* store_payout: see include/store/store_payout.h. */
#include "store_payout.h"

#include <string.h>

/* A payout still to be paid: not sent yet, sent, or waiting for the payee. */
#define PAYOUT_OPEN "status IN ('PENDING', 'WAITING_CONFIRMATION')"

#define ISO(col) "DATE_FORMAT(" col ", '%Y-%m-%dT%H:%i:%sZ')"

static db_val_t opt_str(const char *s)
{
    return s != NULL ? DB_S(s) : DB_NULL;
}

pg_err store_creator_update(db_t *db, const char *id, const char *name, const char *alipay_account,
                            const char *real_name, const char *wechat_openid)
{
    /* NULL keeps a column ("unset" flag), "" clears it */
    db_val_t p[] = { DB_I(name != NULL), opt_str(name),
                     DB_I(alipay_account != NULL), opt_str(alipay_account),
                     DB_I(real_name != NULL), opt_str(real_name),
                     DB_I(wechat_openid != NULL), opt_str(wechat_openid), DB_S(id) };
    db_result_t r;
    arena_t a;
    pg_err rc = db_exec(db,
                        "UPDATE creators SET name = IF(?, ?, name),"
                        " alipay_account = IF(?, NULLIF(?, ''), alipay_account),"
                        " real_name = IF(?, NULLIF(?, ''), real_name),"
                        " wechat_openid = IF(?, NULLIF(?, ''), wechat_openid) WHERE id = ?",
                        p, 9, NULL, NULL);
    if (rc != PG_OK)
        return rc;
    arena_init(&a, 0);
    {
        db_val_t q[] = { DB_S(id) };
        rc = db_query(db, &a, "SELECT id FROM creators WHERE id = ?", q, 1, &r);
    }
    if (rc == PG_OK && r.rows == 0)
        rc = PG_ERR_NOT_FOUND;
    arena_free(&a);
    return rc;
}

/* a*****yz: the first character and the last two of 8 or more, else stars */
#define MASK(col) "IF(" col " IS NULL, NULL, IF(CHAR_LENGTH(" col ") >= 8, CONCAT(LEFT(" col ", 1), '*****'," \
                  " RIGHT(" col ", 2)), '*****'))"

pg_err store_creator_list_masked(db_t *db, arena_t *a, db_result_t *out)
{
    return db_query(db, a,
                    "SELECT c.id, c.name, COUNT(p.id) AS products, " MASK("c.alipay_account") " AS alipay_account,"
                    " IF(c.real_name IS NULL, NULL, CONCAT('*', SUBSTRING(c.real_name, 2))) AS real_name,"
                    " " MASK("c.wechat_openid") " AS wechat_openid, " ISO("c.created_at") " AS created_at"
                    " FROM creators c LEFT JOIN products p ON p.creator_id = c.id"
                    " GROUP BY c.id, c.name, c.alipay_account, c.real_name, c.wechat_openid, c.created_at"
                    " ORDER BY c.id",
                    NULL, 0, out);
}

pg_err store_payouts_create(db_t *db, const char *ymd, const char *start_date, const char *channel, int64_t min_fen, uint64_t *created,
                            uint64_t *waiting)
{
    db_val_t p[] = { DB_S(channel), DB_I(min_fen), DB_S(start_date), opt_str(ymd), opt_str(ymd), DB_S(channel) };
    db_result_t r;
    arena_t a;
    pg_err rc = db_exec(db,
                        "INSERT IGNORE INTO payouts (payout_no, batch_id, creator_id, amount_fen, channel)"
                        " SELECT b.batch_no, b.id, b.creator_id, b.amount_fen, ? FROM settlement_batches b"
                        " JOIN creators c ON c.id = b.creator_id"
                        " WHERE b.amount_fen >= ? AND b.settle_date >= ? AND (? IS NULL OR b.settle_date = ?)"
                        " AND IF(? = 'wechat', c.wechat_openid, c.alipay_account) IS NOT NULL"
                        " AND NOT EXISTS (SELECT 1 FROM payouts x WHERE x.batch_id = b.id)",
                        p, 6, created, NULL);
    if (rc != PG_OK)
        return rc;
    arena_init(&a, 0);
    {
        db_val_t q[] = { DB_I(min_fen), DB_S(start_date), opt_str(ymd), opt_str(ymd), DB_S(channel) };
        rc = db_query(db, &a,
                      "SELECT COUNT(*) AS n FROM settlement_batches b JOIN creators c ON c.id = b.creator_id"
                      " WHERE b.amount_fen >= ? AND b.settle_date >= ? AND (? IS NULL OR b.settle_date = ?)"
                      " AND IF(? = 'wechat', c.wechat_openid, c.alipay_account) IS NULL"
                      " AND NOT EXISTS (SELECT 1 FROM payouts x WHERE x.batch_id = b.id)",
                      q, 5, &r);
    }
    if (rc == PG_OK)
        *waiting = (uint64_t)db_cell_i64(&r, 0, "n");
    arena_free(&a);
    return rc;
}

pg_err store_payouts_due(db_t *db, arena_t *a, const char *ymd, db_result_t *out)
{
    db_val_t p[] = { opt_str(ymd), opt_str(ymd) };
    return db_query(db, a,
                    "SELECT p.id, p.payout_no, p.creator_id, p.amount_fen, p.channel, p.sent, p.attempts, p.bill_gen,"
                    " c.alipay_account, c.real_name, c.wechat_openid FROM payouts p"
                    " JOIN creators c ON c.id = p.creator_id JOIN settlement_batches b ON b.id = p.batch_id"
                    " WHERE p." PAYOUT_OPEN " AND (p.claimed_until IS NULL OR p.claimed_until < UTC_TIMESTAMP())"
                    " AND (? IS NULL OR b.settle_date = ?) ORDER BY p.id",
                    p, 2, out);
}

pg_err store_payout_claim(db_t *db, int64_t id, int64_t attempts_seen, int ttl_s, bool *got)
{
    db_val_t p[] = { DB_I(ttl_s), DB_I(id), DB_I(attempts_seen) };
    uint64_t affected = 0;
    pg_err rc = db_exec(db,
                        "UPDATE payouts SET claimed_until = UTC_TIMESTAMP() + INTERVAL ? SECOND,"
                        " attempts = attempts + 1, sent = 1, updated_at = UTC_TIMESTAMP()"
                        " WHERE id = ? AND " PAYOUT_OPEN " AND attempts = ?"
                        " AND (claimed_until IS NULL OR claimed_until < UTC_TIMESTAMP())",
                        p, 3, &affected, NULL);
    *got = rc == PG_OK && affected == 1;
    return rc;
}

pg_err store_payout_release(db_t *db, int64_t id, const char *reason, bool not_sent)
{
    db_val_t p[] = { opt_str(reason), DB_I(not_sent), DB_I(id) };
    return db_exec(db,
                   "UPDATE payouts SET claimed_until = NULL, reason = COALESCE(?, reason),"
                   " sent = IF(?, 0, sent), updated_at = UTC_TIMESTAMP() WHERE id = ? AND " PAYOUT_OPEN,
                   p, 3, NULL, NULL);
}

pg_err store_payout_wait_user(db_t *db, int64_t id, const char *reason, const char *package_info)
{
    db_val_t p[] = { DB_S(reason), opt_str(package_info), DB_I(id) };
    return db_exec(db,
                   "UPDATE payouts SET status = 'WAITING_CONFIRMATION', claimed_until = NULL, reason = LEFT(?, 255),"
                   " package_info = ?, updated_at = UTC_TIMESTAMP() WHERE id = ? AND " PAYOUT_OPEN,
                   p, 3, NULL, NULL);
}

pg_err store_payout_processing(db_t *db, int64_t id, const char *reason)
{
    db_val_t p[] = { DB_S(reason), DB_I(id) };
    return db_exec(db,
                   "UPDATE payouts SET status = 'PENDING', claimed_until = NULL, reason = LEFT(?, 255),"
                   " package_info = NULL, updated_at = UTC_TIMESTAMP() WHERE id = ? AND " PAYOUT_OPEN,
                   p, 2, NULL, NULL);
}

pg_err store_payout_lock(db_t *db, arena_t *a, int64_t id, payout_row_t *out)
{
    db_val_t p[] = { DB_I(id) };
    db_result_t r;
    pg_err rc = db_query(db, a,
                         "SELECT id, payout_no, creator_id, channel, status, amount_fen, bill_gen FROM payouts"
                         " WHERE id = ? FOR UPDATE",
                         p, 1, &r);
    memset(out, 0, sizeof *out);
    if (rc != PG_OK)
        return rc;
    if (r.rows == 0)
        return PG_ERR_NOT_FOUND;
    out->id = id;
    out->payout_no = db_cell(&r, 0, "payout_no");
    out->creator_id = db_cell(&r, 0, "creator_id");
    out->channel = db_cell(&r, 0, "channel");
    out->status = db_cell(&r, 0, "status");
    out->amount_fen = db_cell_i64(&r, 0, "amount_fen");
    out->bill_gen = db_cell_i64(&r, 0, "bill_gen");
    return PG_OK;
}

pg_err store_payout_set_paid(db_t *db, int64_t id, const char *provider_order_id)
{
    db_val_t p[] = { opt_str(provider_order_id), DB_I(id) };
    uint64_t affected = 0;
    pg_err rc = db_exec(db,
                        "UPDATE payouts SET status = 'PAID', provider_order_id = ?, reason = NULL, package_info = NULL,"
                        " claimed_until = NULL, paid_at = UTC_TIMESTAMP(), updated_at = UTC_TIMESTAMP()"
                        " WHERE id = ? AND " PAYOUT_OPEN,
                        p, 2, &affected, NULL);
    return rc == PG_OK && affected != 1 ? PG_ERR_CONFLICT : rc;
}

pg_err store_payout_set_failed(db_t *db, int64_t id, const char *reason)
{
    db_val_t p[] = { DB_S(reason), DB_I(id) };
    uint64_t affected = 0;
    pg_err rc = db_exec(db,
                        "UPDATE payouts SET status = 'FAILED', reason = LEFT(?, 255), claimed_until = NULL, package_info = NULL,"
                        " updated_at = UTC_TIMESTAMP() WHERE id = ? AND " PAYOUT_OPEN,
                        p, 2, &affected, NULL);
    return rc == PG_OK && affected != 1 ? PG_ERR_CONFLICT : rc;
}

pg_err store_payout_find_wechat_bill(db_t *db, const char *out_bill_no, int64_t *id)
{
    db_val_t p[] = { DB_S(out_bill_no) };
    db_result_t r;
    arena_t a;
    pg_err rc;
    *id = 0;
    arena_init(&a, 0);
    rc = db_query(db, &a, "SELECT id FROM payouts WHERE channel = 'wechat' AND REPLACE(payout_no, '-', '') = ?"
                  " ORDER BY id LIMIT 1", p, 1, &r);
    if (rc == PG_OK && r.rows == 0)
        rc = PG_ERR_NOT_FOUND;
    if (rc == PG_OK)
        *id = db_cell_i64(&r, 0, "id");
    arena_free(&a);
    return rc;
}

pg_err store_payout_get(db_t *db, arena_t *a, const char *payout_no, db_result_t *out)
{
    db_val_t p[] = { DB_S(payout_no) };
    pg_err rc = db_query(db, a, "SELECT payout_no, status, amount_fen, channel, package_info FROM payouts"
                         " WHERE payout_no = ?", p, 1, out);
    return rc == PG_OK && out->rows == 0 ? PG_ERR_NOT_FOUND : rc;
}

pg_err store_payout_retry(db_t *db, const char *payout_no, uint64_t *changed)
{
    db_val_t p[] = { DB_S(payout_no) };
    return db_exec(db,
                   "UPDATE payouts SET status = 'PENDING', claimed_until = NULL, updated_at = UTC_TIMESTAMP(),"
                   /* a new transfer number (the failed transfer is final); nothing sent under it yet */
                   " bill_gen = bill_gen + 1, sent = 0, package_info = NULL"
                   " WHERE payout_no = ? AND status = 'FAILED'",
                   p, 1, changed, NULL);
}

pg_err store_payout_list(db_t *db, arena_t *a, const char *status, db_result_t *out)
{
    db_val_t p[] = { opt_str(status), opt_str(status) };
    return db_query(db, a,
                    "SELECT p.payout_no, p.creator_id, p.amount_fen, p.channel, p.status, p.reason,"
                    " p.provider_order_id, p.package_info, DATE_FORMAT(b.settle_date, '%Y-%m-%d') AS settle_date,"
                    " " ISO("p.paid_at") " AS paid_at FROM payouts p JOIN settlement_batches b ON b.id = p.batch_id"
                    " WHERE (? IS NULL OR p.status = ?) ORDER BY p.id",
                    p, 2, out);
}

pg_err store_payout_totals(db_t *db, arena_t *a, const char *from, const char *to, db_result_t *out)
{
    db_val_t p[] = { DB_S(from), DB_S(to) };
    return db_query(db, a,
                    "SELECT p.status, COUNT(*) AS payouts, SUM(p.amount_fen) AS amount_fen FROM payouts p"
                    " JOIN settlement_batches b ON b.id = p.batch_id WHERE b.settle_date BETWEEN ? AND ?"
                    " GROUP BY p.status ORDER BY p.status",
                    p, 2, out);
}

pg_err store_payout_event(db_t *db, const char *event_id, const char *type, const char *payload)
{
    db_val_t p[] = { DB_S(event_id), DB_S(type), DB_S(payload) };
    return db_exec(db, "INSERT INTO webhook_events (event_id, type, order_no, payload) VALUES (?, ?, NULL, ?)",
                   p, 3, NULL, NULL);
}
