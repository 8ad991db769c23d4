/* stripe: the Stripe API protocol adapter (cards, Apple Pay, Google Pay
 * through Checkout Sessions). Bytes in, facts out: no database and no
 * FastCGI in here. Form-encoded requests with Stripe's bracket keys, an
 * Idempotency-Key on every POST kept across retries, a pinned
 * Stripe-Version, 429/5xx retried with backoff; the Stripe-Signature check
 * of webhook deliveries and the parsing of the events we act on. */
#ifndef STRIPE_H
#define STRIPE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include "arena.h"
#include "buf.h"
#include "httpc.h"
#include "kv.h"
#include "pg_err.h"

/* The API version every request pins: replies and events are shaped by it. */
#define STRIPE_API_VERSION "2024-06-20"
/* Webhook timestamps further than this from now are refused (replays). */
#define STRIPE_SIGNATURE_TOLERANCE_S 300
/* A Checkout Session's expires_at must lie 30 minutes to 24 hours ahead. */
#define STRIPE_SESSION_MIN_S 1800
#define STRIPE_SESSION_MAX_S 86400

typedef struct stripe_client {
    const char *secret_key;        /* sk_live_... / sk_test_... */
    const char *api_base;          /* https://api.stripe.com (no trailing slash needed) */
    const char *currency;          /* lowercase ISO code: the shop's prices are its minor unit */
    httpc_opts_t http;             /* ca_file, timeouts */
    int max_attempts;              /* 429/5xx/timeouts: tries in all, 0 = 3 */
    long retry_base_ms;            /* first backoff, doubled each time; 0 = 250 */
} stripe_client_t;

/* Stripe's error of a failed call: type and code kept (the message goes to err). */
typedef struct stripe_error {
    long status;                   /* HTTP status, 0 when none came */
    char type[48];                 /* invalid_request_error, card_error, api_error, ... */
    char code[64];                 /* resource_missing, amount_too_small, ... */
} stripe_error_t;

/* --- form encoding ------------------------------------------------------ */

/* "k=v&..." in list order: keys keep their brackets (line_items[0][quantity]),
 * everything else in keys and values is percent-encoded (RFC 3986). */
pg_err stripe_form_encode(const kv_list_t *form, buf_t *out);

/* --- money -------------------------------------------------------------- */

/* True for currencies without a minor unit (jpy, krw, ...): amounts are whole units. */
bool stripe_currency_zero_decimal(const char *currency);
/* Stripe's minimum charge in the currency's minor unit; 0 when we do not know it. */
int64_t stripe_currency_min_amount(const char *currency);
/* A lowercase three-letter code we can charge in. */
bool stripe_currency_valid(const char *currency);

/* --- objects ------------------------------------------------------------ */

typedef struct stripe_session {
    const char *id;                /* cs_... */
    const char *url;               /* the hosted payment page */
    const char *status;            /* open | complete | expired */
    const char *payment_status;    /* paid | unpaid | no_payment_required */
    const char *payment_intent;    /* pi_..., NULL until the buyer confirms */
    const char *client_reference_id;
    const char *payment_no;        /* metadata[payment_no] */
    const char *currency;
    int64_t amount_total;          /* minor units; -1 when absent */
    bool livemode;
} stripe_session_t;

typedef struct stripe_refund {
    const char *id;                /* re_... */
    const char *status;            /* pending | requires_action | succeeded | failed | canceled */
    const char *payment_intent;
    const char *refund_no;         /* metadata[refund_no] */
    const char *payment_no;        /* metadata[payment_no] */
    const char *currency;
    int64_t amount;                /* minor units; -1 when absent */
    int64_t payment_amount;        /* metadata[payment_amount]: the paid total we refund from; -1 */
} stripe_refund_t;

/* --- API calls ----------------------------------------------------------- */

typedef struct stripe_session_req {
    const char *payment_no;        /* client_reference_id, metadata, idempotency key */
    int64_t amount;                /* minor units of c->currency */
    const char *product_name;
    const char *product_sku;
    time_t expires_at;             /* clamped by the caller to STRIPE_SESSION_MIN_S..MAX_S ahead */
    const char *success_url;
    const char *cancel_url;
} stripe_session_req_t;

/* One call: method "GET" or "POST", path from /v1; form (POST body or GET
 * query, may be NULL). POSTs carry Idempotency-Key idem_key (required for
 * POST). 429, 5xx and timeouts are tried again after a backoff with the
 * same key. On success *out is the reply's JSON object text in the arena.
 * Errors: 400/402 PG_ERR_BAD_INPUT (card_error: PG_ERR_CONFLICT), 401/403
 * PG_ERR_CONFIG, 404 PG_ERR_NOT_FOUND, 409 PG_ERR_CONFLICT, still 429/5xx
 * after the last try PG_ERR_UPSTREAM, no answer PG_ERR_TIMEOUT; e gets
 * Stripe's type and code, err its message. */
pg_err stripe_call(const stripe_client_t *c, arena_t *a, const char *method, const char *path,
                   const kv_list_t *form, const char *idem_key, const char **out, stripe_error_t *e,
                   buf_t *err);

pg_err stripe_session_create(const stripe_client_t *c, arena_t *a, const stripe_session_req_t *r,
                             stripe_session_t *out, stripe_error_t *e, buf_t *err);
pg_err stripe_session_retrieve(const stripe_client_t *c, arena_t *a, const char *session_id,
                               stripe_session_t *out, stripe_error_t *e, buf_t *err);
/* Expires an open session. A session that is not open any more answers 400
 * (PG_ERR_BAD_INPUT): the caller retrieves it to learn whether it was paid. */
pg_err stripe_session_expire(const stripe_client_t *c, arena_t *a, const char *session_id,
                             stripe_session_t *out, stripe_error_t *e, buf_t *err);

typedef struct stripe_refund_req {
    const char *payment_intent;
    const char *refund_no;         /* Idempotency-Key and metadata[refund_no] */
    const char *payment_no;        /* metadata[payment_no] */
    int64_t amount;
    int64_t payment_amount;        /* metadata[payment_amount] */
    const char *reason;            /* metadata[reason], may be NULL */
} stripe_refund_req_t;

pg_err stripe_refund_create(const stripe_client_t *c, arena_t *a, const stripe_refund_req_t *r,
                            stripe_refund_t *out, stripe_error_t *e, buf_t *err);
/* Our refund refund_no among the payment intent's refunds (metadata[refund_no]),
 * paged through with starting_after; *found false when Stripe has none. */
pg_err stripe_refund_find(const stripe_client_t *c, arena_t *a, const char *payment_intent,
                          const char *refund_no, stripe_refund_t *out, bool *found, stripe_error_t *e,
                          buf_t *err);

/* All the payment intent's refunds (up to cap, in Stripe's order: newest
 * first), whoever made them: ours carry metadata[refund_no], those made in
 * the Dashboard do not. */
pg_err stripe_refund_list(const stripe_client_t *c, arena_t *a, const char *payment_intent, stripe_refund_t *out,
                          size_t cap, size_t *n, stripe_error_t *e, buf_t *err);

typedef struct stripe_intent {
    const char *id;                /* pi_... */
    const char *status;
    const char *payment_no;        /* metadata[payment_no] (payment_intent_data of our session) */
    const char *currency;
    int64_t amount;                /* minor units; -1 when absent */
} stripe_intent_t;

/* GET /v1/payment_intents/{id}: whose payment it is (a refund made in the
 * Dashboard names only the payment intent). */
pg_err stripe_intent_retrieve(const stripe_client_t *c, arena_t *a, const char *payment_intent,
                              stripe_intent_t *out, stripe_error_t *e, buf_t *err);

/* The balance transactions created in [from, to) as bill rows (bill.h),
 * paged through with starting_after (expand[]=data.source.payment_intent):
 * type charge/payment -> a payment row (out_trade_no the payment intent's
 * metadata[payment_no], fee Stripe's actual fee); type refund -> a refund row
 * (metadata refund_no/payment_no of the refund, amount positive, fee as
 * Stripe gave it back: 0 today, negative if returned). Other types (payouts,
 * adjustments, Stripe's own fees) are not rows of ours. finished_at in
 * Beijing time, as the other channels' bills. */
struct bill;
pg_err stripe_balance_bill(const stripe_client_t *c, arena_t *a, time_t from, time_t to, struct bill *out,
                           stripe_error_t *e, buf_t *err);

/* --- webhooks ------------------------------------------------------------ */

/* Stripe-Signature "t=<unix>,v1=<hex>[,v1=<hex>...]" (other schemes such as
 * v0 ignored) over "<t>.<body>", HMAC-SHA256 keyed with the whole endpoint
 * secret. Any v1 may match (secrets being rolled); compared in constant
 * time; an empty secret, header or v1 never matches; t must be within
 * tolerance_s of now. PG_ERR_BAD_SIGNATURE with the reason in why. */
pg_err stripe_verify_signature(const char *secret, const char *header, const char *body, size_t len,
                               time_t now, long tolerance_s, buf_t *why);

/* The "t=...,v1=..." header for body signed at t (tests, the bench). */
pg_err stripe_signature_header(const char *secret, time_t t, const char *body, size_t len, buf_t *out);

typedef enum {
    STRIPE_EVENT_OTHER,                /* acknowledged, stored as ignored */
    STRIPE_EVENT_SESSION_COMPLETED,    /* checkout.session.completed */
    STRIPE_EVENT_SESSION_ASYNC_PAID,   /* checkout.session.async_payment_succeeded */
    STRIPE_EVENT_SESSION_ASYNC_FAILED, /* checkout.session.async_payment_failed */
    STRIPE_EVENT_SESSION_EXPIRED,      /* checkout.session.expired */
    STRIPE_EVENT_CHARGE_REFUNDED,      /* charge.refunded */
    STRIPE_EVENT_REFUND                /* refund.created / refund.updated */
} stripe_event_kind_t;

typedef struct stripe_event {
    const char *id;                    /* evt_... */
    const char *type;
    stripe_event_kind_t kind;
    time_t created;
    bool livemode;
    const char *account;               /* Connect: the connected account; NULL for our own */
    stripe_session_t session;          /* the checkout.session.* kinds */
    stripe_refund_t refund;            /* STRIPE_EVENT_REFUND */
    const char *charge_payment_intent; /* STRIPE_EVENT_CHARGE_REFUNDED */
    const char *charge_currency;
    int64_t charge_amount;             /* minor units; -1 when absent */
    int64_t charge_amount_refunded;    /* all refunds so far, whoever made them; -1 when absent */
} stripe_event_t;

/* Parses a verified event body (JSON object, duplicate keys refused).
 * Only the fields above are read; an object of the wrong type for its
 * event type is PG_ERR_BAD_INPUT. */
pg_err stripe_event_parse(arena_t *a, const char *body, size_t len, stripe_event_t *out, buf_t *why);

#endif
