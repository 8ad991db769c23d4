/* metrics: the counters behind GET /metrics (SPEC §12.6), totals across every
 * paygate process that uses the same config, whoever spawned it.
 *
 * The counters live in one fixed-layout file mapped MAP_SHARED by every
 * process ([metrics] state_file; by default /dev/shm/paygate-UID-HASH.metrics,
 * HASH of the config's real path). Each increment is one atomic add, so a
 * process killed at any moment loses nothing already counted and corrupts
 * nothing. The file starts with a header (magic, version, size, a hash of the
 * label tables): a file of another layout is replaced, under flock, by a new
 * one (renamed into place, so a process still mapping the old file is safe).
 *
 * Every label value comes from a fixed list here; a value outside it
 * (user input such as an unknown channel) is counted as "other"/"unknown".
 * Gauges that the database knows exactly (refunds by state, webhook events,
 * the last reconciliation) are read at scrape time. */
#ifndef METRICS_H
#define METRICS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "arena.h"
#include "buf.h"
#include "pg_err.h"

/* Maps the shared counters file (state_file NULL/"" = the default derived
 * from config_path). On failure the process counts in private memory,
 * logs why, and /metrics says paygate_metrics_shared 0. */
pg_err metrics_open(const char *state_file, const char *config_path);
void   metrics_close(void);
/* [metrics] enabled = false: every increment returns at once (the bench
 * compares the cost) and GET /metrics is 404. */
void   metrics_disable(void);
/* The default state file of a config: /dev/shm/paygate-UID-HASH.metrics. */
void   metrics_default_path(const char *config_path, char *out, size_t n);

/* One-line increments for the call sites. Strings are matched against the
 * fixed label lists; anything else becomes "other"/"unknown". */
void metrics_request(const char *route, int status, long long duration_us);
void metrics_checkout(const char *channel, const char *method, pg_err rc, bool repeated);
void metrics_notification(const char *channel, const char *kind, const char *outcome);
/* operation: the provider's method or path ("alipay.trade.query",
 * "/pay/orderquery"); outcome: ok, refused, http_error, timeout,
 * transport_error. */
void metrics_provider_call(const char *channel, const char *operation, const char *outcome,
                           long long duration_us);
/* The outcome label of a provider call: replied (the reply was checked),
 * http_status (an HTTP status other than 200), else a transport failure. */
const char *metrics_call_outcome(bool replied, bool http_status, pg_err rc);
long long   metrics_now_us(void);   /* monotonic clock, for durations */
void metrics_db_error(const char *kind);   /* lost, lock, duplicate, other */
void metrics_db_reconnect(bool ok);

/* Access: address in the allow list (CIDR, IPv4 and IPv6, comma separated),
 * or the bearer token (constant-time; an empty token never matches). */
/* PG_ERR_BAD_INPUT (why in err) when an entry of the list is not a CIDR. */
pg_err metrics_allow_check(const char *list, buf_t *err);
bool   metrics_addr_allowed(const char *list, const char *addr);
bool   metrics_access_ok(const char *allow, const char *token, const char *remote_addr, const char *bearer);

/* The exposition writer (text format 0.0.4). */
void metrics_append_label_value(buf_t *b, const char *value);   /* escapes \ " and newline */
void metrics_write_sample(buf_t *b, const char *name, const char *const *labels, size_t nlabels,
                          uint64_t value);   /* labels: name, value, name, value ... */

void metrics_write_head(buf_t *b, const char *name, const char *type, const char *help);
/* The channel's label value, NULL for a channel outside the fixed list. */
const char *metrics_channel_label(const char *channel);
/* Every counter (and paygate_metrics_shared) in the exposition format. */
void metrics_write_counters(buf_t *out);

#endif
