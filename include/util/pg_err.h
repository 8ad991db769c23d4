/* pg_err: the one error code every paygate function returns.
 * Library and errno codes are translated into these inside the adapter that
 * received them; only the router maps them to HTTP statuses. */
#ifndef PG_ERR_H
#define PG_ERR_H

typedef enum pg_err {
    PG_OK = 0,
    PG_ERR_NOMEM,          /* allocation failed */
    PG_ERR_BAD_INPUT,      /* malformed input from outside (400) */
    PG_ERR_BAD_SIGNATURE,  /* signature did not verify */
    PG_ERR_MISMATCH,       /* signed but wrong: app_id, seller, amount */
    PG_ERR_NOT_FOUND,      /* no such row */
    PG_ERR_CONFLICT,       /* state or idempotency conflict (409) */
    PG_ERR_TOO_LARGE,      /* over a size bound (413) */
    PG_ERR_UNAUTHORIZED,   /* missing or wrong credentials (401) */
    PG_ERR_UNSUPPORTED,    /* channel/method combination not offered (400) */
    PG_ERR_DB,             /* database fault (503/500) */
    PG_ERR_UPSTREAM,       /* provider answered with an error (502) */
    PG_ERR_TIMEOUT,        /* provider did not answer in time (504) */
    PG_ERR_CONFIG,         /* configuration invalid */
    PG_ERR_INTERNAL,       /* our own bug or a library failure */
    PG_ERR_COMMIT_UNKNOWN  /* COMMIT was sent, its reply was lost: it may or may not have committed (503) */
} pg_err;

const char *pg_err_name(pg_err e);

#endif
