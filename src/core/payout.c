/* payout: see include/core/payout.h.
 *
 * Per payout: claim (atomic UPDATE: open, free, attempts as read; sets
 * sent) -> if a transfer may have left before, query it -> send only when
 * the provider has none -> record the answer. Recording PAID / FAILED is a
 * transaction keyed by the payout's id: a lost COMMIT reply is resolved by
 * looking the status up again (db_tx_resolve), never by running it blindly.
 *
 *   SUCCESS                       -> PAID (ledger settled -> paidout, payout.paid)
 *   DEALING, unknown outcome      -> stays PENDING (sent): queried next run
 *   BALANCE_IS_NOT_ENOUGH         -> stays PENDING (not sent): retried next run
 *   payee account wrong (PAYEE_*) -> FAILED with the reason (payout.failed);
 *                                    fix the account, `payout retry BATCH`
 *   other definitive refusals     -> FAILED with the reason, logged
 *   FAIL / REFUND after acceptance-> FAILED (the money did not arrive / came back)
 *   WeChat WAIT_USER_CONFIRM      -> WAITING_CONFIRMATION (package_info kept for
 *                                    the payee's confirmation page): queried next
 *                                    run, ended by the transfer notification
 * "Open" = PENDING or WAITING_CONFIRMATION. */
#include "payout.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "crypto.h"
#include "ledger.h"
#include "log.h"
#include "store.h"
#include "store_payout.h"
#include "wechat_v3_transfer.h"

#define PAYOUT_CLAIM_S 120          /* longer than a transfer call (10 s) and a query */
#define PAYOUT_TITLE "creator payout"
/* WeChat merchant transfer scene 1005 (佣金报酬, remuneration) and the report
 * entries that scene requires. */
#define WX_SCENE_ID "1005"
#define WX_BILL_BASE_LEN 17      /* S<yyyymmdd><8 alnum>: a batch number without its '-' */
#define WX_REMARK "创作者收益结算"
#define WX_REPORT_TYPE1 "岗位类型"
#define WX_REPORT_CONTENT1 "内容创作者"
#define WX_REPORT_TYPE2 "报酬说明"
#define WX_REPORT_CONTENT2 "内容销售分成"

/* Still to be paid: PENDING, or (WeChat) WAITING_CONFIRMATION by the payee. */
static bool payout_open(const char *status)
{
    return strcmp(status, "PENDING") == 0 || strcmp(status, "WAITING_CONFIRMATION") == 0;
}


typedef struct payout_item {
    int64_t id, amount_fen, attempts, bill_gen;
    bool sent;
    const char *payout_no, *creator_id, *channel, *account, *real_name;
} payout_item_t;

typedef struct record_ctx {
    pg_app_t *app;
    arena_t *a;
    int64_t id;
    bool paid;                      /* PAID, else FAILED */
    const char *provider_order_id;
    const char *reason;
    bool done;                      /* the row has the wanted status (now or already) */
} record_ctx_t;

static void json_str_member(buf_t *b, const char *key, const char *value)
{
    buf_putc(b, ',');
    buf_append_json_string(b, key);
    buf_putc(b, ':');
    if (value)
        buf_append_json_string(b, value);
    else
        buf_puts(b, "null");
}

static pg_err queue_event(record_ctx_t *c, const payout_row_t *row)
{
    char event_id[33] = "evt_";
    const char *type = c->paid ? "payout.paid" : "payout.failed";
    buf_t p;
    pg_err rc;
    if (!c->app->cfg->merchant.webhook_url || !*c->app->cfg->merchant.webhook_url)
        return PG_OK;
    if ((rc = crypto_random_alnum(event_id + 4, 24)) != PG_OK)
        return rc;
    buf_init(&p, c->a);
    buf_puts(&p, "{\"id\":");
    buf_append_json_string(&p, event_id);
    json_str_member(&p, "type", type);
    buf_printf(&p, ",\"created\":%lld,\"data\":{\"payout_no\":", (long long)time(NULL));
    buf_append_json_string(&p, row->payout_no);
    json_str_member(&p, "batch_no", row->payout_no);
    json_str_member(&p, "creator_id", row->creator_id);
    buf_printf(&p, ",\"amount_fen\":%lld", (long long)row->amount_fen);
    json_str_member(&p, "channel", row->channel);
    json_str_member(&p, "status", c->paid ? "PAID" : "FAILED");
    json_str_member(&p, "reason", c->paid ? NULL : c->reason);
    buf_puts(&p, "}}");
    if (p.failed)
        return PG_ERR_NOMEM;
    return store_payout_event(c->app->db, event_id, type, p.data);
}

static pg_err record_tx(db_t *db, void *arg)
{
    record_ctx_t *c = arg;
    payout_row_t row;
    pg_err rc = store_payout_lock(db, c->a, c->id, &row);
    c->done = false;
    if (rc != PG_OK)
        return rc;
    if (strcmp(row.status, c->paid ? "PAID" : "FAILED") == 0) {
        c->done = true;   /* recorded already (another run) */
        return PG_OK;
    }
    if (!payout_open(row.status))
        return PG_ERR_CONFLICT;
    if (c->paid) {
        rc = store_payout_set_paid(db, c->id, c->provider_order_id);
        if (rc == PG_OK)
            rc = ledger_post_payout_in_tx(c->app, row.payout_no, row.creator_id, row.channel, row.amount_fen);
    } else {
        rc = store_payout_set_failed(db, c->id, c->reason);
    }
    if (rc == PG_OK)
        rc = queue_event(c, &row);
    c->done = rc == PG_OK;
    return rc;
}

/* After a lost COMMIT reply: the status says whether it committed. */
static pg_err record_found(db_t *db, void *arg)
{
    record_ctx_t *c = arg;
    payout_row_t row;
    pg_err rc = store_payout_lock(db, c->a, c->id, &row);
    if (rc != PG_OK)
        return rc;
    if (strcmp(row.status, c->paid ? "PAID" : "FAILED") != 0)
        return PG_ERR_NOT_FOUND;
    c->done = true;
    return PG_OK;
}

static pg_err record(pg_app_t *app, arena_t *a, const payout_item_t *it, bool paid, const char *order_id,
                     const char *reason)
{
    record_ctx_t c = { app, a, it->id, paid, order_id, reason, false };
    pg_err rc = db_tx_resolve(app->db, record_tx, record_found, &c);
    if (rc != PG_OK)
        log_msg(LOG_ERROR, "payout %s: recording %s failed (%s): it stays claimed and is looked at again "
                "after the claim expires", it->payout_no, paid ? "PAID" : "FAILED", pg_err_name(rc));
    return rc;
}

/* Identity type from the account's shape: 2088 + 12 digits is a user id. */
static void payee_of(const payout_item_t *it, alipay_payee_t *p)
{
    size_t n = strlen(it->account);
    bool user_id = n == 16 && strncmp(it->account, "2088", 4) == 0 && strspn(it->account, "0123456789") == n;
    p->identity = it->account;
    p->identity_type = user_id ? "ALIPAY_USER_ID" : "ALIPAY_LOGON_ID";
    p->name = it->real_name;
}

static bool payee_problem(const char *sub_code)
{
    return strncmp(sub_code, "PAYEE_", 6) == 0 || strcmp(sub_code, "PERMIT_CHECK_PERM_IDENTITY_THEFT") == 0;
}

static bool balance_problem(const char *sub_code)
{
    return strcmp(sub_code, "BALANCE_IS_NOT_ENOUGH") == 0 || strcmp(sub_code, "PAYER_BALANCE_NOT_ENOUGH") == 0;
}

/* The account is shown masked in every log line. */
static const char *masked(arena_t *a, const char *account)
{
    size_t n = strlen(account);
    if (n < 8)
        return "*****";
    return arena_printf(a, "%c*****%s", account[0], account + n - 2);
}

/* An answer (of the transfer or the query) about a transfer that exists. */
static void settle_answer(pg_app_t *app, arena_t *a, const payout_item_t *it, const alipay_transfer_result_t *t,
                          payout_run_t *out)
{
    const char *reason;
    if (t->status == ALIPAY_TRANSFER_SUCCESS) {
        if (record(app, a, it, true, t->order_id, NULL) == PG_OK) {
            out->paid++;
            out->paid_fen += it->amount_fen;
        }
        return;
    }
    if (t->status == ALIPAY_TRANSFER_FAIL) {
        reason = arena_printf(a, "transfer %s at Alipay: %s", t->sub_code, t->sub_msg);
        log_msg(LOG_ERROR, "payout %s to %s (%s): %s", it->payout_no, it->creator_id, masked(a, it->account),
                reason);
        if (record(app, a, it, false, NULL, reason) == PG_OK)
            out->failed++;
        return;
    }
    /* DEALING: Alipay is still at it; asked again next run */
    store_payout_release(app->db, it->id, "DEALING: processing at Alipay", false);
    out->pending++;
}

static void refused(pg_app_t *app, arena_t *a, const payout_item_t *it, const alipay_transfer_result_t *t,
                    payout_run_t *out)
{
    const char *reason = arena_printf(a, "%s: %s", t->sub_code, t->sub_msg);
    if (balance_problem(t->sub_code)) {
        log_msg(LOG_WARN, "payout %s: merchant balance too low (%s): stays PENDING, sent again next run",
                it->payout_no, reason);
        store_payout_release(app->db, it->id, reason, true);
        out->pending++;
        return;
    }
    if (payee_problem(t->sub_code))
        reason = arena_printf(a, "payee account: %s", reason);
    log_msg(LOG_ERROR, "payout %s to %s (%s) refused: %s", it->payout_no, it->creator_id, masked(a, it->account),
            reason);
    if (record(app, a, it, false, NULL, reason) == PG_OK)
        out->failed++;
}

static void unknown(pg_app_t *app, const payout_item_t *it, const char *what, const buf_t *err, payout_run_t *out)
{
    log_msg(LOG_WARN, "payout %s: %s, outcome unknown (%s): stays PENDING, queried before anything is sent again",
            it->payout_no, what, err->len ? err->data : "no detail");
    store_payout_release(app->db, it->id, "outcome unknown: to be queried", false);
    out->pending++;
}

/* Claimed: query first when a transfer may have left, then send. */
/* out_biz_no: the batch number, then R<gen> for a transfer sent after gen
 * final failures (an earlier out_biz_no answers its failed order forever). */
static const char *alipay_biz_no(arena_t *a, const payout_item_t *it)
{
    return it->bill_gen > 0 ? arena_printf(a, "%sR%lld", it->payout_no, (long long)it->bill_gen) : it->payout_no;
}

static pg_err pay_claimed(pg_app_t *app, arena_t *a, const payout_item_t *it, payout_run_t *out)
{
    const char *biz_no = alipay_biz_no(a, it);
    alipay_transfer_result_t t;
    alipay_payee_t payee;
    buf_t err;
    pg_err rc;
    buf_init(&err, a);
    if (biz_no == NULL)
        return PG_ERR_NOMEM;
    if (it->sent) {
        rc = alipay_fund_transfer_query(a, &app->alipay, biz_no, &t, &err);
        if (rc != PG_OK) {
            unknown(app, it, "transfer query failed", &err, out);
            return PG_OK;
        }
        if (t.status != ALIPAY_TRANSFER_NOT_FOUND) {
            settle_answer(app, a, it, &t, out);
            return PG_OK;
        }
    }
    payee_of(it, &payee);
    buf_clear(&err);
    rc = alipay_fund_transfer(a, &app->alipay, biz_no, it->amount_fen, PAYOUT_TITLE, &payee, &t, &err);
    switch (rc) {
    case PG_OK:
        settle_answer(app, a, it, &t, out);
        return PG_OK;
    case PG_ERR_CONFLICT:
        refused(app, a, it, &t, out);
        return PG_OK;
    case PG_ERR_BAD_INPUT:
        log_msg(LOG_ERROR, "payout %s: the payout account of %s is incomplete (%s)", it->payout_no, it->creator_id,
                err.data);
        if (record(app, a, it, false, NULL, "payee account: incomplete (a logon id needs --real-name)") == PG_OK)
            out->failed++;
        return PG_OK;
    case PG_ERR_CONFIG:
        store_payout_release(app->db, it->id, NULL, true);
        return rc;
    default:
        unknown(app, it, "transfer", &err, out);
        return PG_OK;
    }
}

/* ---- WeChat merchant transfers ---------------------------------------- */

/* out_bill_no: the batch number without its '-' (WeChat takes letters and
 * digits only; batch numbers are S<yyyymmdd>-<8 alnum>, so this stays
 * unique), then R<gen> for a bill sent after gen final failures. */
static const char *wx_bill_no(arena_t *a, const char *payout_no, int64_t gen)
{
    size_t n = strlen(payout_no), j = 0;
    char *out = arena_alloc(a, n + 24);
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (payout_no[i] != '-')
            out[j++] = payout_no[i];
    if (gen > 0)
        j += (size_t)snprintf(out + j, 24, "R%lld", (long long)gen);
    out[j] = '\0';
    return out;
}

/* The batch part of an out_bill_no: without a trailing R<digits> after the
 * 17 characters of S<yyyymmdd><8 alnum>. */
static const char *wx_bill_base(arena_t *a, const char *out_bill_no)
{
    size_t n = strlen(out_bill_no);
    if (n <= WX_BILL_BASE_LEN + 1 || out_bill_no[WX_BILL_BASE_LEN] != 'R' ||
        strspn(out_bill_no + WX_BILL_BASE_LEN + 1, "0123456789") != n - WX_BILL_BASE_LEN - 1)
        return out_bill_no;
    return arena_strndup(a, out_bill_no, WX_BILL_BASE_LEN);
}

static bool wx_payee_problem(const char *code)
{
    return strstr(code, "OPENID") != NULL || strstr(code, "NAME") != NULL || strstr(code, "PAYEE") != NULL ||
           strcmp(code, "INVALID_REQUEST") == 0;
}

static void wx_settle_bill(pg_app_t *app, arena_t *a, const payout_item_t *it, const wxv3_bill_t *b,
                           payout_run_t *out)
{
    const char *reason;
    switch (b->state) {
    case WXV3_BILL_SUCCESS:
        if (record(app, a, it, true, b->transfer_bill_no, NULL) == PG_OK) {
            out->paid++;
            out->paid_fen += it->amount_fen;
        }
        return;
    case WXV3_BILL_FAIL:
    case WXV3_BILL_CANCELLED:
        reason = arena_printf(a, "transfer %s at WeChat: %s", b->state_name, b->fail_reason ? b->fail_reason : "-");
        if (b->fail_reason && wx_payee_problem(b->fail_reason))
            reason = arena_printf(a, "payee account: %s", reason);
        log_msg(LOG_ERROR, "payout %s to %s (%s): %s", it->payout_no, it->creator_id, masked(a, it->account), reason);
        if (record(app, a, it, false, NULL, reason) == PG_OK)
            out->failed++;
        return;
    case WXV3_BILL_WAIT_USER:
        /* The money moves once the payee confirms in WeChat; asked again next run. */
        store_payout_wait_user(app->db, it->id, "WAIT_USER_CONFIRM: the payee must confirm the transfer in WeChat",
                               b->package_info);
        out->pending++;
        return;
    default:
        store_payout_processing(app->db, it->id, arena_printf(a, "%s: processing at WeChat", b->state_name));
        out->pending++;
        return;
    }
}

static void wx_refused(pg_app_t *app, arena_t *a, const payout_item_t *it, const char *code, const buf_t *err,
                       payout_run_t *out)
{
    const char *reason = arena_printf(a, "%s: %s", code[0] ? code : "refused", err->len ? err->data : "-");
    if (strcmp(code, "NOT_ENOUGH") == 0) {
        log_msg(LOG_WARN, "payout %s: merchant balance too low (%s): stays PENDING, sent again next run",
                it->payout_no, reason);
        store_payout_release(app->db, it->id, reason, true);
        out->pending++;
        return;
    }
    if (wx_payee_problem(code))
        reason = arena_printf(a, "payee account: %s", reason);
    log_msg(LOG_ERROR, "payout %s to %s (%s) refused: %s", it->payout_no, it->creator_id, masked(a, it->account),
            reason);
    if (record(app, a, it, false, NULL, reason) == PG_OK)
        out->failed++;
}

/* WeChat wants the payee's real name from 2,000 yuan: without one the
 * transfer is not sent, the payout FAILED with what the operator must do. */
static bool wx_name_missing(pg_app_t *app, arena_t *a, const payout_item_t *it, payout_run_t *out)
{
    const char *reason;
    if (it->amount_fen < WXV3_TRANSFER_NAME_REQUIRED_FEN || (it->real_name != NULL && *it->real_name != '\0'))
        return false;
    reason = arena_printf(a, "payee account: a WeChat transfer of 2000 yuan or more needs the payee's real name: "
                          "paygatectl creator update --id %s --real-name NAME, then paygatectl payout retry %s",
                          it->creator_id, it->payout_no);
    log_msg(LOG_ERROR, "payout %s to %s (%s): not sent: %s", it->payout_no, it->creator_id, masked(a, it->account),
            reason);
    if (record(app, a, it, false, NULL, reason) == PG_OK)
        out->failed++;
    return true;
}

static pg_err wx_pay_claimed(pg_app_t *app, arena_t *a, const payout_item_t *it, payout_run_t *out)
{
    const wxv3_client_t *c = app_wechat_v3(app, a, time(NULL));
    wxv3_transfer_req_t req = { NULL, it->account, it->amount_fen, WX_SCENE_ID, WX_REMARK,
                                WX_REPORT_TYPE1, WX_REPORT_CONTENT1, WX_REPORT_TYPE2, WX_REPORT_CONTENT2,
                                it->real_name, NULL, app->wechat_transfer_notify_url };
    char code[WXV3_CODE_MAX];
    wxv3_bill_t b;
    buf_t err;
    pg_err rc;
    buf_init(&err, a);
    req.out_bill_no = wx_bill_no(a, it->payout_no, it->bill_gen);
    if (c == NULL || req.out_bill_no == NULL) {
        store_payout_release(app->db, it->id, NULL, !it->sent);
        return PG_ERR_CONFIG;
    }
    if (it->sent) {
        rc = wxv3_transfer_query(a, c, req.out_bill_no, time(NULL), &b, code, &err);
        if (rc == PG_OK) {
            wx_settle_bill(app, a, it, &b, out);
            return PG_OK;
        }
        if (rc != PG_ERR_NOT_FOUND) {
            unknown(app, it, "transfer query failed", &err, out);
            return PG_OK;
        }
    }
    if (wx_name_missing(app, a, it, out))
        return PG_OK;
    buf_clear(&err);
    rc = wxv3_transfer(a, c, &req, time(NULL), &b, code, &err);
    switch (rc) {
    case PG_OK:
        wx_settle_bill(app, a, it, &b, out);
        return PG_OK;
    case PG_ERR_CONFLICT:
        wx_refused(app, a, it, code, &err, out);
        return PG_OK;
    case PG_ERR_BAD_INPUT:
        if (record(app, a, it, false, NULL, "payee account: unusable openid or real name") == PG_OK)
            out->failed++;
        return PG_OK;
    case PG_ERR_CONFIG:
        log_msg(LOG_ERROR, "payout %s: %s", it->payout_no, err.len ? err.data : "WeChat v3 is not configured");
        store_payout_release(app->db, it->id, NULL, true);
        return rc;
    default:
        unknown(app, it, "transfer", &err, out);
        return PG_OK;
    }
}

static void item_of(const db_result_t *r, size_t i, payout_item_t *it)
{
    it->id = db_cell_i64(r, i, "id");
    it->amount_fen = db_cell_i64(r, i, "amount_fen");
    it->attempts = db_cell_i64(r, i, "attempts");
    it->bill_gen = db_cell_i64(r, i, "bill_gen");
    it->sent = db_cell_i64(r, i, "sent") != 0;
    it->payout_no = db_cell(r, i, "payout_no");
    it->creator_id = db_cell(r, i, "creator_id");
    it->channel = db_cell(r, i, "channel");
    it->account = db_cell(r, i, strcmp(it->channel, "wechat") == 0 ? "wechat_openid" : "alipay_account");
    it->real_name = db_cell(r, i, "real_name");
}

/* Whether this configuration can send (and query) transfers of channel. */
static bool channel_sendable(const pg_config_t *cfg, const char *channel)
{
    if (strcmp(channel, "alipay") == 0)
        return cfg->alipay.cert_mode;
    return strcmp(channel, "wechat") == 0 && cfg->wechat.api_v3;
}

pg_err payout_run(pg_app_t *app, arena_t *a, const char *ymd, payout_run_t *out, buf_t *msg)
{
    const pg_config_t *cfg = app->cfg;
    uint64_t created = 0, waiting = 0;
    db_result_t due;
    pg_err rc;
    memset(out, 0, sizeof *out);
    if (!cfg->payouts.enabled || !channel_sendable(cfg, cfg->payouts.channel)) {
        buf_puts(msg, "payouts are not enabled ([payouts] enabled = true, channel = alipay with Alipay in "
                 "certificate mode, or channel = wechat with WeChat Pay API v3)");
        return PG_ERR_CONFIG;
    }
    rc = store_payouts_create(app->db, ymd, cfg->payouts.start_date, cfg->payouts.channel, cfg->payouts.min_fen, &created, &waiting);
    if (rc == PG_OK)
        rc = store_payouts_due(app->db, a, ymd, &due);
    if (rc != PG_OK)
        return rc;
    out->created = (unsigned)created;
    out->waiting = (unsigned)waiting;
    for (size_t i = 0; i < due.rows && rc == PG_OK; i++) {
        payout_item_t it;
        bool got = false;
        item_of(&due, i, &it);
        if (it.account == NULL) {
            out->waiting++;
            continue;
        }
        if (!channel_sendable(cfg, it.channel)) {
            /* made under another [payouts] channel: the others are still paid */
            log_msg(LOG_ERROR, "payout %s (%s) is open but this configuration cannot send or query %s "
                    "transfers: left as it is (configure %s again to finish it)", it.payout_no, it.channel,
                    it.channel, it.channel);
            out->unsendable++;
            continue;
        }
        rc = store_payout_claim(app->db, it.id, it.attempts, PAYOUT_CLAIM_S, &got);
        if (rc != PG_OK)
            break;
        if (!got) {
            out->skipped++;   /* another run has it */
            continue;
        }
        rc = strcmp(it.channel, "wechat") == 0 ? wx_pay_claimed(app, a, &it, out) : pay_claimed(app, a, &it, out);
    }
    if (rc == PG_ERR_CONFIG)
        buf_puts(msg, "transfers cannot be sent with this configuration (Alipay: certificate mode; "
                 "WeChat: API v3)");
    return rc;
}

pg_err payout_retry(pg_app_t *app, const char *payout_no)
{
    uint64_t changed = 0;
    pg_err rc = store_payout_retry(app->db, payout_no, &changed);
    if (rc == PG_OK && changed == 0)
        rc = PG_ERR_NOT_FOUND;
    return rc;
}

/* ---- WeChat transfer notifications -------------------------------------- */

typedef struct notice_ctx {
    pg_app_t *app;
    arena_t *a;
    int64_t id;
    const wxv3_bill_t *bill;
    const payment_event_t *ev;
    notify_result_t *res;
} notice_ctx_t;

static void notice_outcome(notify_result_t *res, bool ack, const char *outcome, const char *detail)
{
    res->ack = ack;
    res->outcome = outcome;
    res->detail = detail;
}

/* The row is open: PAID or FAILED as WeChat says, with its event. */
static pg_err notice_record(notice_ctx_t *c, const payout_row_t *row, bool paid)
{
    const wxv3_bill_t *b = c->bill;
    record_ctx_t rc_ctx = { c->app, c->a, row->id, paid, b->transfer_bill_no, NULL, false };
    pg_err rc;
    if (paid) {
        rc = store_payout_set_paid(c->app->db, row->id, b->transfer_bill_no);
        if (rc == PG_OK)
            rc = ledger_post_payout_in_tx(c->app, row->payout_no, row->creator_id, row->channel, row->amount_fen);
    } else {
        rc_ctx.reason = arena_printf(c->a, "transfer %s at WeChat: %s", b->state_name,
                                     b->fail_reason ? b->fail_reason : "-");
        if (b->fail_reason && wx_payee_problem(b->fail_reason))
            rc_ctx.reason = arena_printf(c->a, "payee account: %s", rc_ctx.reason);
        rc = store_payout_set_failed(c->app->db, row->id, rc_ctx.reason);
    }
    if (rc == PG_OK)
        rc = queue_event(&rc_ctx, row);
    if (rc == PG_OK)
        notice_outcome(c->res, true, "accepted", paid ? "payout paid" : "payout failed");
    return rc;
}

static pg_err notice_state(notice_ctx_t *c, const payout_row_t *row)
{
    bool paid = c->bill->state == WXV3_BILL_SUCCESS;
    if (payout_open(row->status))
        return notice_record(c, row, paid);
    if (strcmp(row->status, paid ? "PAID" : "FAILED") == 0) {
        notice_outcome(c->res, true, "duplicate", "recorded already");
        return PG_OK;
    }
    /* WeChat's final word contradicts ours: kept for the operator */
    log_msg(LOG_ERROR, "payout %s is %s here but WeChat reports the transfer %s: check it by hand "
            "(payout retry asks WeChat again under the same out_bill_no)", row->payout_no, row->status,
            c->bill->state_name);
    notice_outcome(c->res, true, "ignored", paid ? "SUCCESS for a payout recorded FAILED"
                                                 : "FAIL or CANCELLED for a payout recorded PAID");
    return PG_OK;
}

/* Whether out_bill_no names one of the row's bills before its current one
 * (sent before a `payout retry`). */
static bool earlier_bill(arena_t *a, const payout_row_t *row, const char *out_bill_no)
{
    const char *base = wx_bill_no(a, row->payout_no, 0);
    size_t n = base ? strlen(base) : 0;
    int64_t gen = 0;
    if (base == NULL || strncmp(out_bill_no, base, n) != 0)
        return false;
    if (out_bill_no[n] == '\0')
        return row->bill_gen > 0;
    if (out_bill_no[n] != 'R' || out_bill_no[n + 1] == '\0' || strlen(out_bill_no + n + 1) > 9 ||
        strspn(out_bill_no + n + 1, "0123456789") != strlen(out_bill_no + n + 1))
        return false;
    for (const char *d = out_bill_no + n + 1; *d; d++)
        gen = gen * 10 + (*d - '0');
    return gen >= 1 && gen < row->bill_gen;
}

/* A final word about a bill the payout no longer uses: it ended before the
 * retry (FAIL or CANCELLED, nothing moved), so it changes nothing. A
 * SUCCESS there contradicts that and is the operator's to check. */
static pg_err notice_earlier(notice_ctx_t *c, const payout_row_t *row)
{
    if (c->bill->state == WXV3_BILL_SUCCESS) {
        log_msg(LOG_ERROR, "payout %s: WeChat reports its earlier bill %s SUCCESS although it had ended before "
                "the retry: check it by hand against the current bill", row->payout_no, c->bill->out_bill_no);
        notice_outcome(c->res, true, "ignored", "SUCCESS for an earlier bill of a retried payout");
        return PG_OK;
    }
    notice_outcome(c->res, true, "ignored", "an earlier bill of a retried payout");
    return PG_OK;
}

static pg_err notice_tx(db_t *db, void *arg)
{
    notice_ctx_t *c = arg;
    notification_rec_t rec;
    payout_row_t row;
    pg_err rc = store_payout_lock(db, c->a, c->id, &row);
    bool wechat, current, earlier;
    if (rc != PG_OK && rc != PG_ERR_NOT_FOUND)
        return rc;
    wechat = rc == PG_OK && strcmp(row.channel, "wechat") == 0;
    current = wechat && strcmp(wx_bill_no(c->a, row.payout_no, row.bill_gen), c->bill->out_bill_no) == 0;
    earlier = wechat && !current && earlier_bill(c->a, &row, c->bill->out_bill_no);
    if (!current && !earlier) {
        notice_outcome(c->res, false, "unknown_payment", "no WeChat payout with this out_bill_no");
        return PG_ERR_NOT_FOUND;
    }
    c->res->order_no = row.payout_no;
    if (current && c->bill->amount_fen != row.amount_fen) {
        notice_outcome(c->res, false, "amount_mismatch", "transfer_amount differs from the payout's");
        return PG_ERR_MISMATCH;
    }
    if ((rc = current ? notice_state(c, &row) : notice_earlier(c, &row)) != PG_OK)
        return rc;
    memset(&rec, 0, sizeof rec);
    rec.channel = c->ev->channel;
    rec.kind = c->ev->kind_name;
    rec.payment_no = row.payout_no;
    rec.notify_id = c->ev->notify_id;
    rec.outcome = c->res->outcome;
    rec.detail = c->res->detail;
    rec.raw_body = c->ev->raw_body;
    rec.raw_len = c->ev->raw_len;
    rec.source = c->ev->source;
    rec.keep_len = strcmp(c->res->outcome, "accepted") ? NOTIFY_REJECTED_KEEP_BYTES : 0;
    return store_notification_add(db, &rec);
}

pg_err payout_apply_notice(pg_app_t *app, arena_t *a, const wxv3_bill_t *bill, const payment_event_t *ev,
                           notify_result_t *res)
{
    notice_ctx_t c = { app, a, 0, bill, ev, res };
    pg_err rc = store_payout_find_wechat_bill(app->db, wx_bill_base(a, bill->out_bill_no), &c.id);
    res->payment_no = bill->out_bill_no;
    if (rc == PG_ERR_NOT_FOUND) {
        notice_outcome(res, false, "unknown_payment", "no WeChat payout with this out_bill_no");
        return rc;
    }
    if (rc == PG_OK)
        rc = db_tx(app->db, notice_tx, &c);
    if (rc == PG_OK || rc == PG_ERR_NOT_FOUND || rc == PG_ERR_MISMATCH)
        return rc;
    /* not recorded (or the COMMIT not confirmed): answered failure, WeChat
     * sends it again and a committed first try makes that a duplicate */
    notice_outcome(res, false, rc == PG_ERR_COMMIT_UNKNOWN ? "commit_unknown" : NULL, "database error");
    res->retry_later = true;
    log_msg(LOG_ERROR, "wechat transfer notification for %s not recorded (%s)", bill->out_bill_no, pg_err_name(rc));
    return rc;
}

/* ---- the payee's confirmation link --------------------------------------- */

void payout_confirm_token(const pg_app_t *app, const char *payout_no, char out[65])
{
    const char *secret = app->cfg->server.checkout_secret ? app->cfg->server.checkout_secret : "";
    buf_t b;
    buf_init(&b, NULL);
    buf_puts(&b, "payout-confirm:");
    buf_puts(&b, payout_no);
    crypto_hmac_sha256_hex(secret, strlen(secret), b.data ? b.data : "", b.len, false, out);
    buf_free(&b);
}

bool payout_confirm_token_ok(const pg_app_t *app, const char *payout_no, const char *token)
{
    char want[65];
    if (!app->cfg->server.checkout_secret || !*app->cfg->server.checkout_secret || !token)
        return false;
    payout_confirm_token(app, payout_no, want);
    return crypto_ct_streq(want, token);
}

const char *payout_confirm_link(const pg_app_t *app, arena_t *a, const char *payout_no)
{
    char token[65];
    buf_t b;
    if (!app->cfg->server.base_url || !*app->cfg->server.base_url || !app->cfg->server.checkout_secret ||
        !*app->cfg->server.checkout_secret)
        return NULL;
    payout_confirm_token(app, payout_no, token);
    buf_init(&b, a);
    buf_puts(&b, app->cfg->server.base_url);
    buf_puts(&b, "/payouts/");
    buf_append_urlencoded(&b, payout_no);
    buf_puts(&b, "/confirm?token=");
    buf_puts(&b, token);
    return b.failed ? NULL : b.data;
}

pg_err payout_list(pg_app_t *app, arena_t *a, const char *status, db_result_t *out)
{
    db_result_t r;
    pg_err rc = store_payout_list(app->db, a, status, &r);
    size_t cols = r.cols + 1;
    if (rc != PG_OK)
        return rc;
    *out = r;
    out->cols = cols;
    out->names = arena_alloc(a, cols * sizeof *out->names);
    out->cells = arena_alloc(a, (r.rows ? r.rows : 1) * cols * sizeof *out->cells);
    if (out->names == NULL || out->cells == NULL)
        return PG_ERR_NOMEM;
    memcpy(out->names, r.names, r.cols * sizeof *r.names);
    out->names[r.cols] = "confirm_url";
    for (size_t i = 0; i < r.rows; i++) {
        const char *pkg = db_cell(&r, i, "package_info");
        bool waiting = !strcmp(db_cell(&r, i, "status"), "WAITING_CONFIRMATION") && pkg != NULL && *pkg != '\0';
        memcpy(out->cells + i * cols, r.cells + i * r.cols, r.cols * sizeof *r.cells);
        out->cells[i * cols + r.cols] = waiting ? (char *)(uintptr_t)payout_confirm_link(app, a, db_cell(&r, i, "payout_no"))
                                                : NULL;
    }
    return PG_OK;
}
