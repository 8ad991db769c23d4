/* fake_gw: a one-shot fake HTTP server on loopback for the adapters' unit
 * tests (test_alipay.c, test_wechat.c): a forked child accepts one
 * connection, sends the raw request it received up a pipe and answers with
 * a fixed status and body, or stays silent for delay_s seconds. Included by
 * each test program (static functions: every runner is its own binary). */
#ifndef FAKE_GW_H
#define FAKE_GW_H
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "arena.h"
#include "buf.h"

typedef struct fake_gw {
    pid_t pid;
    int port;
    int pipe_rd;            /* the request the child received */
} fake_gw_t;

/* Child: accepts one connection, answers 100-continue if asked, reads the
 * request (headers + Content-Length body), sends it up the pipe, replies
 * with `status`/`body` (or, with delay_s, says nothing for that long). */
static void fake_gw_child(int lfd, int wfd, int status, const char *content_type, const char *body,
                          unsigned delay_s)
{
    char req[65536], hdr[256];
    size_t have = 0, need = 0;
    int cfd;
    const char *eoh = NULL;

    alarm(10);
    cfd = accept(lfd, NULL, NULL);
    if (cfd < 0)
        _exit(2);
    while (have < sizeof req - 1) {
        ssize_t n = read(cfd, req + have, sizeof req - 1 - have);
        if (n <= 0)
            break;
        have += (size_t)n;
        req[have] = '\0';
        if (eoh == NULL && (eoh = strstr(req, "\r\n\r\n")) != NULL) {
            const char *cl = strcasestr(req, "\r\ncontent-length:");
            need = (size_t)(eoh - req) + 4 + (cl != NULL ? strtoul(cl + 17, NULL, 10) : 0);
            if (strcasestr(req, "\r\nexpect: 100-continue") != NULL &&
                write(cfd, "HTTP/1.1 100 Continue\r\n\r\n", 25) != 25)
                _exit(3);
        }
        if (eoh != NULL && have >= need)
            break;
    }
    if (write(wfd, req, have) != (ssize_t)have)
        _exit(4);
    close(wfd);
    if (delay_s > 0) {
        sleep(delay_s);
        _exit(0);
    }
    snprintf(hdr, sizeof hdr,
             "HTTP/1.1 %d X\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
             status, content_type, strlen(body));
    if (write(cfd, hdr, strlen(hdr)) < 0 || write(cfd, body, strlen(body)) < 0)
        _exit(5);
    shutdown(cfd, SHUT_WR);
    close(cfd);
    _exit(0);
}

static void fake_gw_start(fake_gw_t *g, int status, const char *content_type, const char *body, unsigned delay_s)
{
    struct sockaddr_in sa;
    socklen_t sl = sizeof sa;
    int lfd, p[2];

    lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(lfd >= 0);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(lfd, 1), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &sl), 0);
    assert_int_equal(pipe(p), 0);
    g->port = ntohs(sa.sin_port);
    g->pid = fork();
    assert_true(g->pid >= 0);
    if (g->pid == 0) {
        close(p[0]);
        fake_gw_child(lfd, p[1], status, content_type, body, delay_s);
    }
    close(lfd);
    close(p[1]);
    g->pipe_rd = p[0];
}

/* Waits for the child; returns the raw request it saw (arena string). */
static char *fake_gw_finish(fake_gw_t *g, arena_t *a, int kill_child)
{
    buf_t req;
    char chunk[4096];
    ssize_t n;
    int st = 0;

    if (kill_child)
        kill(g->pid, SIGKILL);
    buf_init(&req, a);
    while ((n = read(g->pipe_rd, chunk, sizeof chunk)) > 0)
        buf_append(&req, chunk, (size_t)n);
    close(g->pipe_rd);
    assert_int_equal(waitpid(g->pid, &st, 0), g->pid);
    if (!kill_child)
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    return req.data;
}

#endif
