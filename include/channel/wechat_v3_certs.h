/* wechat_v3_certs: WeChat Pay platform certificates for platform-certificate
 * mode (merchants without the WeChat Pay public key). Kept as
 * platform_cert_dir/<SERIAL>.pem (the serial upper-case hex, the file's own
 * certificate must carry it), loaded at start, fetched from /v3/certificates
 * (decrypted with the api_v3_key) and written atomically, refreshed every
 * WXV3_CERTS_REFRESH_S and — at most once per WXV3_CERTS_RETRY_S — when a
 * message names a serial we do not hold. Only certificates valid at the
 * time of use verify anything. No database, no FastCGI. */
#ifndef WECHAT_V3_CERTS_H
#define WECHAT_V3_CERTS_H
#include <stdbool.h>
#include <stddef.h>
#include <time.h>
#include "arena.h"
#include "buf.h"
#include "crypto.h"
#include "crypto_v3.h"
#include "pg_err.h"
#include "wechat_v3.h"

#define WXV3_CERTS_KEEP 16
#define WXV3_CERTS_REFRESH_S (12 * 3600)   /* WeChat: fetch at least every 12 hours */
#define WXV3_CERTS_RETRY_S 60              /* an unknown serial triggers at most this often */

typedef struct wxv3_cert {
    char serial[CRYPTO_X509_SERIAL_MAX + 1];
    crypto_key_t *key;
    time_t not_before, not_after;
} wxv3_cert_t;

typedef struct wxv3_certstore {
    char dir[512];
    wxv3_cert_t certs[WXV3_CERTS_KEEP];
    size_t count;
    wxv3_platform_key_t valid[WXV3_CERTS_KEEP];   /* what wxv3_certstore_attach hands out */
    time_t last_fetch, last_attempt;
} wxv3_certstore_t;

/* Loads dir/<SERIAL>.pem files (others are ignored; a file whose
 * certificate has another serial is an error: PG_ERR_CONFIG). */
pg_err wxv3_certstore_open(wxv3_certstore_t *s, const char *dir, buf_t *err);
void   wxv3_certstore_close(wxv3_certstore_t *s);

/* Points c->platform at the certificates valid at now. */
void   wxv3_certstore_attach(wxv3_certstore_t *s, wxv3_client_t *c, time_t now);

/* Fetches /v3/certificates and keeps every certificate in it (written to
 * dir, loaded). The reply is verified with the keys c already holds; on a
 * first fetch (its serial unknown) with the certificate of that serial
 * from the reply itself, which the api_v3_key authenticated. */
pg_err wxv3_certstore_refresh(wxv3_certstore_t *s, arena_t *a, wxv3_client_t *c, time_t now, buf_t *err);

/* true when no valid certificate is held or the last fetch is older than
 * WXV3_CERTS_REFRESH_S. */
bool   wxv3_certstore_due(const wxv3_certstore_t *s, time_t now);

/* wxv3_verify with the store attached; a serial we do not hold triggers one
 * refresh (rate-limited) and one more try. */
pg_err wxv3_certstore_verify(wxv3_certstore_t *s, arena_t *a, wxv3_client_t *c,
                             const wxv3_sig_headers_t *h, const char *body, size_t len, time_t now,
                             buf_t *reason);

#endif
