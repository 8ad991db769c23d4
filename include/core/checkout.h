/* checkout: the use case "a buyer wants to pay for a product". Validates
 * the request, picks channel and method, asks the channel for what the
 * buyer needs (a signed URL, a QR code), and records the order and its
 * payment in one transaction. request_id makes it idempotent. */
#ifndef CHECKOUT_H
#define CHECKOUT_H
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include "app.h"
#include "kv.h"
#include "store.h"

typedef struct checkout_request {
    const char *product;
    const char *user;
    const char *channel;        /* alipay | wechat | auto | NULL (= auto) */
    const char *method;
    const char *openid;
    const char *request_id;
    const char *order_no;       /* a further payment of this open order (the buyer switched channel) */
    const char *user_agent;
    const char *client_ip;      /* the caller's address (after trusted proxies) */
    const char *buyer_ip;       /* server-to-server: the buyer's address, named by the shop */
} checkout_request_t;

typedef struct checkout_result {
    bool repeated;              /* idempotent repeat: 200 instead of 201 */
    order_view_t order;
    const char *pay_field;      /* "pay_url" | "qr_code" | "code_url" | "mweb_url" | "jsapi" */
    const char *pay_value;      /* string, or JSON object text when pay_is_json */
    bool pay_is_json;
    bool pay_scan;              /* a code to scan: browsers get the QR page */
    const char *pay_ref;        /* the provider's name of the payment (channel_instruction_t.provider_ref) */
    const char *pay_api_version; /* channel_instruction_t.api_version: kept with the payment */
    const char *error_code;     /* stable code on failure */
} checkout_result_t;

/* Reads the request's fields from a decoded field list (form, query or JSON).
 * PG_ERR_BAD_INPUT (error_code set) when a field is repeated. */
pg_err checkout_request_from_fields(const kv_list_t *fields, checkout_request_t *req,
                                    const char **error_code, buf_t *msg);

/* On failure error_code and msg say why (HTTP status from app_http_status,
 * except the codes documented in the README). */
pg_err checkout_create(pg_app_t *app, arena_t *a, const checkout_request_t *req,
                       checkout_result_t *res, buf_t *msg);

/* The pay instruction stored with a payment ({"pay_url":"..."} etc.). */
pg_err checkout_pay_data_read(arena_t *a, const char *pay_data, checkout_result_t *res);

/* The JSON reply of SPEC §4. */
void checkout_reply_json(const checkout_result_t *res, buf_t *out);

/* Signed browser links: sig = hex HMAC-SHA256(secret, "product=P&user=U&expires=E"). */
void   checkout_link_sig(const char *secret, const char *product, const char *user,
                         const char *expires, char out[65]);
/* PG_OK, PG_ERR_BAD_SIGNATURE (code "bad_signature") or PG_ERR_BAD_SIGNATURE with
 * code "link_expired"; error_code tells which. PG_ERR_BAD_INPUT (code
 * "invalid_field") when the link carries a server-to-server field that the
 * signature does not cover (request_id, buyer_ip). */
pg_err checkout_verify_link(const char *secret, const kv_list_t *fields, time_t now,
                            const char **error_code, buf_t *msg);

#endif
