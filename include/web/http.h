/* http: the request and reply of one FastCGI request, without FastCGI.
 * fcgi-app/ fills http_request_t from the CGI parameters and the body; the
 * handlers read it and fill http_response_t; fcgi-app/ writes it out. */
#ifndef HTTP_H
#define HTTP_H
#include <stdbool.h>
#include <stddef.h>
#include "arena.h"
#include "buf.h"
#include "kv.h"
#include "pg_err.h"

#define HTTP_MAX_BODY (64 * 1024)

typedef struct http_request {
    const char *method;
    const char *request_uri;    /* as received, with the query */
    const char *path;           /* decoded-free path relative to base_url, starts with '/' */
    const char *query_string;
    const char *content_type;
    const char *authorization;
    const char *user_agent;
    const char *accept_language;  /* NULL when absent */
    const char *remote_addr;
    const char *forwarded_for;  /* X-Forwarded-For, believed only from [server] trusted_proxies */
    const char *cookie;         /* Cookie header (the console's session), NULL when absent */
    const char *origin;         /* Origin header (the console refuses cross-site POSTs), NULL when absent */
    const char *stripe_signature;  /* Stripe-Signature (POST /notify/stripe), NULL when absent */
    /* Wechatpay-Timestamp/-Nonce/-Signature/-Serial (WeChat Pay API v3 notifications), NULL when absent */
    const char *wechatpay_timestamp, *wechatpay_nonce, *wechatpay_signature, *wechatpay_serial;
    const char *body;
    size_t body_len;
    kv_list_t query;            /* decoded query string */
} http_request_t;

typedef struct http_response {
    int status;
    const char *content_type;
    buf_t headers;              /* extra "Name: value\r\n" lines */
    buf_t body;
    const char *log_order_no;   /* for the access log */
    const char *log_payment_no;
    const char *route;          /* the matched route pattern (metrics label), NULL if none */
} http_response_t;

void http_response_init(http_response_t *r, arena_t *a);

/* Splits request_uri into path (under base_path) and query, and decodes
 * the query. PG_ERR_NOT_FOUND when the path is not under base_path,
 * PG_ERR_BAD_INPUT on bad percent-encoding. */
pg_err http_request_route_path(http_request_t *r, arena_t *a, const char *base_path);

/* Fields of a POST body: form-encoded, or a flat JSON object whose values
 * are strings or integers (stored as their decimal text). Merged after the
 * query fields. PG_ERR_BAD_INPUT on malformed bodies or other JSON types. */
pg_err http_request_fields(const http_request_t *r, arena_t *a, kv_list_t *fields);

/* The Bearer token of the Authorization header, or NULL. */
const char *http_bearer_token(const http_request_t *r);

void http_reply_json_error(http_response_t *res, int status, const char *code, const char *message);
void http_reply_text(http_response_t *res, int status, const char *text);
void http_reply_redirect(http_response_t *res, const char *location);
/* Starts an HTML page with a title (escaped); http_html_end closes it. */
void http_html_begin(http_response_t *res, int status, const char *title);   /* lang "en" */
void http_html_begin_lang(http_response_t *res, int status, const char *lang, const char *title);
void http_html_end(http_response_t *res);

#endif
