/* ledger: see include/ledger.h. */
#include "ledger.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "channel.h"
#include "crypto.h"
#include "ledger_math.h"
#include "log.h"
#include "money.h"
#include "store.h"

#define BEIJING_TODAY "DATE(UTC_TIMESTAMP() + INTERVAL 8 HOUR)"

/* Every creator that can be created has its payable and settled accounts. */
_Static_assert(sizeof "payable:creator:" - 1 + STORE_CREATOR_ID_MAX <= LEDGER_ACCOUNT_MAX,
               "a creator id must fit in a payable account name");
_Static_assert(sizeof "settled:creator:" - 1 + STORE_CREATOR_ID_MAX <= LEDGER_ACCOUNT_MAX,
               "a creator id must fit in a settled account name");
_Static_assert(sizeof "paidout:creator:" - 1 + STORE_CREATOR_ID_MAX <= LEDGER_ACCOUNT_MAX,
               "a creator id must fit in a paid-out account name");
_Static_assert(STORE_CREATOR_ID_MAX == LEDGER_CREATOR_ID_MAX, "one creator id limit");

static int64_t rate_of(const pg_app_t *app, const char *channel)
{
    if (!strcmp(channel, "appstore"))   /* the store's commission is the channel fee */
        return app->cfg->appstore.store_fee_bp;
    if (!strcmp(channel, "googleplay"))
        return app->cfg->googleplay.store_fee_bp;
    const pay_channel_t *ch = channel_find(channel);
    if (ch && ch->fee_rate_bp)   /* each channel knows its own rate (Stripe: [stripe] fee_rate_bp) */
        return ch->fee_rate_bp(app);
    return !strcmp(channel, "wechat") ? app->cfg->fees.wechat_rate_bp : app->cfg->fees.alipay_rate_bp;
}

/* One multi-row INSERT per transaction (fewer round trips in the hot path
 * of a notification). The statements are literals: the statement cache
 * keeps pointers to them. */
#define ENTRY_COLS "(txn_id, account, amount_fen, kind, channel, payment_id, refund_id, creator_id, available_on," \
                   " business_date)"
#define ENTRY_ROW "(?, ?, ?, ?, ?, ?, ?, ?, ?, COALESCE(?, " BEIJING_TODAY "))"
static const char *const INSERT_ENTRIES[LEDGER_MAX_ENTRIES + 1] = {
    NULL,
    "INSERT INTO ledger_entries " ENTRY_COLS " VALUES " ENTRY_ROW,
    "INSERT INTO ledger_entries " ENTRY_COLS " VALUES " ENTRY_ROW ", " ENTRY_ROW,
    "INSERT INTO ledger_entries " ENTRY_COLS " VALUES " ENTRY_ROW ", " ENTRY_ROW ", " ENTRY_ROW,
    "INSERT INTO ledger_entries " ENTRY_COLS " VALUES " ENTRY_ROW ", " ENTRY_ROW ", " ENTRY_ROW ", " ENTRY_ROW,
};

static pg_err insert_entries(db_t *db, const char *txn_id, const char *kind, const char *channel,
                             int64_t payment_id, int64_t refund_id, const char *creator_id,
                             const char *available_on, const char *business_date, const ledger_entry_t *e, size_t n)
{
    db_val_t p[LEDGER_MAX_ENTRIES * 10];
    if (n == 0 || n > LEDGER_MAX_ENTRIES)
        return PG_ERR_INTERNAL;
    for (size_t i = 0; i < n; i++) {
        bool payable = !strncmp(e[i].account, "payable:", 8);
        db_val_t *v = &p[i * 10];
        v[0] = DB_S(txn_id);
        v[1] = DB_S(e[i].account);
        v[2] = DB_I(e[i].amount_fen);
        v[3] = DB_S(kind);
        v[4] = DB_S(channel);
        v[5] = payment_id ? DB_I(payment_id) : DB_NULL;
        v[6] = refund_id ? DB_I(refund_id) : DB_NULL;
        v[7] = payable ? DB_S(creator_id) : DB_NULL;
        v[8] = payable ? DB_S(available_on) : DB_NULL;
        v[9] = DB_S(business_date);
    }
    return db_exec(db, INSERT_ENTRIES[n], p, n * 10, NULL, NULL);
}

pg_err ledger_payment_split(const pg_app_t *app, const payment_t *p, ledger_split_t *out)
{
    return ledger_split_payment(p->amount_fen, rate_of(app, p->channel), app->cfg->settlement.platform_commission_bp,
                                p->creator_id && *p->creator_id, out);
}

pg_err ledger_post_payment_in_tx(pg_app_t *app, arena_t *a, const payment_t *p, const ledger_split_t *s,
                                 time_t paid_at)
{
    char available[11], business_date[11];
    ledger_entry_t e[LEDGER_MAX_ENTRIES];
    time_t day = paid_at ? paid_at : time(NULL);
    size_t n;
    pg_err rc = ledger_available_date(day, app->cfg->settlement.delayed, (int)app->cfg->settlement.delay_days,
                                      available);
    if (rc == PG_OK)   /* the day the provider was paid: the day of its bill */
        rc = ledger_available_date(day, false, 0, business_date);
    if (rc != PG_OK)
        return rc;
    n = ledger_entries_payment(p->channel, p->creator_id, s, e);
    if (n == 0)
        return PG_ERR_INTERNAL;
    return insert_entries(app->db, arena_printf(a, "pay:%s", p->payment_no), "payment", p->channel, p->id, 0,
                          p->creator_id, available, business_date, e, n);
}

pg_err ledger_post_fee_adjustment_in_tx(pg_app_t *app, const char *txn_id, const char *channel, int64_t payment_id,
                                        int64_t refund_id, int64_t fee_entry_delta)
{
    ledger_entry_t e[2];
    if (fee_entry_delta == 0)
        return PG_OK;
    memset(e, 0, sizeof e);
    if (ledger_account_fees(channel, e[0].account) != PG_OK)
        return PG_ERR_INTERNAL;
    memcpy(e[1].account, LEDGER_ACCOUNT_PLATFORM, sizeof LEDGER_ACCOUNT_PLATFORM);
    e[0].amount_fen = fee_entry_delta;
    e[1].amount_fen = -fee_entry_delta;
    /* kind: that of the movement adjusted (no enum value of its own: the
     * txn_id prefix tells an adjustment apart) */
    return insert_entries(app->db, txn_id, refund_id ? "refund" : "payment", channel, payment_id, refund_id, NULL,
                          NULL, NULL, e, 2);
}

/* The payment's split as it was booked, read back from its entries. */
static pg_err booked_split(pg_app_t *app, arena_t *a, const char *payment_no, int64_t amount_fen,
                           ledger_split_t *s, bool *found)
{
    db_val_t p[] = { DB_S(payment_no) };
    db_result_t r;
    pg_err rc = db_query(app->db, a, "SELECT account, amount_fen FROM ledger_entries WHERE txn_id = CONCAT('pay:', ?)",
                         p, 1, &r);
    memset(s, 0, sizeof *s);
    *found = rc == PG_OK && r.rows > 0;
    s->amount_fen = amount_fen;
    for (size_t i = 0; rc == PG_OK && i < r.rows; i++) {
        const char *acct = db_cell(&r, i, "account");
        int64_t v = -db_cell_i64(&r, i, "amount_fen");
        if (!strncmp(acct, "fees:", 5))
            s->fee_fen = v;
        else if (!strcmp(acct, "revenue:platform"))
            s->platform_fen = v;
        else if (!strncmp(acct, "payable:", 8))
            s->creator_fen = v;
    }
    return rc;
}

pg_err ledger_post_refund_in_tx(pg_app_t *app, arena_t *a, int64_t refund_id)
{
    db_val_t p[] = { DB_I(refund_id) };
    db_result_t r;
    ledger_split_t pay, rs;
    ledger_entry_t e[LEDGER_MAX_ENTRIES];
    char today[11];
    bool found = false;
    const char *channel, *creator;
    size_t n;
    pg_err rc = db_query(app->db, a,
                         "SELECT r.refund_no, r.amount_fen, p.payment_no, p.channel, p.amount_fen AS payment_amount_fen,"
                         " p.creator_id,"
                         " COALESCE((SELECT SUM(r2.amount_fen) FROM refunds r2 WHERE r2.payment_id = r.payment_id"
                         "   AND r2.status = 'SUCCEEDED' AND r2.id <> r.id), 0) AS before_fen"
                         " FROM refunds r JOIN payments p ON p.id = r.payment_id WHERE r.id = ?",
                         p, 1, &r);
    if (rc != PG_OK)
        return rc;
    if (r.rows == 0)
        return PG_ERR_NOT_FOUND;
    channel = db_cell(&r, 0, "channel");
    creator = db_cell(&r, 0, "creator_id");
    rc = booked_split(app, a, db_cell(&r, 0, "payment_no"), db_cell_i64(&r, 0, "payment_amount_fen"), &pay, &found);
    if (rc != PG_OK)
        return rc;
    if (!found) {
        log_msg(LOG_WARN, "refund %s: its payment has no ledger entries (paid before the ledger existed)",
                db_cell(&r, 0, "refund_no"));
        return PG_OK;
    }
    rc = ledger_split_refund(&pay, db_cell_i64(&r, 0, "before_fen"), db_cell_i64(&r, 0, "amount_fen"), &rs);
    if (rc == PG_OK)
        rc = ledger_available_date(time(NULL), false, 0, today);
    if (rc != PG_OK)
        return rc;
    n = ledger_entries_refund(channel, creator, &rs, e);
    if (n == 0)
        return PG_ERR_INTERNAL;
    return insert_entries(app->db, arena_printf(a, "refund:%s", db_cell(&r, 0, "refund_no")), "refund", channel, 0,
                          refund_id, creator, today, NULL, e, n);
}

typedef struct settle_ctx {
    pg_app_t *app;
    arena_t *a;
    const char *creator_id;
    const char *ymd;
    int64_t amount_fen;
    bool made;
    char batch_no[49];       /* chosen before the first attempt: the key of the batch */
} settle_ctx_t;

/* S<yyyymmdd>-<8 random>, made once per creator and run. */
static pg_err settle_batch_no(const char *ymd, char out[49])
{
    char suffix[9];
    pg_err rc = crypto_random_alnum(suffix, 8);
    if (rc == PG_OK)
        snprintf(out, 49, "S%.4s%.2s%.2s-%s", ymd, ymd + 5, ymd + 8, suffix);
    return rc;
}


/* The batch's entries, marked by id in fixed-size statements (the cache
 * keeps one prepared statement); a short last chunk is padded with id 0,
 * which no entry has. */
#define SETTLE_MARK_CHUNK 32
#define Q8 "?, ?, ?, ?, ?, ?, ?, ?"
static const char SETTLE_MARK_SQL[] = "UPDATE ledger_entries SET settlement_batch_id = ?"
                                      " WHERE settlement_batch_id IS NULL AND id IN (" Q8 ", " Q8 ", " Q8 ", " Q8 ")";
#undef Q8

/* Sum of the amounts read, overflow-checked. */
static pg_err settle_sum(const db_result_t *r, int64_t *sum_fen)
{
    int64_t s = 0;
    for (size_t i = 0; i < r->rows; i++) {
        if (__builtin_add_overflow(s, db_cell_i64(r, i, "amount_fen"), &s))
            return PG_ERR_INTERNAL;
    }
    *sum_fen = s;
    return PG_OK;
}

/* Exactly the rows of r (locked by the caller's FOR UPDATE) get batch_id;
 * any other count of changed rows is a bug and rolls the batch back. */
static pg_err settle_mark(db_t *db, uint64_t batch_id, const db_result_t *r)
{
    for (size_t i = 0; i < r->rows; i += SETTLE_MARK_CHUNK) {
        db_val_t p[1 + SETTLE_MARK_CHUNK];
        size_t k = r->rows - i < SETTLE_MARK_CHUNK ? r->rows - i : SETTLE_MARK_CHUNK;
        uint64_t affected = 0;
        pg_err rc;
        p[0] = DB_I((int64_t)batch_id);
        for (size_t j = 0; j < SETTLE_MARK_CHUNK; j++)
            p[1 + j] = DB_I(j < k ? db_cell_i64(r, i + j, "id") : 0);
        rc = db_exec(db, SETTLE_MARK_SQL, p, 1 + SETTLE_MARK_CHUNK, &affected, NULL);
        if (rc != PG_OK)
            return rc;
        if (affected != k) {
            log_msg(LOG_ERROR, "settlement: batch %llu marked %llu of %zu entries; rolled back",
                    (unsigned long long)batch_id, (unsigned long long)affected, k);
            return PG_ERR_INTERNAL;
        }
    }
    return PG_OK;
}

/* One creator's batch for c->ymd. The entries are read with their ids under
 * FOR UPDATE, summed here, and exactly those ids are marked: an entry
 * committed meanwhile (READ COMMITTED takes no gap locks) is neither paid
 * nor marked, and waits for the next batch. */
static pg_err settle_creator_tx(db_t *db, void *arg)
{
    settle_ctx_t *c = arg;
    db_val_t q[] = { DB_S(c->creator_id), DB_S(c->ymd) };
    db_result_t r;
    const char *batch_no = c->batch_no;
    char settle_txn[56];
    uint64_t batch_id = 0;
    int64_t balance = 0, owed;
    ledger_entry_t e[2];
    pg_err rc = db_query(db, c->a,
                         "SELECT id, amount_fen FROM ledger_entries"
                         " WHERE creator_id = ? AND account LIKE 'payable:%' AND settlement_batch_id IS NULL"
                         " AND available_on <= ? ORDER BY id FOR UPDATE",
                         q, 2, &r);
    c->made = false;
    if (rc == PG_OK)
        rc = settle_sum(&r, &balance);
    if (rc != PG_OK)
        return rc;
    owed = -balance;   /* payable is a credit: negative means we owe */
    if (owed <= 0 || r.rows == 0)
        return PG_OK;   /* nothing to pay, or refunds exceed earnings: carried to the next batch */
    if (c->app->cfg->payouts.enabled && owed < c->app->cfg->payouts.min_fen)
        return PG_OK;   /* below [payouts] min_fen: the entries wait for the next batch */
    if (ledger_account_payable(c->creator_id, e[0].account) != PG_OK ||
        ledger_account_settled(c->creator_id, e[1].account) != PG_OK)
        return PG_ERR_INTERNAL;
    e[0].amount_fen = owed;
    e[1].amount_fen = -owed;
    snprintf(settle_txn, sizeof settle_txn, "settle:%s", batch_no);
    {
        db_val_t b[] = { DB_S(batch_no), DB_S(c->creator_id), DB_S(c->ymd), DB_I(owed), DB_I((int64_t)r.rows) };
        rc = db_exec(db,
                     "INSERT INTO settlement_batches (batch_no, creator_id, settle_date, amount_fen, entries)"
                     " VALUES (?, ?, ?, ?, ?)",
                     b, 5, NULL, &batch_id);
    }
    if (rc == PG_ERR_CONFLICT)
        return PG_OK;   /* this creator's batch for the date exists: settled already */
    if (rc == PG_OK)
        rc = settle_mark(db, batch_id, &r);
    if (rc == PG_OK)
        rc = insert_entries(db, settle_txn, "settlement", NULL, 0, 0, NULL, NULL, NULL, e, 2);
    if (rc == PG_OK) {   /* the settling entry itself belongs to the batch */
        db_val_t m[] = { DB_I((int64_t)batch_id), DB_S(settle_txn) };
        rc = db_exec(db, "UPDATE ledger_entries SET settlement_batch_id = ?, creator_id = NULL WHERE txn_id = ?", m, 2,
                     NULL, NULL);
    }
    c->amount_fen = owed;
    c->made = rc == PG_OK;
    return rc;
}

/* After a lost COMMIT reply: the batch exists by its batch_no, or it was not
 * made (settle_creator_tx runs again with the same batch_no). */
static pg_err settle_found(db_t *db, void *arg)
{
    settle_ctx_t *c = arg;
    db_val_t p[] = { DB_S(c->batch_no) };
    db_result_t r;
    pg_err rc = db_query(db, c->a, "SELECT amount_fen FROM settlement_batches WHERE batch_no = ? FOR UPDATE", p, 1,
                         &r);
    if (rc != PG_OK)
        return rc;
    if (r.rows == 0)
        return PG_ERR_NOT_FOUND;
    c->amount_fen = db_cell_i64(&r, 0, "amount_fen");
    c->made = true;
    return PG_OK;
}

/* One CSV cell. A text cell that a spreadsheet would take for a formula
 * (starting with = + - @, tab or CR) gets a leading apostrophe; quoted when
 * quote is set or the text needs it. */
static void csv_text(buf_t *out, const char *s, bool quote)
{
    const char *v = s ? s : "";
    quote = quote || strpbrk(v, ",\"\r\n") != NULL;
    if (quote)
        buf_putc(out, '"');
    if (*v && strchr("=+-@\t\r", *v))
        buf_putc(out, '\'');
    for (; *v; v++) {
        if (*v == '"')
            buf_putc(out, '"');
        buf_putc(out, *v);
    }
    if (quote)
        buf_putc(out, '"');
}

pg_err ledger_payout_csv(pg_app_t *app, arena_t *a, const char *ymd, buf_t *out)
{
    db_val_t p[] = { DB_S(ymd) };
    db_result_t r;
    pg_err rc = db_query(app->db, a,
                         "SELECT b.batch_no, b.creator_id, c.name, b.amount_fen FROM settlement_batches b"
                         " JOIN creators c ON c.id = b.creator_id WHERE b.settle_date = ? ORDER BY b.creator_id",
                         p, 1, &r);
    if (rc != PG_OK)
        return rc;
    buf_puts(out, "batch_no,creator_id,creator_name,amount_fen,amount_yuan,settle_date\n");
    for (size_t i = 0; i < r.rows; i++) {
        char yuan[MONEY_YUAN_BUFSZ];
        money_format_yuan(db_cell_i64(&r, i, "amount_fen"), yuan);
        csv_text(out, db_cell(&r, i, "batch_no"), false);
        buf_putc(out, ',');
        csv_text(out, db_cell(&r, i, "creator_id"), false);
        buf_putc(out, ',');
        csv_text(out, db_cell(&r, i, "name"), true);
        buf_printf(out, ",%s,%s,%s\n", db_cell(&r, i, "amount_fen"), yuan, ymd);
    }
    return out->failed ? PG_ERR_NOMEM : PG_OK;
}

static pg_err write_payouts(pg_app_t *app, arena_t *a, const char *ymd, const char *path, buf_t *msg)
{
    buf_t csv;
    FILE *f;
    pg_err rc;
    buf_init(&csv, a);
    rc = ledger_payout_csv(app, a, ymd, &csv);
    if (rc != PG_OK)
        return rc;
    f = fopen(path, "w");
    if (!f) {
        buf_printf(msg, "cannot write %s", path);
        return PG_ERR_INTERNAL;
    }
    if (csv.len && fwrite(csv.data, 1, csv.len, f) != csv.len) {
        fclose(f);
        return PG_ERR_INTERNAL;
    }
    return fclose(f) == 0 ? PG_OK : PG_ERR_INTERNAL;
}

pg_err ledger_settle(pg_app_t *app, arena_t *a, const char *ymd, const char *csv_path, settle_result_t *out,
                     buf_t *msg)
{
    db_result_t creators;
    int y, m, d;
    pg_err rc;
    memset(out, 0, sizeof *out);
    if (ledger_date_parse(ymd, &y, &m, &d) != PG_OK) {
        buf_puts(msg, "--date must be YYYY-MM-DD");
        return PG_ERR_BAD_INPUT;
    }
    rc = db_query(app->db, a, "SELECT id FROM creators ORDER BY id", NULL, 0, &creators);
    for (size_t i = 0; rc == PG_OK && i < creators.rows; i++) {
        settle_ctx_t c = { app, a, db_cell(&creators, i, "id"), ymd, 0, false, "" };
        rc = settle_batch_no(ymd, c.batch_no);
        /* COMMIT reply lost: found again by batch_no; still unknown stops the run (re-run it: the
         * creator's batch for the date is unique). */
        if (rc == PG_OK)
            rc = db_tx_resolve(app->db, settle_creator_tx, settle_found, &c);
        if (c.made) {
            out->batches++;
            out->total_fen += c.amount_fen;
        } else {
            out->skipped++;
        }
    }
    if (rc == PG_OK && csv_path)
        rc = write_payouts(app, a, ymd, csv_path, msg);
    return rc;
}

pg_err ledger_post_payout_in_tx(pg_app_t *app, const char *payout_no, const char *creator_id,
                                const char *channel, int64_t amount_fen)
{
    ledger_entry_t e[2];
    char txn[56];
    if (amount_fen <= 0 || ledger_account_settled(creator_id, e[0].account) != PG_OK ||
        ledger_account_paidout(creator_id, e[1].account) != PG_OK)
        return PG_ERR_INTERNAL;
    e[0].amount_fen = amount_fen;    /* we owe the creator that much less */
    e[1].amount_fen = -amount_fen;   /* it went to the creator's own account */
    snprintf(txn, sizeof txn, "payout:%s", payout_no);
    return insert_entries(app->db, txn, "settlement", channel, 0, 0, NULL, NULL, NULL, e, 2);
}

pg_err ledger_report(pg_app_t *app, arena_t *a, const char *from, const char *to, db_result_t *out)
{
    db_val_t p[] = { DB_S(from), DB_S(to) };
    return db_query(app->db, a,
                    "SELECT DATE_FORMAT(business_date, '%Y-%m-%d') AS day, channel,"
                    " SUM(IF(kind = 'payment' AND account LIKE 'clearing:%', amount_fen, 0)) AS gross_fen,"
                    " -SUM(IF(kind = 'refund' AND account LIKE 'clearing:%', amount_fen, 0)) AS refunds_fen,"
                    " -SUM(IF(account LIKE 'fees:%', amount_fen, 0)) AS fees_fen,"
                    " -SUM(IF(account = 'revenue:platform', amount_fen, 0)) AS platform_fen,"
                    " -SUM(IF(account LIKE 'payable:%', amount_fen, 0)) AS creators_fen"
                    " FROM ledger_entries WHERE kind IN ('payment', 'refund') AND business_date BETWEEN ? AND ?"
                    " GROUP BY business_date, channel WITH ROLLUP",
                    p, 2, out);
}

pg_err ledger_check(pg_app_t *app, arena_t *a, int64_t *total_fen, int64_t *unbalanced_txns)
{
    db_result_t r;
    pg_err rc = db_query(app->db, a,
                         "SELECT COALESCE(SUM(amount_fen), 0) AS total,"
                         " (SELECT COUNT(*) FROM (SELECT txn_id FROM ledger_entries GROUP BY txn_id"
                         "   HAVING SUM(amount_fen) <> 0) t) AS unbalanced FROM ledger_entries",
                         NULL, 0, &r);
    if (rc == PG_OK) {
        *total_fen = db_cell_i64(&r, 0, "total");
        *unbalanced_txns = db_cell_i64(&r, 0, "unbalanced");
    }
    return rc;
}
