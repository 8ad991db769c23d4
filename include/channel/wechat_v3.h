/* wechat_v3: the WeChat Pay API v3 protocol adapter. Bytes in, facts out: no
 * database, no FastCGI; the calls go out through httpc (wxv3_call and the
 * per-call functions at the end), everything else is pure. Request signatures (SHA256withRSA, Authorization
 * header), verification of replies and notifications (Wechatpay-* headers,
 * the key chosen by Wechatpay-Serial: public-key mode or a platform
 * certificate), AEAD_AES_256_GCM resources, the JSON of prepay (native,
 * jsapi, h5), query, close, refund and refund query, the JSAPI client object
 * (RSA paySign), payment and refund notification resources, and the
 * /v3/certificates list. Amounts are integer fen. The v2 adapter is wechat.h. */
#ifndef WECHAT_V3_H
#define WECHAT_V3_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include "arena.h"
#include "buf.h"
#include "crypto.h"
#include "crypto_v3.h"
#include "httpc.h"
#include "kv.h"
#include "pg_err.h"

#define WXV3_CLOCK_SKEW_MAX 300          /* seconds either way */
#define WXV3_BODY_MAX (64 * 1024)        /* a reply or notification body */
#define WXV3_CERTS_BODY_MAX (256 * 1024) /* a /v3/certificates reply */
#define WXV3_NONCE_MAX 64
#define WXV3_SERIAL_MAX 64
#define WXV3_SIGNATURE_MAX 1024          /* base64 of an RSA-4096 signature is 684 */
#define WXV3_SIGNTEST_PREFIX "WECHATPAY/SIGNTEST/"
#define WXV3_AUTH_SCHEMA "WECHATPAY2-SHA256-RSA2048"
#define WXV3_CODE_MAX 64

/* A platform certificate: its serial (upper-case hex) and public key. */
typedef struct wxv3_platform_key {
    const char *serial;
    const crypto_key_t *key;
} wxv3_platform_key_t;

typedef struct wxv3_client {
    const char *appid;
    const char *mchid;
    const char *mch_serial_no;           /* the merchant API certificate's serial */
    const crypto_key_t *mch_key;         /* the merchant API private key */
    const char *api_v3_key;              /* 32 bytes: AES-256-GCM key */
    const char *notify_url;              /* payments */
    const char *refund_notify_url;       /* NULL/"" = not sent */
    /* Public-key mode: WeChat Pay's public key and the ID it signs under. */
    const char *pubkey_id;               /* PUB_KEY_ID_..., NULL = mode off */
    const crypto_key_t *pubkey;
    /* Platform-certificate mode: serial -> key. */
    const wxv3_platform_key_t *platform;
    size_t platform_count;
    const char *gateway;                 /* https://api.mch.weixin.qq.com (no trailing slash) */
    httpc_opts_t http;                   /* ca_file, timeouts (no client certificate in v3) */
} wxv3_client_t;

/* The four Wechatpay-* headers of a reply or notification (NULL = absent). */
typedef struct wxv3_sig_headers {
    const char *timestamp, *nonce, *signature, *serial;
} wxv3_sig_headers_t;

/* "METHOD\nPATH\nTIMESTAMP\nNONCE\nBODY\n" signed with the merchant key;
 * appends to authorization the whole header value:
 *   WECHATPAY2-SHA256-RSA2048 mchid="…",nonce_str="…",signature="…",timestamp="…",serial_no="…"
 * method upper-case letters; path_query starts with '/' (the URL's path and
 * query as sent); nonce 1..64 of [A-Za-z0-9]; body may be NULL for an empty
 * one (GET). PG_ERR_CONFIG without mchid, serial or key; PG_ERR_BAD_INPUT
 * for unusable parts. */
pg_err wxv3_sign_request(const wxv3_client_t *c, const char *method, const char *path_query,
                         time_t timestamp, const char *nonce, const char *body, size_t body_len,
                         buf_t *authorization);

/* Verifies a reply's or notification's signature over
 * "TIMESTAMP\nNONCE\nBODY\n". Refused (PG_ERR_BAD_SIGNATURE): any header
 * absent or empty, a timestamp that is not 1..12 decimal digits or is more
 * than WXV3_CLOCK_SKEW_MAX seconds from now, a nonce or serial over their
 * bounds, a signature starting WECHATPAY/SIGNTEST/, a signature that does
 * not verify. The key is the one the serial names: the public key when the
 * serial equals pubkey_id, else the platform certificate of that serial;
 * none -> PG_ERR_NOT_FOUND (the caller may refresh its certificates once and
 * try again). No other key is ever tried. reason gets a short log text. */
pg_err wxv3_verify(const wxv3_client_t *c, const wxv3_sig_headers_t *h, const char *body,
                   size_t body_len, time_t now, buf_t *reason);

/* AEAD_AES_256_GCM with the api_v3_key (32 bytes, else PG_ERR_CONFIG):
 * ciphertext is base64 of the encrypted bytes and the 16-byte tag; nonce and
 * aad as the strings given (aad may be NULL = ""). The plaintext is appended
 * to out. Bad base64 or sizes -> PG_ERR_BAD_INPUT / PG_ERR_TOO_LARGE; a tag
 * that fails -> PG_ERR_BAD_SIGNATURE. */
pg_err wxv3_decrypt(const char *api_v3_key, const char *ciphertext_b64, const char *nonce,
                    const char *aad, buf_t *out);

typedef enum { WXV3_NATIVE, WXV3_JSAPI, WXV3_H5 } wxv3_kind_t;

typedef struct wxv3_order {
    wxv3_kind_t kind;
    const char *out_trade_no;            /* 6..32 of [A-Za-z0-9_-|*] */
    const char *description;             /* 1..127 bytes, cut at a UTF-8 boundary */
    int64_t total_fen;                   /* 1..MONEY_MAX_FEN */
    time_t expires_at;                   /* 0 = not sent; else time_expire (Beijing, RFC 3339) */
    const char *openid;                  /* JSAPI: required */
    const char *payer_client_ip;         /* H5: required (the buyer's own IP) */
    const char *h5_app_name, *h5_app_url;/* H5: optional h5_info fields */
} wxv3_order_t;

/* The request: method "POST", path /v3/pay/transactions/{native|jsapi|h5},
 * JSON body {appid, mchid, description, out_trade_no, time_expire?,
 * notify_url, amount {total, currency CNY}, payer? , scene_info?}.
 * path and body are appended to. */
pg_err wxv3_build_prepay(const wxv3_client_t *c, const wxv3_order_t *o, buf_t *path, buf_t *body);

typedef struct wxv3_prepay {
    const char *code_url, *prepay_id, *h5_url;   /* arena strings; the kind's one is set */
} wxv3_prepay_t;

/* A 200 reply body of prepay: the kind's field required (1..512 bytes). */
pg_err wxv3_parse_prepay(arena_t *a, wxv3_kind_t kind, const char *body, size_t len,
                         wxv3_prepay_t *out);

/* JSAPI client object: appId, timeStamp, nonceStr (nonce, or 32 random alnum
 * when NULL), package "prepay_id=…", signType "RSA", paySign = base64
 * SHA256withRSA of "appId\ntimeStamp\nnonceStr\npackage\n" with the merchant
 * key. out is initialised with a. */
pg_err wxv3_jsapi_params(arena_t *a, const wxv3_client_t *c, const char *prepay_id, time_t now,
                         const char *nonce, kv_list_t *out);

/* GET /v3/pay/transactions/out-trade-no/{no}?mchid={mchid} (path appended). */
pg_err wxv3_build_query(const wxv3_client_t *c, const char *out_trade_no, buf_t *path);
/* POST /v3/pay/transactions/out-trade-no/{no}/close with {"mchid":…}; a 204
 * reply is success. */
pg_err wxv3_build_close(const wxv3_client_t *c, const char *out_trade_no, buf_t *path, buf_t *body);

typedef struct wxv3_transaction {
    const char *appid, *mchid, *out_trade_no, *transaction_id, *trade_type, *trade_state,
        *success_time, *openid;          /* arena strings; NULL when absent */
    int64_t total_fen, payer_total_fen;  /* -1 when absent */
} wxv3_transaction_t;

/* A transaction object: the query reply, and the decrypted resource of a
 * TRANSACTION.SUCCESS notification. Strict JSON (no duplicate keys),
 * strings bounded, mchid and appid required and equal to the client's
 * (PG_ERR_MISMATCH), out_trade_no required, trade_state one of SUCCESS,
 * REFUND, NOTPAY, CLOSED, REVOKED, USERPAYING, PAYERROR; amount.total an
 * integer in 0..MONEY_MAX_FEN, currency CNY when sent; SUCCESS and REFUND
 * need transaction_id and amount.total. Else PG_ERR_BAD_INPUT. On failure
 * out is cleared. */
pg_err wxv3_parse_transaction(arena_t *a, const wxv3_client_t *c, const char *json, size_t len,
                              wxv3_transaction_t *out, buf_t *reason);

typedef struct wxv3_refund_req {
    const char *out_trade_no, *out_refund_no;
    int64_t total_fen, refund_fen;       /* 1 <= refund <= total <= MONEY_MAX_FEN */
    const char *reason;                  /* NULL/"" = not sent; cut to 80 bytes */
} wxv3_refund_req_t;

/* POST /v3/refund/domestic/refunds {out_trade_no, out_refund_no, reason?,
 * notify_url?, amount {refund, total, currency CNY}}. */
pg_err wxv3_build_refund(const wxv3_client_t *c, const wxv3_refund_req_t *r, buf_t *path, buf_t *body);
/* GET /v3/refund/domestic/refunds/{out_refund_no}. */
pg_err wxv3_build_refund_query(const char *out_refund_no, buf_t *path);

typedef struct wxv3_refund {
    const char *refund_id, *out_refund_no, *transaction_id, *out_trade_no, *status,
        *success_time, *mchid;           /* arena strings; NULL when absent */
    int64_t refund_fen, total_fen;
} wxv3_refund_t;

/* A refund reply or query reply (notification = false: the state is in
 * "status", mchid optional) or the decrypted resource of a REFUND.*
 * notification (notification = true: "refund_status", mchid required).
 * out_refund_no, refund_id, status SUCCESS | CLOSED | PROCESSING |
 * ABNORMAL, amount.refund and amount.total (integers, 1..MONEY_MAX_FEN,
 * refund <= total) required (PG_ERR_BAD_INPUT); a mchid other than ours
 * -> PG_ERR_MISMATCH. On failure out is cleared. */
pg_err wxv3_parse_refund(arena_t *a, const wxv3_client_t *c, bool notification, const char *json,
                         size_t len, wxv3_refund_t *out, buf_t *reason);

typedef struct wxv3_event {
    const char *id, *event_type, *original_type;   /* arena strings */
    const char *plaintext;               /* the decrypted resource (NUL-terminated) */
    size_t plaintext_len;
} wxv3_event_t;

/* A notification: the signature (wxv3_verify, with its PG_ERR_NOT_FOUND),
 * then the envelope {id, create_time, event_type, resource_type
 * "encrypt-resource", resource {algorithm AEAD_AES_256_GCM, ciphertext,
 * nonce, associated_data?, original_type}} (PG_ERR_BAD_INPUT), then the
 * resource decrypted (PG_ERR_BAD_SIGNATURE when the tag fails). Bodies over
 * WXV3_BODY_MAX are PG_ERR_TOO_LARGE. The caller picks the parser by
 * event_type (TRANSACTION.* -> wxv3_parse_transaction, REFUND.* ->
 * wxv3_parse_refund). */
pg_err wxv3_open_notification(arena_t *a, const wxv3_client_t *c, const wxv3_sig_headers_t *h,
                              const char *body, size_t len, time_t now, wxv3_event_t *out,
                              buf_t *reason);

/* A reply: status 200/204 must carry a valid signature (wxv3_verify); any
 * other status is PG_ERR_UPSTREAM with WeChat's {"code","message"} copied to
 * code (when signed or not: an error reply is never trusted as a fact, only
 * shown) and message to err. */
pg_err wxv3_check_reply(const wxv3_client_t *c, long status, const wxv3_sig_headers_t *h,
                        const char *body, size_t len, time_t now, char code[WXV3_CODE_MAX],
                        buf_t *err);

typedef struct wxv3_cert_entry {
    const char *serial_no, *effective_time, *expire_time;   /* arena strings */
    const char *pem;                     /* decrypted certificate (arena) */
    size_t pem_len;
} wxv3_cert_entry_t;

/* The /v3/certificates reply (its signature checked by the caller with
 * wxv3_check_reply): each data[] entry's encrypt_certificate decrypted with
 * the api_v3_key; the certificate's own serial must equal serial_no
 * (PG_ERR_MISMATCH). At most 16 entries. */
pg_err wxv3_parse_certificates(arena_t *a, const wxv3_client_t *c, const char *json, size_t len,
                               wxv3_cert_entry_t **out, size_t *count, buf_t *reason);

/* A sensitive request field (a transfer's user_name) encrypted as WeChat
 * Pay wants it: RSAES-OAEP (SHA-1, MGF1-SHA-1), base64, under WeChat Pay's
 * public key in public-key mode, else under a valid platform certificate;
 * *serial gets that key's id (pubkey_id or the certificate's serial), which
 * the request must carry as Wechatpay-Serial (wxv3_call_serial).
 * PG_ERR_CONFIG when neither key is there. The text is never logged. */
pg_err wxv3_encrypt_field(const wxv3_client_t *c, const char *plaintext, buf_t *ciphertext_b64,
                          const char **serial);

/* A notification refused: {"code":"FAIL","message":msg} (msg NULL -> "FAIL"). */
void wxv3_ack_fail(const char *msg, buf_t *out);

/* ---- calls ------------------------------------------------------------ */

typedef struct wxv3_reply {
    long status;                         /* 200 or 204 on PG_OK */
    const char *body;                    /* arena, NUL-terminated */
    size_t len;
    wxv3_sig_headers_t headers;          /* as received (NULL = absent) */
} wxv3_reply_t;

/* One call: a random nonce, the Authorization header (wxv3_sign_request at
 * `now`), Accept: application/json (and Content-Type for a POST), sent to
 * gateway + path; the reply's Wechatpay-* headers kept and the reply checked
 * by wxv3_check_reply at `now` (the caller's clock: time(NULL) in
 * production). Transport: PG_ERR_TIMEOUT on timeouts, PG_ERR_UPSTREAM on
 * connection errors and HTTP 5xx (code then empty), PG_ERR_TOO_LARGE.
 * out->body holds the body whenever one came (also for error replies). */
pg_err wxv3_call(arena_t *a, const wxv3_client_t *c, const char *method, const char *path,
                 const char *body, size_t body_len, time_t now, wxv3_reply_t *out,
                 char code[WXV3_CODE_MAX], buf_t *err);

/* wxv3_call with a Wechatpay-Serial request header (NULL = none): the
 * id of the key that encrypted a field of the body (wxv3_encrypt_field). */
pg_err wxv3_call_serial(arena_t *a, const wxv3_client_t *c, const char *method, const char *path,
                        const char *body, size_t body_len, const char *wechatpay_serial, time_t now,
                        wxv3_reply_t *out, char code[WXV3_CODE_MAX], buf_t *err);

/* The outcome of a request that moves money (refund, transfer) which
 * wxv3_call did not answer with PG_OK: a 4xx other than 429 is WeChat
 * refusing it, nothing happened (PG_ERR_CONFLICT); anything else may hide
 * an executed request (PG_ERR_TIMEOUT: query, never send blindly again). */
pg_err wxv3_unsent_or_unknown(pg_err rc, const wxv3_reply_t *reply);

/* Prepay: wxv3_build_prepay + wxv3_call + wxv3_parse_prepay (a 200 reply). */
pg_err wxv3_prepay(arena_t *a, const wxv3_client_t *c, const wxv3_order_t *o, time_t now,
                   wxv3_prepay_t *out, char code[WXV3_CODE_MAX], buf_t *err);

/* Query by out_trade_no: the transaction (wxv3_parse_transaction), whose
 * out_trade_no must be ours (PG_ERR_MISMATCH). 404 ORDER_NOT_EXIST is
 * PG_ERR_NOT_FOUND. */
pg_err wxv3_query(arena_t *a, const wxv3_client_t *c, const char *out_trade_no, time_t now,
                  wxv3_transaction_t *out, char code[WXV3_CODE_MAX], buf_t *err);

/* Close: PG_OK on a signed 204; 400 ORDERPAID -> PG_ERR_CONFLICT; other
 * error replies PG_ERR_UPSTREAM with code. */
pg_err wxv3_close(arena_t *a, const wxv3_client_t *c, const char *out_trade_no, time_t now,
                  char code[WXV3_CODE_MAX], buf_t *err);

/* Refund. Outcome, as for v2 (a refund is never sent twice):
 *   PG_OK            a signed 200 for our out_refund_no (status PROCESSING
 *                    or already SUCCESS...): accepted
 *   PG_ERR_CONFLICT  refused, nothing happened: a 4xx other than 429
 *   PG_ERR_TIMEOUT   outcome unknown: timeouts, transport errors, 5xx, 429,
 *                    a 200 whose signature fails or that cannot be read or
 *                    names another refund: query, never refund twice
 *   PG_ERR_BAD_INPUT / PG_ERR_CONFIG  nothing was sent */
pg_err wxv3_refund(arena_t *a, const wxv3_client_t *c, const wxv3_refund_req_t *r, time_t now,
                   wxv3_refund_t *out, char code[WXV3_CODE_MAX], buf_t *err);

/* Refund query: the refund (wxv3_parse_refund, out_refund_no ours, else
 * PG_ERR_MISMATCH); 404 -> PG_ERR_NOT_FOUND; timeouts and 5xx ->
 * PG_ERR_TIMEOUT. */
pg_err wxv3_refund_query(arena_t *a, const wxv3_client_t *c, const char *out_refund_no, time_t now,
                         wxv3_refund_t *out, char code[WXV3_CODE_MAX], buf_t *err);

/* GET /v3/certificates, verified, then wxv3_parse_certificates. */
pg_err wxv3_fetch_certificates(arena_t *a, const wxv3_client_t *c, time_t now,
                               wxv3_cert_entry_t **out, size_t *count, buf_t *err);

/* RFC 3339 in Beijing time: 2026-11-24T20:15:00+08:00 (out: 26 bytes). */
void wxv3_format_time(time_t t, char out[26]);

/* A v3 time in Beijing time ("2026-11-24T20:15:00+08:00") as v2 writes it
 * ("2026-11-24 20:15:00", arena); NULL for anything else. */
const char *wxv3_beijing_time(arena_t *a, const char *rfc3339);

#endif
