/* alipay: the Alipay open-API protocol adapter. Bytes in, facts out: no
 * database and no FastCGI in here. RSA2 request signing, page/wap pay URLs,
 * server calls with response-signature checks over the raw JSON text, and
 * notification/return verification. */
#ifndef ALIPAY_H
#define ALIPAY_H
#include <stdint.h>
#include <stdbool.h>
#include <time.h>
#include "arena.h"
#include "buf.h"
#include "kv.h"
#include "crypto.h"
#include "httpc.h"
#include "pg_err.h"

typedef struct alipay_client {
    const char *app_id;
    const char *gateway;           /* https://openapi.alipay.com/gateway.do */
    const char *seller_id;         /* NULL/"" = not checked */
    const char *notify_url;
    const char *return_url;
    const crypto_key_t *app_private_key;
    const crypto_key_t *alipay_public_key;   /* certificate mode: alipay_cert's key */
    /* Certificate mode (all three set; NULL/"" = public-key mode): requests
     * carry app_cert_sn and alipay_root_cert_sn, and a signed reply counts
     * only when its alipay_cert_sn is alipay_cert_sn. */
    const char *app_cert_sn;
    const char *alipay_root_cert_sn;
    const char *alipay_cert_sn;
    httpc_opts_t http;             /* ca_file, timeouts */
} alipay_client_t;

typedef struct alipay_trade {
    const char *out_trade_no;
    int64_t amount_fen;
    const char *subject;
    time_t expires_at;             /* -> time_expire, Beijing time */
    const char *quit_url;          /* wap only, may be NULL */
} alipay_trade_t;

/* The string to sign: every pair except "sign" (and "sign_type" when
 * drop_sign_type), empty values dropped, keys sorted bytewise, k=v joined by
 * '&', values raw. PG_ERR_BAD_INPUT on a repeated key. */
pg_err alipay_sign_content(const kv_list_t *params, bool drop_sign_type, buf_t *out);

/* Adds app_id, method, format, charset, sign_type, timestamp (now, Beijing
 * time "yyyy-MM-dd HH:mm:ss"; fixed_now != 0 overrides now for tests),
 * version, notify_url/return_url when set, biz_content, then sign. */
pg_err alipay_sign_request(const alipay_client_t *c, const char *method,
                           const char *biz_content, bool with_return_url,
                           time_t fixed_now, kv_list_t *params_out);

/* page = alipay.trade.page.pay (FAST_INSTANT_TRADE_PAY), wap =
 * alipay.trade.wap.pay (QUICK_WAP_WAY): a GET URL to the gateway carrying
 * every signed parameter, URL-encoded. */
typedef enum { ALIPAY_PAGE, ALIPAY_WAP } alipay_web_method_t;
pg_err alipay_build_pay_url(arena_t *a, const alipay_client_t *c, alipay_web_method_t m,
                            const alipay_trade_t *t, time_t fixed_now, buf_t *url_out);

/* Extracts the raw text of the JSON value under top-level key `key` (from
 * its '{' to the matching '}', string-aware) and the top-level "sign" value.
 * PG_ERR_BAD_INPUT if absent or malformed. */
pg_err alipay_extract_response(arena_t *a, const char *body, size_t len, const char *key,
                               const char **span, size_t *span_len, char **sign_out);

/* Result of a server call: the verified response object as raw JSON text. */
typedef struct alipay_reply {
    const char *json;              /* raw text of the *_response object */
    size_t json_len;
    char code[16];                 /* "10000" ... */
    char sub_code[64];
    char sub_msg[256];
} alipay_reply_t;

/* POSTs a signed request for `method` with biz_content to the gateway,
 * verifies the response signature over the raw span, fills reply.
 * PG_ERR_UPSTREAM when code != 10000 (reply still filled), PG_ERR_BAD_SIGNATURE
 * when the signature fails, PG_ERR_TIMEOUT on timeout. */
pg_err alipay_call(arena_t *a, const alipay_client_t *c, const char *method,
                   const char *biz_content, alipay_reply_t *reply, buf_t *err);

/* The reply-handling half of alipay_call, for a body already received:
 * locates `method`'s *_response (else error_response), verifies its
 * signature, fills reply. An unsigned reply is PG_ERR_UPSTREAM when it
 * reports an error and PG_ERR_BAD_SIGNATURE when it claims success; a
 * malformed body is PG_ERR_UPSTREAM. */
pg_err alipay_check_response(arena_t *a, const alipay_client_t *c, const char *method,
                             const char *body, size_t len, alipay_reply_t *reply, buf_t *err);

/* alipay.trade.precreate -> qr_code (arena string). */
pg_err alipay_precreate(arena_t *a, const alipay_client_t *c, const alipay_trade_t *t,
                        char **qr_code, buf_t *err);

/* alipay.trade.query by out_trade_no. */
typedef struct alipay_query_result {
    bool exists;                   /* false: 40004 ACQ.TRADE_NOT_EXIST (never scanned) */
    const char *trade_status;      /* WAIT_BUYER_PAY|TRADE_SUCCESS|TRADE_FINISHED|TRADE_CLOSED */
    const char *trade_no;          /* arena strings; NULL when not sent */
    const char *buyer_id;          /* buyer_user_id (buyer_id in older replies) */
    const char *send_pay_date;
    int64_t total_fen;             /* total_amount, strict (money_parse_yuan) */
} alipay_query_result_t;

/* PG_OK with exists=false for a signed 40004 ACQ.TRADE_NOT_EXIST; PG_OK with
 * exists=true and trade_status one of the four above (else PG_ERR_UPSTREAM);
 * a reply whose out_trade_no differs -> PG_ERR_MISMATCH; a malformed or
 * missing total_amount -> PG_ERR_UPSTREAM. Timeouts, HTTP 5xx, 20000 and
 * ACQ.SYSTEM_ERROR -> PG_ERR_TIMEOUT (ask again later); other failures as
 * alipay_call (PG_ERR_BAD_SIGNATURE, PG_ERR_UPSTREAM, PG_ERR_CONFIG). A
 * business answer (not-exist, status-error) is believed only when signed. */
pg_err alipay_trade_query(arena_t *a, const alipay_client_t *c, const char *out_trade_no,
                          alipay_query_result_t *out, buf_t *err);

/* alipay.trade.close. 10000 -> PG_OK; ACQ.TRADE_NOT_EXIST -> PG_OK (never
 * scanned: nothing to close at Alipay); ACQ.TRADE_STATUS_ERROR (not
 * WAIT_BUYER_PAY: paid, finished or already closed -- the caller queries to
 * know which, never concludes "paid" from it) -> PG_ERR_CONFLICT; timeouts, HTTP 5xx, 20000,
 * ACQ.SYSTEM_ERROR -> PG_ERR_TIMEOUT; a reply whose signature fails ->
 * PG_ERR_BAD_SIGNATURE; anything else -> PG_ERR_UPSTREAM (connection
 * refused, other HTTP statuses, other codes). Business answers count only
 * when signed. */
pg_err alipay_trade_close(arena_t *a, const alipay_client_t *c, const char *out_trade_no,
                          buf_t *err);

typedef struct alipay_refund_result {
    bool fund_change;              /* "Y": this call moved money. N or absent:
                                      confirm with alipay_refund_query */
    int64_t refund_total_fen;      /* refund_fee: cumulative over the trade */
    const char *trade_no;          /* NULL when not sent */
} alipay_refund_result_t;

/* alipay.trade.refund with biz_content {out_trade_no, refund_amount (yuan,
 * two decimals), out_request_no, refund_reason (when set)}. Outcome:
 *   PG_OK            accepted (10000); a confirmed refund only when
 *                    out->fund_change (fund_change "Y"), else confirm it
 *                    with alipay_refund_query (refund_status REFUND_SUCCESS)
 *   PG_ERR_CONFLICT  definitively refused, nothing happened: 40004 business
 *                    errors other than ACQ.SYSTEM_ERROR (sub_code in err),
 *                    and 40001/40002/40003/40006 (the gateway did not take
 *                    the request: missing/invalid parameter, bad signature,
 *                    no permission)
 *   PG_ERR_TIMEOUT   outcome unknown: network timeout or transport error,
 *                    HTTP status other than 200, 20000, ACQ.SYSTEM_ERROR,
 *                    any other code, reply signature invalid, malformed
 *                    reply: query with alipay_refund_query, never refund twice
 *   PG_ERR_BAD_INPUT / PG_ERR_CONFIG  nothing was sent (bad arguments, no
 *                    gateway or keys)
 * A 40004 is believed only when signed (unsigned -> PG_ERR_TIMEOUT). A
 * signed 10000 whose refund_fee is missing or malformed is PG_ERR_TIMEOUT
 * too (it happened, but the reply cannot be read: query). fund_change "N"
 * with 10000 (a repeat of an out_request_no, or a refund not executed yet)
 * is PG_OK with fund_change false: "query to confirm", never "refunded".
 * Transport failures (connection refused included: httpc cannot say whether
 * bytes left) are unknown. */
pg_err alipay_trade_refund(arena_t *a, const alipay_client_t *c, const char *out_trade_no,
                           const char *out_request_no, int64_t refund_fen, const char *reason,
                           alipay_refund_result_t *out, buf_t *err);

typedef struct alipay_refund_query_result {
    bool found;                    /* refund_amount present in a 10000 reply */
    const char *refund_status;     /* "REFUND_SUCCESS", or NULL when not sent:
                                      not (yet) successful */
    int64_t refund_fen;            /* refund_amount of this request */
} alipay_refund_query_result_t;

/* alipay.trade.fastpay.refund.query with biz_content {out_trade_no,
 * out_request_no, query_options ["gmt_refund_pay"]}. 10000 only says the
 * query worked: a refund that does not exist (or is not processed yet; Alipay
 * advises querying 10 s or more after the refund call) comes back without
 * refund_amount -> PG_OK, found=false. The refund succeeded iff found and
 * refund_status is "REFUND_SUCCESS"; found without refund_status means the
 * refund was not received or failed (Alipay: send it again with the same
 * out_request_no and amount); any other refund_status value, or a
 * malformed refund_amount -> PG_ERR_UPSTREAM; a reply for another
 * out_trade_no/out_request_no -> PG_ERR_MISMATCH. Other failures as
 * alipay_trade_query. */
pg_err alipay_refund_query(arena_t *a, const alipay_client_t *c, const char *out_trade_no,
                           const char *out_request_no, alipay_refund_query_result_t *out,
                           buf_t *err);

/* ---- transfers to an Alipay account (certificate mode only) ---------- */

typedef struct alipay_payee {
    const char *identity;          /* logon id (email/phone), user id 2088..., or open id */
    const char *identity_type;     /* ALIPAY_LOGON_ID (needs name) | ALIPAY_USER_ID | ALIPAY_OPEN_ID */
    const char *name;              /* real name; NULL when not sent */
} alipay_payee_t;

typedef enum {
    ALIPAY_TRANSFER_SUCCESS,       /* the money reached the payee */
    ALIPAY_TRANSFER_DEALING,       /* accepted, still processing: query later */
    ALIPAY_TRANSFER_FAIL,          /* failed; nothing moved (or it came back: REFUND) */
    ALIPAY_TRANSFER_NOT_FOUND      /* query only: Alipay never saw this out_biz_no */
} alipay_transfer_status_t;

typedef struct alipay_transfer_result {
    alipay_transfer_status_t status;
    const char *order_id;          /* arena strings; NULL when not sent */
    const char *pay_fund_order_id;
    char sub_code[64];             /* a refusal's sub_code / a FAIL's reason, "" when none */
    char sub_msg[256];
} alipay_transfer_result_t;

/* alipay.fund.trans.uni.transfer {out_biz_no, trans_amount, product_code
 * TRANS_ACCOUNT_NO_PWD, biz_scene DIRECT_TRANSFER, order_title, payee_info}.
 * Needs certificate mode (PG_ERR_CONFIG otherwise, nothing sent).
 *   PG_OK            signed 10000 for our out_biz_no: out->status SUCCESS,
 *                    DEALING (query later) or FAIL
 *   PG_ERR_CONFLICT  signed business refusal, nothing moved: out->sub_code
 *                    (PAYEE_NOT_EXIST, PAYEE_USER_INFO_ERROR, BALANCE_IS_NOT_ENOUGH,
 *                    EXCEED_LIMIT_..., ...), and 40001/40002/40003/40006
 *   PG_ERR_TIMEOUT   outcome unknown (timeout, transport, HTTP status, 20000,
 *                    SYSTEM_ERROR, unsigned or badly signed replies, another
 *                    alipay_cert_sn, a reply for another out_biz_no or
 *                    without a known status): query before sending again
 *   PG_ERR_BAD_INPUT nothing sent (bad arguments) */
pg_err alipay_fund_transfer(arena_t *a, const alipay_client_t *c, const char *out_biz_no, int64_t amount_fen,
                            const char *order_title, const alipay_payee_t *payee,
                            alipay_transfer_result_t *out, buf_t *err);

/* alipay.fund.trans.common.query {out_biz_no, product_code, biz_scene}:
 * PG_OK with status SUCCESS | DEALING | FAIL (FAIL and REFUND: the money did
 * not reach the payee or came back; fail_reason in sub_code) | NOT_FOUND
 * (signed 40004 ORDER_NOT_EXIST: never received, safe to send again with the
 * same out_biz_no); a reply for another out_biz_no -> PG_ERR_MISMATCH;
 * anything else that is not a signed answer -> PG_ERR_TIMEOUT (ask later). */
pg_err alipay_fund_transfer_query(arena_t *a, const alipay_client_t *c, const char *out_biz_no,
                                  alipay_transfer_result_t *out, buf_t *err);

typedef enum {
    ALIPAY_WAIT_BUYER_PAY, ALIPAY_TRADE_SUCCESS, ALIPAY_TRADE_FINISHED, ALIPAY_TRADE_CLOSED
} alipay_trade_status_t;

typedef struct alipay_notify {
    const char *notify_id;
    const char *out_trade_no;
    const char *trade_no;
    const char *buyer_id;
    const char *gmt_payment;       /* as sent, may be NULL */
    alipay_trade_status_t status;
    int64_t total_fen;
    bool has_refund;               /* refund_fee/out_biz_no present */
    int64_t refund_fen;
    const char *out_biz_no;
} alipay_notify_t;

/* Verifies a notification's form fields (already decoded once): signature
 * with sign and sign_type dropped, then app_id (PG_ERR_MISMATCH), seller_id
 * when configured (PG_ERR_MISMATCH), required fields and strict amounts
 * (PG_ERR_BAD_INPUT). reason gets a short log text. Does not touch amounts
 * against our records: the caller does that. */
pg_err alipay_verify_notify(const alipay_client_t *c, const kv_list_t *form,
                            alipay_notify_t *out, buf_t *reason);

/* Return-URL query: signature (sign, sign_type dropped) and app_id. */
pg_err alipay_verify_return(const alipay_client_t *c, const kv_list_t *query,
                            const char **out_trade_no, buf_t *reason);

/* "2026-11-24 20:15:00" in Beijing time for t. */
void alipay_format_time(time_t t, char out[20]);

#endif
