/* channel_stripe: Stripe Checkout as a checkout channel (cards, Apple Pay,
 * Google Pay on Stripe's hosted page). method "checkout" gives a pay_url.
 * Stripe names the payment itself (the Checkout Session id): it is kept as
 * the payment's provider_trade_no and found again through app->provider_ref
 * for query, close and refunds. Amounts are the configured currency's minor
 * unit, as the shop's prices are. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "channel.h"
#include "stripe.h"

static const char *const STRIPE_METHODS[] = { "checkout", NULL };

static bool stripe_enabled(const pg_app_t *app)
{
    return app->cfg->stripe.enabled;
}

/* Stripe wants expires_at 30 min to 24 h ahead; a payment that lives
 * shorter is closed by us (expire) when its time is up. A minute of margin
 * for clocks. */
static time_t session_expiry(time_t wanted, time_t now)
{
    if (wanted < now + STRIPE_SESSION_MIN_S + 60)
        return now + STRIPE_SESSION_MIN_S + 60;
    if (wanted > now + STRIPE_SESSION_MAX_S - 60)
        return now + STRIPE_SESSION_MAX_S - 60;
    return wanted;
}

/* What Stripe refused stays the operator's (logged by checkout); buyers get
 * a plain provider error, except a price below the currency's minimum. */
static pg_err start_failed(pg_err rc, const stripe_error_t *e, buf_t *err)
{
    if (!strcmp(e->code, "amount_too_small")) {
        buf_clear(err);
        buf_puts(err, "the price is below Stripe's minimum charge for this currency");
        return PG_ERR_UNSUPPORTED;
    }
    return rc == PG_ERR_TIMEOUT ? PG_ERR_TIMEOUT : PG_ERR_UPSTREAM;
}

static pg_err stripe_start(pg_app_t *app, arena_t *a, const char *method, const channel_payment_t *p,
                           channel_instruction_t *out, buf_t *err)
{
    const stripe_client_t *c = &app->stripe;
    int64_t min = stripe_currency_min_amount(c->currency);
    stripe_session_req_t r;
    stripe_session_t s;
    stripe_error_t e;
    pg_err rc;
    (void)method;
    if (p->amount_fen < min) {
        buf_printf(err, "the price %lld is below Stripe's minimum charge of %lld for %s (in its minor unit)",
                   (long long)p->amount_fen, (long long)min, c->currency);
        return PG_ERR_UNSUPPORTED;
    }
    memset(&r, 0, sizeof r);
    r.payment_no = p->payment_no;
    r.amount = p->amount_fen;
    r.product_name = p->subject && *p->subject ? p->subject : p->product_sku;
    r.product_sku = p->product_sku;
    r.expires_at = session_expiry(p->expires_at, time(NULL));
    r.success_url = arena_printf(a, "%s?payment_no=%s", app->stripe_return_url, p->payment_no);
    r.cancel_url = r.success_url;
    if (!r.success_url)
        return PG_ERR_NOMEM;
    rc = stripe_session_create(c, a, &r, &s, &e, err);
    if (rc != PG_OK)
        return start_failed(rc, &e, err);
    if (!s.url || (strncmp(s.url, "https://", 8) && strncmp(s.url, "http://", 7))) {
        buf_puts(err, "stripe: the session has no payment page URL");
        return PG_ERR_UPSTREAM;
    }
    out->field = "pay_url";
    out->value = s.url;
    out->provider_ref = s.id;
    return PG_OK;
}

static const char *stripe_default_method(const char *ua, bool has_openid)
{
    (void)ua;
    (void)has_openid;
    return "checkout";
}

static int64_t stripe_fee_rate_bp(const pg_app_t *app)
{
    return app->cfg->stripe.fee_rate_bp;
}

/* The session of payment_no; PG_ERR_NOT_FOUND when Stripe never made one. */
static pg_err session_of(pg_app_t *app, arena_t *a, const char *payment_no, stripe_session_t *s, buf_t *err)
{
    const char *ref = NULL;
    stripe_error_t e;
    pg_err rc = app->provider_ref ? app->provider_ref(app, a, payment_no, &ref) : PG_ERR_NOT_FOUND;
    if (rc != PG_OK)
        return rc;
    rc = stripe_session_retrieve(&app->stripe, a, ref, s, &e, err);
    if (rc != PG_OK)
        return rc;
    if (!s->client_reference_id || strcmp(s->client_reference_id, payment_no) || !s->currency ||
        strcmp(s->currency, app->stripe.currency)) {
        buf_printf(err, "stripe: session %s is not payment %s in %s", s->id, payment_no, app->stripe.currency);
        return PG_ERR_MISMATCH;
    }
    return PG_OK;
}

static pg_err stripe_query(pg_app_t *app, arena_t *a, const char *payment_no, channel_trade_t *out, buf_t *err)
{
    stripe_session_t s;
    pg_err rc = session_of(app, a, payment_no, &s, err);
    memset(out, 0, sizeof *out);
    if (rc == PG_ERR_NOT_FOUND) {
        out->state = TRADE_UNKNOWN;
        return PG_OK;
    }
    if (rc != PG_OK)
        return rc;
    out->provider_trade_no = s.id;
    out->amount_fen = s.amount_total;
    if (s.payment_status && !strcmp(s.payment_status, "paid"))
        out->state = TRADE_PAID;
    else if (s.status && !strcmp(s.status, "expired"))
        out->state = TRADE_CLOSED;
    else
        out->state = TRADE_WAITING;   /* open, or complete with a delayed payment under way */
    return PG_OK;
}

/* Expire the session. Not open any more: expired is closed; complete
 * (paid, or a delayed payment under way) is refused: the caller queries. */
static pg_err stripe_close(pg_app_t *app, arena_t *a, const char *payment_no, buf_t *err)
{
    const char *ref = NULL;
    stripe_session_t s;
    stripe_error_t e;
    pg_err rc = app->provider_ref ? app->provider_ref(app, a, payment_no, &ref) : PG_ERR_NOT_FOUND;
    if (rc == PG_ERR_NOT_FOUND)
        return PG_OK;   /* never made at Stripe: nothing to close */
    if (rc != PG_OK)
        return rc;
    rc = stripe_session_expire(&app->stripe, a, ref, &s, &e, err);
    if (rc == PG_OK || rc == PG_ERR_NOT_FOUND)
        return PG_OK;
    if (rc != PG_ERR_BAD_INPUT)
        return rc;
    rc = stripe_session_retrieve(&app->stripe, a, ref, &s, &e, err);
    if (rc != PG_OK)
        return rc;
    return s.status && !strcmp(s.status, "expired") ? PG_OK : PG_ERR_CONFLICT;
}

static int64_t stripe_trade_max_s(const char *method)
{
    (void)method;
    return STRIPE_SESSION_MAX_S - 60;
}

static int64_t stripe_pay_data_ttl_s(const char *method)
{
    (void)method;
    return 0;   /* the page lives as long as the session */
}

static channel_refund_state_t refund_state(const char *status)
{
    if (!strcmp(status, "succeeded"))
        return REFUND_DONE;
    if (!strcmp(status, "pending") || !strcmp(status, "requires_action"))
        return REFUND_PROCESSING;
    return REFUND_REFUSED;   /* failed, canceled: the money did not go back */
}

/* The payment intent behind a paid session; PG_ERR_CONFLICT when none (not paid). */
static pg_err payment_intent_of(pg_app_t *app, arena_t *a, const char *payment_no, const char **pi, buf_t *err)
{
    stripe_session_t s;
    pg_err rc = session_of(app, a, payment_no, &s, err);
    *pi = NULL;
    if (rc != PG_OK)
        return rc;
    if (!s.payment_intent) {
        buf_printf(err, "stripe: session %s has no payment", s.id);
        return PG_ERR_NOT_FOUND;
    }
    *pi = s.payment_intent;
    return PG_OK;
}

static pg_err stripe_refund_start(pg_app_t *app, arena_t *a, const channel_refund_t *r,
                                  channel_refund_outcome_t *out, buf_t *err)
{
    stripe_refund_req_t req;
    stripe_refund_t res;
    stripe_error_t e;
    pg_err rc;
    memset(out, 0, sizeof *out);
    memset(&req, 0, sizeof req);
    rc = payment_intent_of(app, a, r->payment_no, &req.payment_intent, err);
    if (rc == PG_ERR_NOT_FOUND) {
        out->state = REFUND_REFUSED;
        return PG_ERR_CONFLICT;
    }
    if (rc != PG_OK)
        return rc == PG_ERR_TIMEOUT ? rc : PG_ERR_UPSTREAM;
    req.refund_no = r->refund_no;
    req.payment_no = r->payment_no;
    req.amount = r->amount_fen;
    req.payment_amount = r->payment_amount_fen;
    req.reason = r->reason;
    rc = stripe_refund_create(&app->stripe, a, &req, &res, &e, err);
    if (rc == PG_ERR_BAD_INPUT || rc == PG_ERR_CONFLICT) {   /* refused: nothing happened */
        out->state = REFUND_REFUSED;
        return PG_ERR_CONFLICT;
    }
    if (rc != PG_OK)
        return rc == PG_ERR_TIMEOUT ? rc : PG_ERR_UPSTREAM;   /* unknown: refund_query decides */
    out->provider_refund_no = res.id;
    if (res.amount != r->amount_fen) {
        buf_printf(err, "stripe: refund %s is for %lld, not %lld", res.id, (long long)res.amount,
                   (long long)r->amount_fen);
        return PG_ERR_MISMATCH;
    }
    out->state = refund_state(res.status);
    return out->state == REFUND_REFUSED ? PG_ERR_CONFLICT : PG_OK;
}

static pg_err stripe_refund_state(pg_app_t *app, arena_t *a, const channel_refund_t *r,
                                  channel_refund_outcome_t *out, buf_t *err)
{
    const char *pi = NULL;
    stripe_refund_t res;
    stripe_error_t e;
    bool found = false;
    pg_err rc = payment_intent_of(app, a, r->payment_no, &pi, err);
    memset(out, 0, sizeof *out);
    if (rc == PG_ERR_NOT_FOUND) {   /* no payment there: no refund either */
        out->state = REFUND_UNKNOWN;
        return PG_OK;
    }
    if (rc == PG_OK)
        rc = stripe_refund_find(&app->stripe, a, pi, r->refund_no, &res, &found, &e, err);
    if (rc != PG_OK)
        return rc;
    if (!found) {
        out->state = REFUND_UNKNOWN;
        return PG_OK;
    }
    out->provider_refund_no = res.id;
    out->state = refund_state(res.status);
    if (res.amount != r->amount_fen) {
        out->state = REFUND_PROCESSING;
        return PG_ERR_MISMATCH;
    }
    return PG_OK;
}

const pay_channel_t CHANNEL_STRIPE = {
    .name = "stripe",
    .methods = STRIPE_METHODS,
    .enabled = stripe_enabled,
    .start = stripe_start,
    .default_method = stripe_default_method,
    .fee_rate_bp = stripe_fee_rate_bp,
    .query = stripe_query,
    .close = stripe_close,
    .min_close_age_s = 0,
    .trade_max_s = stripe_trade_max_s,
    .pay_data_ttl_s = stripe_pay_data_ttl_s,
    .refund = stripe_refund_start,
    .refund_query = stripe_refund_state,
    .explicit_only = true,
    .fee_from_reconciliation = true,
};
