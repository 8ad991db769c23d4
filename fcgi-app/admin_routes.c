/* admin_routes: the console's controller. Reads through src/store and the
 * use cases of src/core, renders with src/web/admin_html.c. */
#include "admin_routes.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "admin.h"
#include "admin_html.h"
#include "crypto.h"
#include "ledger.h"
#include "lifecycle.h"
#include "log.h"
#include "money.h"
#include "netaddr.h"
#include "payout.h"
#include "refund.h"
#include "router.h"
#include "store.h"
#include "store_admin.h"
#include "store_lifecycle.h"
#include "store_payout.h"
#include "text.h"

#define ORDERS_PAGE 50
#define AUDIT_PAGE 100
#define NEXT_MAX 512

enum {
    A_ROOT_NOSLASH, A_TODAY, A_STYLE, A_LOGIN, A_LOGOUT, A_ORDERS, A_ORDER, A_ORDER_REFUND, A_ORDER_CLOSE, A_REFUNDS,
    A_RECON, A_SETTLEMENT, A_PAYOUT_CSV, A_PAYOUT_RETRY, A_CATALOGUE, A_WEBHOOKS, A_WEBHOOK_RETRY, A_AUDIT, A_ACCOUNTS,
    A_ACCOUNTS_POST
};

static const route_t ADMIN_ROUTES[] = {
    { "GET", "/admin", A_ROOT_NOSLASH },
    { "GET", "/admin/", A_TODAY },
    { "GET", "/admin/style.css", A_STYLE },
    { "GET|POST", "/admin/login", A_LOGIN },
    { "POST", "/admin/logout", A_LOGOUT },
    { "GET", "/admin/orders", A_ORDERS },
    { "GET", "/admin/orders/*", A_ORDER },
    { "POST", "/admin/orders/*/refund", A_ORDER_REFUND },
    { "POST", "/admin/orders/*/close", A_ORDER_CLOSE },
    { "GET", "/admin/refunds", A_REFUNDS },
    { "GET", "/admin/reconciliation", A_RECON },
    { "GET", "/admin/settlement", A_SETTLEMENT },
    { "GET", "/admin/settlement/payouts.csv", A_PAYOUT_CSV },
    { "POST", "/admin/settlement/retry", A_PAYOUT_RETRY },
    { "GET", "/admin/catalogue", A_CATALOGUE },
    { "GET", "/admin/webhooks", A_WEBHOOKS },
    { "POST", "/admin/webhooks/retry", A_WEBHOOK_RETRY },
    { "GET", "/admin/audit", A_AUDIT },
    { "GET", "/admin/accounts", A_ACCOUNTS },
    { "POST", "/admin/accounts", A_ACCOUNTS_POST },
};

/* What each page or action needs. */
static admin_role_t needed_role(int id)
{
    switch (id) {
    case A_ORDER_REFUND: case A_ORDER_CLOSE: case A_WEBHOOK_RETRY: case A_PAYOUT_RETRY: return ADMIN_ROLE_OPERATOR;
    case A_ACCOUNTS: case A_ACCOUNTS_POST: return ADMIN_ROLE_OWNER;
    default: return ADMIN_ROLE_VIEWER;
    }
}

static const char *action_name(int id)
{
    switch (id) {
    case A_ORDER_REFUND: return "refund";
    case A_ORDER_CLOSE: return "close";
    case A_WEBHOOK_RETRY: return "webhook_retry";
    case A_PAYOUT_RETRY: return "payout_retry";
    case A_LOGOUT: return "logout";
    case A_ACCOUNTS: return "accounts";
    case A_ACCOUNTS_POST: return "account_change";
    default: return "page";
    }
}

typedef struct ctx {
    pg_app_t *app;
    arena_t *a;
    http_request_t *req;
    http_response_t *res;
    admin_page_t p;
    admin_session_t s;
    kv_list_t fields;
    const char *addr;
    const char *param;         /* the '*' segment, NUL-terminated */
} ctx_t;

bool admin_routes_match(const char *path)
{
    return path && !strncmp(path, "/admin", 6) && (path[6] == '\0' || path[6] == '/');
}

static const char *field(const ctx_t *c, const char *name)
{
    const char *v = kv_get(&c->fields, name);
    return v && *v ? v : NULL;
}

static bool is_day(const char *s)
{
    return s && strlen(s) == 10 && s[4] == '-' && s[7] == '-' && text_is_token(s, 10, "-");
}

/* The Beijing-time day of now + delta_days (the ledger's business_date). */
static void beijing_day(time_t now, int delta_days, char out[11])
{
    struct tm tm;
    time_t t = now + 8 * 3600 + (time_t)delta_days * 86400;
    gmtime_r(&t, &tm);
    strftime(out, 11, "%Y-%m-%d", &tm);
}

/* ------------------------------------------------------------ responses */

static void redirect(ctx_t *c, const char *rel)
{
    http_reply_redirect(c->res, arena_printf(c->a, "%s/admin%s", c->app->cfg->server.base_url, rel));
    c->res->status = 303;
    admin_html_security_headers(c->res);
}

static void message_page(ctx_t *c, int status, i18n_msg_t msg, const char *arg)
{
    admin_html_begin(&c->p, status, MSG_ADM_TITLE_DENIED, NULL);
    admin_html_notice(&c->p, "message", true, msg, arg);
    buf_puts(c->p.b, "<p>");
    admin_html_link_msg(&c->p, "/", MSG_ADM_NAV_TODAY);
    buf_puts(c->p.b, "</p>\n");
    admin_html_end(&c->p);
}

static void db_error_page(ctx_t *c)
{
    log_msg(LOG_ERROR, "admin: database error: %s", db_last_error(c->app->db));
    message_page(c, 503, MSG_ADM_DB_ERROR, NULL);
}

/* ---------------------------------------------------------------- login */

/* Where to go after signing in: a path of the console only (no scheme, no
 * host, no "//", no backslash), else the start page. */
static const char *safe_next(const char *next)
{
    size_t n = next ? strlen(next) : 0;
    if (n == 0 || n > NEXT_MAX || next[0] != '/' || next[1] == '/')
        return "/";
    for (size_t i = 0; i < n; i++) {
        char ch = next[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                  strchr("/_.-?=&%+", ch);
        if (!ok || (ch == '/' && next[i + 1] == '/'))
            return "/";
    }
    return next;
}

static void login_form(ctx_t *c, int status, i18n_msg_t notice, bool error, const char *username, const char *next)
{
    admin_html_begin(&c->p, status, MSG_ADM_TITLE_LOGIN, NULL);
    if (notice != MSG_COUNT)
        admin_html_notice(&c->p, "login-message", error, notice, NULL);
    admin_html_form_begin(&c->p, "/login", "login-form");
    admin_html_hidden(&c->p, "next", safe_next(next));
    buf_puts(c->p.b, "<p>");
    admin_html_input(&c->p, "username", MSG_ADM_USERNAME, username, "text");
    buf_puts(c->p.b, "</p><p>");
    admin_html_input(&c->p, "password", MSG_ADM_PASSWORD, "", "password");
    buf_puts(c->p.b, "</p><p>");
    admin_html_submit(&c->p, "login", MSG_ADM_LOGIN_BUTTON);
    buf_puts(c->p.b, "</p>");
    admin_html_form_end(&c->p);
    admin_html_end(&c->p);
}

static void handle_login(ctx_t *c, bool have_session)
{
    char token[ADMIN_TOKEN_LEN + 1];
    const char *user, *pass, *next;
    pg_err rc;
    if (strcmp(c->req->method, "POST")) {
        next = kv_get(&c->req->query, "next");
        if (have_session) {
            redirect(c, safe_next(next));
            return;
        }
        login_form(c, 200, kv_get(&c->req->query, "bye") ? MSG_ADM_LOGGED_OUT : MSG_COUNT, false, "", next);
        return;
    }
    if (http_request_fields(c->req, c->a, &c->fields) != PG_OK) {
        login_form(c, 400, MSG_ADM_LOGIN_FAILED, true, "", NULL);
        return;
    }
    user = field(c, "username");
    pass = kv_get(&c->fields, "password");
    next = field(c, "next");
    rc = admin_login(c->app, c->a, user ? user : "", pass ? pass : "", c->addr, token);
    if (rc == PG_ERR_CONFLICT) {
        login_form(c, 429, MSG_ADM_LOGIN_THROTTLED, true, user, next);
        buf_puts(&c->res->headers, "Retry-After: 900\r\n");
        return;
    }
    if (rc == PG_ERR_UNAUTHORIZED) {
        login_form(c, 401, MSG_ADM_LOGIN_FAILED, true, user, next);
        return;
    }
    if (rc != PG_OK) {
        db_error_page(c);
        return;
    }
    /* A new token every time: a cookie planted before sign-in is never promoted. */
    redirect(c, safe_next(next));
    admin_html_set_cookie(c->res, c->p.root, token, !strncmp(c->app->cfg->server.base_url, "https:", 6));
    crypto_wipe(token, sizeof token);
}

static void handle_logout(ctx_t *c)
{
    admin_logout(c->app, &c->s, c->addr);
    redirect(c, "/login?bye=1");
    admin_html_set_cookie(c->res, c->p.root, NULL, !strncmp(c->app->cfg->server.base_url, "https:", 6));
}

/* ---------------------------------------------------------------- today */

static void today_figures(ctx_t *c, const db_result_t *r, const char *day)
{
    static const i18n_msg_t H[] = { MSG_ADM_CHANNEL, MSG_ADM_GROSS, MSG_ADM_REFUNDS, MSG_ADM_FEES, MSG_ADM_NET };
    size_t shown = 0;
    admin_html_table_begin(&c->p, "today-figures", H, 5);
    for (size_t i = 0; i < r->rows; i++) {
        const char *d = db_cell(r, i, "day"), *ch = db_cell(r, i, "channel");
        int64_t gross = db_cell_i64(r, i, "gross_fen"), refunds = db_cell_i64(r, i, "refunds_fen");
        int64_t fees = db_cell_i64(r, i, "fees_fen");
        if (!d || strcmp(d, day))
            continue;
        buf_puts(c->p.b, "<tr data-channel=\"");
        buf_append_html(c->p.b, ch ? ch : "TOTAL");
        buf_puts(c->p.b, "\"><td>");
        if (ch)
            admin_html_text(&c->p, ch);
        else
            admin_html_msg(&c->p, MSG_ADM_TOTAL, NULL);
        buf_puts(c->p.b, "</td>");
        admin_html_cell_amount(&c->p, gross);
        admin_html_cell_amount(&c->p, refunds);
        admin_html_cell_amount(&c->p, fees);
        admin_html_cell_amount(&c->p, gross - refunds - fees);
        admin_html_row_end(&c->p);
        shown++;
    }
    buf_puts(c->p.b, "</tbody></table>\n");
    if (!shown)
        admin_html_notice(&c->p, "nothing-today", false, MSG_ADM_NOTHING_TODAY, NULL);
}

static void attention_item(ctx_t *c, const char *id, const char *path, i18n_msg_t label, const char *arg,
                           int64_t n)
{
    buf_puts(c->p.b, "<li id=\"att-");
    buf_puts(c->p.b, id);
    buf_puts(c->p.b, "\"><a href=\"");
    buf_append_html(c->p.b, c->p.root);
    buf_append_html(c->p.b, path);
    buf_puts(c->p.b, "\">");
    admin_html_msg(&c->p, label, arg);
    buf_printf(c->p.b, "</a>: <strong class=\"count\">%lld</strong></li>\n", (long long)n);
}

static void today_attention(ctx_t *c, const db_result_t *att)
{
    db_result_t payouts;
    bool exists = false;
    admin_html_h2(&c->p, MSG_ADM_ATTENTION);
    buf_puts(c->p.b, "<ul id=\"attention\">\n");
    attention_item(c, "payments_waiting", "/orders?waiting=1", MSG_ADM_PAYMENTS_WAITING, NULL,
                   db_cell_i64(att, 0, "payments_waiting"));
    attention_item(c, "refunds_pending", "/refunds?status=PENDING", MSG_ADM_REFUNDS_PENDING, NULL,
                   db_cell_i64(att, 0, "refunds_pending"));
    attention_item(c, "refunds_failed", "/refunds?status=FAILED", MSG_ADM_REFUNDS_FAILED, NULL,
                   db_cell_i64(att, 0, "refunds_failed"));
    attention_item(c, "refunds_abnormal", "/refunds?status=ABNORMAL", MSG_ADM_REFUNDS_ABNORMAL, NULL,
                   db_cell_i64(att, 0, "refunds_abnormal"));
    attention_item(c, "webhooks_dead", "/webhooks?status=DEAD", MSG_ADM_WEBHOOKS_DEAD, NULL,
                   db_cell_i64(att, 0, "webhooks_dead"));
    attention_item(c, "recon_unexplained", "/reconciliation", MSG_ADM_RECON_UNEXPLAINED, NULL,
                   db_cell_i64(att, 0, "recon_unexplained"));
    if (store_admin_payouts_by_status(c->app->db, c->a, &exists, &payouts) == PG_OK && exists)
        for (size_t i = 0; i < payouts.rows; i++)
            attention_item(c, arena_printf(c->a, "payouts-%s", db_cell(&payouts, i, "status")),
                           arena_printf(c->a, "/settlement?status=%s#payouts", db_cell(&payouts, i, "status")),
                           MSG_ADM_PAYOUTS, db_cell(&payouts, i, "status"), db_cell_i64(&payouts, i, "n"));
    buf_puts(c->p.b, "</ul>\n");
}

static void today_chart(ctx_t *c, const db_result_t *r, time_t now)
{
    int64_t values[30];
    const char *labels[30];
    for (int i = 0; i < 30; i++) {
        char day[11];
        beijing_day(now, i - 29, day);
        labels[i] = arena_strdup(c->a, day);
        values[i] = 0;
        for (size_t k = 0; labels[i] && k < r->rows; k++) {
            const char *d = db_cell(r, k, "day");
            if (d && !db_cell(r, k, "channel") && !strcmp(d, day))
                values[i] = db_cell_i64(r, k, "gross_fen");
        }
        if (!labels[i])
            labels[i] = "";
    }
    admin_html_h2(&c->p, MSG_ADM_CHART_TITLE);
    admin_html_chart(&c->p, values, labels, 30);
}

static void handle_today(ctx_t *c)
{
    char today[11], first[11];
    time_t now = time(NULL);
    db_result_t fig, month, att;
    pg_err rc;
    beijing_day(now, 0, today);
    beijing_day(now, -29, first);
    rc = ledger_report(c->app, c->a, today, today, &fig);
    if (rc == PG_OK)
        rc = ledger_report(c->app, c->a, first, today, &month);
    if (rc == PG_OK)
        rc = store_admin_attention(c->app->db, c->a, &att);
    if (rc != PG_OK) {
        db_error_page(c);
        return;
    }
    admin_html_begin(&c->p, 200, MSG_ADM_TITLE_TODAY, today);
    today_figures(c, &fig, today);
    today_attention(c, &att);
    today_chart(c, &month, now);
    admin_html_end(&c->p);
}

/* --------------------------------------------------------------- orders */

static const char *const ORDER_STATUSES[] = { "CREATED", "PAID", "PARTIALLY_REFUNDED", "REFUNDED", "CLOSED" };

static bool listed(const char *s, const char *const *list, size_t n)
{
    for (size_t i = 0; s && i < n; i++)
        if (!strcmp(s, list[i]))
            return true;
    return false;
}

static void orders_form(ctx_t *c, const admin_order_filter_t *f)
{
    buf_puts(c->p.b, "<form method=\"get\" id=\"search-form\" action=\"");
    buf_append_html(c->p.b, c->p.root);
    buf_puts(c->p.b, "/orders\"><label>");
    admin_html_msg(&c->p, MSG_ADM_SEARCH, NULL);
    buf_puts(c->p.b, " <input name=\"q\" id=\"f-q\" size=\"32\" placeholder=\"");
    admin_html_msg(&c->p, MSG_ADM_SEARCH_HINT, NULL);
    buf_puts(c->p.b, "\" value=\"");
    buf_append_html(c->p.b, f->q ? f->q : "");
    buf_puts(c->p.b, "\"></label><label>");
    admin_html_msg(&c->p, MSG_ADM_COL_STATUS, NULL);
    buf_puts(c->p.b, " <select name=\"status\"><option value=\"\">");
    admin_html_msg(&c->p, MSG_ADM_ANY, NULL);
    buf_puts(c->p.b, "</option>");
    for (size_t i = 0; i < sizeof ORDER_STATUSES / sizeof ORDER_STATUSES[0]; i++) {
        const char *w = i18n_status_msg(c->p.loc, ORDER_STATUSES[i]);
        buf_printf(c->p.b, "<option value=\"%s\"%s>", ORDER_STATUSES[i],
                   f->status && !strcmp(f->status, ORDER_STATUSES[i]) ? " selected" : "");
        buf_append_html(c->p.b, w ? w : ORDER_STATUSES[i]);
        buf_puts(c->p.b, "</option>");
    }
    buf_puts(c->p.b, "</select></label><label>");
    admin_html_msg(&c->p, MSG_ADM_CHANNEL, NULL);
    buf_puts(c->p.b, " <input name=\"channel\" size=\"8\" value=\"");
    buf_append_html(c->p.b, f->channel ? f->channel : "");
    buf_puts(c->p.b, "\"></label>");
    admin_html_input(&c->p, "from", MSG_ADM_FROM, f->from, "date");
    admin_html_input(&c->p, "to", MSG_ADM_TO, f->to, "date");
    buf_puts(c->p.b, "<button type=\"submit\" id=\"search\">");
    admin_html_msg(&c->p, MSG_ADM_SEARCH, NULL);
    buf_puts(c->p.b, "</button></form>\n");
}

static void next_page_link(ctx_t *c, const admin_order_filter_t *f, int64_t last_id)
{
    buf_t q;
    buf_init(&q, c->a);
    buf_printf(&q, "/orders?before=%lld", (long long)last_id);
    if (f->q) {
        buf_puts(&q, "&q=");
        buf_append_urlencoded(&q, f->q);
    }
    if (f->status)
        buf_printf(&q, "&status=%s", f->status);
    if (f->channel) {
        buf_puts(&q, "&channel=");
        buf_append_urlencoded(&q, f->channel);
    }
    if (f->from)
        buf_printf(&q, "&from=%s", f->from);
    if (f->to)
        buf_printf(&q, "&to=%s", f->to);
    if (f->payment_status)
        buf_puts(&q, "&waiting=1");
    buf_puts(c->p.b, "<p id=\"next-page\">");
    admin_html_link_msg(&c->p, q.data, MSG_ADM_NEXT_PAGE);
    buf_puts(c->p.b, "</p>\n");
}

static void handle_orders(ctx_t *c)
{
    static const i18n_msg_t H[] = { MSG_ADM_COL_ORDER, MSG_ADM_COL_STATUS, MSG_ADM_COL_AMOUNT, MSG_ADM_COL_REFUNDED,
                                    MSG_ADM_COL_PRODUCT, MSG_ADM_COL_USER, MSG_ADM_CHANNEL, MSG_ADM_COL_CREATED };
    const kv_list_t *q = &c->req->query;
    admin_order_filter_t f;
    db_result_t r;
    const char *before = kv_get(q, "before");
    memset(&f, 0, sizeof f);
    f.q = kv_get(q, "q");
    f.q = f.q && *f.q && strlen(f.q) <= 64 ? f.q : NULL;
    f.status = listed(kv_get(q, "status"), ORDER_STATUSES, 5) ? kv_get(q, "status") : NULL;
    f.channel = text_is_token(kv_get(q, "channel"), 16, "_") ? kv_get(q, "channel") : NULL;
    f.from = is_day(kv_get(q, "from")) ? kv_get(q, "from") : NULL;
    f.to = is_day(kv_get(q, "to")) ? kv_get(q, "to") : NULL;
    f.payment_status = kv_get(q, "waiting") ? "CREATED" : NULL;
    f.limit = ORDERS_PAGE;
    if (before && money_parse_fen(before, INT64_MAX, &f.before_id) != PG_OK)
        f.before_id = 0;
    if (store_admin_orders(c->app->db, c->a, &f, &r) != PG_OK) {
        db_error_page(c);
        return;
    }
    admin_html_begin(&c->p, 200, MSG_ADM_TITLE_ORDERS, NULL);
    orders_form(c, &f);
    admin_html_table_begin(&c->p, "orders", H, 8);
    for (size_t i = 0; i < r.rows; i++) {
        const char *no = db_cell(&r, i, "order_no");
        admin_html_row_begin(&c->p);
        admin_html_cell_link(&c->p, arena_printf(c->a, "/orders/%s", no), no);
        admin_html_cell_status(&c->p, db_cell(&r, i, "status"));
        admin_html_cell_amount(&c->p, db_cell_i64(&r, i, "amount_fen"));
        admin_html_cell_amount(&c->p, db_cell_i64(&r, i, "refunded_fen"));
        admin_html_cell(&c->p, db_cell(&r, i, "title"));
        admin_html_cell(&c->p, db_cell(&r, i, "user_ref"));
        admin_html_cell(&c->p, db_cell(&r, i, "channel"));
        admin_html_cell_time(&c->p, db_cell(&r, i, "created_at"));
        admin_html_row_end(&c->p);
    }
    admin_html_table_end(&c->p, r.rows);
    if (r.rows == ORDERS_PAGE)
        next_page_link(c, &f, db_cell_i64(&r, r.rows - 1, "id"));
    admin_html_end(&c->p);
}

/* ---------------------------------------------------------- order page */

static void order_payments(ctx_t *c, const db_result_t *r)
{
    static const i18n_msg_t H[] = { MSG_ADM_COL_PAYMENT, MSG_ADM_CHANNEL, MSG_ADM_COL_METHOD, MSG_ADM_COL_AMOUNT,
                                    MSG_ADM_COL_STATUS, MSG_ADM_COL_TRADE_NO, MSG_ADM_COL_CREATED,
                                    MSG_ADM_COL_PAID_AT };
    admin_html_h2(&c->p, MSG_ADM_PAYMENTS);
    admin_html_table_begin(&c->p, "payments", H, 8);
    for (size_t i = 0; i < r->rows; i++) {
        admin_html_row_begin(&c->p);
        admin_html_cell(&c->p, db_cell(r, i, "payment_no"));
        admin_html_cell(&c->p, db_cell(r, i, "channel"));
        admin_html_cell(&c->p, db_cell(r, i, "method"));
        admin_html_cell_amount(&c->p, db_cell_i64(r, i, "amount_fen"));
        admin_html_cell(&c->p, db_cell(r, i, "status"));
        admin_html_cell(&c->p, db_cell(r, i, "provider_trade_no"));
        admin_html_cell_time(&c->p, db_cell(r, i, "created_at"));
        admin_html_cell_time(&c->p, db_cell(r, i, "paid_at"));
        admin_html_row_end(&c->p);
    }
    admin_html_table_end(&c->p, r->rows);
}

static void order_refunds(ctx_t *c, const db_result_t *r)
{
    static const i18n_msg_t H[] = { MSG_ADM_COL_REFUND, MSG_ADM_COL_PAYMENT, MSG_ADM_COL_KIND, MSG_ADM_COL_AMOUNT,
                                    MSG_ADM_COL_STATUS, MSG_ADM_COL_REASON, MSG_ADM_COL_FAILURE,
                                    MSG_ADM_COL_CREATED };
    admin_html_h2(&c->p, MSG_ADM_REFUNDS);
    admin_html_table_begin(&c->p, "refunds", H, 8);
    for (size_t i = 0; i < r->rows; i++) {
        admin_html_row_begin(&c->p);
        admin_html_cell(&c->p, db_cell(r, i, "refund_no"));
        admin_html_cell(&c->p, db_cell(r, i, "payment_no"));
        admin_html_cell(&c->p, db_cell(r, i, "kind"));
        admin_html_cell_amount(&c->p, db_cell_i64(r, i, "amount_fen"));
        admin_html_cell(&c->p, db_cell(r, i, "status"));
        admin_html_cell(&c->p, db_cell(r, i, "reason"));
        admin_html_cell(&c->p, db_cell(r, i, "failure"));
        admin_html_cell_time(&c->p, db_cell(r, i, "created_at"));
        admin_html_row_end(&c->p);
    }
    admin_html_table_end(&c->p, r->rows);
}

static void order_notifications(ctx_t *c, const db_result_t *r)
{
    static const i18n_msg_t H[] = { MSG_ADM_COL_RECEIVED, MSG_ADM_CHANNEL, MSG_ADM_COL_KIND, MSG_ADM_COL_OUTCOME,
                                    MSG_ADM_COL_DETAIL, MSG_ADM_COL_SOURCE, MSG_ADM_COL_BODY };
    admin_html_h2(&c->p, MSG_ADM_NOTIFICATIONS);
    admin_html_table_begin(&c->p, "notifications", H, 7);
    for (size_t i = 0; i < r->rows; i++) {
        admin_html_row_begin(&c->p);
        admin_html_cell_time(&c->p, db_cell(r, i, "received_at"));
        admin_html_cell(&c->p, db_cell(r, i, "channel"));
        admin_html_cell(&c->p, db_cell(r, i, "kind"));
        admin_html_cell(&c->p, db_cell(r, i, "outcome"));
        admin_html_cell(&c->p, db_cell(r, i, "detail"));
        admin_html_cell(&c->p, db_cell(r, i, "source"));
        admin_html_cell_pre(&c->p, db_cell(r, i, "raw_body"));
        admin_html_row_end(&c->p);
    }
    admin_html_table_end(&c->p, r->rows);
}

static void order_ledger(ctx_t *c, const db_result_t *r)
{
    static const i18n_msg_t H[] = { MSG_ADM_COL_TXN, MSG_ADM_COL_ACCOUNT, MSG_ADM_COL_AMOUNT, MSG_ADM_COL_KIND,
                                    MSG_ADM_COL_DAY };
    admin_html_h2(&c->p, MSG_ADM_LEDGER);
    admin_html_table_begin(&c->p, "ledger", H, 5);
    for (size_t i = 0; i < r->rows; i++) {
        admin_html_row_begin(&c->p);
        admin_html_cell(&c->p, db_cell(r, i, "txn_id"));
        admin_html_cell(&c->p, db_cell(r, i, "account"));
        admin_html_cell_amount(&c->p, db_cell_i64(r, i, "amount_fen"));
        admin_html_cell(&c->p, db_cell(r, i, "kind"));
        admin_html_cell(&c->p, db_cell(r, i, "business_date"));
        admin_html_row_end(&c->p);
    }
    admin_html_table_end(&c->p, r->rows);
}

static void order_webhooks(ctx_t *c, const db_result_t *r)
{
    static const i18n_msg_t H[] = { MSG_ADM_COL_EVENT, MSG_ADM_COL_TYPE, MSG_ADM_COL_STATUS, MSG_ADM_COL_ATTEMPTS,
                                    MSG_ADM_COL_LAST_ERROR, MSG_ADM_COL_CREATED };
    admin_html_h2(&c->p, MSG_ADM_WEBHOOK_EVENTS);
    admin_html_table_begin(&c->p, "order-webhooks", H, 6);
    for (size_t i = 0; i < r->rows; i++) {
        admin_html_row_begin(&c->p);
        admin_html_cell(&c->p, db_cell(r, i, "event_id"));
        admin_html_cell(&c->p, db_cell(r, i, "type"));
        admin_html_cell(&c->p, db_cell(r, i, "status"));
        admin_html_cell(&c->p, db_cell(r, i, "attempts"));
        admin_html_cell(&c->p, db_cell(r, i, "last_error"));
        admin_html_cell_time(&c->p, db_cell(r, i, "created_at"));
        admin_html_row_end(&c->p);
    }
    admin_html_table_end(&c->p, r->rows);
}

static void order_entitlement(ctx_t *c, const db_result_t *r)
{
    static const i18n_msg_t H[] = { MSG_ADM_COL_USER, MSG_ADM_COL_STATUS, MSG_ADM_COL_GRANTED, MSG_ADM_COL_REVOKED };
    admin_html_h2(&c->p, MSG_ADM_ENTITLEMENT);
    admin_html_table_begin(&c->p, "entitlement", H, 4);
    for (size_t i = 0; i < r->rows; i++) {
        admin_html_row_begin(&c->p);
        admin_html_cell(&c->p, db_cell(r, i, "user_ref"));
        admin_html_cell(&c->p, db_cell(r, i, "status"));
        admin_html_cell_time(&c->p, db_cell(r, i, "granted_at"));
        admin_html_cell_time(&c->p, db_cell(r, i, "revoked_at"));
        admin_html_row_end(&c->p);
    }
    admin_html_table_end(&c->p, r->rows);
}

static void order_anomalies(ctx_t *c, const db_result_t *pays, const db_result_t *refunds)
{
    size_t n = 0;
    admin_html_h2(&c->p, MSG_ADM_ANOMALIES);
    buf_puts(c->p.b, "<ul id=\"anomalies\">");
    for (size_t i = 0; i < pays->rows; i++) {
        const char *an = db_cell(pays, i, "anomaly");
        if (!an)
            continue;
        buf_puts(c->p.b, "<li>");
        admin_html_msg(&c->p, MSG_ADM_ANOMALY_PAYMENT, db_cell(pays, i, "payment_no"));
        admin_html_text(&c->p, an);
        buf_puts(c->p.b, "</li>");
        n++;
    }
    for (size_t i = 0; i < refunds->rows; i++) {
        if (strcmp(db_cell(refunds, i, "status"), "ABNORMAL"))
            continue;
        buf_puts(c->p.b, "<li>");
        admin_html_msg(&c->p, MSG_ADM_ANOMALY_REFUND, db_cell(refunds, i, "refund_no"));
        buf_puts(c->p.b, "</li>");
        n++;
    }
    buf_puts(c->p.b, "</ul>\n");
    if (!n)
        admin_html_table_end(&c->p, 0);
}

/* What refunds already hold (every state but FAILED), like refund_create counts. */
static int64_t held_by_refunds(const db_result_t *refunds)
{
    int64_t held = 0;
    for (size_t i = 0; i < refunds->rows; i++)
        if (strcmp(db_cell(refunds, i, "status"), "FAILED"))
            held += db_cell_i64(refunds, i, "amount_fen");
    return held;
}

static void order_actions(ctx_t *c, const order_view_t *o, const db_result_t *refunds)
{
    const char *path;
    if (!c->p.can_act)
        return;
    if (!strcmp(o->status, "PAID") || !strcmp(o->status, "PARTIALLY_REFUNDED")) {
        char left[MONEY_YUAN_BUFSZ + 4];
        buf_t tmp;
        buf_init(&tmp, c->a);
        i18n_append_amount_in(&tmp, o->amount_fen - held_by_refunds(refunds), c->p.currency);
        snprintf(left, sizeof left, "%s", tmp.data);
        admin_html_h2(&c->p, MSG_ADM_REFUNDS);
        buf_puts(c->p.b, "<p id=\"refundable\">");
        admin_html_msg(&c->p, MSG_ADM_REFUNDABLE, left);
        buf_puts(c->p.b, "</p>");
        path = arena_printf(c->a, "/orders/%s/refund", o->order_no);
        admin_html_form_begin(&c->p, path, "refund-form");
        admin_html_input(&c->p, "amount_fen", MSG_ADM_AMOUNT_FEN, "", "text");
        admin_html_input(&c->p, "reason", MSG_ADM_COL_REASON, "", "text");
        admin_html_submit(&c->p, "refund-review", MSG_ADM_REVIEW);
        admin_html_form_end(&c->p);
    }
    if (!strcmp(o->status, "CREATED")) {
        path = arena_printf(c->a, "/orders/%s/close", o->order_no);
        admin_html_h2(&c->p, MSG_ADM_CLOSE_ACTION);
        admin_html_form_begin(&c->p, path, "close-form");
        admin_html_submit(&c->p, "close-review", MSG_ADM_REVIEW);
        admin_html_form_end(&c->p);
    }
}

static void order_summary(ctx_t *c, const order_view_t *o)
{
    buf_puts(c->p.b, "<table id=\"order-summary\"><tbody><tr><th>");
    admin_html_msg(&c->p, MSG_ADM_COL_STATUS, NULL);
    buf_puts(c->p.b, "</th>");
    admin_html_cell_status(&c->p, o->status);
    buf_puts(c->p.b, "</tr><tr><th>");
    admin_html_msg(&c->p, MSG_ADM_COL_AMOUNT, NULL);
    buf_puts(c->p.b, "</th>");
    admin_html_cell_amount(&c->p, o->amount_fen);
    buf_puts(c->p.b, "</tr><tr><th>");
    admin_html_msg(&c->p, MSG_ADM_COL_REFUNDED, NULL);
    buf_puts(c->p.b, "</th>");
    buf_puts(c->p.b, "<td class=\"num\" id=\"refunded\"");
    buf_printf(c->p.b, " data-fen=\"%lld\">", (long long)o->refunded_fen);
    admin_html_amount(&c->p, o->refunded_fen);
    buf_puts(c->p.b, "</td></tr><tr><th>");
    admin_html_msg(&c->p, MSG_ADM_COL_PRODUCT, NULL);
    buf_puts(c->p.b, "</th><td id=\"product\">");
    admin_html_text(&c->p, o->product_title);
    buf_puts(c->p.b, " <span class=\"code\">");
    admin_html_text(&c->p, o->product_sku);
    buf_puts(c->p.b, "</span></td></tr><tr><th>");
    admin_html_msg(&c->p, MSG_ADM_COL_USER, NULL);
    buf_puts(c->p.b, "</th><td id=\"user\">");
    admin_html_text(&c->p, o->user_ref);
    buf_puts(c->p.b, "</td></tr><tr><th>");
    admin_html_msg(&c->p, MSG_ADM_COL_CREATED, NULL);
    buf_puts(c->p.b, "</th>");
    admin_html_cell_time(&c->p, o->created_at);
    buf_puts(c->p.b, "</tr></tbody></table>\n");
}

/* The order page; notice (MSG_COUNT = none) on top after an action. */
static void order_page(ctx_t *c, const char *order_no, int status, i18n_msg_t notice, bool error, const char *arg)
{
    order_view_t o;
    db_result_t pays, refunds, notes, ledger, hooks, ent;
    pg_err rc = store_order_by_no(c->app->db, c->a, order_no, &o);
    if (rc == PG_ERR_NOT_FOUND) {
        message_page(c, 404, MSG_ADM_NOT_FOUND, NULL);
        return;
    }
    if (rc == PG_OK)
        rc = store_order_payments(c->app->db, c->a, o.id, &pays);
    if (rc == PG_OK)
        rc = store_order_refunds(c->app->db, c->a, o.id, &refunds);
    if (rc == PG_OK)
        rc = store_admin_order_notifications(c->app->db, c->a, o.id, &notes);
    if (rc == PG_OK)
        rc = store_admin_order_ledger(c->app->db, c->a, o.id, &ledger);
    if (rc == PG_OK)
        rc = store_admin_order_webhooks(c->app->db, c->a, o.order_no, &hooks);
    if (rc == PG_OK)
        rc = store_admin_order_entitlement(c->app->db, c->a, o.id, &ent);
    if (rc != PG_OK) {
        db_error_page(c);
        return;
    }
    c->res->log_order_no = o.order_no;
    /* a card order's amounts are in Stripe's currency (the shop's prices are its minor unit) */
    c->p.currency = o.channel && !strcmp(o.channel, "stripe") ? c->app->cfg->stripe.currency : NULL;
    admin_html_begin(&c->p, status, MSG_ADM_TITLE_ORDER, o.order_no);
    if (notice != MSG_COUNT)
        admin_html_notice(&c->p, "action-result", error, notice, arg);
    order_summary(c, &o);
    order_actions(c, &o, &refunds);
    order_payments(c, &pays);
    order_refunds(c, &refunds);
    order_anomalies(c, &pays, &refunds);
    order_ledger(c, &ledger);
    order_notifications(c, &notes);
    order_webhooks(c, &hooks);
    order_entitlement(c, &ent);
    admin_html_end(&c->p);
    c->p.currency = NULL;
}

static void handle_order(ctx_t *c)
{
    order_page(c, c->param, 200, MSG_COUNT, false, NULL);
}

/* ------------------------------------------------------------- actions */

/* extra: NULL or name, value, ..., NULL -- the hidden fields the action needs again. */
static void confirm_page(ctx_t *c, const char *path, i18n_msg_t question, const char *arg, const char *const *extra,
                         const char *reason, const char *cancel)
{
    char request_id[33];
    memcpy(request_id, "adm-", 4);
    if (crypto_random_alnum(request_id + 4, 28) != PG_OK) {
        message_page(c, 500, MSG_ADM_DB_ERROR, NULL);
        return;
    }
    admin_html_begin(&c->p, 200, MSG_ADM_TITLE_CONFIRM, NULL);
    buf_puts(c->p.b, "<p id=\"confirm-question\">");
    admin_html_msg(&c->p, question, arg);
    buf_puts(c->p.b, "</p>\n");
    if (reason) {
        buf_puts(c->p.b, "<p>");
        admin_html_msg(&c->p, MSG_ADM_COL_REASON, NULL);
        buf_puts(c->p.b, ": <span id=\"confirm-reason\">");
        admin_html_text(&c->p, reason);
        buf_puts(c->p.b, "</span></p>\n");
    }
    admin_html_form_begin(&c->p, path, "confirm-form");
    admin_html_hidden(&c->p, "confirm", "1");
    admin_html_hidden(&c->p, "request_id", request_id);
    for (size_t i = 0; extra && extra[i] && extra[i + 1]; i += 2)
        admin_html_hidden(&c->p, extra[i], extra[i + 1]);
    if (reason)
        admin_html_hidden(&c->p, "reason", reason);
    admin_html_submit(&c->p, "confirm", MSG_ADM_CONFIRM);
    admin_html_form_end(&c->p);
    buf_puts(c->p.b, " ");
    admin_html_link_msg(&c->p, cancel, MSG_ADM_CANCEL);
    admin_html_end(&c->p);
}

static void handle_refund(ctx_t *c)
{
    const char *amount = field(c, "amount_fen"), *reason = field(c, "reason");
    const char *path = arena_printf(c->a, "/orders/%s/refund", c->param);
    refund_request_t rq;
    refund_result_t rr;
    buf_t msg, detail;
    int64_t fen = 0;
    pg_err rc;
    if (amount && money_parse_fen(amount, MONEY_MAX_FEN, &fen) != PG_OK) {
        order_page(c, c->param, 400, MSG_ADM_REFUND_REFUSED, true, "invalid_field");
        return;
    }
    if (!field(c, "confirm")) {
        const char *extra[] = { "amount_fen", amount, NULL };
        buf_t shown;
        buf_init(&shown, c->a);
        i18n_append_amount(&shown, fen);
        confirm_page(c, path, amount ? MSG_ADM_CONFIRM_REFUND_Q : MSG_ADM_CONFIRM_REFUND_ALL, shown.data, extra,
                     reason, arena_printf(c->a, "/orders/%s", c->param));
        return;
    }
    memset(&rq, 0, sizeof rq);
    memset(&rr, 0, sizeof rr);
    rq.order_no = c->param;
    rq.amount_fen = amount;
    rq.reason = reason;
    rq.request_id = text_is_token(field(c, "request_id"), 64, "-") ? field(c, "request_id") : NULL;
    buf_init(&msg, c->a);
    buf_init(&detail, c->a);
    rc = refund_create(c->app, c->a, &rq, &rr, &msg);
    if (rc != PG_OK) {
        const char *code = rr.error_code ? rr.error_code : app_error_code(rc);
        log_msg(LOG_INFO, "admin refund refused: %s %s", code, msg.data);
        admin_audit(c->app, c->s.username, "refund", c->param, code, amount, c->addr);
        order_page(c, c->param, rc == PG_ERR_CONFLICT ? 409 : app_http_status(rc), MSG_ADM_REFUND_REFUSED, true, code);
        return;
    }
    buf_printf(&detail, "%s %lld fen %s", rr.refund_no, (long long)rr.amount_fen, rr.status);
    admin_audit(c->app, c->s.username, "refund", c->param, "ok", detail.data, c->addr);
    order_page(c, c->param, 200, MSG_ADM_REFUND_DONE, false, rr.status);
}

static void handle_close(ctx_t *c)
{
    const char *code = NULL;
    int retry_after_s = 0;
    buf_t msg;
    pg_err rc;
    if (!field(c, "confirm")) {
        confirm_page(c, arena_printf(c->a, "/orders/%s/close", c->param), MSG_ADM_CONFIRM_CLOSE_Q, c->param, NULL,
                     NULL, arena_printf(c->a, "/orders/%s", c->param));
        return;
    }
    buf_init(&msg, c->a);
    rc = lifecycle_close_order(c->app, c->a, c->param, &code, &retry_after_s, &msg);
    if (rc != PG_OK) {
        const char *ecode = code ? code : app_error_code(rc);
        log_msg(LOG_INFO, "admin close refused: %s %s", ecode, msg.data);
        admin_audit(c->app, c->s.username, "close", c->param, ecode, NULL, c->addr);
        order_page(c, c->param, app_http_status(rc), MSG_ADM_CLOSE_REFUSED, true, ecode);
        return;
    }
    admin_audit(c->app, c->s.username, "close", c->param, "ok", NULL, c->addr);
    order_page(c, c->param, 200, MSG_ADM_CLOSE_DONE, false, NULL);
}

/* -------------------------------------------------------------- refunds */

static void handle_refunds(ctx_t *c)
{
    static const char *const S[] = { "PENDING", "FAILED", "ABNORMAL", "SUCCEEDED" };
    static const i18n_msg_t H[] = { MSG_ADM_COL_REFUND, MSG_ADM_COL_ORDER, MSG_ADM_COL_AMOUNT, MSG_ADM_COL_STATUS,
                                    MSG_ADM_COL_REASON, MSG_ADM_COL_FAILURE, MSG_ADM_COL_CREATED };
    const char *status = kv_get(&c->req->query, "status");
    db_result_t r;
    if (!listed(status, S, 4))
        status = "PENDING";
    if (store_admin_refunds_by_status(c->app->db, c->a, status, &r) != PG_OK) {
        db_error_page(c);
        return;
    }
    admin_html_begin(&c->p, 200, MSG_ADM_TITLE_REFUNDS, status);
    admin_html_table_begin(&c->p, "refunds", H, 7);
    for (size_t i = 0; i < r.rows; i++) {
        const char *no = db_cell(&r, i, "order_no");
        admin_html_row_begin(&c->p);
        admin_html_cell(&c->p, db_cell(&r, i, "refund_no"));
        admin_html_cell_link(&c->p, arena_printf(c->a, "/orders/%s", no), no);
        admin_html_cell_amount(&c->p, db_cell_i64(&r, i, "amount_fen"));
        admin_html_cell(&c->p, db_cell(&r, i, "status"));
        admin_html_cell(&c->p, db_cell(&r, i, "reason"));
        admin_html_cell(&c->p, db_cell(&r, i, "failure"));
        admin_html_cell_time(&c->p, db_cell(&r, i, "created_at"));
        admin_html_row_end(&c->p);
    }
    admin_html_table_end(&c->p, r.rows);
    admin_html_end(&c->p);
}

/* ------------------------------------------------------- reconciliation */

static i18n_msg_t advice(const char *category)
{
    static const struct { const char *cat; i18n_msg_t msg; } A[] = {
        { "amount_mismatch", MSG_ADM_ADVICE_AMOUNT_MISMATCH }, { "status_mismatch", MSG_ADM_ADVICE_STATUS_MISMATCH },
        { "fee_mismatch", MSG_ADM_ADVICE_FEE_MISMATCH },       { "missing_local", MSG_ADM_ADVICE_MISSING_LOCAL },
        { "missing_provider", MSG_ADM_ADVICE_MISSING_PROVIDER }, { "refund_abnormal", MSG_ADM_ADVICE_REFUND_ABNORMAL },
    };
    for (size_t i = 0; category && i < sizeof A / sizeof A[0]; i++)
        if (!strcmp(category, A[i].cat))
            return A[i].msg;
    return MSG_ADM_NO_ROWS;
}

static void recon_items(ctx_t *c, int64_t run_id)
{
    static const i18n_msg_t H[] = { MSG_ADM_COL_CATEGORY, MSG_ADM_COL_ADVICE, MSG_ADM_COL_KIND, MSG_ADM_COL_PAYMENT,
                                    MSG_ADM_COL_REFUND, MSG_ADM_COL_LOCAL, MSG_ADM_COL_BILL, MSG_ADM_COL_DETAIL };
    db_result_t r;
    char id[24];
    if (store_admin_recon_run(c->app->db, c->a, run_id, &r) != PG_OK)
        return;
    snprintf(id, sizeof id, "%lld", (long long)run_id);
    buf_puts(c->p.b, "<h2>");
    admin_html_msg(&c->p, MSG_ADM_RUN, id);
    buf_puts(c->p.b, "</h2>\n");
    if (!r.rows) {
        admin_html_notice(&c->p, "all-match", false, MSG_ADM_ALL_MATCH, NULL);
        return;
    }
    admin_html_table_begin(&c->p, "recon-items", H, 8);
    for (size_t i = 0; i < r.rows; i++) {
        const char *trade = db_cell(&r, i, "out_trade_no");
        admin_html_row_begin(&c->p);
        admin_html_cell(&c->p, db_cell(&r, i, "category"));
        buf_puts(c->p.b, "<td>");
        admin_html_msg(&c->p, advice(db_cell(&r, i, "category")), NULL);
        buf_puts(c->p.b, "</td>");
        admin_html_cell(&c->p, db_cell(&r, i, "kind"));
        if (trade && text_is_token(trade, 64, "_-")) {
            buf_t q;
            buf_init(&q, c->a);
            buf_puts(&q, "/orders?q=");
            buf_append_urlencoded(&q, trade);
            admin_html_cell_link(&c->p, q.data, trade);
        } else {
            admin_html_cell(&c->p, trade);
        }
        admin_html_cell(&c->p, db_cell(&r, i, "out_refund_no"));
        admin_html_cell(&c->p, db_cell(&r, i, "local_fen"));
        admin_html_cell(&c->p, db_cell(&r, i, "bill_fen"));
        admin_html_cell(&c->p, db_cell(&r, i, "detail"));
        admin_html_row_end(&c->p);
    }
    admin_html_table_end(&c->p, r.rows);
}

static void handle_recon(ctx_t *c)
{
    static const i18n_msg_t H[] = { MSG_ADM_COL_RUN, MSG_ADM_CHANNEL, MSG_ADM_COL_BILL_DATE, MSG_ADM_COL_MATCHED,
                                    MSG_ADM_COL_UNEXPLAINED, MSG_ADM_COL_CREATED };
    static const char *const UNEXPLAINED[] = { "amount_mismatch", "status_mismatch", "fee_mismatch", "missing_local",
                                               "missing_provider", "refund_abnormal" };
    const char *run = kv_get(&c->req->query, "run");
    int64_t run_id = 0;
    db_result_t r;
    if (store_admin_recon_runs(c->app->db, c->a, &r) != PG_OK) {
        db_error_page(c);
        return;
    }
    admin_html_begin(&c->p, 200, MSG_ADM_TITLE_RECON, NULL);
    if (run && money_parse_fen(run, INT64_MAX, &run_id) == PG_OK && run_id > 0)
        recon_items(c, run_id);
    admin_html_table_begin(&c->p, "recon-runs", H, 6);
    for (size_t i = 0; i < r.rows; i++) {
        const char *id = db_cell(&r, i, "id");
        int64_t unexplained = 0;
        for (size_t k = 0; k < sizeof UNEXPLAINED / sizeof UNEXPLAINED[0]; k++)
            unexplained += db_cell_i64(&r, i, UNEXPLAINED[k]);
        admin_html_row_begin(&c->p);
        admin_html_cell_link(&c->p, arena_printf(c->a, "/reconciliation?run=%s", id), id);
        admin_html_cell(&c->p, db_cell(&r, i, "channel"));
        admin_html_cell(&c->p, db_cell(&r, i, "bill_date"));
        admin_html_cell(&c->p, db_cell(&r, i, "matched"));
        buf_printf(c->p.b, "<td class=\"num\">%lld</td>", (long long)unexplained);
        admin_html_cell_time(&c->p, db_cell(&r, i, "run_at"));
        admin_html_row_end(&c->p);
    }
    admin_html_table_end(&c->p, r.rows);
    admin_html_end(&c->p);
}

/* ----------------------------------------------------------- settlement */

static void settlement_batches(ctx_t *c, const db_result_t *r)
{
    static const i18n_msg_t H[] = { MSG_ADM_COL_BATCH, MSG_ADM_COL_CREATOR, MSG_ADM_COL_SETTLE_DATE,
                                    MSG_ADM_COL_AMOUNT, MSG_ADM_COL_ENTRIES, MSG_ADM_DOWNLOAD_CSV };
    admin_html_h2(&c->p, MSG_ADM_H_BATCHES);
    admin_html_table_begin(&c->p, "batches", H, 6);
    for (size_t i = 0; i < r->rows; i++) {
        const char *day = db_cell(r, i, "settle_date");
        admin_html_row_begin(&c->p);
        admin_html_cell(&c->p, db_cell(r, i, "batch_no"));
        buf_puts(c->p.b, "<td>");
        admin_html_text(&c->p, db_cell(r, i, "name"));
        buf_puts(c->p.b, " <span class=\"code\">");
        admin_html_text(&c->p, db_cell(r, i, "creator_id"));
        buf_puts(c->p.b, "</span></td>");
        admin_html_cell(&c->p, day);
        admin_html_cell_amount(&c->p, db_cell_i64(r, i, "amount_fen"));
        admin_html_cell(&c->p, db_cell(r, i, "entries"));
        buf_puts(c->p.b, "<td>");
        admin_html_link(&c->p, arena_printf(c->a, "/settlement/payouts.csv?date=%s", day), "CSV");
        buf_puts(c->p.b, "</td>");
        admin_html_row_end(&c->p);
    }
    admin_html_table_end(&c->p, r->rows);
}

static const char *const PAYOUT_STATUSES[] = { "FAILED", "WAITING_CONFIRMATION", "PENDING", "PAID" };
#define N_PAYOUT_STATUSES (sizeof PAYOUT_STATUSES / sizeof PAYOUT_STATUSES[0])

/* A WeChat payout waiting for its payee: the link the operator sends to the
 * creator (GET /payouts/{no}/confirm?token=...). */
static void payout_confirm_cell(ctx_t *c, const db_result_t *r, size_t i)
{
    const char *st = db_cell(r, i, "status"), *pkg = db_cell(r, i, "package_info");
    const char *link;
    if (!st || strcmp(st, "WAITING_CONFIRMATION") || !pkg || !*pkg)
        return;
    if ((link = payout_confirm_link(c->app, c->a, db_cell(r, i, "payout_no"))) == NULL)
        return;
    buf_puts(c->p.b, "<a class=\"confirm-link\" rel=\"noreferrer\" href=\"");
    buf_append_html(c->p.b, link);
    buf_puts(c->p.b, "\">");
    admin_html_msg(&c->p, MSG_ADM_PAYOUT_CONFIRM_LINK, NULL);
    buf_puts(c->p.b, "</a>");
}

/* The payouts of one status (FAILED first: they need the operator), a
 * retry form on each FAILED one for an operator. No account is shown. */
static void settlement_payouts(ctx_t *c, const char *status, const db_result_t *r)
{
    static const i18n_msg_t H[] = { MSG_ADM_COL_BATCH, MSG_ADM_COL_CREATOR, MSG_ADM_COL_AMOUNT, MSG_ADM_COL_STATUS,
                                    MSG_ADM_COL_REASON, MSG_ADM_COL_ATTEMPTS, MSG_ADM_COL_SETTLE_DATE,
                                    MSG_ADM_COL_WHEN, MSG_ADM_RETRY };
    buf_puts(c->p.b, "<h2 id=\"payouts\">");
    admin_html_msg(&c->p, MSG_ADM_H_PAYOUTS, NULL);
    buf_puts(c->p.b, "</h2>\n<p id=\"payout-filter\">");
    for (size_t i = 0; i < N_PAYOUT_STATUSES; i++) {
        if (i)
            buf_puts(c->p.b, " | ");
        if (!strcmp(status, PAYOUT_STATUSES[i]))
            buf_printf(c->p.b, "<strong>%s</strong>", PAYOUT_STATUSES[i]);
        else
            admin_html_link(&c->p, arena_printf(c->a, "/settlement?status=%s#payouts", PAYOUT_STATUSES[i]),
                            PAYOUT_STATUSES[i]);
    }
    buf_puts(c->p.b, "</p>\n");
    admin_html_table_begin(&c->p, "payouts-table", H, 9);
    for (size_t i = 0; i < r->rows; i++) {
        const char *no = db_cell(r, i, "payout_no"), *st = db_cell(r, i, "status");
        buf_puts(c->p.b, "<tr data-payout=\"");
        buf_append_html(c->p.b, no);
        buf_puts(c->p.b, "\">");
        admin_html_cell(&c->p, no);
        buf_puts(c->p.b, "<td>");
        admin_html_text(&c->p, db_cell(r, i, "name"));
        buf_puts(c->p.b, " <span class=\"code\">");
        admin_html_text(&c->p, db_cell(r, i, "creator_id"));
        buf_puts(c->p.b, "</span></td>");
        admin_html_cell_amount(&c->p, db_cell_i64(r, i, "amount_fen"));
        admin_html_cell(&c->p, st);
        admin_html_cell(&c->p, db_cell(r, i, "reason"));
        admin_html_cell(&c->p, db_cell(r, i, "attempts"));
        admin_html_cell(&c->p, db_cell(r, i, "settle_date"));
        admin_html_cell_time(&c->p, db_cell(r, i, "updated_at"));
        buf_puts(c->p.b, "<td>");
        if (c->p.can_act && st && !strcmp(st, "FAILED")) {
            admin_html_form_begin(&c->p, "/settlement/retry", NULL);
            admin_html_hidden(&c->p, "payout_no", no);
            admin_html_submit(&c->p, NULL, MSG_ADM_RETRY);
            admin_html_form_end(&c->p);
        }
        payout_confirm_cell(c, r, i);
        buf_puts(c->p.b, "</td>");
        admin_html_row_end(&c->p);
    }
    admin_html_table_end(&c->p, r->rows);
}

static void settlement_page(ctx_t *c, const char *status, int http_status, i18n_msg_t notice, bool error,
                            const char *arg)
{
    db_result_t batches, payouts;
    if (!listed(status, PAYOUT_STATUSES, N_PAYOUT_STATUSES))
        status = "FAILED";
    if (store_admin_settlement_batches(c->app->db, c->a, &batches) != PG_OK ||
        store_admin_payouts(c->app->db, c->a, status, &payouts) != PG_OK) {
        db_error_page(c);
        return;
    }
    admin_html_begin(&c->p, http_status, MSG_ADM_TITLE_SETTLEMENT, NULL);
    if (notice != MSG_COUNT)
        admin_html_notice(&c->p, "action-result", error, notice, arg);
    settlement_payouts(c, status, &payouts);
    settlement_batches(c, &batches);
    admin_html_end(&c->p);
}

/* FAILED -> PENDING through payout_retry, as `paygatectl payout retry`:
 * a confirmation first, then the next payout run sends it. */
static void handle_payout_retry(ctx_t *c)
{
    const char *no = field(c, "payout_no");
    pg_err rc;
    if (!no || !text_is_token(no, 48, "_-")) {
        admin_audit(c->app, c->s.username, "payout_retry", NULL, "invalid_field", NULL, c->addr);
        settlement_page(c, "FAILED", 400, MSG_ADM_PAYOUT_RETRY_REFUSED, true, "invalid_field");
        return;
    }
    if (!field(c, "confirm")) {
        const char *extra[] = { "payout_no", no, NULL };
        confirm_page(c, "/settlement/retry", MSG_ADM_CONFIRM_PAYOUT_RETRY_Q, no, extra, NULL,
                     "/settlement?status=FAILED#payouts");
        return;
    }
    rc = payout_retry(c->app, no);
    if (rc != PG_OK) {
        const char *code = rc == PG_ERR_NOT_FOUND ? "not_failed" : app_error_code(rc);
        admin_audit(c->app, c->s.username, "payout_retry", no, code, NULL, c->addr);
        settlement_page(c, "FAILED", rc == PG_ERR_NOT_FOUND ? 409 : app_http_status(rc),
                        MSG_ADM_PAYOUT_RETRY_REFUSED, true, no);
        return;
    }
    log_msg(LOG_INFO, "admin %s: payout %s is PENDING again", c->s.username, no);
    admin_audit(c->app, c->s.username, "payout_retry", no, "ok", NULL, c->addr);
    settlement_page(c, "PENDING", 200, MSG_ADM_PAYOUT_RETRIED, false, no);
}

/* The payout CSV of a day: ledger_payout_csv, the bytes `paygatectl settle
 * --out` writes. */
static void handle_payout_csv(ctx_t *c)
{
    const char *day = kv_get(&c->req->query, "date");
    buf_t csv;
    if (!is_day(day)) {
        message_page(c, 400, MSG_ADM_NOT_FOUND, NULL);
        return;
    }
    buf_init(&csv, c->a);
    if (ledger_payout_csv(c->app, c->a, day, &csv) != PG_OK) {
        db_error_page(c);
        return;
    }
    c->res->status = 200;
    c->res->content_type = "text/csv; charset=utf-8";
    admin_html_security_headers(c->res);
    buf_printf(&c->res->headers, "Content-Disposition: attachment; filename=\"payouts-%s.csv\"\r\n", day);
    buf_append(&c->res->body, csv.data, csv.len);
    admin_audit(c->app, c->s.username, "payout_csv", day, "ok", NULL, c->addr);
}

/* ------------------------------------------------------------ catalogue */

static void handle_catalogue(ctx_t *c)
{
    static const i18n_msg_t HP[] = { MSG_ADM_COL_SKU, MSG_ADM_COL_TITLE, MSG_ADM_COL_PRICE, MSG_ADM_COL_CREATOR,
                                     MSG_ADM_COL_ACTIVE, MSG_ADM_COL_APPSTORE_ID, MSG_ADM_COL_GOOGLEPLAY_ID };
    static const i18n_msg_t HC[] = { MSG_ADM_COL_ID, MSG_ADM_COL_NAME, MSG_ADM_COL_PRODUCTS,
                                     MSG_ADM_COL_PAYOUT_ACCOUNT, MSG_ADM_COL_REAL_NAME, MSG_ADM_COL_WECHAT_OPENID,
                                     MSG_ADM_COL_CREATED };
    db_result_t prods, creators;
    if (store_product_list(c->app->db, c->a, false, &prods) != PG_OK ||
        store_creator_list_masked(c->app->db, c->a, &creators) != PG_OK) {
        db_error_page(c);
        return;
    }
    admin_html_begin(&c->p, 200, MSG_ADM_TITLE_CATALOGUE, NULL);
    admin_html_h2(&c->p, MSG_ADM_PRODUCTS);
    admin_html_table_begin(&c->p, "products", HP, 7);
    for (size_t i = 0; i < prods.rows; i++) {
        admin_html_row_begin(&c->p);
        admin_html_cell(&c->p, db_cell(&prods, i, "sku"));
        admin_html_cell(&c->p, db_cell(&prods, i, "title"));
        admin_html_cell_amount(&c->p, db_cell_i64(&prods, i, "price_fen"));
        admin_html_cell(&c->p, db_cell(&prods, i, "creator_id"));
        buf_puts(c->p.b, "<td>");
        admin_html_msg(&c->p, db_cell_i64(&prods, i, "active") ? MSG_ADM_YES : MSG_ADM_NO, NULL);
        buf_puts(c->p.b, "</td>");
        admin_html_cell(&c->p, db_cell(&prods, i, "appstore_id"));     /* in-app purchases map to these */
        admin_html_cell(&c->p, db_cell(&prods, i, "googleplay_id"));
        admin_html_row_end(&c->p);
    }
    admin_html_table_end(&c->p, prods.rows);
    admin_html_h2(&c->p, MSG_ADM_CREATORS);
    /* the accounts masked as `paygatectl creator list` shows them (the same query) */
    admin_html_table_begin(&c->p, "creators", HC, 7);
    for (size_t i = 0; i < creators.rows; i++) {
        admin_html_row_begin(&c->p);
        admin_html_cell(&c->p, db_cell(&creators, i, "id"));
        admin_html_cell(&c->p, db_cell(&creators, i, "name"));
        admin_html_cell(&c->p, db_cell(&creators, i, "products"));
        admin_html_cell(&c->p, db_cell(&creators, i, "alipay_account"));
        admin_html_cell(&c->p, db_cell(&creators, i, "real_name"));
        admin_html_cell(&c->p, db_cell(&creators, i, "wechat_openid"));
        admin_html_cell_time(&c->p, db_cell(&creators, i, "created_at"));
        admin_html_row_end(&c->p);
    }
    admin_html_table_end(&c->p, creators.rows);
    admin_html_end(&c->p);
}

/* ------------------------------------------------------------- webhooks */

static void webhooks_page(ctx_t *c, const char *status, i18n_msg_t notice, const char *arg)
{
    static const char *const S[] = { "PENDING", "DELIVERED", "DEAD" };
    static const i18n_msg_t H[] = { MSG_ADM_COL_EVENT, MSG_ADM_COL_TYPE, MSG_ADM_COL_ORDER, MSG_ADM_COL_STATUS,
                                    MSG_ADM_COL_ATTEMPTS, MSG_ADM_COL_LAST_ERROR, MSG_ADM_COL_CREATED,
                                    MSG_ADM_RETRY };
    db_result_t r;
    if (!listed(status, S, 3))
        status = NULL;
    if (store_webhooks_list(c->app->db, c->a, status, &r) != PG_OK) {
        db_error_page(c);
        return;
    }
    admin_html_begin(&c->p, 200, MSG_ADM_TITLE_WEBHOOKS, NULL);
    if (notice != MSG_COUNT)
        admin_html_notice(&c->p, "action-result", false, notice, arg);
    buf_puts(c->p.b, "<p>");
    admin_html_link(&c->p, "/webhooks", "*");
    for (size_t i = 0; i < 3; i++) {
        buf_puts(c->p.b, " | ");
        admin_html_link(&c->p, arena_printf(c->a, "/webhooks?status=%s", S[i]), S[i]);
    }
    buf_puts(c->p.b, "</p>\n");
    if (c->p.can_act) {
        admin_html_form_begin(&c->p, "/webhooks/retry", "retry-all-form");
        admin_html_hidden(&c->p, "all", "1");
        admin_html_submit(&c->p, "retry-all", MSG_ADM_RETRY_ALL_DEAD);
        admin_html_form_end(&c->p);
    }
    admin_html_table_begin(&c->p, "webhooks", H, 8);
    for (size_t i = 0; i < r.rows; i++) {
        const char *no = db_cell(&r, i, "order_no");
        admin_html_row_begin(&c->p);
        admin_html_cell(&c->p, db_cell(&r, i, "event_id"));
        admin_html_cell(&c->p, db_cell(&r, i, "type"));
        if (no && text_is_token(no, 32, ""))
            admin_html_cell_link(&c->p, arena_printf(c->a, "/orders/%s", no), no);
        else
            admin_html_cell(&c->p, no);
        admin_html_cell(&c->p, db_cell(&r, i, "status"));
        admin_html_cell(&c->p, db_cell(&r, i, "attempts"));
        admin_html_cell(&c->p, db_cell(&r, i, "last_error"));
        admin_html_cell_time(&c->p, db_cell(&r, i, "created_at"));
        buf_puts(c->p.b, "<td>");
        if (c->p.can_act && !strcmp(db_cell(&r, i, "status"), "DEAD")) {
            admin_html_form_begin(&c->p, "/webhooks/retry", NULL);
            admin_html_hidden(&c->p, "id", db_cell(&r, i, "id"));
            admin_html_submit(&c->p, NULL, MSG_ADM_RETRY);
            admin_html_form_end(&c->p);
        }
        buf_puts(c->p.b, "</td>");
        admin_html_row_end(&c->p);
    }
    admin_html_table_end(&c->p, r.rows);
    admin_html_end(&c->p);
}

static void handle_webhook_retry(ctx_t *c)
{
    const char *id_text = field(c, "id");
    int64_t id = 0;
    uint64_t changed = 0;
    char n[24];
    if (!field(c, "all") && (!id_text || money_parse_fen(id_text, INT64_MAX, &id) != PG_OK || id <= 0)) {
        message_page(c, 400, MSG_ADM_NOT_FOUND, NULL);
        return;
    }
    if (store_webhook_retry(c->app->db, field(c, "all") ? 0 : id, &changed) != PG_OK) {
        db_error_page(c);
        return;
    }
    snprintf(n, sizeof n, "%llu", (unsigned long long)changed);
    admin_audit(c->app, c->s.username, "webhook_retry", field(c, "all") ? "all_dead" : id_text, "ok", n, c->addr);
    webhooks_page(c, "PENDING", MSG_ADM_RETRIED, n);
}

/* ---------------------------------------------------- audit, accounts */

static void handle_audit(ctx_t *c)
{
    static const i18n_msg_t H[] = { MSG_ADM_COL_WHEN, MSG_ADM_COL_WHO, MSG_ADM_COL_ACTION, MSG_ADM_COL_TARGET,
                                    MSG_ADM_COL_OUTCOME, MSG_ADM_COL_DETAIL, MSG_ADM_COL_ADDRESS };
    const char *before = kv_get(&c->req->query, "before");
    int64_t before_id = 0;
    db_result_t r;
    if (before && money_parse_fen(before, INT64_MAX, &before_id) != PG_OK)
        before_id = 0;
    if (store_admin_audit_list(c->app->db, c->a, before_id, AUDIT_PAGE, &r) != PG_OK) {
        db_error_page(c);
        return;
    }
    admin_html_begin(&c->p, 200, MSG_ADM_TITLE_AUDIT, NULL);
    admin_html_table_begin(&c->p, "audit", H, 7);
    for (size_t i = 0; i < r.rows; i++) {
        admin_html_row_begin(&c->p);
        admin_html_cell_time(&c->p, db_cell(&r, i, "at"));
        admin_html_cell(&c->p, db_cell(&r, i, "username"));
        admin_html_cell(&c->p, db_cell(&r, i, "action"));
        admin_html_cell(&c->p, db_cell(&r, i, "target"));
        admin_html_cell(&c->p, db_cell(&r, i, "outcome"));
        admin_html_cell(&c->p, db_cell(&r, i, "detail"));
        admin_html_cell(&c->p, db_cell(&r, i, "address"));
        admin_html_row_end(&c->p);
    }
    admin_html_table_end(&c->p, r.rows);
    if (r.rows == AUDIT_PAGE) {
        buf_puts(c->p.b, "<p id=\"next-page\">");
        admin_html_link_msg(&c->p, arena_printf(c->a, "/audit?before=%s", db_cell(&r, r.rows - 1, "id")),
                            MSG_ADM_NEXT_PAGE);
        buf_puts(c->p.b, "</p>\n");
    }
    admin_html_end(&c->p);
}

static void account_add_form(ctx_t *c)
{
    static const char *const ROLES[] = { "viewer", "operator", "owner" };
    admin_html_h2(&c->p, MSG_ADM_ACCOUNT_ADD);
    admin_html_form_begin(&c->p, "/accounts", "account-add-form");
    admin_html_hidden(&c->p, "op", "add");
    admin_html_input(&c->p, "username", MSG_ADM_USERNAME, "", "text");
    buf_puts(c->p.b, "<label>");
    admin_html_msg(&c->p, MSG_ADM_COL_ROLE, NULL);
    buf_puts(c->p.b, " <select name=\"role\" id=\"f-role\">");
    for (size_t i = 0; i < 3; i++)
        buf_printf(c->p.b, "<option value=\"%s\">%s</option>", ROLES[i], ROLES[i]);
    buf_puts(c->p.b, "</select></label>");
    admin_html_input(&c->p, "password", MSG_ADM_PASSWORD, "", "password");
    admin_html_submit(&c->p, "account-add", MSG_ADM_ACCOUNT_ADD);
    admin_html_form_end(&c->p);
}

static void accounts_page(ctx_t *c, int status, i18n_msg_t notice, bool error, const char *arg)
{
    static const i18n_msg_t H[] = { MSG_ADM_USERNAME, MSG_ADM_COL_ROLE, MSG_ADM_COL_ACTIVE, MSG_ADM_COL_SESSIONS,
                                    MSG_ADM_COL_CREATED, MSG_ADM_COL_ACTION };
    db_result_t r;
    if (store_admin_user_list(c->app->db, c->a, &r) != PG_OK) {
        db_error_page(c);
        return;
    }
    admin_html_begin(&c->p, status, MSG_ADM_TITLE_ACCOUNTS, NULL);
    if (notice != MSG_COUNT)
        admin_html_notice(&c->p, "action-result", error, notice, arg);
    admin_html_table_begin(&c->p, "accounts", H, 6);
    for (size_t i = 0; i < r.rows; i++) {
        admin_html_row_begin(&c->p);
        admin_html_cell(&c->p, db_cell(&r, i, "username"));
        admin_html_cell(&c->p, db_cell(&r, i, "role"));
        buf_puts(c->p.b, "<td>");
        admin_html_msg(&c->p, db_cell_i64(&r, i, "active") ? MSG_ADM_YES : MSG_ADM_NO, NULL);
        buf_puts(c->p.b, "</td>");
        admin_html_cell(&c->p, db_cell(&r, i, "sessions"));
        admin_html_cell_time(&c->p, db_cell(&r, i, "created_at"));
        buf_puts(c->p.b, "<td>");
        if (strcmp(db_cell(&r, i, "username"), c->s.username)) {
            bool active = db_cell_i64(&r, i, "active") != 0;
            admin_html_form_begin(&c->p, "/accounts", NULL);
            admin_html_hidden(&c->p, "op", active ? "disable" : "enable");
            admin_html_hidden(&c->p, "username", db_cell(&r, i, "username"));
            admin_html_submit(&c->p, NULL, active ? MSG_ADM_DISABLE : MSG_ADM_ENABLE);
            admin_html_form_end(&c->p);
        }
        buf_puts(c->p.b, "</td>");
        admin_html_row_end(&c->p);
    }
    admin_html_table_end(&c->p, r.rows);
    account_add_form(c);
    buf_puts(c->p.b, "<p><code>");
    admin_html_msg(&c->p, MSG_ADM_ACCOUNTS_HINT, NULL);
    buf_puts(c->p.b, "</code></p>\n");
    admin_html_end(&c->p);
}

static void handle_accounts(ctx_t *c)
{
    accounts_page(c, 200, MSG_COUNT, false, NULL);
}

/* Owners add, disable and enable accounts (the use cases of paygatectl admin). */
static void handle_accounts_post(ctx_t *c)
{
    const char *op = field(c, "op"), *user = field(c, "username");
    buf_t msg;
    pg_err rc;
    buf_init(&msg, c->a);
    if (op && !strcmp(op, "add")) {
        const char *pw = kv_get(&c->fields, "password");
        rc = admin_account_add(c->app, c->s.username, c->addr, user ? user : "", field(c, "role"), pw ? pw : "", &msg);
        if (rc == PG_OK)
            accounts_page(c, 200, MSG_ADM_ACCOUNT_ADDED, false, user);
        else
            accounts_page(c, rc == PG_ERR_CONFLICT ? 409 : rc == PG_ERR_BAD_INPUT ? 400 : 503, MSG_ADM_ACCOUNT_REFUSED,
                          true, rc == PG_ERR_CONFLICT ? "taken" : msg.len ? msg.data : "error");
        return;
    }
    if (op && (!strcmp(op, "disable") || !strcmp(op, "enable")) && admin_username_ok(user)) {
        rc = admin_account_set_active(c->app, c->s.username, c->addr, user, !strcmp(op, "enable"));
        if (rc == PG_OK)
            accounts_page(c, 200, MSG_ADM_ACCOUNT_CHANGED, false, user);
        else
            accounts_page(c, rc == PG_ERR_NOT_FOUND ? 404 : rc == PG_ERR_CONFLICT ? 409 : 503, MSG_ADM_ACCOUNT_REFUSED,
                          true, rc == PG_ERR_NOT_FOUND ? "not_found" : rc == PG_ERR_CONFLICT ? "self" : "error");
        return;
    }
    accounts_page(c, 400, MSG_ADM_ACCOUNT_REFUSED, true, "invalid_request");
}

/* ------------------------------------------------------------- dispatch */

/* No session: pages send the browser to sign in (coming back here after),
 * actions are refused with 401. */
static void need_login(ctx_t *c)
{
    buf_t next;
    const char *rel = c->req->path + 6;   /* after "/admin" */
    if (!strcmp(c->req->method, "POST")) {
        message_page(c, 401, MSG_ADM_NEED_LOGIN, NULL);
        return;
    }
    buf_init(&next, c->a);
    buf_puts(&next, "/login?next=");
    {
        buf_t target;
        buf_init(&target, c->a);
        buf_puts(&target, *rel ? rel : "/");
        if (c->req->query_string && *c->req->query_string) {
            buf_putc(&target, '?');
            buf_puts(&target, c->req->query_string);
        }
        buf_append_urlencoded(&next, safe_next(target.data));
    }
    redirect(c, next.data);
}

static void dispatch(ctx_t *c, int id)
{
    switch (id) {
    case A_TODAY: handle_today(c); break;
    case A_LOGOUT: handle_logout(c); break;
    case A_ORDERS: handle_orders(c); break;
    case A_ORDER: handle_order(c); break;
    case A_ORDER_REFUND: handle_refund(c); break;
    case A_ORDER_CLOSE: handle_close(c); break;
    case A_REFUNDS: handle_refunds(c); break;
    case A_RECON: handle_recon(c); break;
    case A_SETTLEMENT: settlement_page(c, kv_get(&c->req->query, "status"), 200, MSG_COUNT, false, NULL); break;
    case A_PAYOUT_RETRY: handle_payout_retry(c); break;
    case A_PAYOUT_CSV: handle_payout_csv(c); break;
    case A_CATALOGUE: handle_catalogue(c); break;
    case A_WEBHOOKS: webhooks_page(c, kv_get(&c->req->query, "status"), MSG_COUNT, NULL); break;
    case A_WEBHOOK_RETRY: handle_webhook_retry(c); break;
    case A_AUDIT: handle_audit(c); break;
    case A_ACCOUNTS: handle_accounts(c); break;
    case A_ACCOUNTS_POST: handle_accounts_post(c); break;
    default: message_page(c, 404, MSG_ADM_NOT_FOUND, NULL); break;
    }
}

/* A POST must carry the session's CSRF token and come with a role that
 * allows it; a GET only the role. Refusals are audited. */
static bool allowed(ctx_t *c, int id)
{
    bool post = !strcmp(c->req->method, "POST");
    if (post) {
        if (http_request_fields(c->req, c->a, &c->fields) != PG_OK || kv_count_key(&c->fields, "csrf") != 1 ||
            !admin_csrf_ok(&c->s, kv_get(&c->fields, "csrf"))) {
            admin_audit(c->app, c->s.username, action_name(id), c->param, "csrf_refused", c->req->path, c->addr);
            message_page(c, 403, MSG_ADM_CSRF_FAILED, NULL);
            return false;
        }
    }
    if (!admin_role_allows(&c->s, needed_role(id))) {
        admin_audit(c->app, c->s.username, action_name(id), c->param, "forbidden", c->req->path, c->addr);
        message_page(c, 403, MSG_ADM_FORBIDDEN, NULL);
        return false;
    }
    return true;
}

/* A browser names the page a POST comes from: anything but base_url's own
 * origin (scheme://host[:port]) is another site's form -- a forged sign-in
 * (login CSRF) or action. Requests without Origin (scripts) rely on the
 * CSRF token alone. */
static bool same_origin(const pg_app_t *app, const http_request_t *req)
{
    const char *base = app->cfg->server.base_url;
    size_t n = strlen(base) - strlen(app->cfg->server.base_path);
    return !req->origin || (strlen(req->origin) == n && !strncmp(req->origin, base, n));
}

void admin_routes_handle(pg_app_t *app, arena_t *a, http_request_t *req, http_response_t *res)
{
    ctx_t c;
    route_match_t m;
    pg_err rc;
    memset(&c, 0, sizeof c);
    c.app = app;
    c.a = a;
    c.req = req;
    c.res = res;
    c.addr = netaddr_client(a, &app->cfg->server.trusted_proxies, req->remote_addr, req->forwarded_for);
    c.p.res = res;
    c.p.b = &res->body;
    c.p.loc = i18n_negotiate(app->cfg->server.locale_en ? I18N_EN : I18N_ZH_CN, req->accept_language);
    c.p.root = arena_printf(a, "%s/admin", app->cfg->server.base_path);
    kv_init(&c.fields, a);
    res->route = "/admin/";
    router_match(ADMIN_ROUTES, sizeof ADMIN_ROUTES / sizeof ADMIN_ROUTES[0], req->method, req->path, &m);
    if (m.id < 0 || !m.method_allowed || (m.param && !text_is_token_n(m.param, m.param_len, 32, ""))) {
        message_page(&c, m.id >= 0 && !m.method_allowed ? 405 : 404, MSG_ADM_NOT_FOUND, NULL);
        return;
    }
    c.param = m.param ? arena_strndup(a, m.param, m.param_len) : NULL;
    if (m.id == A_ROOT_NOSLASH) {
        redirect(&c, "/");
        return;
    }
    if (m.id == A_STYLE) {
        admin_html_stylesheet(res);
        return;
    }
    if (!strcmp(req->method, "POST") && !same_origin(app, req)) {
        admin_audit(app, "-", action_name(m.id), c.param, "cross_origin", req->origin, c.addr);
        message_page(&c, 403, MSG_ADM_CSRF_FAILED, NULL);
        return;
    }
    rc = admin_session_find(app, a, admin_html_cookie_token(a, req->cookie), &c.s);
    if (rc != PG_OK && rc != PG_ERR_NOT_FOUND) {
        db_error_page(&c);
        return;
    }
    if (m.id == A_LOGIN) {
        handle_login(&c, rc == PG_OK);
        return;
    }
    if (rc != PG_OK) {
        need_login(&c);
        return;
    }
    c.p.username = c.s.username;
    c.p.role = c.s.role_name;
    c.p.csrf = c.s.csrf_token;
    c.p.can_act = admin_role_allows(&c.s, ADMIN_ROLE_OPERATOR);
    c.p.is_owner = admin_role_allows(&c.s, ADMIN_ROLE_OWNER);
    if (allowed(&c, m.id))
        dispatch(&c, m.id);
}
