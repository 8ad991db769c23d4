/* routes_payout: see routes_payout.h. */
#include "routes_payout.h"

#include <string.h>

#include "i18n.h"
#include "kv.h"
#include "log.h"
#include "payout.h"
#include "store_payout.h"
#include "text.h"

#define PAYOUT_NO_MAX 48

/* WeixinJSBridge is what WeChat's in-app browser provides; the payee's
 * confirmation is requestMerchantTransfer {mchId, appId, package}, answered
 * with err_msg "requestMerchantTransfer:ok" / ":cancel" / ":fail". */
static const char CONFIRM_SCRIPT[] =
    "<script>\n"
    "(function(){var el=document.getElementById('confirm');if(!el)return;\n"
    "var btn=document.getElementById('confirm-button');\n"
    "function show(id){['confirmed','cancelled','confirm-failed','open-in-wechat'].forEach(function(k){\n"
    "document.getElementById(k).hidden=(k!==id);});}\n"
    "function invoke(){btn.disabled=true;WeixinJSBridge.invoke('requestMerchantTransfer',\n"
    "{mchId:el.dataset.mchId,appId:el.dataset.appId,package:el.dataset.package},function(r){\n"
    "var m=String((r&&r.err_msg)||'');btn.disabled=false;\n"
    "if(/:ok$/.test(m)){show('confirmed');btn.hidden=true;setTimeout(function(){location.reload();},3000);}\n"
    "else if(/:cancel$/.test(m)){show('cancelled');}else{show('confirm-failed');}});}\n"
    "function ready(){show('');btn.disabled=false;btn.onclick=invoke;}\n"
    "if(typeof WeixinJSBridge==='object'&&typeof WeixinJSBridge.invoke==='function'){ready();}\n"
    "else{show('open-in-wechat');document.addEventListener('WeixinJSBridgeReady',ready,false);}})();\n"
    "</script>\n";

static void begin(const pg_app_t *app, const http_request_t *req, http_response_t *res, int status,
                  i18n_msg_t title, i18n_locale_t *loc)
{
    *loc = i18n_negotiate(app->cfg->server.locale_en ? I18N_EN : I18N_ZH_CN, req->accept_language);
    http_html_begin_lang(res, status, i18n_locale_name(*loc), i18n_msg(*loc, title));
    /* a link with a token in it: not sent on as Referer (every page is no-store already) */
    buf_puts(&res->headers, "Vary: Accept-Language\r\nReferrer-Policy: no-referrer\r\n");
}

static void para(http_response_t *res, i18n_locale_t loc, const char *id, i18n_msg_t msg, const char *arg,
                 bool hidden)
{
    buf_printf(&res->body, "<p id=\"%s\"%s>", id, hidden ? " hidden" : "");
    i18n_append_html(&res->body, loc, msg, arg);
    buf_puts(&res->body, "</p>\n");
}

static void simple_page(const pg_app_t *app, const http_request_t *req, http_response_t *res, int status,
                        i18n_msg_t title, const char *id, i18n_msg_t msg, const char *arg)
{
    i18n_locale_t loc;
    begin(app, req, res, status, title, &loc);
    para(res, loc, id, msg, arg, false);
    http_html_end(res);
}

static void confirm_page(pg_app_t *app, arena_t *a, const http_request_t *req, const char *amount,
                         const char *package, http_response_t *res)
{
    i18n_locale_t loc;
    begin(app, req, res, 200, MSG_TITLE_PAYOUT_CONFIRM, &loc);
    para(res, loc, "intro", MSG_PAYOUT_CONFIRM_INTRO, amount, false);
    buf_puts(&res->body, "<div id=\"confirm\" data-mch-id=\"");
    buf_append_html(&res->body, app->cfg->wechat.mch_id ? app->cfg->wechat.mch_id : "");
    buf_puts(&res->body, "\" data-app-id=\"");
    buf_append_html(&res->body, app->cfg->wechat.appid ? app->cfg->wechat.appid : "");
    buf_puts(&res->body, "\" data-package=\"");
    buf_append_html(&res->body, package);
    buf_puts(&res->body, "\">\n<p><button id=\"confirm-button\" type=\"button\" disabled>");
    i18n_append_html(&res->body, loc, MSG_PAYOUT_CONFIRM_BUTTON, NULL);
    buf_puts(&res->body, "</button></p>\n");
    para(res, loc, "open-in-wechat", MSG_PAYOUT_OPEN_IN_WECHAT, NULL, true);
    para(res, loc, "confirmed", MSG_PAYOUT_CONFIRMED, NULL, true);
    para(res, loc, "cancelled", MSG_PAYOUT_CANCELLED, NULL, true);
    para(res, loc, "confirm-failed", MSG_PAYOUT_CONFIRM_FAILED, NULL, true);
    buf_puts(&res->body, "</div>\n");
    buf_puts(&res->body, CONFIRM_SCRIPT);
    http_html_end(res);
    (void)a;
}

static const char *amount_text(arena_t *a, int64_t fen)
{
    buf_t b;
    buf_init(&b, a);
    i18n_append_amount(&b, fen);
    return b.data ? b.data : "";
}

void routes_payout_confirm(pg_app_t *app, arena_t *a, http_request_t *req, const char *param, size_t param_len,
                           http_response_t *res)
{
    kv_list_t fields;
    db_result_t r;
    const char *payout_no, *token, *status, *package, *amount;
    pg_err rc;
    if (!text_is_token_n(param, param_len, PAYOUT_NO_MAX, "-") || http_request_fields(req, a, &fields) != PG_OK ||
        kv_count_key(&fields, "token") != 1) {
        simple_page(app, req, res, 404, MSG_TITLE_PAYOUT_NOT_FOUND, "not-found", MSG_PAYOUT_NOT_FOUND, NULL);
        return;
    }
    payout_no = arena_strndup(a, param, param_len);
    token = kv_get(&fields, "token");
    /* the token first: a stranger learns nothing, not even whether it exists */
    if (payout_no == NULL || !payout_confirm_token_ok(app, payout_no, token)) {
        simple_page(app, req, res, 404, MSG_TITLE_PAYOUT_NOT_FOUND, "not-found", MSG_PAYOUT_NOT_FOUND, NULL);
        return;
    }
    rc = store_payout_get(app->db, a, payout_no, &r);
    if (rc == PG_ERR_NOT_FOUND) {
        simple_page(app, req, res, 404, MSG_TITLE_PAYOUT_NOT_FOUND, "not-found", MSG_PAYOUT_NOT_FOUND, NULL);
        return;
    }
    if (rc != PG_OK) {
        log_msg(LOG_ERROR, "payout page %s: %s", payout_no, db_last_error(app->db));
        simple_page(app, req, res, 503, MSG_TITLE_PAYOUT_PROCESSING, "processing", MSG_PAYOUT_PROCESSING, NULL);
        return;
    }
    status = db_cell(&r, 0, "status");
    package = db_cell(&r, 0, "package_info");
    amount = amount_text(a, db_cell_i64(&r, 0, "amount_fen"));
    if (!strcmp(status, "PAID"))
        simple_page(app, req, res, 200, MSG_TITLE_PAYOUT_PAID, "paid", MSG_PAYOUT_PAID, amount);
    else if (!strcmp(status, "FAILED"))
        simple_page(app, req, res, 200, MSG_TITLE_PAYOUT_FAILED, "failed", MSG_PAYOUT_FAILED, NULL);
    else if (!strcmp(db_cell(&r, 0, "channel"), "wechat") && package && *package)
        confirm_page(app, a, req, amount, package, res);
    else
        simple_page(app, req, res, 200, MSG_TITLE_PAYOUT_PROCESSING, "processing", MSG_PAYOUT_PROCESSING, NULL);
}
