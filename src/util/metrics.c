/* metrics: shared counters and the Prometheus exposition. See include/metrics.h. */
#include "metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "netaddr.h"
#include "crypto.h"

/* ------------------------------------------------------------------ */
/* Label tables: the only values a label can take. Changing one changes */
/* the layout hash, so an old file is replaced, never misread.          */

static const char *const ROUTES[] = {
    "/healthz", "/checkout", "/notify/alipay", "/notify/wechat", "/notify/wechat/refund",
    "/return/alipay", "/orders/*", "/orders/*/refund", "/orders/*/close", "/entitlements",
    "/shop", "/pay/*", "/metrics", "/admin/", "/notify/stripe", "/return/stripe",
    "/notify/appstore", "/iap/appstore", "/iap/account-token", "/notify/googleplay", "/iap/googleplay",
    "/notify/wechat/transfer", "/payouts/*/confirm", "other", "unmatched",
};
#define ROUTE_N (sizeof ROUTES / sizeof ROUTES[0])
#define ROUTE_OTHER (ROUTE_N - 2)
#define ROUTE_UNMATCHED (ROUTE_N - 1)

static const int STATUSES[] = { 200, 201, 204, 301, 302, 303, 304, 400, 401, 403, 404, 405,
                                409, 413, 422, 429, 500, 502, 503, 504 };
#define STATUS_N (sizeof STATUSES / sizeof STATUSES[0] + 1)   /* + "other" */

static const char *const CHANNELS[] = { "alipay", "wechat", "stripe", "appstore", "googleplay", "unknown" };
#define CH_N (sizeof CHANNELS / sizeof CHANNELS[0])

static const char *const METHODS[] = { "page", "wap", "qr", "native", "jsapi", "mweb", "checkout", "iap", "unknown" };
#define METHOD_N (sizeof METHODS / sizeof METHODS[0])

static const char *const CHECKOUT_RESULTS[] = { "created", "repeated", "invalid", "conflict",
                                                "provider_error", "provider_timeout", "db_error", "error" };
#define CRES_N (sizeof CHECKOUT_RESULTS / sizeof CHECKOUT_RESULTS[0])

static const char *const NOTIFY_KINDS[] = { "payment", "refund", "payout" };
#define NKIND_N (sizeof NOTIFY_KINDS / sizeof NOTIFY_KINDS[0])

static const char *const NOTIFY_OUTCOMES[] = { "accepted", "duplicate", "ignored", "bad_signature",
                                               "mismatch", "amount_mismatch", "unknown_payment",
                                               "bad_input", "error", "anomaly", "other" };
#define NOUT_N (sizeof NOTIFY_OUTCOMES / sizeof NOTIFY_OUTCOMES[0])

/* operation names, and the provider methods/paths that are each of them */
static const char *const OPERATIONS[] = { "create", "query", "close", "refund", "refund_query", "bill",
                                          "transfer", "transfer_query", "mp_token", "jsapi_ticket", "other" };
#define OP_N (sizeof OPERATIONS / sizeof OPERATIONS[0])
static const struct { const char *call; unsigned op; } OPERATION_CALLS[] = {
    { "alipay.trade.precreate", 0 }, { "alipay.trade.create", 0 }, { "/pay/unifiedorder", 0 },
    { "alipay.trade.query", 1 }, { "/pay/orderquery", 1 },
    { "alipay.trade.close", 2 }, { "/pay/closeorder", 2 },
    { "alipay.trade.refund", 3 }, { "/secapi/pay/refund", 3 },
    { "alipay.trade.fastpay.refund.query", 4 }, { "/pay/refundquery", 4 },
    { "alipay.data.dataservice.bill.downloadurl.query", 5 }, { "/pay/downloadbill", 5 },
    { "bill_download", 5 },
    { "alipay.fund.trans.uni.transfer", 6 }, { "alipay.fund.trans.common.query", 7 },
    { "stripe.session.create", 0 }, { "stripe.session.retrieve", 1 }, { "stripe.session.expire", 2 },
    { "stripe.refund.create", 3 }, { "stripe.refund.list", 4 }, { "stripe.intent.retrieve", 1 },
    { "/v3/pay/transactions/native", 0 }, { "/v3/pay/transactions/jsapi", 0 }, { "/v3/pay/transactions/h5", 0 },
    { "/v3/pay/transactions/out-trade-no", 1 }, { "/v3/pay/transactions/out-trade-no/close", 2 },
    { "/v3/refund/domestic/refunds", 3 }, { "/v3/refund/domestic/refunds/query", 4 },
    { "/v3/bill/tradebill", 5 },
    { "/v3/fund-app/mch-transfer/transfer-bills", 6 }, { "/v3/fund-app/mch-transfer/transfer-bills/query", 7 },
    { "/cgi-bin/stable_token", 8 }, { "/cgi-bin/ticket/getticket", 9 },
};

static const char *const CALL_OUTCOMES[] = { "ok", "refused", "http_error", "timeout", "transport_error", "other" };
#define COUT_N (sizeof CALL_OUTCOMES / sizeof CALL_OUTCOMES[0])

static const char *const DB_ERROR_KINDS[] = { "lost", "lock", "duplicate", "other" };
#define DBE_N (sizeof DB_ERROR_KINDS / sizeof DB_ERROR_KINDS[0])

/* Latency buckets in microseconds; the last bucket is +Inf. */
static const uint64_t BUCKETS_US[] = { 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000,
                                       500000, 1000000, 2500000, 5000000, 10000000 };
#define BUCKET_N (sizeof BUCKETS_US / sizeof BUCKETS_US[0] + 1)

/* ------------------------------------------------------------------ */
/* The shared file                                                      */

typedef struct met_hist {
    uint64_t bucket[BUCKET_N];   /* per bucket, not cumulative; the total is their sum */
    uint64_t sum_us;
} met_hist_t;

typedef struct met_counters {
    uint64_t requests[ROUTE_N][STATUS_N];
    met_hist_t request_latency[ROUTE_N];
    uint64_t checkouts[CH_N][METHOD_N][CRES_N];
    uint64_t notifications[CH_N][NKIND_N][NOUT_N];
    uint64_t provider_calls[CH_N][OP_N][COUT_N];
    met_hist_t provider_latency[CH_N][OP_N];
    uint64_t db_errors[DBE_N];
    uint64_t db_reconnects[2];   /* ok, failed */
} met_counters_t;

#define MET_MAGIC "PGMETRIC"
#define MET_VERSION 1u

typedef struct met_file {
    char magic[8];
    uint32_t version;
    uint32_t size;               /* sizeof(met_file_t) */
    uint64_t layout_hash;        /* of the label tables */
    uint64_t created_at;
    uint64_t reserved[4];
    met_counters_t c;
} met_file_t;

static met_file_t *g_file;       /* the mapping, or g_private */
static met_file_t g_private;     /* when the file could not be used */
static bool g_shared;
static bool g_off;               /* [metrics] enabled = false */

static met_counters_t *counters(void)
{
    return g_file ? &g_file->c : &g_private.c;
}

static uint64_t fnv_str(uint64_t h, const char *s)
{
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    h ^= 0xff;   /* separator */
    return h * 1099511628211ULL;
}

static uint64_t fnv_list(uint64_t h, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = fnv_str(h, list[i]);
    return fnv_str(h, "|");
}

static uint64_t layout_hash(void)
{
    char num[24];
    uint64_t h = 14695981039346656037ULL;
    h = fnv_list(h, ROUTES, ROUTE_N);
    for (size_t i = 0; i < STATUS_N - 1; i++) {
        snprintf(num, sizeof num, "%d", STATUSES[i]);
        h = fnv_str(h, num);
    }
    h = fnv_list(h, CHANNELS, CH_N);
    h = fnv_list(h, METHODS, METHOD_N);
    h = fnv_list(h, CHECKOUT_RESULTS, CRES_N);
    h = fnv_list(h, NOTIFY_KINDS, NKIND_N);
    h = fnv_list(h, NOTIFY_OUTCOMES, NOUT_N);
    h = fnv_list(h, OPERATIONS, OP_N);
    h = fnv_list(h, CALL_OUTCOMES, COUT_N);
    h = fnv_list(h, DB_ERROR_KINDS, DBE_N);
    for (size_t i = 0; i < BUCKET_N - 1; i++) {
        snprintf(num, sizeof num, "%llu", (unsigned long long)BUCKETS_US[i]);
        h = fnv_str(h, num);
    }
    return h;
}

void metrics_default_path(const char *config_path, char *out, size_t n)
{
    char real[PATH_MAX];
    const char *p = config_path ? config_path : "";
    struct stat st;
    uint64_t h = 14695981039346656037ULL;
    if (config_path && realpath(config_path, real))
        p = real;
    h = fnv_str(h, p);
    snprintf(out, n, "%s/paygate-%u-%016llx.metrics",
             stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : "/tmp",
             (unsigned)geteuid(), (unsigned long long)h);
}

static bool header_ok(const met_file_t *f, uint64_t hash)
{
    return !memcmp(f->magic, MET_MAGIC, 8) && f->version == MET_VERSION && f->size == sizeof(met_file_t) &&
           f->layout_hash == hash;
}

/* Our own regular file only: a file someone else planted in a shared
 * folder could be truncated under us (SIGBUS) or read by them. */
static bool file_is_ours(int fd, struct stat *st)
{
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode))
        return false;
    return st->st_uid == geteuid() || geteuid() == 0;
}

static void header_init(met_file_t *f, uint64_t hash)
{
    memset(f, 0, sizeof *f);
    f->version = MET_VERSION;
    f->size = sizeof(met_file_t);
    f->layout_hash = hash;
    f->created_at = (uint64_t)time(NULL);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    memcpy(f->magic, MET_MAGIC, 8);
}

/* A fresh file of our layout at path: written beside it, renamed into place
 * (a process still mapping the old file keeps its old inode). */
static int replace_file(const char *path, uint64_t hash)
{
    char tmp[PATH_MAX];
    met_file_t *f;
    int fd;
    snprintf(tmp, sizeof tmp, "%s.%d.tmp", path, (int)getpid());
    fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    if (ftruncate(fd, (off_t)sizeof(met_file_t)) != 0)
        goto fail;
    f = mmap(NULL, sizeof(met_file_t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (f == MAP_FAILED)
        goto fail;
    header_init(f, hash);
    munmap(f, sizeof(met_file_t));
    if (rename(tmp, path) != 0)
        goto fail;
    close(fd);
    return 0;
fail:
    unlink(tmp);
    close(fd);
    return -1;
}

/* Opens path and locks it; -1 on failure, -2 when path was replaced while
 * we waited for the lock (try again). */
static int open_locked(const char *path, struct stat *st)
{
    struct stat now;
    int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    if (flock(fd, LOCK_EX) != 0 || !file_is_ours(fd, st)) {
        close(fd);
        return -1;
    }
    if (stat(path, &now) != 0 || now.st_ino != st->st_ino || now.st_dev != st->st_dev) {
        close(fd);
        return -2;
    }
    return fd;
}

/* Under the lock: an empty file is initialised in place (nobody can have
 * mapped it with a valid header), a file of another layout is replaced. */
static met_file_t *map_checked(const char *path, int fd, const struct stat *st, uint64_t hash, bool *again)
{
    met_file_t *f;
    *again = false;
    if (st->st_size == 0 && ftruncate(fd, (off_t)sizeof(met_file_t)) != 0)
        return NULL;
    if (st->st_size != 0 && st->st_size != (off_t)sizeof(met_file_t)) {
        *again = replace_file(path, hash) == 0;
        return NULL;
    }
    f = mmap(NULL, sizeof(met_file_t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (f == MAP_FAILED)
        return NULL;
    if (st->st_size == 0) {
        header_init(f, hash);
        return f;
    }
    if (header_ok(f, hash))
        return f;
    munmap(f, sizeof(met_file_t));
    *again = replace_file(path, hash) == 0;
    return NULL;
}

pg_err metrics_open(const char *state_file, const char *config_path)
{
    char def[PATH_MAX];
    const char *path = state_file;
    uint64_t hash = layout_hash();
    metrics_close();
    g_off = false;
    if (!path || !*path) {
        metrics_default_path(config_path, def, sizeof def);
        path = def;
    }
    for (int attempt = 0; attempt < 5; attempt++) {
        struct stat st;
        bool again = false;
        met_file_t *f = NULL;
        int fd = open_locked(path, &st);
        if (fd == -2)
            continue;
        if (fd >= 0) {
            f = map_checked(path, fd, &st, hash, &again);
            flock(fd, LOCK_UN);   /* explicitly: the mapping keeps the open file (and a lock) alive */
            close(fd);
        }
        if (f) {
            g_file = f;
            g_shared = true;
            return PG_OK;
        }
        if (!again)
            break;
    }
    log_msg(LOG_WARN, "metrics: cannot use the shared counters file %s (%s): counting in this process only",
            path, errno ? strerror(errno) : "not ours or not a regular file");
    return PG_ERR_INTERNAL;
}

void metrics_disable(void)
{
    metrics_close();
    g_off = true;
}

void metrics_close(void)
{
    if (g_file)
        munmap(g_file, sizeof(met_file_t));
    g_file = NULL;
    g_shared = false;
}

/* ------------------------------------------------------------------ */
/* Increments                                                           */

static void add(uint64_t *slot, uint64_t n)
{
    __atomic_fetch_add(slot, n, __ATOMIC_RELAXED);
}

static uint64_t load(const uint64_t *slot)
{
    return __atomic_load_n(slot, __ATOMIC_RELAXED);
}

static size_t index_of(const char *const *list, size_t n, const char *s, size_t fallback)
{
    if (s) {
        for (size_t i = 0; i < n; i++) {
            if (!strcmp(list[i], s))
                return i;
        }
    }
    return fallback;
}

static size_t status_index(int status)
{
    for (size_t i = 0; i < STATUS_N - 1; i++) {
        if (STATUSES[i] == status)
            return i;
    }
    return STATUS_N - 1;
}

static void observe(met_hist_t *h, long long us)
{
    size_t b = 0;
    uint64_t v = us > 0 ? (uint64_t)us : 0;
    while (b < BUCKET_N - 1 && v > BUCKETS_US[b])
        b++;
    add(&h->bucket[b], 1);
    add(&h->sum_us, v);
}

void metrics_request(const char *route, int status, long long duration_us)
{
    size_t r = route ? index_of(ROUTES, ROUTE_OTHER, route, ROUTE_OTHER) : ROUTE_UNMATCHED;
    met_counters_t *c = counters();
    if (g_off)
        return;
    add(&c->requests[r][status_index(status)], 1);
    observe(&c->request_latency[r], duration_us);
}

static size_t checkout_result(pg_err rc, bool repeated)
{
    switch (rc) {
    case PG_OK: return repeated ? 1 : 0;
    case PG_ERR_BAD_INPUT: case PG_ERR_UNSUPPORTED: case PG_ERR_NOT_FOUND: case PG_ERR_MISMATCH:
    case PG_ERR_TOO_LARGE: case PG_ERR_BAD_SIGNATURE: case PG_ERR_UNAUTHORIZED: return 2;
    case PG_ERR_CONFLICT: return 3;
    case PG_ERR_UPSTREAM: return 4;
    case PG_ERR_TIMEOUT: return 5;
    case PG_ERR_DB: return 6;
    default: return 7;
    }
}

void metrics_checkout(const char *channel, const char *method, pg_err rc, bool repeated)
{
    size_t ch = index_of(CHANNELS, CH_N, channel, CH_N - 1);
    size_t m = index_of(METHODS, METHOD_N, method, METHOD_N - 1);
    if (g_off)
        return;
    add(&counters()->checkouts[ch][m][checkout_result(rc, repeated)], 1);
}

void metrics_notification(const char *channel, const char *kind, const char *outcome)
{
    size_t ch, k, o;
    if (g_off)
        return;
    ch = index_of(CHANNELS, CH_N, channel, CH_N - 1);
    k = index_of(NOTIFY_KINDS, NKIND_N, kind, 0);
    o = outcome ? index_of(NOTIFY_OUTCOMES, NOUT_N, outcome, NOUT_N - 1) : 8 /* error */;
    add(&counters()->notifications[ch][k][o], 1);
}

static size_t operation_index(const char *call)
{
    if (call) {
        for (size_t i = 0; i < sizeof OPERATION_CALLS / sizeof OPERATION_CALLS[0]; i++) {
            if (!strcmp(OPERATION_CALLS[i].call, call))
                return OPERATION_CALLS[i].op;
        }
    }
    return OP_N - 1;
}

void metrics_provider_call(const char *channel, const char *operation, const char *outcome,
                           long long duration_us)
{
    size_t ch = index_of(CHANNELS, CH_N, channel, CH_N - 1);
    size_t op = operation_index(operation);
    if (g_off)
        return;
    met_counters_t *c = counters();
    add(&c->provider_calls[ch][op][index_of(CALL_OUTCOMES, COUT_N, outcome, COUT_N - 1)], 1);
    observe(&c->provider_latency[ch][op], duration_us);
}

const char *metrics_call_outcome(bool replied, bool http_status, pg_err rc)
{
    if (replied)
        return rc == PG_OK ? "ok" : "refused";
    if (http_status)
        return "http_error";
    return rc == PG_ERR_TIMEOUT ? "timeout" : "transport_error";
}

long long metrics_now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000LL + t.tv_nsec / 1000;
}

void metrics_db_error(const char *kind)
{
    if (g_off)
        return;
    add(&counters()->db_errors[index_of(DB_ERROR_KINDS, DBE_N, kind, DBE_N - 1)], 1);
}

void metrics_db_reconnect(bool ok)
{
    if (g_off)
        return;
    add(&counters()->db_reconnects[ok ? 0 : 1], 1);
}

/* ------------------------------------------------------------------ */
/* Access                                                               */

/* The allow list is parsed by netaddr (the same ranges as trusted_proxies). */
pg_err metrics_allow_check(const char *list, buf_t *err)
{
    netaddr_list_t l = { 0 };
    pg_err rc = netaddr_list_parse(list, &l, err);
    netaddr_list_free(&l);
    return rc;
}

bool metrics_addr_allowed(const char *list, const char *addr)
{
    netaddr_list_t l = { 0 };
    bool in = false;
    if (!list || !addr)
        return false;
    if (netaddr_list_parse(list, &l, NULL) == PG_OK)
        in = netaddr_list_contains(&l, addr);
    netaddr_list_free(&l);
    return in;
}

bool metrics_access_ok(const char *allow, const char *token, const char *remote_addr, const char *bearer)
{
    if (metrics_addr_allowed(allow, remote_addr))
        return true;
    return token && *token && bearer && crypto_ct_streq(bearer, token);
}

/* ------------------------------------------------------------------ */
/* Exposition                                                           */

void metrics_append_label_value(buf_t *b, const char *value)
{
    for (const char *p = value ? value : ""; *p; p++) {
        if (*p == '\\')
            buf_puts(b, "\\\\");
        else if (*p == '"')
            buf_puts(b, "\\\"");
        else if (*p == '\n')
            buf_puts(b, "\\n");
        else
            buf_putc(b, *p);
    }
}

static void write_labels(buf_t *b, const char *const *labels, size_t nlabels, const char *le)
{
    if (nlabels == 0 && !le)
        return;
    buf_putc(b, '{');
    for (size_t i = 0; i < nlabels; i++) {
        buf_printf(b, "%s%s=\"", i ? "," : "", labels[2 * i]);
        metrics_append_label_value(b, labels[2 * i + 1]);
        buf_putc(b, '"');
    }
    if (le) {
        buf_printf(b, "%sle=\"", nlabels ? "," : "");
        metrics_append_label_value(b, le);
        buf_putc(b, '"');
    }
    buf_putc(b, '}');
}

void metrics_write_sample(buf_t *b, const char *name, const char *const *labels, size_t nlabels, uint64_t value)
{
    buf_puts(b, name);
    write_labels(b, labels, nlabels, NULL);
    buf_printf(b, " %llu\n", (unsigned long long)value);
}

void metrics_write_head(buf_t *b, const char *name, const char *type, const char *help)
{
    buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Microseconds as seconds ("0.0025"), integers only. */
static void seconds_text(uint64_t us, char out[32])
{
    unsigned long long frac = us % 1000000;
    int digits = 6;
    if (frac == 0) {
        snprintf(out, 32, "%llu", (unsigned long long)(us / 1000000));
        return;
    }
    while (frac % 10 == 0) {
        frac /= 10;
        digits--;
    }
    snprintf(out, 32, "%llu.%0*llu", (unsigned long long)(us / 1000000), digits, frac);
}

static void write_hist(buf_t *b, const char *name, const char *const *labels, size_t nlabels, const met_hist_t *h)
{
    char le[32];
    uint64_t cum = 0, sum = load(&h->sum_us);
    for (size_t i = 0; i < BUCKET_N; i++) {
        cum += load(&h->bucket[i]);
        if (i < BUCKET_N - 1)
            seconds_text(BUCKETS_US[i], le);
        buf_printf(b, "%s_bucket", name);
        write_labels(b, labels, nlabels, i < BUCKET_N - 1 ? le : "+Inf");
        buf_printf(b, " %llu\n", (unsigned long long)cum);
    }
    seconds_text(sum, le);
    buf_printf(b, "%s_sum", name);
    write_labels(b, labels, nlabels, NULL);
    buf_printf(b, " %s\n%s_count", le, name);
    write_labels(b, labels, nlabels, NULL);
    buf_printf(b, " %llu\n", (unsigned long long)cum);
}

static uint64_t hist_total(const met_hist_t *h)
{
    uint64_t n = 0;
    for (size_t i = 0; i < BUCKET_N; i++)
        n += load(&h->bucket[i]);
    return n;
}

static void write_requests(buf_t *b, const met_counters_t *c)
{
    char status[16];
    metrics_write_head(b, "paygate_http_requests_total", "counter", "HTTP requests answered, by route and status.");
    for (size_t r = 0; r < ROUTE_N; r++) {
        for (size_t s = 0; s < STATUS_N; s++) {
            uint64_t v = load(&c->requests[r][s]);
            const char *l[] = { "route", ROUTES[r], "status", status };
            if (!v)
                continue;
            if (s < STATUS_N - 1)
                snprintf(status, sizeof status, "%d", STATUSES[s]);
            else
                snprintf(status, sizeof status, "other");
            metrics_write_sample(b, "paygate_http_requests_total", l, 2, v);
        }
    }
    metrics_write_head(b, "paygate_http_request_duration_seconds", "histogram",
               "Time from the request's arrival to its reply, by route.");
    for (size_t r = 0; r < ROUTE_N; r++) {
        const char *l[] = { "route", ROUTES[r] };
        if (hist_total(&c->request_latency[r]))
            write_hist(b, "paygate_http_request_duration_seconds", l, 1, &c->request_latency[r]);
    }
}

static void write_business(buf_t *b, const met_counters_t *c)
{
    metrics_write_head(b, "paygate_checkouts_total", "counter", "Checkouts, by channel, method and result.");
    for (size_t ch = 0; ch < CH_N; ch++)
        for (size_t m = 0; m < METHOD_N; m++)
            for (size_t r = 0; r < CRES_N; r++) {
                const char *l[] = { "channel", CHANNELS[ch], "method", METHODS[m], "result", CHECKOUT_RESULTS[r] };
                uint64_t v = load(&c->checkouts[ch][m][r]);
                if (v)
                    metrics_write_sample(b, "paygate_checkouts_total", l, 3, v);
            }
    metrics_write_head(b, "paygate_notifications_total", "counter",
               "Provider notifications, by channel, kind and outcome (error: not recorded, the provider retries).");
    for (size_t ch = 0; ch < CH_N; ch++)
        for (size_t k = 0; k < NKIND_N; k++)
            for (size_t o = 0; o < NOUT_N; o++) {
                const char *l[] = { "channel", CHANNELS[ch], "kind", NOTIFY_KINDS[k], "outcome", NOTIFY_OUTCOMES[o] };
                uint64_t v = load(&c->notifications[ch][k][o]);
                if (v)
                    metrics_write_sample(b, "paygate_notifications_total", l, 3, v);
            }
}

static void write_provider(buf_t *b, const met_counters_t *c)
{
    metrics_write_head(b, "paygate_provider_calls_total", "counter", "Calls to the providers, by channel, operation and outcome.");
    for (size_t ch = 0; ch < CH_N; ch++)
        for (size_t op = 0; op < OP_N; op++)
            for (size_t o = 0; o < COUT_N; o++) {
                const char *l[] = { "channel", CHANNELS[ch], "operation", OPERATIONS[op], "outcome", CALL_OUTCOMES[o] };
                uint64_t v = load(&c->provider_calls[ch][op][o]);
                if (v)
                    metrics_write_sample(b, "paygate_provider_calls_total", l, 3, v);
            }
    metrics_write_head(b, "paygate_provider_call_duration_seconds", "histogram",
               "Duration of the calls to the providers, by channel and operation.");
    for (size_t ch = 0; ch < CH_N; ch++)
        for (size_t op = 0; op < OP_N; op++) {
            const char *l[] = { "channel", CHANNELS[ch], "operation", OPERATIONS[op] };
            if (hist_total(&c->provider_latency[ch][op]))
                write_hist(b, "paygate_provider_call_duration_seconds", l, 2, &c->provider_latency[ch][op]);
        }
}

static void write_database(buf_t *b, const met_counters_t *c)
{
    metrics_write_head(b, "paygate_database_errors_total", "counter",
               "MariaDB errors, by kind (lost connection, lock wait or deadlock, duplicate key, other).");
    for (size_t k = 0; k < DBE_N; k++) {
        const char *l[] = { "kind", DB_ERROR_KINDS[k] };
        metrics_write_sample(b, "paygate_database_errors_total", l, 1, load(&c->db_errors[k]));
    }
    metrics_write_head(b, "paygate_database_reconnects_total", "counter", "Reconnections to MariaDB, by result.");
    for (size_t k = 0; k < 2; k++) {
        const char *l[] = { "result", k ? "failed" : "ok" };
        metrics_write_sample(b, "paygate_database_reconnects_total", l, 1, load(&c->db_reconnects[k]));
    }
}

const char *metrics_channel_label(const char *channel)
{
    size_t ch = index_of(CHANNELS, CH_N - 1, channel, CH_N);
    return ch == CH_N ? NULL : CHANNELS[ch];
}

void metrics_write_counters(buf_t *out)
{
    const met_counters_t *c = counters();
    write_requests(out, c);
    write_business(out, c);
    write_provider(out, c);
    write_database(out, c);
    metrics_write_head(out, "paygate_metrics_shared", "gauge",
                       "1 when the counters are the shared totals of all processes, 0 when only this process's.");
    metrics_write_sample(out, "paygate_metrics_shared", NULL, 0, g_shared ? 1 : 0);
}
