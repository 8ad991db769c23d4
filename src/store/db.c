/* db: MariaDB Connector/C adapter. See include/db.h. */
#include "db.h"

#include <errmsg.h>
#include <mysql.h>
#include <mysqld_error.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "log.h"
#include "metrics.h"

#define DB_STMT_CACHE 64
#define DB_TX_ATTEMPTS 6
#define DB_MAX_PARAMS 48
#define DB_AUTOCOMMIT_ATTEMPTS 3  /* an autocommit write refused by certification */
#define DB_HOST_DOWN_S 5          /* a host that failed is tried last for this long */
#define DB_WSREP_NOT_READY 1047   /* ER_UNKNOWN_COM_ERROR: "WSREP has not yet prepared node for application use" */

typedef struct db_cached_stmt {
    const char *sql;          /* the caller's literal: compared by pointer, then text */
    MYSQL_STMT *stmt;
} db_cached_stmt_t;

struct db {
    MYSQL *conn;
    struct {                  /* owned copies of db_params_t */
        char *host, *socket, *user, *password, *name;
        int port;
    } params;
    db_host_t hosts[DB_MAX_HOSTS];
    time_t down_until[DB_MAX_HOSTS];
    size_t nhosts;
    size_t current;           /* index into hosts of conn */
    bool galera;              /* conn is to a Galera node (@@wsrep_on) */
    bool causal_wanted;       /* db_causal_reads(db, true) */
    bool causal_set;          /* wsrep_sync_wait = 1 on conn */
    char current_name[300];
    db_cached_stmt_t cache[DB_STMT_CACHE];
    size_t cache_next;
    bool in_tx;
    bool lost;                /* the connection died inside a transaction */
    unsigned last_errno;
    char last_error[256];
};

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static bool errno_is_lost(unsigned no);
static bool errno_is_retryable(unsigned no);

static void db_note_error(db_t *db, unsigned no, const char *msg)
{
    db->last_errno = no;
    snprintf(db->last_error, sizeof db->last_error, "%u: %s", no, msg ? msg : "");
    metrics_db_error(errno_is_lost(no) ? "lost" : errno_is_retryable(no) ? "lock" : no == ER_DUP_ENTRY ? "duplicate" : "other");
}

static bool errno_is_lost(unsigned no)
{
    return no == CR_SERVER_GONE_ERROR || no == CR_SERVER_LOST || no == CR_CONN_HOST_ERROR ||
           no == CR_CONNECTION_ERROR || no == ER_CONNECTION_KILLED || no == 4031 /* client idle timeout */ ||
           no == ER_SERVER_SHUTDOWN || no == CR_COMMANDS_OUT_OF_SYNC;
}

static bool errno_is_retryable(unsigned no)
{
    return no == ER_LOCK_DEADLOCK || no == ER_LOCK_WAIT_TIMEOUT;
}

/* The node is gone or not serving: go to the next one. 1047 is what a
 * Galera node answers while it is not part of the primary component
 * (wsrep_ready OFF: partitioned, joining, shutting down). */
static bool errno_is_failover(unsigned no)
{
    return errno_is_lost(no) || no == DB_WSREP_NOT_READY;
}

static pg_err map_errno(unsigned no)
{
    if (no == ER_DUP_ENTRY)
        return PG_ERR_CONFLICT;
    return PG_ERR_DB;
}

static void cache_clear(db_t *db)
{
    for (size_t i = 0; i < DB_STMT_CACHE; i++) {
        if (db->cache[i].stmt)
            mysql_stmt_close(db->cache[i].stmt);
        db->cache[i].stmt = NULL;
        db->cache[i].sql = NULL;
    }
    db->cache_next = 0;
}

/* ---- host list ---------------------------------------------------------- */

static bool host_char_ok(char c, bool v6)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.')
        return true;
    return v6 ? c == ':' || c == '%' : c == '-' || c == '_';
}

static bool parse_port(const char *p, size_t len, int *port)
{
    int v = 0;
    if (len == 0 || len > 5)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (p[i] - '0');
    }
    if (v < 1 || v > 65535)
        return false;
    *port = v;
    return true;
}

static bool set_name(db_host_t *h, const char *p, size_t len, bool v6)
{
    if (len == 0 || len >= sizeof h->name)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!host_char_ok(p[i], v6))
            return false;
    memcpy(h->name, p, len);
    h->name[len] = '\0';
    return true;
}

/* One entry (already trimmed): name | name:port | [v6] | [v6]:port | bare v6. */
static bool parse_entry(const char *p, size_t len, int default_port, db_host_t *h)
{
    const char *colon = memchr(p, ':', len);
    h->port = default_port;
    if (p[0] == '[') {
        const char *close = memchr(p, ']', len);
        size_t after;
        if (!close || !set_name(h, p + 1, (size_t)(close - p - 1), true))
            return false;
        after = len - (size_t)(close - p) - 1;
        if (after == 0)
            return true;
        return close[1] == ':' && parse_port(close + 2, after - 1, &h->port);
    }
    if (!colon)
        return set_name(h, p, len, false);
    if (memchr(colon + 1, ':', len - (size_t)(colon - p) - 1))   /* two colons: a bare IPv6 address */
        return set_name(h, p, len, true);
    return set_name(h, p, (size_t)(colon - p), false) &&
           parse_port(colon + 1, len - (size_t)(colon - p) - 1, &h->port);
}

pg_err db_hosts_parse(const char *list, int default_port, db_host_t *out, size_t *n, buf_t *msg)
{
    const char *p = list ? list : "";
    *n = 0;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len > 0 && (*p == ' ' || *p == '\t')) {
            p++;
            len--;
        }
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        if (len == 0 || *n == DB_MAX_HOSTS || !parse_entry(p, len, default_port, &out[*n])) {
            if (msg)
                buf_printf(msg, len == 0 ? "an empty host entry" : *n == DB_MAX_HOSTS ?
                           "more than %d hosts" : "host entry %d is not name[:port] or [IPv6][:port]",
                           len == 0 || *n == DB_MAX_HOSTS ? DB_MAX_HOSTS : (int)*n + 1);
            return PG_ERR_CONFIG;
        }
        (*n)++;
        if (!end)
            return PG_OK;
        p = end + 1;
    }
}

/* ---- connecting ---------------------------------------------------------- */

/* One text value of a one-row query run on conn (a prepared statement).
 * Returns the server's errno (0 = ok; out "" for NULL or no row). */
static unsigned probe(MYSQL *conn, const char *sql, char *out, size_t outsz)
{
    MYSQL_STMT *st = mysql_stmt_init(conn);
    MYSQL_BIND b;
    unsigned long len = 0;
    my_bool isnull = 0;
    unsigned no = 0;
    out[0] = '\0';
    if (!st)
        return CR_OUT_OF_MEMORY;
    memset(&b, 0, sizeof b);
    b.buffer_type = MYSQL_TYPE_STRING;
    b.buffer = out;
    b.buffer_length = (unsigned long)outsz - 1;
    b.length = &len;
    b.is_null = &isnull;
    if (mysql_stmt_prepare(st, sql, strlen(sql)) != 0 || mysql_stmt_execute(st) != 0 ||
        mysql_stmt_bind_result(st, &b) != 0) {
        no = mysql_stmt_errno(st);
        goto done;
    }
    if (mysql_stmt_fetch(st) == 0 && !isnull)
        out[len < outsz ? len : outsz - 1] = '\0';
    else
        out[0] = '\0';
done:
    mysql_stmt_close(st);
    return no;
}

typedef enum { NODE_DOWN, NODE_READY, NODE_SYNCED } node_state_t;

/* A plain server is always "synced". A Galera node serves when wsrep_ready
 * is ON; Synced (wsrep_local_state 4) is preferred to a donor or joiner. */
static node_state_t node_state(db_t *db, MYSQL *conn, bool *galera)
{
    char v[64];
    unsigned no = probe(conn, "SELECT @@wsrep_on", v, sizeof v);
    *galera = false;
    if (no == ER_UNKNOWN_SYSTEM_VARIABLE)
        return NODE_SYNCED;   /* a server without wsrep */
    if (no != 0) {
        db_note_error(db, no, "probing the node");
        return NODE_DOWN;
    }
    if (strcmp(v, "1") && strcasecmp(v, "ON"))
        return NODE_SYNCED;
    *galera = true;
    no = probe(conn, "SELECT CONCAT(MAX(IF(VARIABLE_NAME = 'WSREP_READY', VARIABLE_VALUE, '')), '/', "
                     "MAX(IF(VARIABLE_NAME = 'WSREP_LOCAL_STATE', VARIABLE_VALUE, ''))) "
                     "FROM information_schema.GLOBAL_STATUS "
                     "WHERE VARIABLE_NAME IN ('WSREP_READY', 'WSREP_LOCAL_STATE')", v, sizeof v);
    if (no != 0 || strncasecmp(v, "ON/", 3)) {
        db_note_error(db, no ? no : DB_WSREP_NOT_READY, "WSREP node not ready (wsrep_ready OFF)");
        return NODE_DOWN;
    }
    return !strcmp(v + 3, "4") ? NODE_SYNCED : NODE_READY;
}

static MYSQL *connect_one(db_t *db, const db_host_t *h)
{
    unsigned int timeout = 3, rw_timeout = 30;
    my_bool off = 0;
    bool sock = db->params.socket && *db->params.socket;
    MYSQL *conn = mysql_init(NULL);
    if (!conn)
        return NULL;
    mysql_options(conn, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
    mysql_options(conn, MYSQL_OPT_READ_TIMEOUT, &rw_timeout);
    mysql_options(conn, MYSQL_OPT_WRITE_TIMEOUT, &rw_timeout);
    mysql_options(conn, MYSQL_OPT_RECONNECT, &off);   /* we reconnect ourselves, statements included */
    mysql_options(conn, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    /* UTC for every DATETIME; READ COMMITTED: row locks without gap locks. */
    mysql_options(conn, MYSQL_INIT_COMMAND, "SET time_zone = '+00:00'");
    mysql_options(conn, MYSQL_INIT_COMMAND, "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED");
    if (!mysql_real_connect(conn, sock ? NULL : h->name, db->params.user, db->params.password,
                            db->params.name, sock ? 0 : (unsigned)h->port,
                            sock ? db->params.socket : NULL, 0)) {
        db_note_error(db, mysql_errno(conn), mysql_error(conn));
        mysql_close(conn);
        return NULL;
    }
    return conn;
}

static void host_failed(db_t *db, size_t i)
{
    db->down_until[i] = time(NULL) + DB_HOST_DOWN_S;
    if (db->nhosts > 1)
        log_msg(LOG_WARN, "database host %s:%d not available (%s), trying the next", db->hosts[i].name,
                db->hosts[i].port, db->last_error);
}

/* Tries host i; PG_OK when connected to a node in at least state want. */
static pg_err try_host(db_t *db, size_t i, node_state_t want)
{
    bool galera = false;
    node_state_t st;
    MYSQL *conn = connect_one(db, &db->hosts[i]);
    if (!conn) {
        host_failed(db, i);
        return PG_ERR_DB;
    }
    st = node_state(db, conn, &galera);
    if (st < want) {
        if (st == NODE_READY)
            db_note_error(db, DB_WSREP_NOT_READY, "WSREP node not Synced (donor or joiner)");
        mysql_close(conn);
        host_failed(db, i);
        return PG_ERR_DB;
    }
    db->conn = conn;
    db->current = i;
    db->galera = galera;
    db->causal_set = false;
    db->down_until[i] = 0;
    snprintf(db->current_name, sizeof db->current_name, "%s:%d", db->hosts[i].name, db->hosts[i].port);
    return PG_OK;
}

static pg_err set_causal(db_t *db, bool on);

/* First pass: the hosts not marked down, in the configured order, wanting a
 * Synced node; second pass: every host, any node that serves. */
static pg_err db_open(db_t *db)
{
    time_t now = time(NULL);
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < db->nhosts; i++) {
            if (pass == 0 && db->down_until[i] > now)
                continue;
            if (try_host(db, i, pass == 0 ? NODE_SYNCED : NODE_READY) != PG_OK)
                continue;
            if (db->causal_wanted && set_causal(db, true) != PG_OK) {
                mysql_close(db->conn);
                db->conn = NULL;
                continue;
            }
            return PG_OK;
        }
    }
    db->current_name[0] = '\0';
    return PG_ERR_DB;
}

static pg_err db_reopen(db_t *db)
{
    pg_err rc;
    cache_clear(db);
    if (db->conn) {
        mysql_close(db->conn);
        if (db->nhosts > 1 && db->last_errno == DB_WSREP_NOT_READY)
            host_failed(db, db->current);   /* it answers but does not serve: others first */
    }
    db->conn = NULL;
    rc = db_open(db);
    metrics_db_reconnect(rc == PG_OK);
    return rc;
}

pg_err db_connect(const db_params_t *p, db_t **out, buf_t *err)
{
    db_t *db = calloc(1, sizeof *db);
    pg_err rc;
    *out = NULL;
    if (!db)
        return PG_ERR_NOMEM;
    db->params.host = dup_or_null(p->host);
    db->params.port = p->port;
    db->params.socket = dup_or_null(p->socket);
    db->params.user = dup_or_null(p->user);
    db->params.password = dup_or_null(p->password);
    db->params.name = dup_or_null(p->name);
    rc = db_hosts_parse(p->host ? p->host : "localhost", p->port, db->hosts, &db->nhosts, err);
    if (rc != PG_OK) {
        snprintf(db->last_error, sizeof db->last_error, "[database] host: not a host list");
        *out = db;
        return rc;
    }
    if (db->params.socket && *db->params.socket)
        db->nhosts = 1;   /* a local socket: one server */
    rc = db_open(db);
    if (rc != PG_OK) {
        if (err)
            buf_printf(err, "cannot connect to MariaDB: %s", db->last_error);
        /* Keep the handle: a later db_ping reconnects when the server is back. */
    }
    *out = db;
    return rc;
}

void db_close(db_t *db)
{
    if (!db)
        return;
    cache_clear(db);
    if (db->conn)
        mysql_close(db->conn);
    free(db->params.host);
    free(db->params.socket);
    free(db->params.user);
    if (db->params.password) {
        memset(db->params.password, 0, strlen(db->params.password));
        free(db->params.password);
    }
    free(db->params.name);
    free(db);
}

pg_err db_ping(db_t *db)
{
    bool galera;
    if (db->conn && mysql_ping(db->conn) == 0 &&
        (!db->galera || node_state(db, db->conn, &galera) != NODE_DOWN))
        return PG_OK;
    if (db->conn && db->last_errno != DB_WSREP_NOT_READY)
        db_note_error(db, mysql_errno(db->conn), mysql_error(db->conn));
    return db_reopen(db);
}

static MYSQL_STMT *stmt_get(db_t *db, const char *sql)
{
    MYSQL_STMT *stmt;
    db_cached_stmt_t *slot;
    for (size_t i = 0; i < DB_STMT_CACHE; i++) {
        if (db->cache[i].stmt && (db->cache[i].sql == sql || !strcmp(db->cache[i].sql, sql)))
            return db->cache[i].stmt;
    }
    stmt = mysql_stmt_init(db->conn);
    if (!stmt) {
        db_note_error(db, mysql_errno(db->conn), mysql_error(db->conn));
        return NULL;
    }
    if (mysql_stmt_prepare(stmt, sql, strlen(sql)) != 0) {
        db_note_error(db, mysql_stmt_errno(stmt), mysql_stmt_error(stmt));
        mysql_stmt_close(stmt);
        return NULL;
    }
    slot = &db->cache[db->cache_next];
    db->cache_next = (db->cache_next + 1) % DB_STMT_CACHE;
    if (slot->stmt)
        mysql_stmt_close(slot->stmt);
    slot->stmt = stmt;
    slot->sql = sql;   /* callers pass string literals that outlive the cache */
    return stmt;
}

static void bind_params(MYSQL_BIND *b, const db_val_t *params, size_t n, unsigned long *lens)
{
    memset(b, 0, sizeof *b * n);
    for (size_t i = 0; i < n; i++) {
        switch (params[i].type) {
        case DB_T_NULL:
            b[i].buffer_type = MYSQL_TYPE_NULL;
            break;
        case DB_T_STR:
            lens[i] = (unsigned long)strlen(params[i].s);
            b[i].buffer_type = MYSQL_TYPE_STRING;
            b[i].buffer = (void *)(uintptr_t)params[i].s;
            b[i].buffer_length = lens[i];
            b[i].length = &lens[i];
            break;
        case DB_T_BLOB:
            lens[i] = (unsigned long)params[i].len;
            b[i].buffer_type = MYSQL_TYPE_BLOB;
            b[i].buffer = (void *)(uintptr_t)params[i].s;
            b[i].buffer_length = lens[i];
            b[i].length = &lens[i];
            break;
        case DB_T_I64:
            b[i].buffer_type = MYSQL_TYPE_LONGLONG;
            b[i].buffer = (void *)(uintptr_t)&params[i].i;
            break;
        }
    }
}

/* Prepares (cached) and executes; on success *out is the executed statement. */
static pg_err stmt_run(db_t *db, const char *sql, const db_val_t *params, size_t n,
                       MYSQL_STMT **out)
{
    MYSQL_BIND binds[DB_MAX_PARAMS];
    unsigned long lens[DB_MAX_PARAMS];
    MYSQL_STMT *stmt;
    *out = NULL;
    if (n > DB_MAX_PARAMS)
        return PG_ERR_INTERNAL;
    if (!db->conn && db_open(db) != PG_OK)
        return PG_ERR_DB;
    stmt = stmt_get(db, sql);
    if (!stmt)
        return map_errno(db->last_errno);
    if (mysql_stmt_param_count(stmt) != n) {
        db_note_error(db, 0, "parameter count mismatch");
        return PG_ERR_INTERNAL;
    }
    if (n > 0) {
        bind_params(binds, params, n, lens);
        if (mysql_stmt_bind_param(stmt, binds) != 0) {
            db_note_error(db, mysql_stmt_errno(stmt), mysql_stmt_error(stmt));
            return PG_ERR_INTERNAL;
        }
    }
    if (mysql_stmt_execute(stmt) != 0) {
        db_note_error(db, mysql_stmt_errno(stmt), mysql_stmt_error(stmt));
        return map_errno(db->last_errno);
    }
    *out = stmt;
    return PG_OK;
}

static void backoff(int attempt)
{
    struct timespec ts = { 0, (long)(5 + attempt * attempt * 10) * 1000000L };
    nanosleep(&ts, NULL);
}

/* Outside a transaction a lost connection is re-established and the
 * statement tried once more; inside one the whole transaction is retried. */
static bool should_reconnect(db_t *db)
{
    if (!errno_is_failover(db->last_errno))
        return false;
    if (db->in_tx) {
        db->lost = true;
        return false;
    }
    return db_reopen(db) == PG_OK;
}

pg_err db_exec(db_t *db, const char *sql, const db_val_t *params, size_t n,
               uint64_t *affected, uint64_t *insert_id)
{
    MYSQL_STMT *stmt;
    pg_err rc = stmt_run(db, sql, params, n, &stmt);
    if (rc != PG_OK && should_reconnect(db))
        rc = stmt_run(db, sql, params, n, &stmt);
    /* Outside a transaction, a deadlock is an autocommit statement that was
     * rolled back (on Galera: its write set failed certification, applied
     * nowhere): run it again. */
    for (int i = 1; i < DB_AUTOCOMMIT_ATTEMPTS && rc != PG_OK && !db->in_tx &&
                    db->last_errno == ER_LOCK_DEADLOCK; i++) {
        backoff(i);
        rc = stmt_run(db, sql, params, n, &stmt);
    }
    if (rc != PG_OK)
        return rc;
    if (affected)
        *affected = (uint64_t)mysql_stmt_affected_rows(stmt);
    if (insert_id)
        *insert_id = (uint64_t)mysql_stmt_insert_id(stmt);
    mysql_stmt_free_result(stmt);
    return PG_OK;
}

static pg_err fetch_rows(db_t *db, arena_t *a, MYSQL_STMT *stmt, db_result_t *res)
{
    MYSQL_RES *meta = mysql_stmt_result_metadata(stmt);
    MYSQL_FIELD *fields;
    MYSQL_BIND *binds = NULL;
    unsigned long *lens = NULL;
    my_bool *nulls = NULL;
    size_t cols, cap = 0;
    pg_err rc = PG_OK;
    memset(res, 0, sizeof *res);
    if (!meta)
        return PG_OK;
    if (mysql_stmt_store_result(stmt) != 0) {
        db_note_error(db, mysql_stmt_errno(stmt), mysql_stmt_error(stmt));
        mysql_free_result(meta);
        return PG_ERR_DB;
    }
    cols = mysql_num_fields(meta);
    fields = mysql_fetch_fields(meta);
    res->cols = cols;
    res->names = arena_calloc(a, sizeof(char *) * (cols + 1));
    binds = arena_calloc(a, sizeof *binds * (cols + 1));
    lens = arena_calloc(a, sizeof *lens * (cols + 1));
    nulls = arena_calloc(a, sizeof *nulls * (cols + 1));
    if (!res->names || !binds || !lens || !nulls) {
        rc = PG_ERR_NOMEM;
        goto done;
    }
    for (size_t c = 0; c < cols; c++) {
        size_t size = fields[c].max_length > 64 ? fields[c].max_length : 64;
        res->names[c] = arena_strdup(a, fields[c].name);
        binds[c].buffer_type = MYSQL_TYPE_STRING;
        binds[c].buffer_length = (unsigned long)size + 1;
        binds[c].length = &lens[c];
        binds[c].is_null = &nulls[c];
    }
    for (;;) {
        int f;
        char **row;
        if (res->rows == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            char **cells = arena_alloc(a, sizeof(char *) * ncap * cols);
            if (!cells) {
                rc = PG_ERR_NOMEM;
                goto done;
            }
            if (res->cells)
                memcpy(cells, res->cells, sizeof(char *) * cap * cols);
            res->cells = cells;
            cap = ncap;
        }
        row = &res->cells[res->rows * cols];
        for (size_t c = 0; c < cols; c++) {
            binds[c].buffer = arena_alloc(a, binds[c].buffer_length);
            if (!binds[c].buffer) {
                rc = PG_ERR_NOMEM;
                goto done;
            }
        }
        if (mysql_stmt_bind_result(stmt, binds) != 0) {
            db_note_error(db, mysql_stmt_errno(stmt), mysql_stmt_error(stmt));
            rc = PG_ERR_DB;
            goto done;
        }
        f = mysql_stmt_fetch(stmt);
        if (f == MYSQL_NO_DATA)
            break;
        if (f == 1) {
            db_note_error(db, mysql_stmt_errno(stmt), mysql_stmt_error(stmt));
            rc = PG_ERR_DB;
            goto done;
        }
        for (size_t c = 0; c < cols; c++) {
            if (nulls[c]) {
                row[c] = NULL;
                continue;
            }
            if (lens[c] >= binds[c].buffer_length) {   /* truncated: fetch the whole value */
                MYSQL_BIND one;
                char *big = arena_alloc(a, lens[c] + 1);
                if (!big) {
                    rc = PG_ERR_NOMEM;
                    goto done;
                }
                memset(&one, 0, sizeof one);
                one.buffer_type = MYSQL_TYPE_STRING;
                one.buffer = big;
                one.buffer_length = lens[c] + 1;
                if (mysql_stmt_fetch_column(stmt, &one, (unsigned)c, 0) != 0) {
                    rc = PG_ERR_DB;
                    goto done;
                }
                big[lens[c]] = '\0';
                row[c] = big;
            } else {
                ((char *)binds[c].buffer)[lens[c]] = '\0';
                row[c] = binds[c].buffer;
            }
        }
        res->rows++;
    }
done:
    mysql_stmt_free_result(stmt);
    mysql_free_result(meta);
    return rc;
}

pg_err db_query(db_t *db, arena_t *a, const char *sql, const db_val_t *params, size_t n,
                db_result_t *res)
{
    MYSQL_STMT *stmt;
    pg_err rc = stmt_run(db, sql, params, n, &stmt);
    memset(res, 0, sizeof *res);
    if (rc != PG_OK && should_reconnect(db))
        rc = stmt_run(db, sql, params, n, &stmt);
    if (rc != PG_OK)
        return rc;
    rc = fetch_rows(db, a, stmt, res);
    if (rc == PG_ERR_DB && errno_is_failover(db->last_errno) && db->in_tx)
        db->lost = true;
    return rc;
}

const char *db_cell(const db_result_t *r, size_t row, const char *col)
{
    if (row >= r->rows)
        return NULL;
    for (size_t c = 0; c < r->cols; c++) {
        if (!strcmp(r->names[c], col))
            return r->cells[row * r->cols + c];
    }
    return NULL;
}

int64_t db_cell_i64(const db_result_t *r, size_t row, const char *col)
{
    const char *s = db_cell(r, row, col);
    return s ? (int64_t)strtoll(s, NULL, 10) : 0;
}

static pg_err db_simple(db_t *db, const char *sql)
{
    return db_exec(db, sql, NULL, 0, NULL, NULL);
}


/* COMMIT goes as mysql_commit's plain COM_QUERY "COMMIT" (not a prepared
 * statement): one packet, so "sent or not" is a single point. *sent tells
 * whether it left. */
static pg_err db_commit(db_t *db, bool *sent)
{
    *sent = false;
    if (!db->conn || db->lost)
        return PG_ERR_DB;
    *sent = true;
    if (mysql_commit(db->conn) == 0)
        return PG_OK;
    db_note_error(db, mysql_errno(db->conn), mysql_error(db->conn));
    return map_errno(db->last_errno);
}

/* The answer to a COMMIT that left: only a deadlock error is a clear "not
 * committed" -- on Galera that is the certification failure (the cluster
 * refused the write set, deterministically on every node) or a brute-force
 * abort by a replicated write set; either way nothing was applied anywhere
 * and the whole transaction runs again. Anything else -- no reply (node
 * killed, connection cut), 1047 (the node left the primary component while
 * committing), any other error -- may hide a commit. */
static bool commit_refused(const db_t *db)
{
    return db->last_errno == ER_LOCK_DEADLOCK;
}

pg_err db_tx(db_t *db, db_tx_fn fn, void *ctx)
{
    pg_err rc = PG_ERR_DB;
    bool refused = false;
    for (int attempt = 0; attempt < DB_TX_ATTEMPTS; attempt++) {
        bool retry, sent = false;
        db->lost = false;
        if (attempt > 0)
            backoff(attempt);
        if ((!db->conn || attempt > 0) && errno_is_failover(db->last_errno) && db_reopen(db) != PG_OK)
            continue;
        /* After a certification failure, read what won: this node applies
         * the winning write set before the retry's first read. */
        if (refused)
            (void)set_causal(db, true);
        rc = db_simple(db, "START TRANSACTION");
        if (rc != PG_OK)
            continue;
        db->in_tx = true;
        rc = fn(db, ctx);
        if (rc == PG_OK && db->lost)
            rc = PG_ERR_DB;   /* fn ignored a lost connection: nothing can be committed */
        if (rc == PG_OK)
            rc = db_commit(db, &sent);
        if (sent && rc != PG_OK && !commit_refused(db)) {
            /* COMMIT left and no clear refusal came back: the transaction may
             * have committed. Never re-run: the caller finds the effect again
             * (on the next node when this one is gone). */
            db->in_tx = false;
            (void)db_reopen(db);
            (void)set_causal(db, db->causal_wanted);
            return PG_ERR_COMMIT_UNKNOWN;
        }
        refused = sent && rc != PG_OK && db->galera;
        retry = rc == PG_ERR_DB && (errno_is_retryable(db->last_errno) || db->lost ||
                                    errno_is_failover(db->last_errno));
        if (rc != PG_OK && !db->lost)
            (void)db_simple(db, "ROLLBACK");
        db->in_tx = false;
        if (!retry)
            break;
    }
    (void)set_causal(db, db->causal_wanted);
    return rc;
}

pg_err db_tx_resolve(db_t *db, db_tx_fn fn, db_tx_fn found, void *ctx)
{
    pg_err rc = PG_ERR_COMMIT_UNKNOWN;
    for (int attempt = 0; attempt < 3; attempt++) {
        rc = db_tx(db, fn, ctx);
        if (rc != PG_ERR_COMMIT_UNKNOWN)
            return rc;
        /* On Galera the look-up may run on another node: causal, so that
         * it has applied whatever the cluster committed before it. */
        (void)set_causal(db, true);
        rc = db_tx(db, found, ctx);
        (void)set_causal(db, db->causal_wanted);
        if (rc == PG_OK)
            return PG_OK;   /* it had committed */
        if (rc != PG_ERR_NOT_FOUND)
            return PG_ERR_COMMIT_UNKNOWN;   /* cannot tell yet: the key is there to ask again later */
    }
    return rc == PG_ERR_NOT_FOUND ? PG_ERR_COMMIT_UNKNOWN : rc;
}

/* ---- causal reads (Galera) ---------------------------------------------- */

/* A statement without a result on conn, no reconnection (db_open calls it). */
static unsigned exec_direct(MYSQL *conn, const char *sql)
{
    MYSQL_STMT *st = mysql_stmt_init(conn);
    unsigned no = 0;
    if (!st)
        return CR_OUT_OF_MEMORY;
    if (mysql_stmt_prepare(st, sql, strlen(sql)) != 0 || mysql_stmt_execute(st) != 0)
        no = mysql_stmt_errno(st);
    mysql_stmt_close(st);
    return no;
}

static pg_err set_causal(db_t *db, bool on)
{
    unsigned no;
    if (!db->conn || !db->galera || db->causal_set == on)
        return PG_OK;
    no = exec_direct(db->conn, on ? "SET SESSION wsrep_sync_wait = 1" : "SET SESSION wsrep_sync_wait = 0");
    if (no != 0) {
        db_note_error(db, no, "SET SESSION wsrep_sync_wait");
        return PG_ERR_DB;
    }
    db->causal_set = on;
    return PG_OK;
}

pg_err db_causal_reads(db_t *db, bool on)
{
    db->causal_wanted = on;
    return set_causal(db, on);
}

bool db_is_galera(const db_t *db)
{
    return db->conn && db->galera;
}

const char *db_current_host(const db_t *db)
{
    return db->conn ? db->current_name : "";
}

const char *db_last_error(const db_t *db)
{
    return db->last_error;
}

unsigned db_last_errno(const db_t *db)
{
    return db->last_errno;
}

/* Splits at ';' that ends a line (our migration files keep to that). */
pg_err db_exec_script(db_t *db, const char *script)
{
    const char *p = script;
    char *stmt = NULL;
    pg_err rc = PG_OK;
    while (*p) {
        const char *end = p;
        size_t len;
        bool blank = true;
        while (*end && !(end[0] == ';' && (end[1] == '\n' || end[1] == '\0' || end[1] == '\r')))
            end++;
        len = (size_t)(end - p);
        for (size_t i = 0; i < len; i++) {
            if (p[i] == '-' && i + 1 < len && p[i + 1] == '-') {
                while (i < len && p[i] != '\n')
                    i++;
                continue;
            }
            if (p[i] != ' ' && p[i] != '\n' && p[i] != '\t' && p[i] != '\r')
                blank = false;
        }
        if (!blank) {
            stmt = strndup(p, len);
            if (!stmt)
                return PG_ERR_NOMEM;
            /* Not cached: the text is ours only for this call. */
            {
                MYSQL_STMT *s = mysql_stmt_init(db->conn);
                if (!s || mysql_stmt_prepare(s, stmt, len) != 0 || mysql_stmt_execute(s) != 0) {
                    if (s)
                        db_note_error(db, mysql_stmt_errno(s), mysql_stmt_error(s));
                    rc = PG_ERR_DB;
                }
                if (s)
                    mysql_stmt_close(s);
            }
            free(stmt);
            if (rc != PG_OK)
                return rc;
        }
        p = *end ? end + 1 : end;
    }
    return rc;
}
