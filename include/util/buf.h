/* buf: a growable byte string with length, always NUL-terminated.
 * Backed by malloc (arena == NULL, free with buf_free) or by an arena
 * (old storage is abandoned to the arena on growth; buf_free is a no-op). */
#ifndef BUF_H
#define BUF_H
#include <stddef.h>
#include <stdarg.h>
#include "arena.h"
#include "pg_err.h"

typedef struct buf {
    char *data;     /* NUL-terminated; never NULL after buf_init */
    size_t len;
    size_t cap;
    arena_t *arena;
    int failed;     /* sticky: an append failed for lack of memory */
} buf_t;

void   buf_init(buf_t *b, arena_t *arena);
pg_err buf_append(buf_t *b, const void *data, size_t n);
pg_err buf_puts(buf_t *b, const char *s);
pg_err buf_putc(buf_t *b, char c);
pg_err buf_printf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
pg_err buf_vprintf(buf_t *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
void   buf_clear(buf_t *b);      /* len = 0, keeps storage */
/* Replaces the contents with the message (the adapters' error reason);
 * a NULL err is allowed and ignored. */
void   buf_set_error(buf_t *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void   buf_free(buf_t *b);       /* wipes nothing; use buf_wipe for secrets */
void   buf_wipe(buf_t *b);       /* zero the bytes, then free */

/* Appenders used for building replies and URLs. */
pg_err buf_append_urlencoded(buf_t *b, const char *s);   /* RFC 3986 unreserved kept, rest %XX (uppercase) */
pg_err buf_append_html(buf_t *b, const char *s);         /* & < > " ' escaped */
pg_err buf_append_json_string(buf_t *b, const char *s);  /* with quotes, \" \\ \n \uXXXX escapes */

#endif
