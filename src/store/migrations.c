/* migrations: applies the embedded sql/ migrations. See include/migrations.h. */
#include "migrations.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto.h"

#define MIGRATE_WAIT_S 60     /* waiting for another migrate to finish */
#define MIGRATE_LEASE_S 600   /* a crashed migrate's lease expires */

static const char SQL_CREATE_TABLE[] =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version INT NOT NULL PRIMARY KEY,"
    " name VARCHAR(128) NOT NULL,"
    " applied_at DATETIME NOT NULL DEFAULT UTC_TIMESTAMP()"
    ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4";

/* Mutual exclusion of two `paygatectl migrate` runs without GET_LOCK, which
 * is local to one node of a Galera cluster: a lease row, taken by a
 * conditional UPDATE that only one node's write set can win (the loser's
 * fails certification or matches no row), with an expiry for a crashed run. */
static const char SQL_CREATE_LEASE[] =
    "CREATE TABLE IF NOT EXISTS schema_migrate_lease ("
    " name VARCHAR(32) NOT NULL PRIMARY KEY,"
    " holder VARCHAR(40) NOT NULL,"
    " expires_at DATETIME NOT NULL"
    ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4";

static pg_err lease_try(db_t *db, const char *holder, bool *got)
{
    db_val_t p[3] = { DB_S(holder), DB_I(MIGRATE_LEASE_S), DB_S(holder) };
    uint64_t n = 0;
    pg_err rc = db_exec(db, "INSERT IGNORE INTO schema_migrate_lease (name, holder, expires_at)"
                            " VALUES ('migrate', '', UTC_TIMESTAMP())", NULL, 0, NULL, NULL);
    if (rc == PG_OK)
        rc = db_exec(db, "UPDATE schema_migrate_lease SET holder = ?,"
                         " expires_at = UTC_TIMESTAMP() + INTERVAL ? SECOND"
                         " WHERE name = 'migrate' AND (holder = '' OR holder = ? OR expires_at < UTC_TIMESTAMP())",
                     p, 3, &n, NULL);
    *got = rc == PG_OK && n == 1;
    return rc;
}

static pg_err lease_take(db_t *db, const char *holder, buf_t *log)
{
    time_t until = time(NULL) + MIGRATE_WAIT_S;
    bool got = false;
    pg_err rc = db_exec(db, SQL_CREATE_LEASE, NULL, 0, NULL, NULL);
    while (rc == PG_OK) {
        struct timespec ts = { 0, 200 * 1000000L };
        rc = lease_try(db, holder, &got);
        if (rc != PG_OK || got)
            break;
        if (time(NULL) >= until) {
            buf_puts(log, "another migrate is running and did not finish within 60 s\n");
            return PG_ERR_CONFLICT;
        }
        nanosleep(&ts, NULL);
    }
    return rc;
}

static void lease_give_back(db_t *db, const char *holder)
{
    db_val_t p[1] = { DB_S(holder) };
    (void)db_exec(db, "UPDATE schema_migrate_lease SET holder = '', expires_at = UTC_TIMESTAMP()"
                      " WHERE name = 'migrate' AND holder = ?", p, 1, NULL, NULL);
}

static bool is_applied(const db_result_t *r, unsigned version)
{
    for (size_t i = 0; i < r->rows; i++) {
        if ((unsigned)db_cell_i64(r, i, "version") == version)
            return true;
    }
    return false;
}

static pg_err apply_missing(db_t *db, arena_t *a, unsigned *applied, buf_t *log)
{
    db_result_t done;
    pg_err rc = db_exec(db, SQL_CREATE_TABLE, NULL, 0, NULL, NULL);
    if (rc == PG_OK)
        rc = db_query(db, a, "SELECT version FROM schema_migrations", NULL, 0, &done);
    for (unsigned i = 0; rc == PG_OK && i < MIGRATION_COUNT; i++) {
        const migration_t *m = &MIGRATIONS[i];
        db_val_t rec[2];
        if (is_applied(&done, m->version))
            continue;
        /* DDL commits implicitly in MariaDB, so a migration is not atomic;
         * each statement is written to be re-runnable (IF NOT EXISTS). */
        rc = db_exec_script(db, m->sql);
        if (rc != PG_OK) {
            buf_printf(log, "migration %s failed: %s\n", m->name, db_last_error(db));
            break;
        }
        rec[0] = DB_I(m->version);
        rec[1] = DB_S(m->name);
        rc = db_exec(db, "INSERT INTO schema_migrations (version, name) VALUES (?, ?)", rec, 2, NULL, NULL);
        if (rc == PG_OK) {
            buf_printf(log, "applied %s\n", m->name);
            (*applied)++;
        }
    }
    return rc;
}

pg_err migrations_apply(db_t *db, unsigned *applied, buf_t *log)
{
    arena_t a;
    char holder[33];
    pg_err rc;
    *applied = 0;
    arena_init(&a, 0);
    rc = crypto_random_alnum(holder, sizeof holder - 1);
    if (rc == PG_OK)
        rc = lease_take(db, holder, log);
    if (rc == PG_OK) {
        rc = apply_missing(db, &a, applied, log);
        lease_give_back(db, holder);
    }
    arena_free(&a);
    return rc;
}
