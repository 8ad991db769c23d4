/* googleplay: Google Play billing for one-time products. Bytes in, facts
 * out, no database. What it believes:
 *  - a Pub/Sub push only with a Bearer OIDC token that verifies (RS256 with
 *    a key of push_certs_url's JWKS, fetched and cached; iss
 *    accounts.google.com, aud = push_audience, email = push_email and
 *    email_verified, not expired) and a real-time developer notification
 *    for our package;
 *  - a purchase only as purchases.products.get tells it, asked with a
 *    service-account OAuth token (RS256 JWT grant, cached until shortly
 *    before it expires). */
#ifndef GOOGLEPLAY_H
#define GOOGLEPLAY_H
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include "arena.h"
#include "buf.h"
#include "crypto.h"
#include "httpc.h"
#include "pg_err.h"

#define GOOGLEPLAY_MAX_KEYS 8

typedef struct googleplay_client {
    const char *package_name;
    const char *api_base;            /* https://androidpublisher.googleapis.com */
    const char *push_audience;
    const char *push_email;
    const char *push_certs_url;
    /* the service account (from its JSON file) */
    char *client_email;
    char *token_uri;
    crypto_key_t *sa_key;
    httpc_opts_t http;
    /* caches for the process */
    char *access_token;
    time_t access_token_until;
    size_t n_keys;
    char *kids[GOOGLEPLAY_MAX_KEYS];
    crypto_key_t *keys[GOOGLEPLAY_MAX_KEYS];
    time_t keys_until;
    time_t keys_fetched_at;
} googleplay_client_t;

/* Reads the service account JSON (client_email, private_key, token_uri). */
pg_err googleplay_load_service_account(googleplay_client_t *c, const char *path, buf_t *err);
void   googleplay_client_free(googleplay_client_t *c);   /* the caches and the service account */

/* JWKS text -> the client's key cache (replaced). PG_ERR_BAD_INPUT when no RSA key parses. */
pg_err googleplay_set_jwks(googleplay_client_t *c, const char *json, size_t len, time_t until, buf_t *err);

typedef enum { GP_RTDN_PURCHASED, GP_RTDN_CANCELED, GP_RTDN_VOIDED, GP_RTDN_TEST, GP_RTDN_OTHER } googleplay_rtdn_kind_t;
typedef struct googleplay_rtdn {
    googleplay_rtdn_kind_t kind;
    const char *message_id;
    const char *purchase_token;
    const char *product_id;          /* sku (one-time); NULL for voided */
    const char *order_id;            /* voided */
    const char *data_json;           /* the decoded notification */
} googleplay_rtdn_t;

/* bearer: the Authorization Bearer token of the push; body: the push JSON.
 * Fetches the JWKS when the token's kid is unknown (at most once a minute).
 * PG_ERR_UNAUTHORIZED no or bad token, PG_ERR_BAD_INPUT malformed,
 * PG_ERR_MISMATCH another package; err says which. */
pg_err googleplay_verify_push(googleplay_client_t *c, arena_t *a, const char *bearer, const char *body, size_t len,
                              time_t now, googleplay_rtdn_t *out, buf_t *err);
/* The token check alone (unit tests, fuzzing: keys set with googleplay_set_jwks). */
pg_err googleplay_verify_oidc(googleplay_client_t *c, arena_t *a, const char *jwt, time_t now, bool may_fetch,
                              buf_t *err);
/* The RTDN in a push body alone (no token check). */
pg_err googleplay_parse_rtdn(const googleplay_client_t *c, arena_t *a, const char *body, size_t len,
                             googleplay_rtdn_t *out, buf_t *err);

typedef struct googleplay_purchase {
    int purchase_state;              /* 0 purchased, 1 canceled, 2 pending */
    int acknowledgement_state;       /* 0 not yet, 1 acknowledged */
    const char *order_id;
    const char *account_id;          /* obfuscatedExternalAccountId, NULL when none */
    int64_t purchase_time_ms;
    int64_t quantity;
    const char *json;
} googleplay_purchase_t;

/* purchases.products.get. PG_ERR_NOT_FOUND unknown token (or another
 * package's), PG_ERR_UPSTREAM / PG_ERR_TIMEOUT the API failed. */
pg_err googleplay_get_purchase(googleplay_client_t *c, arena_t *a, const char *product_id, const char *token,
                               time_t now, googleplay_purchase_t *out, buf_t *err);
pg_err googleplay_acknowledge(googleplay_client_t *c, arena_t *a, const char *product_id, const char *token,
                              time_t now, buf_t *err);
/* The service-account assertion (RS256 JWT) posted to token_uri. */
pg_err googleplay_sa_assertion(const googleplay_client_t *c, time_t now, buf_t *out);

#endif
