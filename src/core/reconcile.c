/* reconcile: see include/reconcile.h. */
#include "reconcile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bill.h"
#include "channel.h"
#include "crypto.h"
#include "ledger.h"
#include "log.h"
#include "money.h"

typedef struct recon_ctx {
    pg_app_t *app;
    arena_t *a;
    const char *channel;
    const char *ymd;
    int64_t run_id;
    recon_summary_t *s;
    recon_summary_t start;   /* the counts before matching: every attempt starts from them */
} recon_ctx_t;

static pg_err read_file(arena_t *a, const char *path, buf_t *out, buf_t *msg)
{
    FILE *f = fopen(path, "rb");
    char chunk[65536];
    size_t n;
    if (!f) {
        buf_printf(msg, "cannot read %s", path);
        return PG_ERR_NOT_FOUND;
    }
    buf_init(out, a);
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (out->len + n > BILL_MAX_DOWNLOAD || buf_append(out, chunk, n) != PG_OK) {
            fclose(f);
            buf_printf(msg, "%s is too large", path);
            return PG_ERR_TOO_LARGE;
        }
    }
    fclose(f);
    return PG_OK;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

static pg_err local_movements(recon_ctx_t *c, int64_t *n)
{
    db_val_t p[] = { DB_S(c->channel), DB_S(c->ymd), DB_S(c->channel), DB_S(c->ymd) };
    db_result_t r;
    pg_err rc = db_query(c->app->db, c->a,
                         "SELECT (SELECT COUNT(*) FROM payments WHERE channel = ? AND status = 'PAID'"
                         "   AND DATE(paid_at + INTERVAL 8 HOUR) = ?) +"
                         " (SELECT COUNT(*) FROM refunds r JOIN payments p ON p.id = r.payment_id WHERE p.channel = ?"
                         "   AND r.status = 'SUCCEEDED' AND DATE(r.succeeded_at + INTERVAL 8 HOUR) = ?) AS n",
                         p, 4, &r);
    *n = rc == PG_OK ? db_cell_i64(&r, 0, "n") : 0;
    return rc;
}

/* Stripe publishes no bill file: the day's balance transactions (a
 * Beijing-time day, as the other channels' bills) are its bill. */
static pg_err stripe_day_bill(recon_ctx_t *c, bill_t *bill, buf_t *msg)
{
    struct tm tm;
    stripe_error_t e;
    time_t from;
    memset(&tm, 0, sizeof tm);
    if (sscanf(c->ymd, "%4d-%2d-%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday) != 3)
        return PG_ERR_BAD_INPUT;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    from = timegm(&tm) - 8 * 3600;
    return stripe_balance_bill(&c->app->stripe, c->a, from, from + 86400, bill, &e, msg);
}

/* WeChat: the API v3 trade bill when new payments go through v3 or when the
 * day has a movement of a v3 payment (payments.api_version), as long as the
 * v3 keys are configured; else the v2 downloadbill. Both are the same
 * merchant's bill in the same format. */
static pg_err wechat_use_v3(recon_ctx_t *c, bool *v3)
{
    db_val_t p[] = { DB_S(c->ymd), DB_S(c->ymd) };
    db_result_t r;
    pg_err rc;
    *v3 = false;
    if (!c->app->wechat_v3_ready)
        return PG_OK;
    if (c->app->cfg->wechat.api_v3) {
        *v3 = true;
        return PG_OK;
    }
    rc = db_query(c->app->db, c->a,
                  "SELECT COUNT(*) AS n FROM payments p WHERE p.channel = 'wechat' AND p.api_version = 'v3' AND"
                  " (DATE(p.paid_at + INTERVAL 8 HOUR) = ? OR EXISTS (SELECT 1 FROM refunds r WHERE"
                  " r.payment_id = p.id AND DATE(r.succeeded_at + INTERVAL 8 HOUR) = ?))",
                  p, 2, &r);
    if (rc == PG_OK)
        *v3 = db_cell_i64(&r, 0, "n") > 0;
    return rc;
}

static pg_err fetch_wechat_bill(recon_ctx_t *c, buf_t *raw, buf_t *msg)
{
    bool v3 = false;
    pg_err rc = wechat_use_v3(c, &v3);
    if (rc != PG_OK)
        return rc;
    if (v3)
        return bill_fetch_wechat_v3(c->a, app_wechat_v3(c->app, c->a, time(NULL)), c->ymd, time(NULL), raw, msg);
    return bill_fetch_wechat(c->a, &c->app->wechat, c->ymd, raw, msg);
}

static pg_err load_bill(recon_ctx_t *c, const char *bill_file, bill_t *bill, buf_t *msg)
{
    buf_t raw;
    pg_err rc;
    buf_init(&raw, c->a);
    if (!strcmp(c->channel, "stripe"))
        return stripe_day_bill(c, bill, msg);
    if (bill_file)
        rc = read_file(c->a, bill_file, &raw, msg);
    else if (!strcmp(c->channel, "alipay"))
        rc = bill_fetch_alipay(c->a, &c->app->alipay, c->ymd, &raw, msg);
    else
        rc = fetch_wechat_bill(c, &raw, msg);
    if (rc == PG_ERR_NOT_FOUND && !bill_file) {
        /* No bill: fine for a day without movements here; otherwise the
         * provider has not published it yet (try later), never "all missing". */
        int64_t ours = 0;
        pg_err qrc = local_movements(c, &ours);
        if (qrc != PG_OK)
            return qrc;
        if (ours > 0) {
            buf_clear(msg);
            buf_printf(msg, "the provider has no bill for %s yet (%lld movement(s) here): try again later", c->ymd,
                       (long long)ours);
            return PG_ERR_NOT_FOUND;
        }
        memset(bill, 0, sizeof *bill);
        buf_clear(msg);
        return PG_OK;
    }
    if (rc != PG_OK)
        return rc;
    if (!strcmp(c->channel, "wechat"))
        return bill_parse_wechat(c->a, raw.data, raw.len, bill, msg);
    if (bill_file && ends_with(bill_file, ".csv")) {
        rc = bill_parse_alipay_csv(c->a, raw.data, raw.len, bill, msg);
        if (rc != PG_OK) {   /* not UTF-8: the provider's own GBK */
            buf_clear(msg);
            rc = bill_parse_alipay_csv_gbk(c->a, raw.data, raw.len, bill, msg);
        }
        return rc;
    }
    return bill_parse_alipay_zip(c->a, raw.data, raw.len, bill, msg);
}

static void row_hash(const bill_row_t *r, char out[65])
{
    buf_t b;
    buf_init(&b, NULL);
    buf_printf(&b, "%d|%s|%s|%s|%s|%lld|%lld|%s|%s", (int)r->kind, r->provider_trade_no ? r->provider_trade_no : "",
               r->out_trade_no ? r->out_trade_no : "", r->out_refund_no ? r->out_refund_no : "",
               r->provider_refund_no ? r->provider_refund_no : "", (long long)r->amount_fen, (long long)r->fee_fen,
               r->status ? r->status : "", r->finished_at ? r->finished_at : "");
    crypto_sha256_hex(b.data, b.len, out);
    buf_free(&b);
}

static pg_err import_rows(recon_ctx_t *c, const bill_t *bill)
{
    for (size_t i = 0; i < bill->count; i++) {
        const bill_row_t *r = &bill->rows[i];
        char hash[65];
        uint64_t n = 0;
        pg_err rc;
        row_hash(r, hash);
        {
            db_val_t p[] = { DB_S(c->channel), DB_S(c->ymd), DB_S(r->kind == BILL_REFUND ? "refund" : "payment"),
                             DB_S(r->provider_trade_no), DB_S(r->out_trade_no), DB_S(r->out_refund_no),
                             DB_S(r->provider_refund_no), DB_I(r->amount_fen), DB_I(r->fee_fen), DB_S(r->status),
                             DB_S(r->finished_at), DB_S(hash) };
            rc = db_exec(c->app->db,
                         "INSERT IGNORE INTO bill_rows (channel, bill_date, kind, provider_trade_no, out_trade_no,"
                         " out_refund_no, provider_refund_no, amount_fen, fee_fen, status, finished_at, row_hash)"
                         " VALUES (?, ?, ?, ?, NULLIF(?, ''), ?, ?, ?, ?, ?, ?, ?)",
                         p, 12, &n, NULL);
        }
        if (rc != PG_OK)
            return rc;
        c->s->imported += (unsigned)n;
    }
    return PG_OK;
}

static pg_err add_item(recon_ctx_t *c, const char *category, const char *kind, const char *out_trade_no,
                       const char *out_refund_no, int64_t local_fen, int64_t bill_fen, bool has_local,
                       const char *detail)
{
    db_val_t p[] = { DB_I(c->run_id), DB_S(category), DB_S(kind), DB_S(out_trade_no), DB_S(out_refund_no),
                     has_local ? DB_I(local_fen) : DB_NULL, DB_I(bill_fen), DB_S(detail) };
    recon_summary_t *s = c->s;
    if (!strcmp(category, "matched"))
        s->matched++;
    else if (!strcmp(category, "amount_mismatch"))
        s->amount_mismatch++;
    else if (!strcmp(category, "status_mismatch"))
        s->status_mismatch++;
    else if (!strcmp(category, "fee_mismatch"))
        s->fee_mismatch++;
    else if (!strcmp(category, "missing_local"))
        s->missing_local++;
    else if (!strcmp(category, "refund_abnormal"))
        s->refund_abnormal++;
    else
        s->missing_provider++;
    return db_exec(c->app->db,
                   "INSERT INTO recon_items (run_id, category, kind, out_trade_no, out_refund_no, local_fen, bill_fen,"
                   " detail) VALUES (?, ?, ?, ?, ?, ?, ?, LEFT(?, 255))",
                   p, 8, NULL, NULL);
}

/* Channels whose fee is known only from the provider's records (Stripe). */
static bool fees_from_provider(const recon_ctx_t *c)
{
    const pay_channel_t *ch = channel_find(c->channel);
    return ch && ch->fee_from_reconciliation;
}

/* The provider's actual fee (bill_fee, signed as bills write it: + charged,
 * - returned) replaces the booked one. current_entry is what the fee
 * account holds for the movement now (a payment's -fee, a refund's +fee
 * returned); it should hold -bill_fee: the difference is an adjustment
 * onto the platform's revenue, and a payment's fee_fen follows (the next
 * run matches without a second adjustment). */
static pg_err adjust_fee(recon_ctx_t *c, const char *kind, const char *out_trade_no, const char *out_refund_no,
                         int64_t payment_id, int64_t refund_id, int64_t current_entry, int64_t bill_fee,
                         int64_t bill_fen)
{
    char detail[160];
    int64_t delta = -bill_fee - current_entry;
    pg_err rc = ledger_post_fee_adjustment_in_tx(
        c->app, arena_printf(c->a, "feeadj:%s:%s", refund_id ? "r" : "p", refund_id ? out_refund_no : out_trade_no),
        c->channel, payment_id, refund_id, delta);
    if (rc == PG_OK && !refund_id) {
        db_val_t p[] = { DB_I(bill_fee), DB_I(payment_id) };
        rc = db_exec(c->app->db, "UPDATE payments SET fee_fen = ? WHERE id = ?", p, 2, NULL, NULL);
    }
    if (rc != PG_OK)
        return rc;
    snprintf(detail, sizeof detail, "fee adjusted to the provider's: fee entry %lld booked, %lld actual",
             (long long)current_entry, (long long)-bill_fee);
    return add_item(c, "matched", kind, out_trade_no, out_refund_no, bill_fen, bill_fen, true, detail);
}

/* A payment row: the provider was paid. Our payment must be PAID with the
 * same amount and fee. CREATED here means we never heard of the payment
 * (a lost notification): missing locally. CLOSED means we think it never
 * happened: a status mismatch. */
static pg_err match_payment(recon_ctx_t *c, const db_result_t *rows, size_t i)
{
    const char *no = db_cell(rows, i, "out_trade_no");
    int64_t amount = db_cell_i64(rows, i, "amount_fen"), fee = db_cell_i64(rows, i, "fee_fen");
    db_val_t p[] = { DB_S(no), DB_S(c->channel) };
    db_result_t r;
    pg_err rc = db_query(c->app->db, c->a,
                         "SELECT id, status, amount_fen, fee_fen FROM payments WHERE payment_no = ? AND channel = ?",
                         p, 2, &r);
    if (rc != PG_OK)
        return rc;
    if (r.rows == 0 || !strcmp(db_cell(&r, 0, "status"), "CREATED"))
        return add_item(c, "missing_local", "payment", no, NULL, 0, amount, false,
                        r.rows ? "paid at the provider, not recorded here (notification lost?)" : "unknown payment");
    if (strcmp(db_cell(&r, 0, "status"), "PAID"))
        return add_item(c, "status_mismatch", "payment", no, NULL, db_cell_i64(&r, 0, "amount_fen"), amount, true,
                        "paid at the provider, CLOSED here");
    if (db_cell_i64(&r, 0, "amount_fen") != amount)
        return add_item(c, "amount_mismatch", "payment", no, NULL, db_cell_i64(&r, 0, "amount_fen"), amount, true,
                        "amounts differ");
    if (db_cell(&r, 0, "fee_fen") && db_cell_i64(&r, 0, "fee_fen") != fee && fees_from_provider(c))
        return adjust_fee(c, "payment", no, NULL, db_cell_i64(&r, 0, "id"), 0, -db_cell_i64(&r, 0, "fee_fen"), fee,
                          amount);
    if (db_cell(&r, 0, "fee_fen") && db_cell_i64(&r, 0, "fee_fen") != fee)
        return add_item(c, "fee_mismatch", "payment", no, NULL, db_cell_i64(&r, 0, "fee_fen"), fee, true,
                        "fees differ");
    return add_item(c, "matched", "payment", no, NULL, amount, amount, true, NULL);
}

/* A refund row: our refund (by its number) must have SUCCEEDED with the same
 * amount, and the fee returned must be the one our ledger reversed. */
static int64_t rate_of(const recon_ctx_t *c)
{
    const pay_channel_t *ch = channel_find(c->channel);
    if (ch && ch->fee_rate_bp)
        return ch->fee_rate_bp(c->app);
    return !strcmp(c->channel, "wechat") ? c->app->cfg->fees.wechat_rate_bp : c->app->cfg->fees.alipay_rate_bp;
}

#define RECON_ABNORMAL_DETAIL "ABNORMAL at the provider: handle it by hand in the merchant platform"

static pg_err match_refund(recon_ctx_t *c, const db_result_t *rows, size_t i)
{
    const char *no = db_cell(rows, i, "out_refund_no"), *trade = db_cell(rows, i, "out_trade_no");
    int64_t amount = db_cell_i64(rows, i, "amount_fen"), fee = db_cell_i64(rows, i, "fee_fen");
    db_val_t p[] = { DB_S(no ? no : ""), DB_S(c->channel) };
    db_result_t r;
    pg_err rc = db_query(c->app->db, c->a,
                         "SELECT r.id, r.payment_id, r.status, r.amount_fen, (SELECT -SUM(l.amount_fen) FROM ledger_entries l"
                         "   WHERE l.txn_id IN (CONCAT('refund:', r.refund_no), CONCAT('feeadj:r:', r.refund_no))"
                         "   AND l.account LIKE 'fees:%') AS fee_back"
                         " FROM refunds r JOIN payments p ON p.id = r.payment_id WHERE r.refund_no = ? AND p.channel = ?",
                         p, 2, &r);
    if (rc != PG_OK)
        return rc;
    if (r.rows == 0) {
        db_val_t q[] = { DB_S(trade), DB_S(c->channel) };
        db_result_t pay;
        rc = db_query(c->app->db, c->a, "SELECT status FROM payments WHERE payment_no = ? AND channel = ?", q, 2, &pay);
        if (rc == PG_OK && pay.rows > 0)
            return add_item(c, "status_mismatch", "refund", trade, no, 0, amount, false,
                            "refunded at the provider, no such refund here");
        return add_item(c, "missing_local", "refund", trade, no, 0, amount, false, "unknown refund");
    }
    if (!strcmp(db_cell(&r, 0, "status"), "ABNORMAL"))
        return add_item(c, "refund_abnormal", "refund", trade, no, db_cell_i64(&r, 0, "amount_fen"), amount, true,
                        RECON_ABNORMAL_DETAIL);
    if (strcmp(db_cell(&r, 0, "status"), "SUCCEEDED"))
        return add_item(c, "status_mismatch", "refund", trade, no, db_cell_i64(&r, 0, "amount_fen"), amount, true,
                        db_cell(&r, 0, "status"));
    if (db_cell_i64(&r, 0, "amount_fen") != amount)
        return add_item(c, "amount_mismatch", "refund", trade, no, db_cell_i64(&r, 0, "amount_fen"), amount, true,
                        "amounts differ");
    /* Both sides signed as bills write them: a returned fee is negative. The
     * ledger returns the fee on running totals (a full refund returns it
     * exactly); providers may round each refund on its own. Either is
     * explained; anything else is a mismatch. */
    if (db_cell(&r, 0, "fee_back") && db_cell_i64(&r, 0, "fee_back") != fee && fees_from_provider(c))
        return adjust_fee(c, "refund", trade, no, db_cell_i64(&r, 0, "payment_id"), db_cell_i64(&r, 0, "id"),
                          -db_cell_i64(&r, 0, "fee_back"), fee, amount);
    if (db_cell(&r, 0, "fee_back") && db_cell_i64(&r, 0, "fee_back") != fee &&
        -money_fee_fen(amount, rate_of(c)) != fee)
        return add_item(c, "fee_mismatch", "refund", trade, no, db_cell_i64(&r, 0, "fee_back"), fee, true,
                        "returned fees differ");
    return add_item(c, "matched", "refund", trade, no, amount, amount, true, NULL);
}

/* Ours that day, absent from the bill. */
static pg_err find_missing_at_provider(recon_ctx_t *c)
{
    db_val_t p[] = { DB_S(c->channel), DB_S(c->ymd), DB_S(c->channel), DB_S(c->ymd), DB_S(c->channel), DB_S(c->ymd),
                     DB_S(c->channel), DB_S(c->ymd) };
    db_result_t r;
    pg_err rc = db_query(c->app->db, c->a,
                         "SELECT 'payment' AS kind, p.payment_no AS out_trade_no, NULL AS out_refund_no, p.amount_fen"
                         " FROM payments p WHERE p.channel = ? AND p.status = 'PAID'"
                         " AND DATE(p.paid_at + INTERVAL 8 HOUR) = ?"
                         " AND NOT EXISTS (SELECT 1 FROM bill_rows b WHERE b.channel = ? AND b.bill_date = ?"
                         "   AND b.kind = 'payment' AND b.out_trade_no = p.payment_no)"
                         " UNION ALL"
                         " SELECT 'refund', p.payment_no, r.refund_no, r.amount_fen FROM refunds r"
                         " JOIN payments p ON p.id = r.payment_id WHERE p.channel = ? AND r.status = 'SUCCEEDED'"
                         " AND DATE(r.succeeded_at + INTERVAL 8 HOUR) = ?"
                         " AND NOT EXISTS (SELECT 1 FROM bill_rows b WHERE b.channel = ? AND b.bill_date = ?"
                         "   AND b.kind = 'refund' AND b.out_refund_no = r.refund_no)",
                         p, 8, &r);
    for (size_t i = 0; rc == PG_OK && i < r.rows; i++)
        rc = add_item(c, "missing_provider", db_cell(&r, i, "kind"), db_cell(&r, i, "out_trade_no"),
                      db_cell(&r, i, "out_refund_no"), db_cell_i64(&r, i, "amount_fen"), 0, true,
                      "recorded here, not in the provider's bill");
    return rc;
}

/* Every refund of the channel still ABNORMAL by the end of that day (the
 * provider took the money and could not pay the buyer): listed by each run
 * until it is handled by hand and the provider ends it. */
static pg_err find_abnormal_refunds(recon_ctx_t *c)
{
    db_val_t p[] = { DB_S(c->channel), DB_S(c->ymd), DB_I(c->run_id) };
    db_result_t r;
    pg_err rc = db_query(c->app->db, c->a,
                         "SELECT p.payment_no, r.refund_no, r.amount_fen FROM refunds r"
                         " JOIN payments p ON p.id = r.payment_id WHERE p.channel = ? AND r.status = 'ABNORMAL'"
                         " AND DATE(r.created_at + INTERVAL 8 HOUR) <= ?"
                         " AND NOT EXISTS (SELECT 1 FROM recon_items i WHERE i.run_id = ?"
                         "   AND i.out_refund_no = r.refund_no)"
                         " ORDER BY r.id",
                         p, 3, &r);
    for (size_t i = 0; rc == PG_OK && i < r.rows; i++)
        rc = add_item(c, "refund_abnormal", "refund", db_cell(&r, i, "payment_no"), db_cell(&r, i, "refund_no"),
                      db_cell_i64(&r, i, "amount_fen"), 0, true, RECON_ABNORMAL_DETAIL);
    return rc;
}

static pg_err match_all(recon_ctx_t *c)
{
    db_val_t p[] = { DB_S(c->channel), DB_S(c->ymd) };
    db_result_t rows;
    uint64_t run_id = 0;
    pg_err rc = db_exec(c->app->db, "INSERT INTO recon_runs (channel, bill_date) VALUES (?, ?)", p, 2, NULL, &run_id);
    if (rc != PG_OK)
        return rc;
    c->run_id = (int64_t)run_id;
    c->s->run_id = c->run_id;
    rc = db_query(c->app->db, c->a,
                  "SELECT kind, out_trade_no, out_refund_no, amount_fen, fee_fen FROM bill_rows"
                  " WHERE channel = ? AND bill_date = ? ORDER BY id",
                  p, 2, &rows);
    c->s->rows = rc == PG_OK ? (unsigned)rows.rows : 0;
    for (size_t i = 0; rc == PG_OK && i < rows.rows; i++)
        rc = !strcmp(db_cell(&rows, i, "kind"), "refund") ? match_refund(c, &rows, i) : match_payment(c, &rows, i);
    if (rc == PG_OK)
        rc = find_missing_at_provider(c);
    if (rc == PG_OK)
        rc = find_abnormal_refunds(c);
    if (rc == PG_OK) {
        recon_summary_t *s = c->s;
        db_val_t u[] = { DB_I(s->matched), DB_I(s->amount_mismatch), DB_I(s->status_mismatch), DB_I(s->fee_mismatch),
                         DB_I(s->missing_local), DB_I(s->missing_provider), DB_I(s->refund_abnormal), DB_I(c->run_id) };
        rc = db_exec(c->app->db,
                     "UPDATE recon_runs SET matched = ?, amount_mismatch = ?, status_mismatch = ?, fee_mismatch = ?,"
                     " missing_local = ?, missing_provider = ?, refund_abnormal = ? WHERE id = ?",
                     u, 8, NULL, NULL);
    }
    return rc;
}

static pg_err match_tx(db_t *db, void *arg)
{
    recon_ctx_t *c = arg;
    pg_err rc;
    (void)db;
    *c->s = c->start;   /* a retried transaction starts the counts again */
    rc = match_all(c);
    if (rc != PG_OK)
        *c->s = c->start;
    return rc;
}

/* After a lost COMMIT reply: the run is there by its id (given by the server
 * before COMMIT), with the counts this attempt made; or match_tx runs again. */
static pg_err match_found(db_t *db, void *arg)
{
    recon_ctx_t *c = arg;
    db_val_t p[] = { DB_I(c->run_id) };
    db_result_t r;
    pg_err rc = db_query(db, c->a, "SELECT id FROM recon_runs WHERE id = ? FOR UPDATE", p, 1, &r);
    if (rc == PG_OK && r.rows == 0)
        rc = PG_ERR_NOT_FOUND;
    return rc;
}

/* A bill file given for a day must be that day's: every row's finishing
 * time (Beijing) starts with the date. */
static pg_err bill_is_for_day(const bill_t *bill, const char *ymd, buf_t *msg)
{
    for (size_t i = 0; i < bill->count; i++) {
        const char *t = bill->rows[i].finished_at;
        if (t && strlen(t) >= 10 && strncmp(t, ymd, 10)) {
            buf_printf(msg, "the bill is not for %s: its row at line %zu finished at %s", ymd, bill->rows[i].line, t);
            return PG_ERR_BAD_INPUT;
        }
    }
    return PG_OK;
}

pg_err reconcile_run(pg_app_t *app, arena_t *a, const char *channel, const char *ymd, const char *bill_file,
                     recon_summary_t *out, buf_t *msg)
{
    recon_ctx_t c;
    bill_t bill;
    char day[11];
    pg_err rc;
    memset(out, 0, sizeof *out);
    if (strcmp(channel, "alipay") && strcmp(channel, "wechat") && strcmp(channel, "stripe")) {
        buf_puts(msg, "--channel must be alipay, wechat or stripe");
        return PG_ERR_BAD_INPUT;
    }
    if (!strcmp(channel, "stripe") && (bill_file || !app->cfg->stripe.enabled)) {
        buf_puts(msg, bill_file ? "stripe has no bill file: its balance transactions are read from the API"
                                : "the stripe channel is not enabled");
        return bill_file ? PG_ERR_BAD_INPUT : PG_ERR_UNSUPPORTED;
    }
    if (bill_normalize_date(ymd, true, day) != PG_OK) {
        buf_puts(msg, "--date must be YYYY-MM-DD");
        return PG_ERR_BAD_INPUT;
    }
    if (!bill_file && ((!strcmp(channel, "alipay") && !app->cfg->alipay.enabled) ||
                       (!strcmp(channel, "wechat") && !app->cfg->wechat.enabled))) {
        buf_printf(msg, "the %s channel is not enabled: pass --bill FILE", channel);
        return PG_ERR_UNSUPPORTED;
    }
    memset(&c, 0, sizeof c);
    c.app = app;
    c.a = a;
    c.channel = channel;
    c.ymd = arena_strdup(a, day);
    c.s = out;
    rc = load_bill(&c, bill_file, &bill, msg);
    if (rc == PG_OK)
        rc = bill_is_for_day(&bill, c.ymd, msg);
    if (rc == PG_OK)
        rc = import_rows(&c, &bill);
    c.start = *out;
    /* Still unknown: an error; the run is repeated (a second run row for the day is harmless). */
    if (rc == PG_OK)
        rc = db_tx_resolve(app->db, match_tx, match_found, &c);
    if (rc == PG_OK)
        log_msg(LOG_INFO, "reconcile %s %s: %u rows, %u matched, %u unexplained", channel, day, out->rows, out->matched,
                reconcile_unexplained(out));
    return rc;
}

unsigned reconcile_unexplained(const recon_summary_t *s)
{
    return s->amount_mismatch + s->status_mismatch + s->fee_mismatch + s->missing_local + s->missing_provider +
           s->refund_abnormal;
}

pg_err reconcile_items(pg_app_t *app, arena_t *a, int64_t run_id, bool all, db_result_t *out)
{
    db_val_t p[] = { DB_I(run_id), DB_I(all ? 1 : 0) };
    return db_query(app->db, a,
                    "SELECT category, kind, out_trade_no, out_refund_no, local_fen, bill_fen, detail FROM recon_items"
                    " WHERE run_id = ? AND (category <> 'matched' OR ? = 1) ORDER BY category, id",
                    p, 2, out);
}
