/* wechat: the WeChat Pay API v2 protocol adapter. Bytes in, facts out: no
 * database and no FastCGI in here. MD5 / HMAC-SHA256 signing, XML calls to
 * the gateway with reply checks (return_code, sign, appid/mch_id,
 * result_code), the JSAPI client object, payment-notification verification
 * and the refund notification's encrypted req_info. */
#ifndef WECHAT_H
#define WECHAT_H
#include <stdint.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>
#include "arena.h"
#include "buf.h"
#include "kv.h"
#include "httpc.h"
#include "pg_err.h"

typedef enum { WECHAT_SIGN_MD5, WECHAT_SIGN_HMAC_SHA256 } wechat_sign_type_t;

typedef struct wechat_client {
    const char *appid;
    const char *mch_id;
    const char *api_key;           /* the v2 API key (32 chars) */
    const char *gateway;           /* https://api.mch.weixin.qq.com (no trailing path) */
    const char *notify_url;
    wechat_sign_type_t sign_type;
    httpc_opts_t http;             /* ca_file, timeouts; its client_cert/key are ignored */
    const char *client_cert;       /* mutual TLS for /secapi (PEM files) */
    const char *client_key;
} wechat_client_t;

/* The v2 sign: pairs with empty values and "sign" dropped, keys sorted
 * bytewise, "k=v&...&key=API_KEY", MD5 or HMAC-SHA256 (API key as the HMAC
 * key), uppercase hex (32 or 64 chars) in out. PG_ERR_BAD_INPUT on a repeated
 * or empty key, PG_ERR_CONFIG without an API key. */
pg_err wechat_sign(const kv_list_t *params, const char *api_key, wechat_sign_type_t t, char out[65]);

/* Verifies params' "sign". The algorithm is the one the message names in
 * sign_type ("MD5" or "HMAC-SHA256"; any other non-empty value is
 * PG_ERR_BAD_SIGNATURE), else `configured`. The comparison is constant-time
 * and case-sensitive: WeChat sends uppercase hex, and a lowercase sign is
 * refused (PG_ERR_BAD_SIGNATURE). Missing/empty sign -> PG_ERR_BAD_SIGNATURE;
 * repeated keys -> PG_ERR_BAD_INPUT. */
pg_err wechat_verify_sign(const kv_list_t *params, const char *api_key, wechat_sign_type_t configured);

/* The reply-handling half of wechat_call, for a body already received.
 * reply is initialised with arena a and holds the parsed fields whenever the
 * body parsed. Order of checks:
 *   malformed XML or no return_code      -> PG_ERR_UPSTREAM
 *   return_code != SUCCESS                -> PG_ERR_UPSTREAM, err: return_msg
 *   sign missing or wrong                 -> PG_ERR_BAD_SIGNATURE
 *   appid / mch_id present and not ours   -> PG_ERR_MISMATCH
 *   result_code != SUCCESS (or missing)   -> PG_ERR_UPSTREAM, err_code copied
 *                                            (e.g. ORDERPAID), err: err_code_des
 * err_code (may be NULL) is "" unless a signed result_code FAIL carried one. */
pg_err wechat_check_reply(arena_t *a, const wechat_client_t *c, const char *body, size_t len,
                          kv_list_t *reply, char err_code[64], buf_t *err);

/* Adds appid, mch_id, nonce_str (32 random alnum), sign_type (only for
 * HMAC-SHA256) and sign to params, POSTs them as XML (text/xml) to
 * gateway + path, then wechat_check_reply. with_client_cert uses the
 * client's certificate and key (PG_ERR_CONFIG when not configured).
 * PG_ERR_TIMEOUT on timeouts, PG_ERR_UPSTREAM on transport errors and HTTP
 * statuses other than 200. */
pg_err wechat_call(arena_t *a, const wechat_client_t *c, const char *path, kv_list_t *params,
                   bool with_client_cert, kv_list_t *reply, char err_code[64], buf_t *err);

typedef struct wechat_order {
    const char *out_trade_no;      /* 1..32 of [A-Za-z0-9_-|*@] */
    const char *body;              /* cut to <= 128 bytes at a UTF-8 boundary */
    int64_t total_fee;             /* fen, 1..MONEY_MAX_FEN */
    const char *trade_type;        /* NATIVE | JSAPI | MWEB (else PG_ERR_UNSUPPORTED) */
    const char *openid;            /* JSAPI: required */
    const char *spbill_create_ip;  /* JSAPI/MWEB: the buyer's IP, required; NATIVE: NULL = 127.0.0.1 */
    const char *product_id;        /* NATIVE: NULL = out_trade_no */
    const char *scene_info;        /* MWEB: JSON, sent when set */
    time_t expires_at;             /* -> time_expire (Beijing); 0 = not sent */
} wechat_order_t;

typedef struct wechat_prepay {
    const char *prepay_id, *code_url, *mweb_url;   /* arena strings; NULL when not sent */
} wechat_prepay_t;

/* /pay/unifiedorder with the client's notify_url (PG_ERR_CONFIG if unset).
 * A success reply must carry prepay_id, plus code_url (NATIVE) or mweb_url
 * (MWEB): otherwise PG_ERR_UPSTREAM. */
pg_err wechat_unifiedorder(arena_t *a, const wechat_client_t *c, const wechat_order_t *o,
                           wechat_prepay_t *out, char err_code[64], buf_t *err);

/* The object WeChat's JSAPI (getBrandWCPayRequest / chooseWXPay) takes:
 * appId, timeStamp (decimal seconds), nonceStr (nonce, or 32 random alnum
 * when NULL), package ("prepay_id=..."), signType ("MD5" / "HMAC-SHA256"),
 * paySign (the v2 sign over the other five). out is initialised with a. */
pg_err wechat_jsapi_params(arena_t *a, const wechat_client_t *c, const char *prepay_id, time_t now,
                           const char *nonce, kv_list_t *out);

typedef struct wechat_trade_state {
    const char *trade_state;       /* SUCCESS, REFUND, NOTPAY, CLOSED, REVOKED, USERPAYING, PAYERROR */
    const char *transaction_id;    /* NULL when not sent */
    const char *time_end;          /* yyyyMMddHHmmss, NULL when not sent */
    int64_t total_fee;             /* 0 when not sent */
} wechat_trade_state_t;

/* /pay/orderquery by out_trade_no. A reply whose out_trade_no differs is
 * PG_ERR_MISMATCH; missing trade_state or a malformed total_fee is
 * PG_ERR_UPSTREAM. ORDERNOTEXIST comes back as PG_ERR_UPSTREAM + err_code. */
pg_err wechat_orderquery(arena_t *a, const wechat_client_t *c, const char *out_trade_no,
                         wechat_trade_state_t *out, char err_code[64], buf_t *err);

/* WeChat's rule: an order is not closed within 5 minutes of its creation. */
#define WECHAT_MIN_CLOSE_AGE_S 300

/* /pay/closeorder. err_code ORDERPAID -> PG_ERR_CONFLICT; ORDERCLOSED (closed
 * already) -> PG_OK with err_code still set. */
pg_err wechat_closeorder(arena_t *a, const wechat_client_t *c, const char *out_trade_no,
                         char err_code[64], buf_t *err);

typedef struct wechat_notify {
    const char *out_trade_no, *transaction_id, *openid, *time_end, *trade_type;   /* NULL when absent */
    int64_t total_fee;
    bool paid;                     /* result_code SUCCESS */
} wechat_notify_t;

/* Verifies a payment notification body: XML (PG_ERR_BAD_INPUT /
 * PG_ERR_TOO_LARGE), return_code SUCCESS (else PG_ERR_BAD_INPUT), the sign
 * over every field present (PG_ERR_BAD_SIGNATURE), appid and mch_id
 * (PG_ERR_MISMATCH), out_trade_no and total_fee (strict fen) required
 * (PG_ERR_BAD_INPUT), result_code SUCCESS -> paid (transaction_id then
 * required), FAIL -> paid=false and still PG_OK, anything else
 * PG_ERR_BAD_INPUT. reason gets a short log text. Amounts are not compared
 * with our records here: the caller does that. */
pg_err wechat_verify_notify(arena_t *a, const wechat_client_t *c, const char *body, size_t len,
                            wechat_notify_t *out, buf_t *reason);

/* ok: exactly <xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>
 * else the same with FAIL and msg (NULL or unusable -> "FAIL"). Appends. */
void wechat_reply(bool ok, const char *msg, buf_t *out);

typedef struct wechat_refund_req {
    const char *out_trade_no, *out_refund_no;
    int64_t total_fee, refund_fee;     /* fen; 1 <= refund_fee <= total_fee */
    const char *refund_desc;           /* NULL/"" = not sent */
    const char *notify_url;            /* NULL/"" = not sent (the merchant-platform default applies) */
} wechat_refund_req_t;

typedef struct wechat_refund_result {
    const char *refund_id;             /* arena string */
    int64_t refund_fee;
} wechat_refund_result_t;

/* /secapi/pay/refund over mutual TLS (client certificate). refund_desc is
 * cut to 80 bytes at a UTF-8 boundary. Outcome:
 *   PG_OK            accepted (the refund then completes asynchronously)
 *   PG_ERR_CONFLICT  refused, nothing happened: result_code FAIL with an
 *                    err_code other than SYSTEMERROR / BIZERR_NEED_RETRY /
 *                    FREQUENCY_LIMITED; return_code FAIL (the request was
 *                    not processed, e.g. a bad parameter or sign) unless
 *                    return_msg speaks of a system error/busy/timeout
 *   PG_ERR_TIMEOUT   outcome unknown: timeouts, transport errors, HTTP
 *                    statuses other than 200, SYSTEMERROR,
 *                    BIZERR_NEED_RETRY, FREQUENCY_LIMITED, a reply whose
 *                    sign fails, that cannot be parsed or names another
 *                    merchant, result_code FAIL without err_code, a
 *                    success reply without refund_id / with a bad
 *                    refund_fee / for another out_refund_no, connection
 *                    refused (httpc cannot say whether bytes left): query,
 *                    never refund twice
 *   PG_ERR_CONFIG    no client certificate/key or API key configured
 *   PG_ERR_BAD_INPUT nothing was sent (bad request fields)
 * err_code gets WeChat's err_code when there was one. */
pg_err wechat_refund(arena_t *a, const wechat_client_t *c, const wechat_refund_req_t *r,
                     wechat_refund_result_t *out, char err_code[64], buf_t *err);

typedef struct wechat_refund_state {
    bool found;                        /* false: REFUNDNOTEXIST */
    const char *refund_status;         /* SUCCESS|PROCESSING|REFUNDCLOSE|CHANGE */
    const char *refund_id;             /* NULL when not sent */
    int64_t refund_fee;
} wechat_refund_state_t;

/* /pay/refundquery by out_refund_no: picks the entry N whose out_refund_no_N
 * equals ours (none -> PG_ERR_MISMATCH). A signed err_code REFUNDNOTEXIST ->
 * PG_OK, found=false. refund_status_N missing or not one of the four, or
 * refund_fee_N missing or malformed -> PG_ERR_UPSTREAM; timeouts, HTTP
 * statuses other than 200, SYSTEMERROR -> PG_ERR_TIMEOUT; other failures as
 * wechat_call. */
pg_err wechat_refundquery(arena_t *a, const wechat_client_t *c, const char *out_refund_no,
                          wechat_refund_state_t *out, char err_code[64], buf_t *err);

typedef struct wechat_refund_notify {
    const char *out_trade_no, *transaction_id, *refund_id, *out_refund_no, *refund_status,
        *success_time;                 /* arena strings; NULL when absent */
    int64_t total_fee, refund_fee;
} wechat_refund_notify_t;

/* Verifies a refund notification body: outer XML (PG_ERR_BAD_INPUT /
 * PG_ERR_TOO_LARGE), return_code SUCCESS (else PG_ERR_BAD_INPUT), appid and
 * mch_id ours (PG_ERR_MISMATCH), req_info present (PG_ERR_BAD_INPUT), then
 * req_info decrypted with wechat_decrypt_req_info (any failure, bad base64
 * included -> PG_ERR_BAD_SIGNATURE: decrypting is the authentication), then
 * required out_trade_no, out_refund_no, refund_status (SUCCESS, CHANGE or
 * REFUNDCLOSE), refund_fee and total_fee (strict fen) (PG_ERR_BAD_INPUT).
 * No sign is involved. reason gets a short log text. */
pg_err wechat_verify_refund_notify(arena_t *a, const wechat_client_t *c, const char *body,
                                   size_t len, wechat_refund_notify_t *out, buf_t *reason);

/* Refund notification: base64 req_info -> AES-256-ECB (key: the lowercase
 * hex MD5 of api_key as 32 ASCII bytes, PKCS#7) -> flat XML with root <root>
 * or <xml>. Bad base64 -> PG_ERR_BAD_INPUT; a decryption or XML failure
 * after decoding -> PG_ERR_BAD_SIGNATURE (decryption is the authentication:
 * a wrong key yields garbage). out is initialised with a. */
pg_err wechat_decrypt_req_info(arena_t *a, const char *api_key, const char *req_info_b64,
                               kv_list_t *out, buf_t *err);

/* yyyyMMddHHmmss in Beijing time (UTC+8) for t, whatever the process TZ. */
void wechat_format_time(time_t t, char out[15]);

#endif
