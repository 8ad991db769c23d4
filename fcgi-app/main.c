/* paygate.fcgi: the FastCGI executable. The only place that knows FastCGI:
 * the accept loop, reading a request into http_request_t, writing the reply,
 * the access log and a graceful SIGTERM (the request in flight finishes).
 *
 * Runs under spawn-fcgi (listening socket on fd 0), under Apache mod_fcgid
 * (the same), or stand-alone with -s ADDR (":9000" or "/path/to.sock"). */
#include <errno.h>
#include <fcgiapp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "app.h"
#include "http.h"
#include "httpc.h"
#include "log.h"
#include "metrics.h"
#include "routes.h"
#include "xml.h"

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* While waiting in accept() a stop signal must interrupt it (no SA_RESTART);
 * while serving, it must not break the request's reads and writes
 * (SA_RESTART): the flag is checked once the request is finished. */
static void install_signals(int restart)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = restart ? SA_RESTART : 0;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);   /* mod_fcgid's graceful stop */
}

static const char *param(FCGX_Request *r, const char *name)
{
    return FCGX_GetParam(name, r->envp);
}

/* Reads the body up to HTTP_MAX_BODY; PG_ERR_TOO_LARGE beyond it. */
static pg_err read_body(FCGX_Request *r, arena_t *a, http_request_t *req)
{
    const char *cl = param(r, "CONTENT_LENGTH");
    char *body;
    size_t got = 0;
    long long declared = cl && *cl ? strtoll(cl, NULL, 10) : 0;
    if (declared > HTTP_MAX_BODY)
        return PG_ERR_TOO_LARGE;
    body = arena_alloc(a, HTTP_MAX_BODY + 2);
    if (!body)
        return PG_ERR_NOMEM;
    for (;;) {
        int n = FCGX_GetStr(body + got, (int)(HTTP_MAX_BODY + 1 - got), r->in);
        if (n <= 0)
            break;
        got += (size_t)n;
        if (got > HTTP_MAX_BODY)
            return PG_ERR_TOO_LARGE;
    }
    body[got] = '\0';
    req->body = body;
    req->body_len = got;
    return PG_OK;
}

/* The header block is formatted here (libfcgi's own printf lacks %zu). */
static void write_response(FCGX_Request *r, const http_response_t *res)
{
    char head[512];
    int n = snprintf(head, sizeof head,
                     "Status: %d\r\nContent-Type: %s\r\nCache-Control: no-store\r\n"
                     "X-Content-Type-Options: nosniff\r\n",
                     res->status, res->content_type);
    FCGX_PutStr(head, n, r->out);
    if (res->headers.len)
        FCGX_PutStr(res->headers.data, (int)res->headers.len, r->out);
    n = snprintf(head, sizeof head, "Content-Length: %zu\r\n\r\n", res->body.len);
    FCGX_PutStr(head, n, r->out);
    if (res->body.len)
        FCGX_PutStr(res->body.data, (int)res->body.len, r->out);
}

/* Microseconds since t0 (integers only: no floating point in this program). */
static long long elapsed_us(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (long long)(t1.tv_sec - t0->tv_sec) * 1000000LL + (t1.tv_nsec - t0->tv_nsec) / 1000;
}

static void serve_one(pg_app_t *app, arena_t *a, FCGX_Request *r)
{
    http_request_t req;
    http_response_t res;
    struct timespec t0;
    long long us;
    pg_err rc;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    memset(&req, 0, sizeof req);
    http_response_init(&res, a);
    req.method = param(r, "REQUEST_METHOD");
    req.request_uri = param(r, "REQUEST_URI");
    req.query_string = param(r, "QUERY_STRING");
    req.content_type = param(r, "CONTENT_TYPE");
    req.authorization = param(r, "HTTP_AUTHORIZATION");
    req.user_agent = param(r, "HTTP_USER_AGENT");
    req.accept_language = param(r, "HTTP_ACCEPT_LANGUAGE");
    req.remote_addr = param(r, "REMOTE_ADDR");
    req.forwarded_for = param(r, "HTTP_X_FORWARDED_FOR");
    req.cookie = param(r, "HTTP_COOKIE");
    req.origin = param(r, "HTTP_ORIGIN");
    req.stripe_signature = param(r, "HTTP_STRIPE_SIGNATURE");
    req.wechatpay_timestamp = param(r, "HTTP_WECHATPAY_TIMESTAMP");
    req.wechatpay_nonce = param(r, "HTTP_WECHATPAY_NONCE");
    req.wechatpay_signature = param(r, "HTTP_WECHATPAY_SIGNATURE");
    req.wechatpay_serial = param(r, "HTTP_WECHATPAY_SERIAL");
    if (!req.method)
        req.method = "GET";
    rc = read_body(r, a, &req);
    if (rc == PG_ERR_TOO_LARGE)
        http_reply_json_error(&res, 413, "body_too_large", "request bodies are limited to 64 KiB");
    else if (rc != PG_OK)
        http_reply_json_error(&res, 500, "internal_error", "out of memory");
    else
        routes_handle(app, a, &req, &res);
    write_response(r, &res);
    /* The access log: one line per request; never the query (it may carry signatures). */
    us = elapsed_us(&t0);
    metrics_request(res.route, res.status, us);
    log_msg(LOG_INFO, "%s %s %d %lld.%03lldms order=%s payment=%s", req.method,
            req.path ? req.path : "-", res.status, us / 1000, us % 1000,
            res.log_order_no ? res.log_order_no : "-", res.log_payment_no ? res.log_payment_no : "-");
}

static int usage(void)
{
    fprintf(stderr, "usage: paygate.fcgi [-c CONFIG] [-s :PORT|/path/to.sock]\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *config_arg = NULL, *listen_on = NULL;
    pg_app_t *app = NULL;
    buf_t err;
    arena_t arena;
    FCGX_Request request;
    int fd = 0, opt;
    while ((opt = getopt(argc, argv, "c:s:h")) != -1) {
        if (opt == 'c')
            config_arg = optarg;
        else if (opt == 's')
            listen_on = optarg;
        else
            return usage();
    }
    buf_init(&err, NULL);
    if (app_open(config_default_path(config_arg), &app, &err) != PG_OK) {
        fprintf(stderr, "paygate.fcgi: configuration errors:\n%s", err.data);
        buf_free(&err);
        return 1;
    }
    if (err.len)
        fprintf(stderr, "%s", err.data);
    buf_free(&err);
    httpc_global_init();
    xml_global_init();
    if (FCGX_Init() != 0) {
        fprintf(stderr, "paygate.fcgi: FCGX_Init failed\n");
        return 1;
    }
    if (listen_on) {
        fd = FCGX_OpenSocket(listen_on, 128);
        if (fd < 0) {
            fprintf(stderr, "paygate.fcgi: cannot listen on %s\n", listen_on);
            return 1;
        }
    }
    signal(SIGPIPE, SIG_IGN);   /* a client gone mid-reply is an error return, not a death */
    install_signals(0);
    FCGX_InitRequest(&request, fd, FCGI_FAIL_ACCEPT_ON_INTR);
    arena_init(&arena, 64 * 1024);
    log_msg(LOG_INFO, "paygate.fcgi started");
    while (!stop_requested && FCGX_Accept_r(&request) == 0) {
        install_signals(1);
        serve_one(app, &arena, &request);
        FCGX_Finish_r(&request);
        arena_reset(&arena);
        install_signals(0);
    }
    log_msg(LOG_INFO, "paygate.fcgi stopping");
    FCGX_Free(&request, 1);
    arena_free(&arena);
    app_close(app);
    httpc_global_cleanup();
    xml_global_cleanup();
    log_close();
    return 0;
}
