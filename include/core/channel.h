/* channel: what checkout needs from a payment provider, as an interface.
 * A provider is one file (channel_alipay.c, channel_wechat.c) filling a
 * pay_channel_t; checkout and the routes never test a channel's name. */
#ifndef CHANNEL_H
#define CHANNEL_H
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include "app.h"

typedef struct channel_payment {
    const char *payment_no;     /* out_trade_no */
    int64_t amount_fen;
    const char *subject;        /* the product's title */
    const char *product_sku;
    time_t expires_at;
    const char *quit_url;       /* where a mobile buyer goes on "cancel" */
    const char *openid;         /* WeChat JSAPI */
    const char *client_ip;      /* the buyer's address (WeChat spbill_create_ip) */
} channel_payment_t;

/* What the buyer needs to pay: one field of the checkout reply. */
typedef struct channel_instruction {
    const char *field;          /* "pay_url" | "qr_code" | "code_url" | "mweb_url" | "jsapi" */
    const char *value;          /* a string, or JSON object text when is_json */
    bool is_json;
    bool scan;                  /* a code to scan: browsers get the QR page */
    const char *provider_ref;   /* the provider's own name of the payment, chosen by it
                                 * (Stripe's Checkout Session id): kept as provider_trade_no
                                 * and given back through app->provider_ref; NULL if none */
    const char *api_version;    /* the provider API the payment was made with (WeChat "v3"),
                                 * kept as payments.api_version and given back through
                                 * app->api_version; NULL = the channel's default (v2) */
} channel_instruction_t;

/* What the provider says about a payment (active query). */
typedef enum { TRADE_UNKNOWN, TRADE_WAITING, TRADE_PAID, TRADE_CLOSED } channel_trade_state_t;
typedef struct channel_trade {
    channel_trade_state_t state;    /* TRADE_UNKNOWN: the provider has never seen it */
    const char *provider_trade_no;
    const char *buyer_ref;
    const char *paid_time;          /* the provider's payment time as it wrote it, NULL if none */
    int64_t amount_fen;
} channel_trade_t;

typedef struct channel_refund {
    const char *payment_no;
    const char *refund_no;          /* out_request_no / out_refund_no: the provider's idempotency key */
    int64_t payment_amount_fen;
    int64_t amount_fen;
    const char *reason;
} channel_refund_t;

/* REFUND_UNKNOWN: the provider has no such refund (safe to send it again).
 * REFUND_ABNORMAL: the provider took the money but could not pay it back
 * (WeChat CHANGE: the buyer's card cancelled or frozen); it is handled by
 * hand in the merchant platform: neither failed nor done. */
typedef enum {
    REFUND_UNKNOWN, REFUND_PROCESSING, REFUND_DONE, REFUND_REFUSED, REFUND_ABNORMAL
} channel_refund_state_t;
typedef struct channel_refund_outcome {
    channel_refund_state_t state;
    const char *provider_refund_no;
} channel_refund_outcome_t;

typedef struct pay_channel {
    const char *name;
    const char *const *methods;                 /* NULL-terminated */
    bool (*enabled)(const pg_app_t *app);
    /* Asks the provider for the instruction. On failure err says why;
     * PG_ERR_UPSTREAM / PG_ERR_TIMEOUT for provider faults, PG_ERR_UNSUPPORTED
     * for a combination the channel cannot do (e.g. jsapi without openid). */
    pg_err (*start)(pg_app_t *app, arena_t *a, const char *method, const channel_payment_t *p,
                    channel_instruction_t *out, buf_t *err);
    /* The method for a buyer who did not name one (SPEC §4, User-Agent rules). */
    const char *(*default_method)(const char *user_agent, bool has_openid);
    int64_t (*fee_rate_bp)(const pg_app_t *app);
    /* PG_OK with the state; PG_ERR_TIMEOUT/UPSTREAM when the provider did not say. */
    pg_err (*query)(pg_app_t *app, arena_t *a, const char *payment_no, channel_trade_t *out, buf_t *err);
    /* PG_OK closed (or never seen); PG_ERR_CONFLICT when the provider refused
     * to close it (paid, or already closed: the caller queries to know which). */
    pg_err (*close)(pg_app_t *app, arena_t *a, const char *payment_no, buf_t *err);
    /* The provider's rule: no close before a payment is this old (WeChat: 300 s). */
    int min_close_age_s;
    /* How long what the buyer gets for a method stays usable, 0 = as long as
     * the trade: the payment's life is capped at trade_max_s (the code's),
     * and stored pay data older than pay_data_ttl_s is never handed out again. */
    int64_t (*trade_max_s)(const char *method);
    int64_t (*pay_data_ttl_s)(const char *method);
    /* PG_OK (out says DONE or PROCESSING); PG_ERR_CONFLICT refused, nothing
     * happened; PG_ERR_TIMEOUT outcome unknown: ask refund_query, never guess. */
    pg_err (*refund)(pg_app_t *app, arena_t *a, const channel_refund_t *r, channel_refund_outcome_t *out,
                     buf_t *err);
    pg_err (*refund_query)(pg_app_t *app, arena_t *a, const channel_refund_t *r, channel_refund_outcome_t *out,
                           buf_t *err);
    /* Only when the shop names it: channel=auto never picks it (Stripe). */
    bool explicit_only;
    /* The fee is known only from the provider's records (Stripe's balance
     * transactions): reconciliation books the difference to the estimate as
     * an adjustment (ledger_post_fee_adjustment_in_tx) instead of reporting
     * a fee mismatch; the refund's fee too (Stripe keeps it). */
    bool fee_from_reconciliation;
} pay_channel_t;

extern const pay_channel_t CHANNEL_ALIPAY;
extern const pay_channel_t CHANNEL_WECHAT;
extern const pay_channel_t CHANNEL_STRIPE;

const pay_channel_t *channel_find(const char *name);
/* The i-th known channel, NULL past the end (preference order). */
const pay_channel_t *channel_at(size_t i);
bool channel_ua_is_mobile(const char *user_agent);
bool channel_ua_is_wechat(const char *user_agent);
bool channel_offers(const pay_channel_t *ch, const char *method);

#endif
