/* log: one line per event to the configured file ('-' = stderr, which the
 * web server collects). Secrets never go through here. */
#ifndef LOG_H
#define LOG_H

typedef enum { LOG_INFO, LOG_WARN, LOG_ERROR } log_level_t;

/* Opens path for appending ('-' or NULL = stderr). Returns 0 or -1. */
int  log_open(const char *path);
void log_close(void);
void log_msg(log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
