/* bill_fetch: downloads the providers' daily bills (see include/bill.h).
 *
 * Alipay: a signed alipay.data.dataservice.bill.downloadurl.query through
 * alipay_call (which verifies the reply's signature), then a plain GET of
 * the short-lived bill_download_url. WeChat: /pay/downloadbill answers with
 * the bill itself (text or gzip, unsigned) or with an XML error, so
 * wechat_call (which insists on a signed XML reply) cannot be used: the
 * request is built here from the public pieces (wechat_sign, xml.h, httpc).
 * Parsing is bill.c's job; nothing here looks inside a bill. */
#include "bill.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "crypto.h"
#include "httpc.h"
#include "kv.h"
#include "xml.h"

#define ALIPAY_BILL_METHOD "alipay.data.dataservice.bill.downloadurl.query"
#define ALIPAY_BILL_NOT_EXIST "isp.bill_not_exist"
#define WECHAT_BILL_PATH "/pay/downloadbill"
#define WECHAT_NO_BILL_MSG "No Bill Exist"
#define WECHAT_NO_BILL_CODE "20002"
#define BILL_NONCE_LEN 32
#define BILL_MIN_TOTAL_TIMEOUT_MS 60000L   /* a bill can be megabytes */

static int is_empty(const char *s)
{
    return s == NULL || s[0] == '\0';
}

/* The client's HTTP options, with room for a whole bill. */
static httpc_opts_t download_opts(const httpc_opts_t *base)
{
    httpc_opts_t o = *base;
    o.client_cert = NULL;
    o.client_key = NULL;
    o.max_response = BILL_MAX_DOWNLOAD;
    if (o.total_timeout_ms < BILL_MIN_TOTAL_TIMEOUT_MS)
        o.total_timeout_ms = BILL_MIN_TOTAL_TIMEOUT_MS;
    return o;
}

/* ------------------------------------------------------------------ */
/* Alipay                                                              */

static pg_err alipay_download_url(arena_t *a, const alipay_reply_t *reply, char **url, buf_t *err)
{
    json_t *obj = json_loadb(reply->json, reply->json_len, 0, NULL);
    json_t *v = obj != NULL ? json_object_get(obj, "bill_download_url") : NULL;
    const char *s = v != NULL && json_is_string(v) ? json_string_value(v) : NULL;
    pg_err rc = PG_OK;

    *url = NULL;
    if (s == NULL || (strncmp(s, "https://", 8) != 0 && strncmp(s, "http://", 7) != 0)) {
        buf_set_error(err, "alipay: bill reply without a usable bill_download_url");
        rc = PG_ERR_UPSTREAM;
    } else if ((*url = arena_strdup(a, s)) == NULL) {
        rc = PG_ERR_NOMEM;
    }
    json_decref(obj);
    return rc;
}

pg_err bill_fetch_alipay(arena_t *a, const alipay_client_t *c, const char *ymd, buf_t *zip_out,
                         buf_t *err)
{
    char date[11], *biz, *url;
    alipay_reply_t reply;
    httpc_opts_t opts;
    httpc_response_t resp;
    pg_err rc;

    if (bill_normalize_date(ymd, true, date) != PG_OK) {
        buf_set_error(err, "alipay: bad bill date \"%.20s\" (yyyy-MM-dd)", ymd != NULL ? ymd : "");
        return PG_ERR_BAD_INPUT;
    }
    if (c == NULL) {
        buf_set_error(err, "alipay: not configured");
        return PG_ERR_CONFIG;
    }
    biz = arena_printf(a, "{\"bill_type\":\"trade\",\"bill_date\":\"%s\"}", date);
    if (biz == NULL)
        return PG_ERR_NOMEM;
    rc = alipay_call(a, c, ALIPAY_BILL_METHOD, biz, &reply, err);
    /* believed only when signed (reply.json is set only then) */
    if (rc == PG_ERR_UPSTREAM && reply.json != NULL &&
        strcmp(reply.sub_code, ALIPAY_BILL_NOT_EXIST) == 0) {
        buf_set_error(err, "alipay: no bill for %s (%s)", date, ALIPAY_BILL_NOT_EXIST);
        return PG_ERR_NOT_FOUND;
    }
    if (rc != PG_OK)
        return rc;
    if ((rc = alipay_download_url(a, &reply, &url, err)) != PG_OK)
        return rc;

    opts = download_opts(&c->http);
    rc = httpc_get(a, url, &opts, &resp, err);
    if (rc != PG_OK)
        return rc;
    if (resp.status != 200) {
        buf_set_error(err, "alipay: HTTP %ld from the bill download", resp.status);
        return PG_ERR_UPSTREAM;
    }
    if (resp.body.len < 4 || memcmp(resp.body.data, "PK\x03\x04", 4) != 0) {
        buf_set_error(err, "alipay: the bill download is not a zip (%zu bytes)", resp.body.len);
        return PG_ERR_UPSTREAM;
    }
    return buf_append(zip_out, resp.body.data, resp.body.len);
}

/* ------------------------------------------------------------------ */
/* WeChat                                                              */

static char *join_url(arena_t *a, const char *gateway, const char *path)
{
    size_t glen = strlen(gateway);
    if (glen > 0 && gateway[glen - 1] == '/')
        glen--;
    return arena_printf(a, "%.*s%s", (int)glen, gateway, path);
}

static pg_err wechat_bill_request(arena_t *a, const wechat_client_t *c, const char *date, buf_t *xml,
                                  buf_t *err)
{
    kv_list_t p;
    char nonce[BILL_NONCE_LEN + 1], sign[65];
    pg_err rc;

    if ((rc = crypto_random_alnum(nonce, BILL_NONCE_LEN)) != PG_OK)
        return rc;
    kv_init(&p, a);
    if ((rc = kv_add(&p, "appid", c->appid)) != PG_OK ||
        (rc = kv_add(&p, "mch_id", c->mch_id)) != PG_OK ||
        (rc = kv_add(&p, "nonce_str", nonce)) != PG_OK ||
        (rc = kv_add(&p, "bill_date", date)) != PG_OK ||
        (rc = kv_add(&p, "bill_type", "ALL")) != PG_OK ||
        (rc = kv_add(&p, "tar_type", "GZIP")) != PG_OK)
        return rc;
    if (c->sign_type == WECHAT_SIGN_HMAC_SHA256 &&
        (rc = kv_add(&p, "sign_type", "HMAC-SHA256")) != PG_OK)
        return rc;
    if ((rc = wechat_sign(&p, c->api_key, c->sign_type, sign)) != PG_OK) {
        buf_set_error(err, "wechat: cannot sign the downloadbill request: %s", pg_err_name(rc));
        return rc;
    }
    if ((rc = kv_add(&p, "sign", sign)) != PG_OK)
        return rc;
    if ((rc = xml_build_flat(&p, xml)) != PG_OK) {
        buf_set_error(err, "wechat: downloadbill request cannot be written as XML");
        return rc;
    }
    return PG_OK;
}

/* An XML body instead of a bill: always an error of some kind. */
static pg_err wechat_bill_error(arena_t *a, const char *date, const char *body, size_t len, buf_t *err)
{
    kv_list_t reply;
    const char *code, *msg, *ecode;

    if (xml_parse_flat(a, body, len, &reply, NULL) != PG_OK) {
        buf_set_error(err, "wechat: downloadbill answered with malformed XML (%zu bytes)", len);
        return PG_ERR_UPSTREAM;
    }
    code = kv_get(&reply, "return_code");
    msg = kv_get(&reply, "return_msg");
    ecode = kv_get(&reply, "error_code");
    if (msg == NULL)
        msg = "";
    if (code != NULL && strcmp(code, "FAIL") == 0) {
        if (strcmp(msg, WECHAT_NO_BILL_MSG) == 0 ||
            (ecode != NULL && strcmp(ecode, WECHAT_NO_BILL_CODE) == 0)) {
            buf_set_error(err, "wechat: no bill for %s (%s)", date, WECHAT_NO_BILL_MSG);
            return PG_ERR_NOT_FOUND;
        }
        if (strstr(msg, "Bill Creating") != NULL) {
            buf_set_error(err, "wechat: the bill for %s is still being made: ask later", date);
            return PG_ERR_TIMEOUT;
        }
    }
    buf_set_error(err, "wechat: downloadbill failed: return_code %.16s, return_msg \"%.200s\"%s%.32s",
            code != NULL ? code : "(none)", msg, ecode != NULL ? ", error_code " : "",
            ecode != NULL ? ecode : "");
    return PG_ERR_UPSTREAM;
}

pg_err bill_fetch_wechat(arena_t *a, const wechat_client_t *c, const char *ymd, buf_t *text_out,
                         buf_t *err)
{
    char date[11], *url;
    buf_t xml;
    httpc_opts_t opts;
    httpc_response_t resp;
    size_t i;
    pg_err rc;

    if (bill_normalize_date(ymd, false, date) != PG_OK) {
        buf_set_error(err, "wechat: bad bill date \"%.20s\" (yyyyMMdd)", ymd != NULL ? ymd : "");
        return PG_ERR_BAD_INPUT;
    }
    if (c == NULL || is_empty(c->gateway) || is_empty(c->appid) || is_empty(c->mch_id) ||
        is_empty(c->api_key)) {
        buf_set_error(err, "wechat: gateway, appid, mch_id and api_key must be configured");
        return PG_ERR_CONFIG;
    }
    buf_init(&xml, a);
    if ((rc = wechat_bill_request(a, c, date, &xml, err)) != PG_OK)
        return rc;
    if ((url = join_url(a, c->gateway, WECHAT_BILL_PATH)) == NULL)
        return PG_ERR_NOMEM;

    opts = download_opts(&c->http);
    rc = httpc_post(a, url, "text/xml", xml.data, xml.len, &opts, &resp, err);
    if (rc != PG_OK)
        return rc;
    if (resp.status != 200) {
        buf_set_error(err, "wechat: HTTP %ld from downloadbill", resp.status);
        return PG_ERR_UPSTREAM;
    }
    for (i = 0; i < resp.body.len && (resp.body.data[i] == ' ' || resp.body.data[i] == '\t' ||
                                      resp.body.data[i] == '\r' || resp.body.data[i] == '\n');
         i++)
        ;
    if (resp.body.len - i >= 4 && memcmp(resp.body.data + i, "<xml", 4) == 0)
        return wechat_bill_error(a, date, resp.body.data + i, resp.body.len - i, err);
    if (resp.body.len == 0) {
        buf_set_error(err, "wechat: downloadbill answered with an empty body");
        return PG_ERR_UPSTREAM;
    }
    return buf_append(text_out, resp.body.data, resp.body.len);
}

/* ------------------------------------------------------------------ */
/* WeChat Pay API v3                                                   */

#define WXV3_BILL_PATH "/v3/bill/tradebill"
#define WXV3_NO_BILL_CODE "NO_STATEMENT_EXIST"
#define WXV3_BILL_CREATING_CODE "STATEMENT_CREATING"
#define WXV3_SHA1_HEX_LEN 40

typedef struct wxv3_bill_ref {
    char hash[WXV3_SHA1_HEX_LEN + 1];   /* lower case */
    const char *url;                    /* arena */
} wxv3_bill_ref_t;

static bool is_hex_len(const char *s, size_t n)
{
    size_t i;
    for (i = 0; s[i] != '\0'; i++) {
        char ch = s[i];
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F')))
            return false;
    }
    return i == n;
}

/* {hash_type SHA1, hash_value, download_url on the gateway}. */
static pg_err wxv3_bill_ref(arena_t *a, const wxv3_client_t *c, const char *body, size_t len, wxv3_bill_ref_t *out,
                            buf_t *err)
{
    json_t *obj = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
    const char *type = json_string_value(json_object_get(obj, "hash_type"));
    const char *hash = json_string_value(json_object_get(obj, "hash_value"));
    const char *url = json_string_value(json_object_get(obj, "download_url"));
    size_t glen = strlen(c->gateway), i;
    pg_err rc = PG_ERR_UPSTREAM;

    if (type == NULL || strcmp(type, "SHA1") != 0 || hash == NULL || !is_hex_len(hash, WXV3_SHA1_HEX_LEN)) {
        buf_set_error(err, "wechat v3: tradebill reply without a SHA1 hash_value");
    } else if (url == NULL || strncmp(url, c->gateway, glen) != 0 || url[glen] != '/' || strlen(url) > 2048) {
        buf_set_error(err, "wechat v3: tradebill download_url is not on the gateway");
    } else if ((out->url = arena_strdup(a, url)) == NULL) {
        rc = PG_ERR_NOMEM;
    } else {
        for (i = 0; i < WXV3_SHA1_HEX_LEN; i++)
            out->hash[i] = (char)(hash[i] >= 'A' && hash[i] <= 'F' ? hash[i] - 'A' + 'a' : hash[i]);
        out->hash[WXV3_SHA1_HEX_LEN] = '\0';
        rc = PG_OK;
    }
    json_decref(obj);
    return rc;
}

static pg_err wxv3_bill_ask(arena_t *a, const wxv3_client_t *c, const char *date, time_t now, wxv3_bill_ref_t *ref,
                            buf_t *err)
{
    char code[WXV3_CODE_MAX];
    wxv3_reply_t reply;
    char *path = arena_printf(a, WXV3_BILL_PATH "?bill_date=%s&bill_type=ALL&tar_type=GZIP", date);
    pg_err rc;

    if (path == NULL)
        return PG_ERR_NOMEM;
    rc = wxv3_call(a, c, "GET", path, NULL, 0, now, &reply, code, err);
    if (rc == PG_ERR_UPSTREAM && strcmp(code, WXV3_NO_BILL_CODE) == 0) {
        buf_set_error(err, "wechat v3: no bill for %s (%s)", date, WXV3_NO_BILL_CODE);
        return PG_ERR_NOT_FOUND;
    }
    if (rc == PG_ERR_UPSTREAM && strcmp(code, WXV3_BILL_CREATING_CODE) == 0) {
        buf_set_error(err, "wechat v3: the bill for %s is still being made: ask later", date);
        return PG_ERR_TIMEOUT;
    }
    if (rc != PG_OK)
        return rc;
    if (reply.status != 200) {
        buf_set_error(err, "wechat v3: tradebill answered HTTP %ld", reply.status);
        return PG_ERR_UPSTREAM;
    }
    return wxv3_bill_ref(a, c, reply.body, reply.len, ref, err);
}

/* The signed GET of the download_url; its reply is the bill, unsigned. */
static pg_err wxv3_bill_download(arena_t *a, const wxv3_client_t *c, const char *url, time_t now,
                                 httpc_response_t *resp, buf_t *err)
{
    char nonce[BILL_NONCE_LEN + 1];
    const char *headers[3];
    httpc_request_t req;
    httpc_opts_t opts;
    kv_list_t got;
    buf_t auth;
    pg_err rc;

    if ((rc = crypto_random_alnum(nonce, BILL_NONCE_LEN)) != PG_OK)
        return rc;
    buf_init(&auth, a);
    buf_puts(&auth, "Authorization: ");
    if ((rc = wxv3_sign_request(c, "GET", url + strlen(c->gateway), now, nonce, NULL, 0, &auth)) != PG_OK)
        return rc;
    if (auth.failed)
        return PG_ERR_NOMEM;
    headers[0] = auth.data;
    headers[1] = "Accept: */*";
    headers[2] = NULL;
    memset(&req, 0, sizeof req);
    req.method = "GET";
    req.url = url;
    req.headers = headers;
    opts = download_opts(&c->http);
    if ((rc = httpc_send(a, &req, &opts, resp, &got, err)) != PG_OK)
        return rc;
    if (resp->status != 200) {
        buf_set_error(err, "wechat v3: HTTP %ld from the bill download", resp->status);
        return PG_ERR_UPSTREAM;
    }
    return PG_OK;
}

pg_err bill_fetch_wechat_v3(arena_t *a, const wxv3_client_t *c, const char *ymd, time_t now, buf_t *text_out,
                            buf_t *err)
{
    char date[11], sha1[WXV3_SHA1_HEX_LEN + 1];
    wxv3_bill_ref_t ref;
    httpc_response_t resp;
    buf_t text;
    pg_err rc;

    if (bill_normalize_date(ymd, true, date) != PG_OK) {
        buf_set_error(err, "wechat v3: bad bill date \"%.20s\" (yyyy-MM-dd)", ymd != NULL ? ymd : "");
        return PG_ERR_BAD_INPUT;
    }
    if (c == NULL || is_empty(c->gateway) || is_empty(c->mchid) || c->mch_key == NULL) {
        buf_set_error(err, "wechat v3: gateway, mch_id and the merchant key must be configured");
        return PG_ERR_CONFIG;
    }
    if ((rc = wxv3_bill_ask(a, c, date, now, &ref, err)) != PG_OK)
        return rc;
    if ((rc = wxv3_bill_download(a, c, ref.url, now, &resp, err)) != PG_OK)
        return rc;
    buf_init(&text, a);
    if ((rc = bill_wechat_plain(resp.body.data, resp.body.len, &text, err)) != PG_OK)
        return rc;
    if (text.failed)
        return PG_ERR_NOMEM;
    crypto_sha1_hex(text.data != NULL ? text.data : "", text.len, sha1);
    if (!crypto_ct_equal(sha1, strlen(sha1), ref.hash, WXV3_SHA1_HEX_LEN)) {
        buf_set_error(err, "wechat v3: the bill for %s does not match its SHA1 hash_value (%zu bytes)", date,
                      text.len);
        return PG_ERR_BAD_SIGNATURE;
    }
    return buf_append(text_out, text.data, text.len);
}
