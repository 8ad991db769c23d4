/* routes_iap: POST /notify/appstore, POST /iap/appstore, GET /iap/account-token. */
#include "routes_iap.h"

#include <string.h>
#include "crypto.h"
#include "iap.h"
#include "kv.h"
#include "metrics.h"

static bool bearer(const pg_app_t *app, const http_request_t *req, http_response_t *res)
{
    const char *token = http_bearer_token(req);
    if (token && crypto_ct_streq(token, app->cfg->server.api_key))
        return true;
    http_reply_json_error(res, 401, "unauthorized", "send Authorization: Bearer <api_key>");
    return false;
}

/* Apple retries anything but 2xx: 200 only once the notification committed
 * (or was stored as an anomaly, a test or an unknown type). */
void routes_iap_notify_appstore(pg_app_t *app, arena_t *a, const char *source, http_request_t *req,
                                http_response_t *res)
{
    iap_result_t r;
    iap_notify_appstore(app, a, source, req->body, req->body_len, &r);
    metrics_notification("appstore", "payment", r.outcome ? r.outcome : "error");
    res->log_order_no = r.order_no;
    if (r.ack) {
        http_reply_text(res, 200, "ok");
        return;
    }
    if (r.outcome && (!strcmp(r.outcome, "bad_signature") || !strcmp(r.outcome, "mismatch") ||
                      !strcmp(r.outcome, "bad_input")))
        http_reply_json_error(res, 400, r.outcome, r.detail ? r.detail : "refused");
    else
        http_reply_json_error(res, 503, "not_recorded", "not recorded: send it again");
}

/* Pub/Sub redelivers anything but 2xx (102, 200, 201, 202, 204 acknowledge). */
void routes_iap_notify_googleplay(pg_app_t *app, arena_t *a, const char *source, http_request_t *req,
                                  http_response_t *res)
{
    iap_result_t r;
    iap_notify_googleplay(app, a, source, http_bearer_token(req), req->body, req->body_len, &r);
    metrics_notification("googleplay", "payment", r.outcome ? r.outcome : "error");
    res->log_order_no = r.order_no;
    if (r.ack) {
        http_reply_text(res, 200, "ok");
        return;
    }
    if (r.outcome && !strcmp(r.outcome, "bad_signature"))
        http_reply_json_error(res, 401, "unauthorized", r.detail ? r.detail : "refused");
    else if (r.outcome && (!strcmp(r.outcome, "mismatch") || !strcmp(r.outcome, "bad_input")))
        http_reply_json_error(res, 400, r.outcome, r.detail ? r.detail : "refused");
    else
        http_reply_json_error(res, 503, "not_recorded", "not recorded: send it again");
}

static void order_reply(http_response_t *res, const iap_result_t *r, const char *channel)
{
    res->content_type = "application/json";
    res->status = r->created ? 201 : 200;
    buf_puts(&res->body, "{\"order_no\":");
    if (r->order_no)
        buf_append_json_string(&res->body, r->order_no);
    else
        buf_puts(&res->body, "null");
    buf_puts(&res->body, ",\"channel\":");
    buf_append_json_string(&res->body, channel);
    buf_puts(&res->body, ",\"outcome\":");
    buf_append_json_string(&res->body, r->outcome ? r->outcome : "");
    if (r->anomaly) {
        buf_puts(&res->body, ",\"anomaly\":");
        buf_append_json_string(&res->body, r->anomaly);
    }
    buf_puts(&res->body, "}\n");
}

void routes_iap_post_appstore(pg_app_t *app, arena_t *a, http_request_t *req, http_response_t *res)
{
    kv_list_t f;
    iap_result_t r;
    buf_t msg;
    if (!bearer(app, req, res))
        return;
    kv_init(&f, a);
    buf_init(&msg, a);
    if (http_request_fields(req, a, &f) != PG_OK) {
        http_reply_json_error(res, 400, "invalid_request", "body must be JSON or a form");
        return;
    }
    const char *signed_tx = kv_get(&f, "signed_transaction"), *txid = kv_get(&f, "transaction_id");
    pg_err rc = !signed_tx && txid ? iap_appstore_lookup(app, a, kv_get(&f, "user"), txid, &r, &msg)
                                   : iap_post_appstore(app, a, kv_get(&f, "user"), signed_tx, &r, &msg);
    res->log_order_no = r.order_no;
    if (rc == PG_OK) {
        order_reply(res, &r, "appstore");
        return;
    }
    const char *code = rc == PG_ERR_MISMATCH ? "mismatch" : app_error_code(rc);
    http_reply_json_error(res, app_http_status(rc), code, msg.len ? msg.data : pg_err_name(rc));
}

void routes_iap_post_googleplay(pg_app_t *app, arena_t *a, http_request_t *req, http_response_t *res)
{
    kv_list_t f;
    iap_result_t r;
    buf_t msg;
    if (!bearer(app, req, res))
        return;
    kv_init(&f, a);
    buf_init(&msg, a);
    if (http_request_fields(req, a, &f) != PG_OK) {
        http_reply_json_error(res, 400, "invalid_request", "body must be JSON or a form");
        return;
    }
    pg_err rc = iap_post_googleplay(app, a, kv_get(&f, "user"), kv_get(&f, "product"), kv_get(&f, "purchase_token"),
                                    &r, &msg);
    res->log_order_no = r.order_no;
    if (rc == PG_OK) {
        order_reply(res, &r, "googleplay");
        return;
    }
    const char *code = rc == PG_ERR_MISMATCH ? "mismatch" : app_error_code(rc);
    http_reply_json_error(res, app_http_status(rc), code, msg.len ? msg.data : pg_err_name(rc));
}

void routes_iap_account_token(pg_app_t *app, arena_t *a, http_request_t *req, http_response_t *res)
{
    const char *token = NULL;
    if (!bearer(app, req, res))
        return;
    const char *user = kv_get(&req->query, "user");
    pg_err rc = iap_account_token(app, a, user, &token);
    if (rc != PG_OK) {
        http_reply_json_error(res, app_http_status(rc), rc == PG_ERR_BAD_INPUT ? "missing_field" : app_error_code(rc),
                              rc == PG_ERR_BAD_INPUT ? "'user' (1-64 of [A-Za-z0-9_.@-]) is required" : "try again");
        return;
    }
    res->content_type = "application/json";
    buf_puts(&res->body, "{\"user\":");
    buf_append_json_string(&res->body, user);
    buf_puts(&res->body, ",\"account_token\":");
    buf_append_json_string(&res->body, token);
    buf_puts(&res->body, "}\n");
}
