/* metrics_report: the whole GET /metrics page (core/metrics_report.c). */
#ifndef METRICS_REPORT_H
#define METRICS_REPORT_H
#include "arena.h"
#include "buf.h"
#include "db.h"

/* The counters plus the gauges read from the database (db NULL: counters only). */
void metrics_write_all(db_t *db, arena_t *a, buf_t *out);

#endif
