/* iap: in-app purchases as orders. See include/iap.h. */
#include "iap.h"

#include <stdio.h>
#include <string.h>
#include "appstore.h"
#include "crypto.h"
#include "events.h"
#include "ledger.h"
#include "log.h"
#include "refund.h"
#include "store.h"
#include "store_iap.h"
#include "store_lifecycle.h"
#include "text.h"

#define IAP_NO_LEN 24
#define USER_EXTRA "_.@-"

typedef struct iap_ctx {
    pg_app_t *app;
    arena_t *a;
    const iap_event_t *ev;
    iap_result_t *res;
} iap_ctx_t;

static void set_res(iap_result_t *res, bool ack, const char *outcome, const char *detail)
{
    res->ack = ack;
    res->outcome = outcome;
    res->detail = detail;
}

/* The buyer of a new purchase: the shop's word (checked against the token's
 * owner), else the owner of the app account token. */
static pg_err buyer_of(iap_ctx_t *c, const char **user, iap_result_t *res)
{
    const char *owner = NULL;
    pg_err rc = PG_ERR_NOT_FOUND;
    *user = c->ev->user_ref;
    if (c->ev->account_token)
        rc = store_account_token_user(c->app->db, c->a, c->ev->account_token, &owner);
    if (rc != PG_OK && rc != PG_ERR_NOT_FOUND)
        return rc;
    if (owner && *user && strcmp(owner, *user)) {
        set_res(res, false, "mismatch", "the transaction's appAccountToken belongs to another user");
        return PG_ERR_MISMATCH;
    }
    if (!*user)
        *user = owner;
    return PG_OK;
}

/* What the buyer paid, in fen: the store's price when it is in CNY (milli-
 * units: 10 per fen), else our price for the product. */
static int64_t amount_of(const iap_event_t *ev, const product_t *p)
{
    if (ev->currency && !strcmp(ev->currency, "CNY") && ev->price_milli > 0 && ev->price_milli % 10 == 0)
        return ev->price_milli / 10;
    return p->price_fen;
}

static pg_err insert_row(iap_ctx_t *c, const char *user, int64_t product_id, int64_t order_id, int64_t payment_id,
                         const char *status, const char *anomaly)
{
    const iap_event_t *ev = c->ev;
    iap_new_t n = {
        ev->channel, ev->store_txn_id, ev->original_txn_id, ev->store_product_id, ev->account_token, user,
        product_id, order_id, payment_id, status, anomaly, ev->price_milli, ev->currency, ev->environment,
        ev->purchase_token, ev->payload, ev->purchased_at,
    };
    int64_t id = 0;
    return store_iap_insert(c->app->db, &n, &id);
}

/* The order is paid: ledger, entitlement (unless the buyer owns the product
 * already: bought twice, flagged), webhook event. */
static pg_err pay_order(iap_ctx_t *c, const char *payment_no, const product_t *prod, const char *user,
                        const char **anomaly)
{
    payment_t p;
    ledger_split_t split;
    bool changed = false, order_changed = false, owned = false;
    memset(&split, 0, sizeof split);
    pg_err rc = store_payment_lock(c->app->db, c->a, c->ev->channel, payment_no, &p);
    if (rc == PG_OK)
        rc = ledger_payment_split(c->app, &p, &split);
    paid_mark_t mark = { c->ev->store_txn_id, c->ev->account_token, c->ev->purchased_at, split.fee_fen, p.creator_id };
    if (rc == PG_OK)
        rc = store_payment_mark_paid(c->app->db, &p, &mark, &changed, &order_changed);
    if (rc == PG_OK && changed)
        rc = ledger_post_payment_in_tx(c->app, c->a, &p, &split, c->ev->purchased_at);
    if (rc == PG_OK)
        rc = store_entitlement_active(c->app->db, c->a, user, prod->id, p.order_id, &owned);
    if (rc != PG_OK)
        return rc;
    if (owned) {
        char extra[160];
        *anomaly = "double_purchase";
        snprintf(extra, sizeof extra, "\"anomaly\":\"double_purchase\",\"anomaly_payment_no\":\"%s\"", payment_no);
        rc = store_payment_set_anomaly(c->app->db, p.id, "double_purchase");
        if (rc == PG_OK)
            rc = events_queue(c->app, c->a, "payment.anomaly", p.order_no, extra);
        log_msg(LOG_WARN, "double_purchase: %s bought product %s again in the app (order %s)", user, prod->sku,
                p.order_no);
        return rc;
    }
    rc = store_entitlement_grant(c->app->db, p.order_id);
    if (rc == PG_OK)
        rc = events_queue(c->app, c->a, "order.paid", p.order_no, NULL);
    return rc;
}

static pg_err record_purchase(iap_ctx_t *c)
{
    const iap_event_t *ev = c->ev;
    product_t prod;
    const char *user = NULL, *anomaly = NULL;
    char order_no[IAP_NO_LEN + 1], payment_no[IAP_NO_LEN + 1];
    int64_t order_id = 0;
    pg_err rc = store_product_by_store_id(c->app->db, c->a, ev->channel, ev->store_product_id, &prod);
    if (rc == PG_ERR_NOT_FOUND) {
        set_res(c->res, true, "anomaly", "unknown store product: kept for the operator");
        c->res->anomaly = "unknown_product";
        return insert_row(c, ev->user_ref, 0, 0, 0, "ANOMALY", "unknown_product");
    }
    if (rc == PG_OK)
        rc = buyer_of(c, &user, c->res);
    if (rc != PG_OK)
        return rc;
    if (!user) {
        set_res(c->res, true, "anomaly", "unknown buyer (no or unknown appAccountToken): kept for the operator");
        c->res->anomaly = "unknown_buyer";
        return insert_row(c, NULL, prod.id, 0, 0, "ANOMALY", "unknown_buyer");
    }
    if ((rc = crypto_random_alnum(order_no, IAP_NO_LEN)) != PG_OK ||
        (rc = crypto_random_alnum(payment_no, IAP_NO_LEN)) != PG_OK)
        return rc;
    new_checkout_t nc = { .order_no = order_no, .payment_no = payment_no, .product_id = prod.id,
                          .user_ref = user, .amount_fen = amount_of(ev, &prod), .channel = ev->channel,
                          .method = "iap", .pay_data = "{}", .expires_at = time(NULL) };
    rc = store_iap_order_insert(c->app->db, &nc, &order_id);
    if (rc == PG_OK)
        rc = pay_order(c, payment_no, &prod, user, &anomaly);
    if (rc != PG_OK)
        return rc;
    /* the unique key: a concurrent duplicate fails here (PG_ERR_CONFLICT) and is re-run */
    rc = insert_row(c, user, prod.id, order_id, 0, "PAID", anomaly);
    if (rc != PG_OK)
        return rc;
    c->res->order_no = arena_strdup(c->a, order_no);
    c->res->created = true;
    c->res->anomaly = anomaly;
    set_res(c->res, true, "accepted", anomaly ? "paid (bought twice: no second entitlement)" : "paid");
    return PG_OK;
}

static pg_err record_refund(iap_ctx_t *c, const iap_row_t *row)
{
    char refund_no[IAP_NO_LEN + 1];
    bool changed = false;
    if (strcmp(row->status, "PAID") || !row->order_id) {
        set_res(c->res, true, "duplicate", !strcmp(row->status, "REFUNDED") ? "already refunded" : "no order to refund");
        return PG_OK;
    }
    db_val_t q[] = { DB_I(row->order_id) };
    db_result_t r;
    pg_err rc = db_query(c->app->db, c->a, "SELECT id, amount_fen FROM payments WHERE order_id = ? AND status = 'PAID'",
                  q, 1, &r);
    if (rc != PG_OK)
        return rc;
    if (r.rows == 0) {
        set_res(c->res, true, "ignored", "no paid payment");
        return PG_OK;
    }
    if ((rc = crypto_random_alnum(refund_no, IAP_NO_LEN)) != PG_OK)
        return rc;
    rc = store_refund_insert(c->app->db, refund_no, row->order_id, db_cell_i64(&r, 0, "id"),
                             db_cell_i64(&r, 0, "amount_fen"), "refunded by the store", "merchant", NULL, NULL);
    if (rc == PG_OK)
        rc = refund_apply_in_tx(c->app, c->a, refund_no, true, c->ev->store_txn_id, NULL, &changed);
    if (rc == PG_OK)
        rc = store_iap_set_state(c->app->db, row->id, "REFUNDED", refund_no);
    if (rc == PG_OK)
        set_res(c->res, true, "accepted", "refunded by the store; entitlement revoked");
    return rc;
}

static pg_err record_reversal(iap_ctx_t *c, const iap_row_t *row)
{
    bool changed = false;
    if (strcmp(row->status, "REFUNDED") || !row->refund_no) {
        set_res(c->res, true, "duplicate", "not refunded: nothing to reverse");
        return PG_OK;
    }
    pg_err rc = store_refund_reverse(c->app->db, c->a, row->refund_no, &changed);
    if (rc == PG_OK && changed && !row->anomaly)
        rc = store_entitlement_grant(c->app->db, row->order_id);
    if (rc == PG_OK && changed)
        rc = events_queue(c->app, c->a, "order.paid", row->order_no, "\"refund_reversed\":true");
    if (rc == PG_OK)
        rc = store_iap_set_state(c->app->db, row->id, "PAID", NULL);
    if (rc == PG_OK)
        set_res(c->res, true, changed ? "accepted" : "duplicate", "refund reversed by the store; entitlement granted");
    return rc;
}

static pg_err log_notification(iap_ctx_t *c)
{
    const iap_event_t *ev = c->ev;
    if (!ev->raw_body)
        return PG_OK;
    notification_rec_t rec;
    memset(&rec, 0, sizeof rec);
    rec.channel = ev->channel;
    rec.kind = ev->kind == IAP_PURCHASE ? "payment" : ev->kind == IAP_OTHER ? "other" : "refund";
    rec.notify_id = ev->notify_id;
    rec.outcome = !strcmp(c->res->outcome, "anomaly") ? "accepted" : c->res->outcome;
    rec.detail = ev->notify_type;
    rec.raw_body = ev->raw_body;
    rec.raw_len = ev->raw_len;
    rec.source = ev->source;
    return store_notification_add(c->app->db, &rec);
}

static pg_err apply_in_tx(db_t *db, void *arg)
{
    iap_ctx_t *c = arg;
    iap_row_t row;
    pg_err rc = PG_OK;
    (void)db;
    memset(c->res, 0, sizeof *c->res);
    if (c->ev->kind == IAP_OTHER || !c->ev->store_txn_id) {
        set_res(c->res, true, "ignored", "acknowledged and stored");
        return log_notification(c);
    }
    rc = store_iap_lock(c->app->db, c->a, c->ev->channel, c->ev->store_txn_id, &row);
    if (rc == PG_ERR_NOT_FOUND && !c->ev->store_product_id) {   /* e.g. a Play purchase voided before we saw it */
        set_res(c->res, true, "ignored", "refund of a purchase never recorded");
        rc = PG_OK;
    } else if (rc == PG_ERR_NOT_FOUND) {
        rc = record_purchase(c);
        if (rc == PG_OK && c->ev->kind == IAP_REFUND && c->res->order_no) {
            rc = store_iap_lock(c->app->db, c->a, c->ev->channel, c->ev->store_txn_id, &row);
            if (rc == PG_OK)
                rc = record_refund(c, &row);
        }
    } else if (rc == PG_OK) {
        c->res->order_no = row.order_no;
        c->res->anomaly = row.anomaly;
        if (c->ev->user_ref && row.user_ref && strcmp(row.user_ref, c->ev->user_ref)) {
            set_res(c->res, false, "mismatch", "the transaction is recorded for another user");
            return PG_ERR_MISMATCH;
        }
        if (c->ev->kind == IAP_REFUND)
            rc = record_refund(c, &row);
        else if (c->ev->kind == IAP_REFUND_REVERSED)
            rc = record_reversal(c, &row);
        else
            set_res(c->res, true, "duplicate", "transaction already recorded");
    }
    if (rc == PG_OK)
        rc = log_notification(c);
    return rc;
}

pg_err iap_apply(pg_app_t *app, arena_t *a, const iap_event_t *ev, iap_result_t *res)
{
    iap_ctx_t c = { app, a, ev, res };
    pg_err rc = db_tx(app->db, apply_in_tx, &c);
    if (rc == PG_ERR_CONFLICT)   /* a concurrent twin committed first: now it is found */
        rc = db_tx(app->db, apply_in_tx, &c);
    if (rc == PG_OK || rc == PG_ERR_MISMATCH)
        return rc;
    set_res(res, false, NULL, rc == PG_ERR_COMMIT_UNKNOWN ? "commit not confirmed" : "database error");
    log_msg(LOG_ERROR, "%s purchase %s not recorded: %s", ev->channel, ev->store_txn_id ? ev->store_txn_id : "-",
            db_last_error(app->db));
    return rc;
}

/* ---- App Store -------------------------------------------------------- */

static appstore_expect_t appstore_expect(const pg_app_t *app)
{
    appstore_expect_t e = { app->cfg->appstore.bundle_id, app->cfg->appstore.app_apple_id_num,
                            app->cfg->appstore.environment };
    return e;
}

static void event_from_tx(const appstore_transaction_t *t, iap_event_t *ev)
{
    ev->channel = "appstore";
    ev->store_txn_id = t->transaction_id;
    ev->original_txn_id = t->original_transaction_id;
    ev->store_product_id = t->product_id;
    ev->account_token = t->app_account_token;
    ev->environment = t->environment;
    ev->currency = t->currency;
    ev->price_milli = t->price_milli;
    ev->purchased_at = (time_t)(t->purchase_date_ms / 1000);
    ev->payload = t->payload_json;
    ev->kind = t->revocation_date_ms ? IAP_REFUND : IAP_PURCHASE;
}

static iap_kind_t appstore_kind(const appstore_notification_t *n)
{
    if (!n->has_transaction)
        return IAP_OTHER;
    if (!strcmp(n->type, "ONE_TIME_CHARGE"))
        return IAP_PURCHASE;
    if (!strcmp(n->type, "REFUND"))
        return IAP_REFUND;
    if (!strcmp(n->type, "REFUND_REVERSED"))
        return IAP_REFUND_REVERSED;
    return IAP_OTHER;
}

static const char *outcome_of(pg_err rc)
{
    return rc == PG_ERR_BAD_SIGNATURE ? "bad_signature" : rc == PG_ERR_MISMATCH ? "mismatch" : "bad_input";
}

/* A refused notification: logged (rate-limited by source like the others) and stored cut short. */
static void appstore_reject(pg_app_t *app, arena_t *a, const char *source, const char *body, size_t len,
                            pg_err rc, const char *why, iap_result_t *res)
{
    notification_rec_t rec;
    int64_t count = 0;
    set_res(res, false, outcome_of(rc), why);
    log_msg(LOG_WARN, "appstore notification rejected (%s): %s", res->outcome, why);
    if (store_notification_source_count(app->db, a, source, time(NULL), &count) != PG_OK ||
        count > app->cfg->server.rejected_notifications_per_minute)
        return;
    memset(&rec, 0, sizeof rec);
    rec.channel = "appstore";
    rec.kind = "payment";
    rec.outcome = res->outcome;
    rec.detail = why;
    rec.raw_body = body;
    rec.raw_len = len;
    rec.keep_len = 2048;
    rec.source = source;
    (void)store_notification_add(app->db, &rec);
}

void iap_notify_appstore(pg_app_t *app, arena_t *a, const char *source, const char *body, size_t len,
                         iap_result_t *res)
{
    appstore_notification_t n;
    appstore_expect_t e = appstore_expect(app);
    iap_event_t ev;
    buf_t why;
    memset(res, 0, sizeof *res);
    buf_init(&why, a);
    if (!app->cfg->appstore.enabled || !app->appstore) {
        set_res(res, false, NULL, "appstore channel disabled");
        return;
    }
    pg_err rc = appstore_verify_notification(app->appstore, &e, a, body, len, time(NULL), &n, &why);
    if (rc != PG_OK) {
        appstore_reject(app, a, source, body, len, rc, why.len ? why.data : pg_err_name(rc), res);
        return;
    }
    memset(&ev, 0, sizeof ev);
    ev.channel = "appstore";
    ev.price_milli = -1;
    if (n.has_transaction)
        event_from_tx(&n.tx, &ev);
    ev.kind = appstore_kind(&n);
    ev.notify_id = n.uuid;
    ev.notify_type = n.type;
    ev.raw_body = body;
    ev.raw_len = len;
    ev.source = source;
    (void)iap_apply(app, a, &ev, res);
}

pg_err iap_post_appstore(pg_app_t *app, arena_t *a, const char *user, const char *signed_transaction,
                         iap_result_t *res, buf_t *msg)
{
    appstore_transaction_t t;
    appstore_expect_t e = appstore_expect(app);
    iap_event_t ev;
    memset(res, 0, sizeof *res);
    if (!app->cfg->appstore.enabled || !app->appstore) {
        buf_set_error(msg, "the appstore channel is not enabled");
        return PG_ERR_UNSUPPORTED;
    }
    if (!text_is_token(user, 64, USER_EXTRA) || !signed_transaction) {
        buf_set_error(msg, "user (1-64 of [A-Za-z0-9_.@-]) and signed_transaction are required");
        return PG_ERR_BAD_INPUT;
    }
    pg_err rc = appstore_verify_transaction(app->appstore, &e, a, signed_transaction, strlen(signed_transaction),
                                            time(NULL), &t, msg);
    if (rc != PG_OK)
        return rc;
    memset(&ev, 0, sizeof ev);
    event_from_tx(&t, &ev);
    ev.user_ref = user;
    rc = iap_apply(app, a, &ev, res);
    if (rc == PG_ERR_MISMATCH)
        buf_set_error(msg, "%s", res->detail);
    return rc;
}

pg_err iap_appstore_lookup(pg_app_t *app, arena_t *a, const char *user, const char *transaction_id,
                           iap_result_t *res, buf_t *msg)
{
    appstore_transaction_t t;
    appstore_expect_t e = appstore_expect(app);
    iap_event_t ev;
    memset(res, 0, sizeof *res);
    if (!app->cfg->appstore.enabled || !app->appstore) {
        buf_set_error(msg, "the appstore channel is not enabled");
        return PG_ERR_UNSUPPORTED;
    }
    if ((user && !text_is_token(user, 64, USER_EXTRA)) || !text_is_token(transaction_id, 64, "._-")) {
        buf_set_error(msg, "a transaction id (and a valid user) are required");
        return PG_ERR_BAD_INPUT;
    }
    pg_err rc = appstore_lookup_transaction(&app->appstore_api, app->appstore, &e, a, transaction_id, time(NULL),
                                            &t, msg);
    if (rc == PG_ERR_NOT_FOUND)
        return PG_ERR_BAD_INPUT;
    if (rc != PG_OK)
        return rc;
    memset(&ev, 0, sizeof ev);
    event_from_tx(&t, &ev);
    ev.user_ref = user;
    rc = iap_apply(app, a, &ev, res);
    if (rc == PG_ERR_MISMATCH)
        buf_set_error(msg, "%s", res->detail);
    return rc;
}

pg_err iap_account_token(pg_app_t *app, arena_t *a, const char *user, const char **token)
{
    char mac[65], uuid[37];
    buf_t in;
    if (!text_is_token(user, 64, USER_EXTRA))
        return PG_ERR_BAD_INPUT;
    buf_init(&in, a);
    buf_printf(&in, "iap-account-token:%s", user);
    const char *key = app->cfg->server.checkout_secret;
    crypto_hmac_sha256_hex(key, strlen(key), in.data, in.len, false, mac);
    /* a version 4 / variant 1 UUID layout of 122 bits of the MAC */
    snprintf(uuid, sizeof uuid, "%.8s-%.4s-4%.3s-%c%.3s-%.12s", mac, mac + 8, mac + 13,
             "89ab"[(mac[16] >= 'a' ? mac[16] - 'a' + 10 : mac[16] - '0') & 3], mac + 17, mac + 20);
    return store_account_token_ensure(app->db, a, user, uuid, token);
}

/* ---- Google Play -------------------------------------------------------- */

static void token_key(const char *token, char out[65])
{
    crypto_sha256_hex(token, strlen(token), out);
}

static bool ack_after(pg_app_t *app, arena_t *a, const char *product, const char *token, const iap_result_t *res)
{
    buf_t why;
    char key[65];
    iap_row_t row;
    buf_init(&why, a);
    token_key(token, key);
    if (store_iap_lock(app->db, a, "googleplay", key, &row) != PG_OK || row.acknowledged)
        return true;
    if (googleplay_acknowledge(&app->googleplay, a, product, token, time(NULL), &why) != PG_OK) {
        log_msg(LOG_WARN, "googleplay: acknowledge of order %s failed (cron retries): %s",
                res->order_no ? res->order_no : "-", why.data);
        return false;
    }
    return store_iap_set_acknowledged(app->db, row.id) == PG_OK;
}

/* A purchase as purchases.products.get describes it. */
static pg_err play_event(pg_app_t *app, arena_t *a, const char *product, const char *token, iap_event_t *ev,
                         googleplay_purchase_t *p, buf_t *why)
{
    char *key = arena_alloc(a, 65);
    pg_err rc = key ? googleplay_get_purchase(&app->googleplay, a, product, token, time(NULL), p, why) : PG_ERR_NOMEM;
    if (rc != PG_OK)
        return rc;
    token_key(token, key);
    memset(ev, 0, sizeof *ev);
    ev->channel = "googleplay";
    ev->kind = p->purchase_state == 0 ? IAP_PURCHASE : IAP_OTHER;
    ev->store_txn_id = key;
    ev->original_txn_id = p->order_id;
    ev->store_product_id = product;
    ev->account_token = p->account_id && strlen(p->account_id) == 36 ? p->account_id : NULL;
    ev->price_milli = -1;
    ev->purchased_at = (time_t)(p->purchase_time_ms / 1000);
    ev->payload = p->json;
    ev->purchase_token = token;
    return PG_OK;
}

static void play_reject(pg_app_t *app, arena_t *a, const char *source, const char *body, size_t len, pg_err rc,
                        const char *why, iap_result_t *res)
{
    notification_rec_t rec;
    int64_t count = 0;
    set_res(res, false, rc == PG_ERR_UNAUTHORIZED ? "bad_signature" : outcome_of(rc), why);
    log_msg(LOG_WARN, "googleplay push rejected (%s): %s", res->outcome, why);
    if (store_notification_source_count(app->db, a, source, time(NULL), &count) != PG_OK ||
        count > app->cfg->server.rejected_notifications_per_minute)
        return;
    memset(&rec, 0, sizeof rec);
    rec.channel = "googleplay";
    rec.kind = "payment";
    rec.outcome = res->outcome;
    rec.detail = why;
    rec.raw_body = body;
    rec.raw_len = len;
    rec.keep_len = 2048;
    rec.source = source;
    (void)store_notification_add(app->db, &rec);
}

static const char *RTDN_NAMES[] = { "PURCHASED", "CANCELED", "VOIDED", "TEST", "OTHER" };

void iap_notify_googleplay(pg_app_t *app, arena_t *a, const char *source, const char *bearer, const char *body,
                           size_t len, iap_result_t *res)
{
    googleplay_rtdn_t n;
    googleplay_purchase_t p;
    iap_event_t ev;
    buf_t why;
    char *key;
    memset(res, 0, sizeof *res);
    buf_init(&why, a);
    if (!app->cfg->googleplay.enabled) {
        set_res(res, false, NULL, "googleplay channel disabled");
        return;
    }
    pg_err rc = googleplay_verify_push(&app->googleplay, a, bearer, body, len, time(NULL), &n, &why);
    if (rc == PG_ERR_UNAUTHORIZED || rc == PG_ERR_BAD_INPUT || rc == PG_ERR_MISMATCH) {
        play_reject(app, a, source, body, len, rc, why.len ? why.data : pg_err_name(rc), res);
        return;
    }
    memset(&ev, 0, sizeof ev);
    ev.channel = "googleplay";
    ev.kind = IAP_OTHER;
    ev.price_milli = -1;
    if (rc == PG_OK && n.kind == GP_RTDN_PURCHASED)
        rc = play_event(app, a, n.product_id, n.purchase_token, &ev, &p, &why);
    if (rc == PG_OK && n.kind == GP_RTDN_VOIDED && (key = arena_alloc(a, 65)) != NULL) {
        token_key(n.purchase_token, key);
        ev.kind = IAP_REFUND;
        ev.store_txn_id = key;
    }
    if (rc == PG_ERR_NOT_FOUND) {   /* signed by Google, yet the API knows no such purchase: keep, do not loop */
        ev.kind = IAP_OTHER;
        rc = PG_OK;
    }
    if (rc != PG_OK) {
        set_res(res, false, NULL, why.len ? why.data : "Google Play did not answer: redelivery will retry");
        return;
    }
    ev.notify_id = n.message_id;
    ev.notify_type = RTDN_NAMES[n.kind];
    ev.raw_body = body;
    ev.raw_len = len;
    ev.source = source;
    if (iap_apply(app, a, &ev, res) == PG_OK && ev.kind == IAP_PURCHASE && res->order_no)
        (void)ack_after(app, a, n.product_id, n.purchase_token, res);
}

pg_err iap_post_googleplay(pg_app_t *app, arena_t *a, const char *user, const char *product, const char *token,
                           iap_result_t *res, buf_t *msg)
{
    googleplay_purchase_t p;
    iap_event_t ev;
    memset(res, 0, sizeof *res);
    if (!app->cfg->googleplay.enabled) {
        buf_set_error(msg, "the googleplay channel is not enabled");
        return PG_ERR_UNSUPPORTED;
    }
    if (!text_is_token(user, 64, USER_EXTRA) || !text_is_token(product, 255, "._-") ||
        !text_is_token(token, 4096, "._-:")) {
        buf_set_error(msg, "user (1-64 of [A-Za-z0-9_.@-]), product and purchase_token are required");
        return PG_ERR_BAD_INPUT;
    }
    pg_err rc = play_event(app, a, product, token, &ev, &p, msg);
    if (rc == PG_ERR_NOT_FOUND)
        return PG_ERR_BAD_INPUT;
    if (rc != PG_OK)
        return rc;
    if (p.purchase_state != 0) {
        buf_set_error(msg, "the purchase is %s, not completed", p.purchase_state == 2 ? "pending" : "canceled");
        return PG_ERR_CONFLICT;
    }
    ev.user_ref = user;
    rc = iap_apply(app, a, &ev, res);
    if (rc == PG_ERR_MISMATCH)
        buf_set_error(msg, "%s", res->detail);
    if (rc == PG_OK && res->order_no)
        (void)ack_after(app, a, product, token, res);
    return rc;
}

pg_err iap_acknowledge_pending(pg_app_t *app, arena_t *a, unsigned *done)
{
    db_result_t r;
    *done = 0;
    if (!app->cfg->googleplay.enabled)
        return PG_OK;
    pg_err rc = db_query(app->db, a,
                         "SELECT id, store_product_id, purchase_token, TIMESTAMPDIFF(SECOND, created_at, UTC_TIMESTAMP())"
                         " AS age_s FROM iap_purchases WHERE channel = 'googleplay' AND status = 'PAID'"
                         " AND acknowledged = 0 AND purchase_token IS NOT NULL ORDER BY id LIMIT 500",
                         NULL, 0, &r);
    for (size_t i = 0; rc == PG_OK && i < r.rows; i++) {
        buf_t why;
        buf_init(&why, a);
        const char *product = db_cell(&r, i, "store_product_id"), *token = db_cell(&r, i, "purchase_token");
        googleplay_purchase_t p;
        pg_err g = googleplay_get_purchase(&app->googleplay, a, product, token, time(NULL), &p, &why);
        if (g == PG_OK && p.acknowledgement_state != 1)
            g = googleplay_acknowledge(&app->googleplay, a, product, token, time(NULL), &why);
        if (g == PG_OK) {
            rc = store_iap_set_acknowledged(app->db, db_cell_i64(&r, i, "id"));
            (*done)++;
        } else if (db_cell_i64(&r, i, "age_s") > 2 * 86400) {
            log_msg(LOG_ERROR, "googleplay: purchase %lld still unacknowledged after 2 days (Google refunds it on "
                    "day 3): %s", (long long)db_cell_i64(&r, i, "id"), why.data);
        } else {
            log_msg(LOG_WARN, "googleplay: acknowledge failed, retried next pass: %s", why.data);
        }
    }
    return rc;
}
