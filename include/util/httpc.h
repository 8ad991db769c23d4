/* httpc: outbound HTTPS, the only user of libcurl. Verifies the peer; the
 * CA file is configurable (sandbox). Connect and total timeouts always set. */
#ifndef HTTPC_H
#define HTTPC_H
#include <stddef.h>
#include "buf.h"
#include "pg_err.h"

typedef struct httpc_opts {
    const char *ca_file;        /* NULL/"" = system bundle */
    const char *client_cert;    /* mutual TLS (WeChat refunds); NULL = none */
    const char *client_key;
    long connect_timeout_ms;    /* 0 = 3000 */
    long total_timeout_ms;      /* 0 = 10000 */
    size_t max_response;        /* 0 = 1 MiB; larger -> PG_ERR_TOO_LARGE */
} httpc_opts_t;

typedef struct httpc_response {
    long status;                /* HTTP status, 0 if none */
    buf_t body;                 /* initialised by httpc_post with the given arena */
} httpc_response_t;

/* POSTs body with the given Content-Type. PG_ERR_TIMEOUT on timeouts,
 * PG_ERR_UPSTREAM on connection/TLS failures (err gets curl's reason). */
pg_err httpc_post(arena_t *arena, const char *url, const char *content_type,
                  const char *body, size_t body_len, const httpc_opts_t *opts,
                  httpc_response_t *resp, buf_t *err);
/* The same with extra request headers ("Name: value", NULL-terminated). */
pg_err httpc_post_headers(arena_t *arena, const char *url, const char *content_type,
                          const char *const *headers, const char *body, size_t body_len,
                          const httpc_opts_t *opts, httpc_response_t *resp, buf_t *err);
pg_err httpc_get(arena_t *arena, const char *url, const httpc_opts_t *opts,
                 httpc_response_t *resp, buf_t *err);

/* GET with extra request headers ("Name: value", NULL-terminated). */
pg_err httpc_get_headers(arena_t *arena, const char *url, const char *const *headers, const httpc_opts_t *opts,
                         httpc_response_t *resp, buf_t *err);

void httpc_global_init(void);   /* once per process, before threads */
void httpc_global_cleanup(void);

#endif
