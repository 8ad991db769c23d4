/* routes_payout: see routes_payout.h. */
#include "routes_payout.h"

#include <stdio.h>
#include <string.h>

#include "crypto.h"
#include "i18n.h"
#include "jssdk.h"
#include "kv.h"
#include "log.h"
#include "payout.h"
#include "store_payout.h"
#include "text.h"

#define PAYOUT_NO_MAX 48

/* The JS-SDK, the one script origin the page allows (Content-Security-Policy). */
#define JSSDK_ORIGIN "https://res.wx.qq.com"
#define JSSDK_URL JSSDK_ORIGIN "/open/js/jweixin-1.6.0.js"

/* Inside WeChat's browser requestMerchantTransfer works only after the
 * JS-SDK's wx.config (appId, timestamp, nonceStr, signature, jsApiList naming
 * it) succeeded: wx.ready -> wx.checkJsApi -> WeixinJSBridge.invoke(
 * 'requestMerchantTransfer', {mchId, appId, package}), answered with err_msg
 * "requestMerchantTransfer:ok" / ":cancel" / ":fail". wx.error (a signature
 * WeChat refuses, a domain that is not the Official Account's JS接口安全域名)
 * leaves the button off and says so. The script's text is hashed into the
 * Content-Security-Policy: no other inline script can run. */
static const char CONFIRM_JS[] =
    "(function(){var el=document.getElementById('confirm');if(!el)return;\n"
    "var btn=document.getElementById('confirm-button'),d=el.dataset;\n"
    "function show(id){['confirmed','cancelled','confirm-failed','open-in-wechat','confirm-unavailable'].forEach(function(k){\n"
    "var e=document.getElementById(k);if(e)e.hidden=(k!==id);});}\n"
    "function invoke(){btn.disabled=true;WeixinJSBridge.invoke('requestMerchantTransfer',\n"
    "{mchId:d.mchId,appId:d.appId,package:d.package},function(r){\n"
    "var m=String((r&&r.err_msg)||'');btn.disabled=false;\n"
    "if(/:ok$/.test(m)){show('confirmed');btn.hidden=true;setTimeout(function(){location.reload();},3000);}\n"
    "else if(/:cancel$/.test(m)){show('cancelled');}else{show('confirm-failed');}});}\n"
    "function ready(){show('');btn.disabled=false;btn.onclick=invoke;}\n"
    "function bridge(){if(typeof WeixinJSBridge==='object'&&typeof WeixinJSBridge.invoke==='function'){ready();}\n"
    "else{document.addEventListener('WeixinJSBridgeReady',ready,false);}}\n"
    "if(!d.signature){show('confirm-unavailable');return;}\n"
    "show('open-in-wechat');\n"
    "if(typeof wx!=='object'||typeof wx.config!=='function')return;\n"
    "wx.config({debug:false,appId:d.appId,timestamp:Number(d.timestamp),nonceStr:d.nonce,signature:d.signature,\n"
    "jsApiList:['requestMerchantTransfer']});\n"
    "wx.error(function(){btn.disabled=true;show('confirm-unavailable');});\n"
    "wx.ready(function(){wx.checkJsApi({jsApiList:['requestMerchantTransfer'],success:function(r){\n"
    "var c=r&&r.checkResult;if(typeof c==='string'){try{c=JSON.parse(c);}catch(e){c=null;}}\n"
    "if(c&&c.requestMerchantTransfer===false){show('open-in-wechat');return;}bridge();},\n"
    "fail:function(){show('open-in-wechat');}});});})();\n";

/* script-src: the JS-SDK's origin and the hash of CONFIRM_JS; nothing else
 * may load or run (the head's <style> is inline). */
static void csp(http_response_t *res, bool script)
{
    char hex[65];
    unsigned char raw[32];
    buf_t b64;
    buf_puts(&res->headers, "Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'; "
             "base-uri 'none'; form-action 'none'; frame-ancestors 'none'");
    if (script) {
        crypto_sha256_hex(CONFIRM_JS, sizeof CONFIRM_JS - 1, hex);
        for (size_t i = 0; i < sizeof raw; i++) {
            unsigned hi = (unsigned)(hex[2 * i] <= '9' ? hex[2 * i] - '0' : hex[2 * i] - 'a' + 10);
            unsigned lo = (unsigned)(hex[2 * i + 1] <= '9' ? hex[2 * i + 1] - '0' : hex[2 * i + 1] - 'a' + 10);
            raw[i] = (unsigned char)(hi << 4 | lo);
        }
        buf_init(&b64, NULL);
        if (crypto_base64_encode(raw, sizeof raw, &b64) == PG_OK && b64.data)
            buf_printf(&res->headers, "; script-src " JSSDK_ORIGIN " 'sha256-%s'", b64.data);
        buf_free(&b64);
    }
    buf_puts(&res->headers, "\r\n");
}

static void begin(const pg_app_t *app, const http_request_t *req, http_response_t *res, int status,
                  i18n_msg_t title, i18n_locale_t *loc)
{
    *loc = i18n_negotiate(app->cfg->server.locale_en ? I18N_EN : I18N_ZH_CN, req->accept_language);
    http_html_begin_lang(res, status, i18n_locale_name(*loc), i18n_msg(*loc, title));
    /* a link with a token in it: not sent on as Referer (every page is no-store already) */
    buf_puts(&res->headers, "Vary: Accept-Language\r\nReferrer-Policy: no-referrer\r\n");
    csp(res, title == MSG_TITLE_PAYOUT_CONFIRM);
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

/* The URL the payee's browser shows (wx.config is signed for it): base_url
 * and the path and query of this request. */
static const char *page_url(const pg_app_t *app, arena_t *a, const http_request_t *req)
{
    buf_t b;
    buf_init(&b, a);
    buf_puts(&b, app->cfg->server.base_url);
    buf_puts(&b, req->path);
    if (req->query_string && *req->query_string) {
        buf_putc(&b, '?');
        buf_puts(&b, req->query_string);
    }
    return b.data;
}

static void data_attr(http_response_t *res, const char *name, const char *value)
{
    buf_printf(&res->body, " data-%s=\"", name);
    buf_append_html(&res->body, value ? value : "");
    buf_puts(&res->body, "\"");
}

static void confirm_page(pg_app_t *app, arena_t *a, const http_request_t *req, const char *amount,
                         const char *package, http_response_t *res)
{
    i18n_locale_t loc;
    jssdk_config_t js;
    const char *url = page_url(app, a, req);
    /* no signature (no app_secret, WeChat refused): the page says so, the button stays off */
    bool signed_ok = url != NULL && jssdk_page_config(app, a, url, &js) == PG_OK;
    char ts[24];
    begin(app, req, res, 200, MSG_TITLE_PAYOUT_CONFIRM, &loc);
    para(res, loc, "intro", MSG_PAYOUT_CONFIRM_INTRO, amount, false);
    buf_puts(&res->body, "<div id=\"confirm\"");
    data_attr(res, "mch-id", app->cfg->wechat.mch_id);
    data_attr(res, "app-id", app->cfg->wechat.appid);
    data_attr(res, "package", package);
    if (signed_ok) {
        snprintf(ts, sizeof ts, "%lld", (long long)js.timestamp);
        data_attr(res, "timestamp", ts);
        data_attr(res, "nonce", js.noncestr);
        data_attr(res, "signature", js.signature);
    }
    buf_puts(&res->body, ">\n<p><button id=\"confirm-button\" type=\"button\" disabled>");
    i18n_append_html(&res->body, loc, MSG_PAYOUT_CONFIRM_BUTTON, NULL);
    buf_puts(&res->body, "</button></p>\n");
    para(res, loc, "open-in-wechat", MSG_PAYOUT_OPEN_IN_WECHAT, NULL, true);
    para(res, loc, "confirmed", MSG_PAYOUT_CONFIRMED, NULL, true);
    para(res, loc, "cancelled", MSG_PAYOUT_CANCELLED, NULL, true);
    para(res, loc, "confirm-failed", MSG_PAYOUT_CONFIRM_FAILED, NULL, true);
    para(res, loc, "confirm-unavailable", MSG_PAYOUT_CONFIRM_UNAVAILABLE, NULL, signed_ok);
    buf_puts(&res->body, "</div>\n");
    if (signed_ok)
        buf_puts(&res->body, "<script src=\"" JSSDK_URL "\"></script>\n");
    buf_puts(&res->body, "<script>");
    buf_puts(&res->body, CONFIRM_JS);
    buf_puts(&res->body, "</script>\n");
    http_html_end(res);
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
