/* db: MariaDB Connector/C adapter. See include/db.h. */
#include "db.h"

#include <errmsg.h>
#include <mysql.h>
#include <mysqld_error.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "metrics.h"

#define DB_STMT_CACHE 64
#define DB_TX_ATTEMPTS 6
#define DB_MAX_PARAMS 48

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

static pg_err db_open(db_t *db)
{
    unsigned int timeout = 3, rw_timeout = 30;
    my_bool off = 0;
    MYSQL *conn = mysql_init(NULL);
    if (!conn)
        return PG_ERR_NOMEM;
    mysql_options(conn, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
    mysql_options(conn, MYSQL_OPT_READ_TIMEOUT, &rw_timeout);
    mysql_options(conn, MYSQL_OPT_WRITE_TIMEOUT, &rw_timeout);
    mysql_options(conn, MYSQL_OPT_RECONNECT, &off);   /* we reconnect ourselves, statements included */
    mysql_options(conn, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    /* UTC for every DATETIME; READ COMMITTED: row locks without gap locks. */
    mysql_options(conn, MYSQL_INIT_COMMAND, "SET time_zone = '+00:00'");
    mysql_options(conn, MYSQL_INIT_COMMAND, "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED");
    if (!mysql_real_connect(conn, db->params.socket && *db->params.socket ? NULL : db->params.host,
                            db->params.user, db->params.password, db->params.name,
                            (unsigned)db->params.port,
                            db->params.socket && *db->params.socket ? db->params.socket : NULL, 0)) {
        db_note_error(db, mysql_errno(conn), mysql_error(conn));
        mysql_close(conn);
        return PG_ERR_DB;
    }
    db->conn = conn;
    return PG_OK;
}

static pg_err db_reopen(db_t *db)
{
    pg_err rc;
    cache_clear(db);
    if (db->conn)
        mysql_close(db->conn);
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
    if (db->conn && mysql_ping(db->conn) == 0)
        return PG_OK;
    if (db->conn)
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

/* Outside a transaction a lost connection is re-established and the
 * statement tried once more; inside one the whole transaction is retried. */
static bool should_reconnect(db_t *db)
{
    if (!errno_is_lost(db->last_errno))
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
    if (rc == PG_ERR_DB && errno_is_lost(db->last_errno) && db->in_tx)
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

static void backoff(int attempt)
{
    struct timespec ts = { 0, (long)(5 + attempt * attempt * 10) * 1000000L };
    nanosleep(&ts, NULL);
}

/* COMMIT goes as mysql_commit's plain COM_QUERY "COMMIT" (not a prepared
 * statement): one packet, so "sent or not" is a single point. */
static pg_err db_commit(db_t *db)
{
    if (!db->conn || db->lost)
        return PG_ERR_DB;
    if (mysql_commit(db->conn) == 0)
        return PG_OK;
    db_note_error(db, mysql_errno(db->conn), mysql_error(db->conn));
    return map_errno(db->last_errno);
}

pg_err db_tx(db_t *db, db_tx_fn fn, void *ctx)
{
    pg_err rc = PG_ERR_DB;
    for (int attempt = 0; attempt < DB_TX_ATTEMPTS; attempt++) {
        bool retry, committing = false;
        db->lost = false;
        if (attempt > 0)
            backoff(attempt);
        if ((!db->conn || attempt > 0) && errno_is_lost(db->last_errno) && db_reopen(db) != PG_OK)
            continue;
        rc = db_simple(db, "START TRANSACTION");
        if (rc != PG_OK)
            continue;
        db->in_tx = true;
        rc = fn(db, ctx);
        if (rc == PG_OK && db->lost)
            rc = PG_ERR_DB;   /* fn ignored a lost connection: nothing can be committed */
        if (rc == PG_OK) {
            committing = !db->lost;
            rc = db_commit(db);
        }
        if (committing && rc != PG_OK && errno_is_lost(db->last_errno)) {
            /* COMMIT left, its reply did not come back: the server may have
             * committed. Never re-run: the caller finds the effect again. */
            db->in_tx = false;
            (void)db_reopen(db);
            return PG_ERR_COMMIT_UNKNOWN;
        }
        retry = rc == PG_ERR_DB && (errno_is_retryable(db->last_errno) || db->lost ||
                                    errno_is_lost(db->last_errno));
        if (rc != PG_OK && !db->lost)
            (void)db_simple(db, "ROLLBACK");
        db->in_tx = false;
        if (!retry)
            return rc;
    }
    return rc;
}

pg_err db_tx_resolve(db_t *db, db_tx_fn fn, db_tx_fn found, void *ctx)
{
    pg_err rc = PG_ERR_COMMIT_UNKNOWN;
    for (int attempt = 0; attempt < 3; attempt++) {
        rc = db_tx(db, fn, ctx);
        if (rc != PG_ERR_COMMIT_UNKNOWN)
            return rc;
        rc = db_tx(db, found, ctx);
        if (rc == PG_OK)
            return PG_OK;   /* it had committed */
        if (rc != PG_ERR_NOT_FOUND)
            return PG_ERR_COMMIT_UNKNOWN;   /* cannot tell yet: the key is there to ask again later */
    }
    return rc == PG_ERR_NOT_FOUND ? PG_ERR_COMMIT_UNKNOWN : rc;
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
