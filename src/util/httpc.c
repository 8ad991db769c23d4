/* httpc: outbound HTTP(S), the only user of libcurl.
 *
 * Every call verifies the peer and the host name, sets connect and total
 * timeouts, bounds the response size, follows no redirects and never lets
 * curl raise signals (the FastCGI workers may be threaded). Plain http is
 * allowed only because the sandbox/demo gateway may sit on loopback without
 * TLS; which URL is called is the configuration's business. */
#include "httpc.h"

#include <string.h>
#include <arpa/inet.h>
#include <curl/curl.h>

#define HTTPC_DEFAULT_CONNECT_MS 3000L
#define HTTPC_DEFAULT_TOTAL_MS   10000L
#define HTTPC_DEFAULT_MAX        ((size_t)1 << 20)

typedef struct httpc_sink {
    buf_t *body;
    size_t max;
    int too_large;
    int nomem;
} httpc_sink_t;

/* Returning less than asked makes curl stop with CURLE_WRITE_ERROR; the
 * flags say why, so the caller can report TOO_LARGE rather than UPSTREAM. */
static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    httpc_sink_t *s = userdata;
    size_t n = size * nmemb;

    if (n > s->max || s->body->len > s->max - n) {
        s->too_large = 1;
        return 0;
    }
    if (buf_append(s->body, ptr, n) != PG_OK) {
        s->nomem = 1;
        return 0;
    }
    return n;
}

/* True when the URL's host is a name rather than an IPv4/IPv6 literal.
 * Names are resolved to IPv4 only: IPv6 lookups without a route have
 * stalled other payment clients for the whole connect timeout. */
static int host_is_name(const char *url)
{
    CURLU *h = curl_url();
    char *host = NULL;
    int is_name = 1;
    unsigned char tmp[16];

    if (h == NULL)
        return 1;
    if (curl_url_set(h, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(h, CURLUPART_HOST, &host, 0) == CURLUE_OK && host != NULL) {
        if (host[0] == '[' || inet_pton(AF_INET, host, tmp) == 1 ||
            inet_pton(AF_INET6, host, tmp) == 1)
            is_name = 0;
    }
    curl_free(host);
    curl_url_cleanup(h);
    return is_name;
}

/* One handle per process (paygate serves one request at a time): it keeps
 * the connection cache, TLS sessions and the parsed CA store, so a call to
 * the same gateway costs no new handshake. */
static CURL *httpc_cached;

static CURL *httpc_handle(void)
{
    if (httpc_cached == NULL)
        httpc_cached = curl_easy_init();
    return httpc_cached;
}

static pg_err httpc_perform(arena_t *arena, const char *url, const char *content_type,
                            const char *const *extra_headers,
                            const char *body, size_t body_len, int is_post,
                            const httpc_opts_t *opts, httpc_response_t *resp, buf_t *err)
{
    static const httpc_opts_t no_opts;
    CURL *h = NULL;
    struct curl_slist *headers = NULL, *tmp_list;
    char errbuf[CURL_ERROR_SIZE];
    httpc_sink_t sink;
    CURLcode cc;
    pg_err rc = PG_ERR_INTERNAL;
    long connect_ms, total_ms;

    if (opts == NULL)
        opts = &no_opts;
    buf_init(&resp->body, arena);
    resp->status = 0;
    if (url == NULL || url[0] == '\0') {
        buf_set_error(err, "httpc: no URL");
        return PG_ERR_CONFIG;
    }

    connect_ms = opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms : HTTPC_DEFAULT_CONNECT_MS;
    total_ms = opts->total_timeout_ms > 0 ? opts->total_timeout_ms : HTTPC_DEFAULT_TOTAL_MS;
    sink.body = &resp->body;
    sink.max = opts->max_response > 0 ? opts->max_response : HTTPC_DEFAULT_MAX;
    sink.too_large = 0;
    sink.nomem = 0;
    errbuf[0] = '\0';

    h = httpc_handle();
    if (h == NULL) {
        buf_set_error(err, "httpc: curl_easy_init failed");
        rc = PG_ERR_INTERNAL;
        goto done;
    }

#define SETOPT(opt, val)                                                      \
    do {                                                                      \
        if ((cc = curl_easy_setopt(h, opt, val)) != CURLE_OK) {               \
            buf_set_error(err, "httpc: setopt %s: %s", #opt, curl_easy_strerror(cc)); \
            rc = PG_ERR_INTERNAL;                                             \
            goto done;                                                        \
        }                                                                     \
    } while (0)

    SETOPT(CURLOPT_URL, url);
    SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
    SETOPT(CURLOPT_REDIR_PROTOCOLS_STR, "https");
    SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
    SETOPT(CURLOPT_NOSIGNAL, 1L);
    SETOPT(CURLOPT_ERRORBUFFER, errbuf);
    SETOPT(CURLOPT_SSL_VERIFYPEER, 1L);
    SETOPT(CURLOPT_SSL_VERIFYHOST, 2L);
    if (opts->ca_file != NULL && opts->ca_file[0] != '\0')
        SETOPT(CURLOPT_CAINFO, opts->ca_file);
    if (opts->client_cert != NULL && opts->client_cert[0] != '\0') {
        SETOPT(CURLOPT_SSLCERT, opts->client_cert);
        SETOPT(CURLOPT_SSLCERTTYPE, "PEM");
        if (opts->client_key != NULL && opts->client_key[0] != '\0') {
            SETOPT(CURLOPT_SSLKEY, opts->client_key);
            SETOPT(CURLOPT_SSLKEYTYPE, "PEM");
        }
    }
    SETOPT(CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    SETOPT(CURLOPT_TIMEOUT_MS, total_ms);
    if (host_is_name(url))
        SETOPT(CURLOPT_IPRESOLVE, (long)CURL_IPRESOLVE_V4);
    SETOPT(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)sink.max);
    SETOPT(CURLOPT_WRITEFUNCTION, write_cb);
    SETOPT(CURLOPT_WRITEDATA, &sink);
    SETOPT(CURLOPT_USERAGENT, "paygate/1");
    SETOPT(CURLOPT_ACCEPT_ENCODING, "identity");

    if (is_post) {
        if (content_type == NULL)
            content_type = "application/octet-stream";
        {
            char *line = arena_printf(arena, "Content-Type: %s", content_type);
            if (line == NULL) {
                rc = PG_ERR_NOMEM;
                goto done;
            }
            tmp_list = curl_slist_append(headers, line);
            if (tmp_list == NULL) {
                rc = PG_ERR_NOMEM;
                goto done;
            }
            headers = tmp_list;
        }
        for (const char *const *x = extra_headers; x && *x; x++) {
            tmp_list = curl_slist_append(headers, *x);
            if (tmp_list == NULL) {
                rc = PG_ERR_NOMEM;
                goto done;
            }
            headers = tmp_list;
        }
        /* No "Expect: 100-continue" round trip for small bodies. */
        tmp_list = curl_slist_append(headers, "Expect:");
        if (tmp_list == NULL) {
            rc = PG_ERR_NOMEM;
            goto done;
        }
        headers = tmp_list;
        SETOPT(CURLOPT_HTTPHEADER, headers);
        SETOPT(CURLOPT_POST, 1L);
        SETOPT(CURLOPT_POSTFIELDS, body != NULL ? body : "");
        SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body != NULL ? body_len : 0));
    } else {
        for (const char *const *x = extra_headers; x && *x; x++) {
            tmp_list = curl_slist_append(headers, *x);
            if (tmp_list == NULL) {
                rc = PG_ERR_NOMEM;
                goto done;
            }
            headers = tmp_list;
        }
        if (headers != NULL)
            SETOPT(CURLOPT_HTTPHEADER, headers);
        SETOPT(CURLOPT_HTTPGET, 1L);
    }
#undef SETOPT

    cc = curl_easy_perform(h);
    (void)curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);

    if (cc != CURLE_OK) {
        if (sink.nomem) {
            buf_set_error(err, "httpc: out of memory reading the response");
            rc = PG_ERR_NOMEM;
        } else if (sink.too_large || cc == CURLE_FILESIZE_EXCEEDED) {
            buf_set_error(err, "httpc: response larger than %zu bytes", sink.max);
            rc = PG_ERR_TOO_LARGE;
        } else if (cc == CURLE_OPERATION_TIMEDOUT) {
            buf_set_error(err, "httpc: timeout: %s", errbuf[0] ? errbuf : curl_easy_strerror(cc));
            rc = PG_ERR_TIMEOUT;
        } else {
            buf_set_error(err, "httpc: %s", errbuf[0] ? errbuf : curl_easy_strerror(cc));
            rc = PG_ERR_UPSTREAM;
        }
        goto done;
    }
    if (resp->status >= 500) {
        buf_set_error(err, "httpc: HTTP %ld from upstream", resp->status);
        rc = PG_ERR_UPSTREAM;
        goto done;
    }
    if (resp->body.failed) {
        rc = PG_ERR_NOMEM;
        goto done;
    }
    rc = PG_OK;

done:
    /* Options (and the pointers to this frame) go; connections, TLS sessions
     * and the CA store stay for the next call. */
    if (h != NULL)
        curl_easy_reset(h);
    curl_slist_free_all(headers);
    return rc;
}

pg_err httpc_post(arena_t *arena, const char *url, const char *content_type,
                  const char *body, size_t body_len, const httpc_opts_t *opts,
                  httpc_response_t *resp, buf_t *err)
{
    return httpc_perform(arena, url, content_type, NULL, body, body_len, 1, opts, resp, err);
}

pg_err httpc_post_headers(arena_t *arena, const char *url, const char *content_type,
                          const char *const *headers, const char *body, size_t body_len,
                          const httpc_opts_t *opts, httpc_response_t *resp, buf_t *err)
{
    return httpc_perform(arena, url, content_type, headers, body, body_len, 1, opts, resp, err);
}

pg_err httpc_get(arena_t *arena, const char *url, const httpc_opts_t *opts,
                 httpc_response_t *resp, buf_t *err)
{
    return httpc_perform(arena, url, NULL, NULL, NULL, 0, 0, opts, resp, err);
}

pg_err httpc_get_headers(arena_t *arena, const char *url, const char *const *headers, const httpc_opts_t *opts,
                         httpc_response_t *resp, buf_t *err)
{
    return httpc_perform(arena, url, NULL, headers, NULL, 0, 0, opts, resp, err);
}

void httpc_global_init(void)
{
    (void)curl_global_init(CURL_GLOBAL_DEFAULT);
}

void httpc_global_cleanup(void)
{
    if (httpc_cached != NULL)
        curl_easy_cleanup(httpc_cached);
    httpc_cached = NULL;
    curl_global_cleanup();
}
