/* wechat_v3_transfer: WeChat Pay v3 merchant transfers ("商家转账", the 2025
 * API): POST /v3/fund-app/mch-transfer/transfer-bills and the query
 * GET /v3/fund-app/mch-transfer/transfer-bills/out-bill-no/{out_bill_no}.
 * Bytes in, facts out (calls go through wxv3_call). out_bill_no is the
 * idempotency key: WeChat answers a repeat with the same bill. */
#ifndef WECHAT_V3_TRANSFER_H
#define WECHAT_V3_TRANSFER_H
#include "wechat_v3.h"

typedef enum {
    WXV3_BILL_PENDING,        /* ACCEPTED, PROCESSING, TRANSFERING, CANCELING: not final */
    WXV3_BILL_WAIT_USER,      /* WAIT_USER_CONFIRM: the payee must confirm in WeChat */
    WXV3_BILL_SUCCESS,
    WXV3_BILL_FAIL,
    WXV3_BILL_CANCELLED
} wxv3_bill_state_t;

typedef struct wxv3_bill {
    wxv3_bill_state_t state;
    const char *state_name;              /* as WeChat wrote it */
    const char *out_bill_no, *transfer_bill_no, *package_info, *fail_reason;   /* arena; NULL = absent */
    int64_t amount_fen;                  /* query replies; -1 when absent */
} wxv3_bill_t;

typedef struct wxv3_transfer_req {
    const char *out_bill_no;             /* 5..32 of [A-Za-z0-9] */
    const char *openid;                  /* the payee's openid under appid */
    int64_t amount_fen;                  /* 1..MONEY_MAX_FEN */
    const char *scene_id;                /* transfer_scene_id, e.g. "1005" (佣金报酬) */
    const char *remark;                  /* transfer_remark, cut to 32 characters */
    const char *report_type1, *report_content1;   /* transfer_scene_report_infos */
    const char *report_type2, *report_content2;   /* second entry; NULL = none */
    const char *user_name;               /* the payee's real name, plain; NULL = not sent.
                                          * wxv3_transfer encrypts it (wxv3_encrypt_field) and
                                          * sends Wechatpay-Serial; never logged */
    const char *user_name_cipher;        /* wxv3_build_transfer: the encrypted user_name (base64) */
    const char *notify_url;              /* MCHTRANSFER.BILL.FINISHED goes there; NULL = none */
} wxv3_transfer_req_t;

/* WeChat requires user_name from 2,000 yuan (transfer_amount >= 200000 fen);
 * below it is optional (WeChat then checks the name when it is sent). */
#define WXV3_TRANSFER_NAME_REQUIRED_FEN 200000

/* The request body {appid, out_bill_no, transfer_scene_id, openid,
 * user_name? (r->user_name_cipher), transfer_amount, transfer_remark,
 * notify_url?, transfer_scene_report_infos[]}; path and body appended.
 * PG_ERR_BAD_INPUT for unusable fields. */
pg_err wxv3_build_transfer(const wxv3_client_t *c, const wxv3_transfer_req_t *r, buf_t *path, buf_t *body);

/* A transfer reply or query reply: out_bill_no and state (ACCEPTED,
 * PROCESSING, WAIT_USER_CONFIRM, TRANSFERING, SUCCESS, FAIL, CANCELLED)
 * required; mch_id and appid, when present, must be ours (PG_ERR_MISMATCH). */
pg_err wxv3_parse_bill(arena_t *a, const wxv3_client_t *c, const char *json, size_t len, wxv3_bill_t *out,
                       buf_t *reason);

/* The transfer (with r->user_name: encrypted, Wechatpay-Serial sent; a
 * transfer of WXV3_TRANSFER_NAME_REQUIRED_FEN or more without it is
 * PG_ERR_BAD_INPUT, nothing sent). Outcome (a transfer is never sent twice):
 *   PG_OK            a signed 200 about our out_bill_no (any state)
 *   PG_ERR_CONFLICT  refused, nothing happened: a 4xx other than 429 (code
 *                    set, e.g. NOT_ENOUGH, INVALID_REQUEST)
 *   PG_ERR_TIMEOUT   outcome unknown: timeouts, transport errors, 5xx, 429,
 *                    a 200 that fails its signature, cannot be read or
 *                    names another bill: query, never send blindly again
 *   PG_ERR_BAD_INPUT / PG_ERR_CONFIG  nothing was sent */
pg_err wxv3_transfer(arena_t *a, const wxv3_client_t *c, const wxv3_transfer_req_t *r, time_t now,
                     wxv3_bill_t *out, char code[WXV3_CODE_MAX], buf_t *err);

/* The query by out_bill_no: PG_OK with the bill (ours, else
 * PG_ERR_MISMATCH); a signed-or-not 404 NOT_FOUND -> PG_ERR_NOT_FOUND
 * (WeChat has no such bill); timeouts and 5xx -> PG_ERR_TIMEOUT. */
pg_err wxv3_transfer_query(arena_t *a, const wxv3_client_t *c, const char *out_bill_no, time_t now,
                           wxv3_bill_t *out, char code[WXV3_CODE_MAX], buf_t *err);

/* The decrypted resource of a MCHTRANSFER.BILL.FINISHED notification
 * (original_type mch_payment): {out_bill_no, transfer_bill_no, state
 * SUCCESS | FAIL | CANCELLED, mch_id, transfer_amount, openid,
 * fail_reason?, create_time, update_time}. out_bill_no, transfer_bill_no,
 * state (final only, else PG_ERR_BAD_INPUT), mch_id (ours, else
 * PG_ERR_MISMATCH) and transfer_amount required. */
pg_err wxv3_parse_bill_notification(arena_t *a, const wxv3_client_t *c, const char *json, size_t len,
                                    wxv3_bill_t *out, buf_t *reason);

#endif
