/* appstore: Apple's signed data (App Store Server Notifications V2 and
 * StoreKit 2 / App Store Server API transactions). Bytes in, facts out, no
 * database. A JWS is believed only after: compact form, alg exactly ES256,
 * an x5c chain of three building to the configured Apple Root CA - G3 with
 * Apple's OIDs on leaf and intermediate, all valid now, and the leaf's ES256
 * signature (JOSE r||s); then bundle id, app id (Production) and environment
 * must match. Verified chains are cached (15 minutes, 32 entries) by the
 * SHA-256 of leaf and intermediate; a chain that failed is never cached.
 * Also the App Store Server API's ES256 JWT (appstore_api_token). */
#ifndef APPSTORE_H
#define APPSTORE_H
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include "arena.h"
#include "buf.h"
#include "httpc.h"
#include "pg_err.h"
#include "pki.h"

#define APPSTORE_OID_LEAF         "1.2.840.113635.100.6.11.1"
#define APPSTORE_OID_INTERMEDIATE "1.2.840.113635.100.6.2.1"
#define APPSTORE_CACHE_SLOTS      32
#define APPSTORE_CACHE_SECONDS    900
#define APPSTORE_MAX_JWS          (48 * 1024)

typedef struct appstore_expect {
    const char *bundle_id;
    int64_t app_apple_id;        /* checked when environment is Production */
    const char *environment;     /* "Production" | "Sandbox" */
} appstore_expect_t;

typedef struct appstore_verifier appstore_verifier_t;

/* root: the trusted root (the verifier takes ownership, also on failure). */
pg_err appstore_verifier_new(pki_cert_t *root, appstore_verifier_t **out);
pg_err appstore_verifier_load(const char *root_path, appstore_verifier_t **out, buf_t *err);
void   appstore_verifier_free(appstore_verifier_t *v);
size_t appstore_verifier_cached(const appstore_verifier_t *v, time_t now);   /* live cache entries */
void   appstore_verifier_clear_cache(appstore_verifier_t *v);

typedef struct appstore_transaction {
    const char *transaction_id;
    const char *original_transaction_id;
    const char *bundle_id;
    const char *product_id;
    const char *type;               /* "Non-Consumable", "Consumable", ... */
    const char *environment;
    const char *app_account_token;  /* lowercase UUID, NULL when the app set none */
    const char *currency;           /* NULL when absent */
    int64_t price_milli;            /* price in milli-units of currency, -1 when absent */
    int64_t purchase_date_ms;
    int64_t signed_date_ms;
    int64_t revocation_date_ms;     /* 0 when not revoked */
    int64_t revocation_reason;      /* -1 when absent */
    int64_t quantity;
    const char *payload_json;       /* the verified payload as sent */
} appstore_transaction_t;

typedef struct appstore_notification {
    const char *type;               /* notificationType */
    const char *subtype;            /* NULL when absent */
    const char *uuid;               /* notificationUUID */
    const char *environment;
    const char *bundle_id;
    int64_t app_apple_id;           /* 0 when absent */
    int64_t signed_date_ms;
    bool has_transaction;
    appstore_transaction_t tx;      /* when has_transaction */
    const char *payload_json;       /* the verified outer payload */
} appstore_notification_t;

/* body: the POST body {"signedPayload":"<JWS>"}. PG_ERR_BAD_INPUT malformed,
 * PG_ERR_BAD_SIGNATURE chain/signature/algorithm, PG_ERR_MISMATCH signed but
 * for another bundle, app or environment; err says which. */
pg_err appstore_verify_notification(appstore_verifier_t *v, const appstore_expect_t *e, arena_t *a,
                                    const char *body, size_t len, time_t now,
                                    appstore_notification_t *out, buf_t *err);
/* jws: a signedTransactionInfo (StoreKit 2 Transaction.jwsRepresentation). */
pg_err appstore_verify_transaction(appstore_verifier_t *v, const appstore_expect_t *e, arena_t *a,
                                   const char *jws, size_t len, time_t now,
                                   appstore_transaction_t *out, buf_t *err);

/* The App Store Server API bearer token: ES256 JWT, header kid = key_id,
 * claims iss, iat = now, exp = now + 1800 (Apple: at most an hour),
 * aud "appstoreconnect-v1", bid. Appended to out. */
pg_err appstore_api_token(const pki_privkey_t *key, const char *key_id, const char *issuer_id,
                          const char *bundle_id, time_t now, buf_t *out);
/* The reply of GET /inApps/v1/transactions/{id}: its signedTransactionInfo,
 * verified like any other. */
pg_err appstore_parse_lookup_reply(appstore_verifier_t *v, const appstore_expect_t *e, arena_t *a,
                                   const char *body, size_t len, time_t now,
                                   appstore_transaction_t *out, buf_t *err);

/* The App Store Server API client: GET /inApps/v1/transactions/{id} with
 * the ES256 bearer token; the reply's signedTransactionInfo verified like
 * any other. PG_ERR_NOT_FOUND Apple knows no such transaction. */
typedef struct appstore_api {
    const char *api_base;
    const char *issuer_id;
    const char *key_id;
    const char *bundle_id;
    pki_privkey_t *key;            /* NULL: no API key configured */
    httpc_opts_t http;
} appstore_api_t;
pg_err appstore_lookup_transaction(const appstore_api_t *api, appstore_verifier_t *v, const appstore_expect_t *e,
                                   arena_t *a, const char *transaction_id, time_t now,
                                   appstore_transaction_t *out, buf_t *err);

#endif
