/* migrations: applies the embedded sql/ migrations. See include/migrations.h. */
#include "migrations.h"

#include <stdlib.h>
#include <string.h>

static const char SQL_CREATE_TABLE[] =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version INT NOT NULL PRIMARY KEY,"
    " name VARCHAR(128) NOT NULL,"
    " applied_at DATETIME NOT NULL DEFAULT UTC_TIMESTAMP()"
    ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4";

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
    db_result_t lock;
    pg_err rc;
    *applied = 0;
    arena_init(&a, 0);
    rc = db_query(db, &a, "SELECT GET_LOCK('paygate_migrate', 60) AS got", NULL, 0, &lock);
    if (rc == PG_OK && db_cell_i64(&lock, 0, "got") != 1) {
        buf_puts(log, "another migrate is running and did not finish within 60 s\n");
        rc = PG_ERR_CONFLICT;
    }
    if (rc == PG_OK) {
        rc = apply_missing(db, &a, applied, log);
        (void)db_query(db, &a, "SELECT RELEASE_LOCK('paygate_migrate')", NULL, 0, &lock);
    }
    arena_free(&a);
    return rc;
}
