/* db: the storage adapter, the only user of MariaDB Connector/C. Prepared
 * statements only (cached per connection), results as strings in an arena,
 * transactions retried on deadlock / lock-wait timeout, reconnection after a
 * lost connection, a lost COMMIT reply reported as such (never re-run).
 * MariaDB error numbers become pg_err codes here. */
#ifndef DB_H
#define DB_H
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "arena.h"
#include "buf.h"
#include "pg_err.h"

typedef struct db db_t;

typedef struct db_params {
    const char *host;
    int port;
    const char *socket;       /* NULL/"" = TCP */
    const char *user;
    const char *password;
    const char *name;
} db_params_t;

typedef enum { DB_T_NULL, DB_T_STR, DB_T_I64, DB_T_BLOB } db_type_t;
typedef struct db_val {
    db_type_t type;
    const char *s;            /* STR (NUL-terminated) / BLOB */
    size_t len;               /* BLOB length */
    int64_t i;
} db_val_t;

#define DB_NULL          ((db_val_t){ .type = DB_T_NULL })
static inline db_val_t db_val_str(const char *s)
{
    db_val_t v = { .type = s ? DB_T_STR : DB_T_NULL, .s = s };
    return v;
}
#define DB_S(str)        db_val_str(str)
#define DB_I(num)        ((db_val_t){ .type = DB_T_I64, .i = (num) })
#define DB_B(ptr, n)     ((db_val_t){ .type = DB_T_BLOB, .s = (ptr), .len = (n) })

/* A result: rows x cols of NUL-terminated strings in the arena (NULL = SQL NULL). */
typedef struct db_result {
    size_t rows;
    size_t cols;
    char **cells;             /* cells[r * cols + c] */
    char **names;             /* column names */
} db_result_t;

pg_err db_connect(const db_params_t *p, db_t **out, buf_t *err);
void   db_close(db_t *db);
/* Checks the connection, reconnecting once if it was lost. */
pg_err db_ping(db_t *db);

/* Executes sql with params (? placeholders). affected / insert_id may be NULL.
 * PG_ERR_CONFLICT on a duplicate key (1062), PG_ERR_DB otherwise. Outside a
 * transaction a statement whose connection was lost is executed once more
 * after reconnecting: autocommit writes must be safe to repeat (paygate's are
 * conditional claims/leases, idempotent updates or counters). */
pg_err db_exec(db_t *db, const char *sql, const db_val_t *params, size_t n,
               uint64_t *affected, uint64_t *insert_id);
pg_err db_query(db_t *db, arena_t *a, const char *sql, const db_val_t *params, size_t n,
                db_result_t *res);

const char *db_cell(const db_result_t *r, size_t row, const char *col);   /* NULL if absent/NULL */
int64_t     db_cell_i64(const db_result_t *r, size_t row, const char *col); /* 0 if NULL */

/* Runs fn inside BEGIN ... COMMIT. fn returns PG_OK to commit, anything else
 * to roll back (that code is returned). Deadlocks, lock-wait timeouts and a
 * connection lost BEFORE COMMIT was sent are retried (nothing was committed;
 * fn runs again from the start, so it must not keep arena allocations or
 * counts across attempts it does not expect).
 * PG_ERR_COMMIT_UNKNOWN: COMMIT was sent and its reply lost (connection cut,
 * server restarted, read timeout): the transaction may or may not have
 * committed. db_tx never re-runs such a transaction; the caller decides by
 * looking its effect up again by a key chosen before the first attempt (a
 * refund_no, an order_no, a batch_no), or answers so that its own caller
 * asks again (a provider notification is answered failure and redelivered).
 * The connection has been reopened (or will be on next use). */
typedef pg_err (*db_tx_fn)(db_t *db, void *ctx);
pg_err db_tx(db_t *db, db_tx_fn fn, void *ctx);

/* db_tx for a transaction whose effect carries a key chosen before the first
 * attempt. When the COMMIT reply is lost, found runs in a new transaction and
 * looks the effect up by that key with a locking read (which waits for a
 * transaction that is still committing): PG_OK = it had committed (found
 * fills ctx as fn would have), PG_ERR_NOT_FOUND = it had not, and fn runs
 * again (safe: same key). Returns PG_ERR_COMMIT_UNKNOWN when it still cannot
 * tell (the database is unreachable). */
pg_err db_tx_resolve(db_t *db, db_tx_fn fn, db_tx_fn found, void *ctx);

/* The last MariaDB error text (for logs; never shown to clients). */
const char *db_last_error(const db_t *db);
unsigned    db_last_errno(const db_t *db);

/* Runs a whole SQL script (statements separated by ';' at line end),
 * each statement prepared on its own. */
pg_err db_exec_script(db_t *db, const char *script);

#endif
