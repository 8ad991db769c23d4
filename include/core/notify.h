/* notify: provider notifications. A channel adapter verifies the message
 * and reduces it to a payment_event_t; notify_apply records it exactly once:
 * one transaction locks the payment, checks the amount, moves the state
 * (only from the expected state), stores the raw body with its outcome and
 * commits. Only then may the caller acknowledge. */
#ifndef NOTIFY_H
#define NOTIFY_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include "app.h"

typedef enum { PAY_EVENT_WAITING, PAY_EVENT_PAID, PAY_EVENT_CLOSED, PAY_EVENT_REFUND } pay_event_kind_t;

typedef struct payment_event {
    const char *channel;
    pay_event_kind_t kind;
    const char *payment_no;
    const char *notify_id;
    const char *provider_trade_no;
    const char *buyer_ref;
    time_t paid_at;              /* the provider's payment time (UTC), 0 = unknown: now */
    int64_t amount_fen;          /* what the provider says was paid (the trade's total) */
    const char *refund_no;       /* PAY_EVENT_REFUND: our refund number, NULL if not ours */
    bool refund_succeeded;
    bool refund_abnormal;        /* PAY_EVENT_REFUND: WeChat CHANGE (neither failed nor succeeded) */
    int64_t refund_fen;          /* PAY_EVENT_REFUND: this refund's amount, 0 = not given */
    const char *provider_refund_no;
    bool refund_by_provider;     /* PAY_EVENT_REFUND: made at the provider (Stripe Dashboard), not by us:
                                  * recorded once under provider_refund_no */
    const char *kind_name;       /* notifications.kind: NULL = "payment"/"refund" */
    const char *raw_body;
    size_t raw_len;
    const char *source;          /* the sender's address (after trusted proxies), NULL if unknown */
} payment_event_t;

/* What the public notify endpoints keep of what they refuse: the first
 * NOTIFY_REJECTED_KEEP_BYTES of the body (with its length and SHA-256), and
 * from one source at most [server] rejected_notifications_per_minute such
 * rows a minute (the rest are only counted). Accepted notifications are
 * kept whole. */
#define NOTIFY_REJECTED_KEEP_BYTES 2048

typedef struct notify_result {
    bool ack;                    /* reply success to the provider */
    const char *outcome;         /* notifications.outcome */
    const char *detail;
    const char *payment_no;
    const char *order_no;
    bool v3;                     /* a WeChat Pay API v3 notification: answer 204 / 4xx-5xx JSON */
    bool retry_later;            /* not recorded for a fault of ours (database): answer 5xx */
} notify_result_t;

/* PG_OK when recorded (res->ack tells what to answer); PG_ERR_DB when the
 * database failed, PG_ERR_COMMIT_UNKNOWN when the COMMIT reply was lost
 * (both: answer failure, the provider retries and a committed first try
 * makes the retry a duplicate). */
pg_err notify_apply(pg_app_t *app, arena_t *a, const payment_event_t *ev, notify_result_t *res);

/* A provider's Beijing-time stamp ("2026-11-24 20:15:00" or "20261124201500")
 * as UTC seconds; 0 when absent, malformed or implausible (not within the
 * last 40 days up to 5 minutes ahead). */
time_t notify_beijing_time(const char *s);

/* POST /notify/alipay: body is the raw form. Always fills res. source is
 * the sender's address (rate limit of stored rejections), NULL if unknown. */
void notify_alipay(pg_app_t *app, arena_t *a, const char *source, const char *body, size_t len,
                   notify_result_t *res);
/* POST /notify/wechat: told apart by format — XML is API v2 (verified
 * with the v2 key), JSON is API v3 (verified by the Wechatpay-* headers h
 * with WeChat Pay's public key or platform certificate, then decrypted
 * with the api_v3_key); res->v3 says which. Always fills res. */
void notify_wechat(pg_app_t *app, arena_t *a, const char *source, const wxv3_sig_headers_t *h, const char *body,
                   size_t len, notify_result_t *res);
/* POST /notify/wechat/refund: v2 encrypted req_info, or a v3 REFUND.*
 * notification. Always fills res. */
void notify_wechat_refund(pg_app_t *app, arena_t *a, const char *source, const wxv3_sig_headers_t *h,
                          const char *body, size_t len, notify_result_t *res);
/* POST /notify/wechat/transfer: a v3 MCHTRANSFER.BILL.FINISHED
 * notification about a WeChat payout (verified and decrypted as the other
 * v3 notifications), recorded by payout_apply_notice. Always fills res
 * (res->v3 is set). */
void notify_wechat_transfer(pg_app_t *app, arena_t *a, const char *source, const wxv3_sig_headers_t *h,
                            const char *body, size_t len, notify_result_t *res);
/* POST /notify/stripe: signature is the Stripe-Signature header, verified
 * over the raw body before anything is parsed. Always fills res; ack means
 * answer 2xx (recorded, a duplicate, or an event type we do not act on,
 * stored as ignored). */
void notify_stripe(pg_app_t *app, arena_t *a, const char *source, const char *signature, const char *body,
                   size_t len, notify_result_t *res);

#endif
