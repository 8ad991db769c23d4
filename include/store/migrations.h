/* migrations: the schema, embedded from sql/ at build time, and the
 * migrator that applies what a database has not seen yet. */
#ifndef MIGRATIONS_H
#define MIGRATIONS_H
#include "buf.h"
#include "db.h"

typedef struct migration {
    unsigned version;
    const char *name;
    const char *sql;
} migration_t;

extern const migration_t MIGRATIONS[];
extern const unsigned MIGRATION_COUNT;

/* Applies every migration newer than the recorded ones, in order, each
 * recorded in schema_migrations. *applied counts the new ones. Safe to run
 * twice and from two processes at once (a named lock serialises them). */
pg_err migrations_apply(db_t *db, unsigned *applied, buf_t *log);

#endif
