/* buf: growable NUL-terminated byte string. A buf that has never grown points
 * at a shared empty string with cap 0, so buf_init cannot fail; the first
 * append allocates. After an allocation failure the buf is marked failed and
 * every later append reports PG_ERR_NOMEM, so a caller may check once at the
 * end of a long sequence of appends. */
#include "buf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUF_MIN_CAP 64

/* Never written: only reached through data[len] when cap == 0, len == 0,
 * and every writer checks cap first. */
static char buf_empty[1];

void buf_init(buf_t *b, arena_t *arena)
{
    b->data = buf_empty;
    b->len = 0;
    b->cap = 0;
    b->arena = arena;
    b->failed = 0;
}

/* Makes room for `extra` more bytes plus the terminator. */
static pg_err buf_reserve(buf_t *b, size_t extra)
{
    if (b->failed)
        return PG_ERR_NOMEM;
    if (extra > SIZE_MAX - 1 - b->len)
        goto fail;
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return PG_OK;

    size_t cap = b->cap ? b->cap : BUF_MIN_CAP;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }

    char *p;
    if (b->arena) {
        /* The old block stays in the arena until the arena is reset. */
        p = arena_alloc(b->arena, cap);
        if (!p)
            goto fail;
        memcpy(p, b->data, b->len + 1);
    } else if (b->cap == 0) {
        p = malloc(cap);
        if (!p)
            goto fail;
        memcpy(p, b->data, b->len + 1);
    } else {
        p = realloc(b->data, cap);
        if (!p)
            goto fail;
    }
    b->data = p;
    b->cap = cap;
    return PG_OK;

fail:
    b->failed = 1;
    return PG_ERR_NOMEM;
}

pg_err buf_append(buf_t *b, const void *data, size_t n)
{
    pg_err rc = buf_reserve(b, n);
    if (rc != PG_OK)
        return rc;
    if (n)
        memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = '\0';
    return PG_OK;
}

pg_err buf_puts(buf_t *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

pg_err buf_putc(buf_t *b, char c)
{
    return buf_append(b, &c, 1);
}

pg_err buf_vprintf(buf_t *b, const char *fmt, va_list ap)
{
    if (b->failed)
        return PG_ERR_NOMEM;
    va_list ap2;
    va_copy(ap2, ap);
    size_t room = b->cap > b->len ? b->cap - b->len : 0;
    char *dst = room ? b->data + b->len : NULL;
    int need = vsnprintf(dst, room, fmt, ap2);
    va_end(ap2);
    if (need < 0)
        return PG_ERR_INTERNAL;
    if ((size_t)need < room) {
        b->len += (size_t)need;
        return PG_OK;
    }
    pg_err rc = buf_reserve(b, (size_t)need);
    if (rc != PG_OK) {
        if (b->cap)
            b->data[b->len] = '\0';   /* undo the truncated partial write */
        return rc;
    }
    va_copy(ap2, ap);
    vsnprintf(b->data + b->len, (size_t)need + 1, fmt, ap2);
    va_end(ap2);
    b->len += (size_t)need;
    return PG_OK;
}

pg_err buf_printf(buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pg_err rc = buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

void buf_clear(buf_t *b)
{
    b->len = 0;
    if (b->cap)
        b->data[0] = '\0';
}

void buf_free(buf_t *b)
{
    if (b->arena)
        return;   /* the arena owns the storage */
    if (b->cap)
        free(b->data);
    buf_init(b, NULL);
}

void buf_wipe(buf_t *b)
{
    if (b->cap) {
        /* volatile so the compiler cannot drop the stores before free() */
        volatile char *p = b->data;
        for (size_t i = 0; i < b->cap; i++)
            p[i] = 0;
    }
    if (b->arena) {
        b->len = 0;
        return;
    }
    buf_free(b);
}

static const char buf_hex_upper[] = "0123456789ABCDEF";

pg_err buf_append_urlencoded(buf_t *b, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        int unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                         (c >= '0' && c <= '9') || c == '-' || c == '.' ||
                         c == '_' || c == '~';
        pg_err rc;
        if (unreserved) {
            rc = buf_putc(b, (char)c);
        } else {
            char enc[3] = { '%', buf_hex_upper[c >> 4], buf_hex_upper[c & 0x0F] };
            rc = buf_append(b, enc, 3);
        }
        if (rc != PG_OK)
            return rc;
    }
    return b->failed ? PG_ERR_NOMEM : PG_OK;
}

pg_err buf_append_html(buf_t *b, const char *s)
{
    const char *run = s;   /* start of the pending unescaped run */
    const char *p;
    for (p = s; *p; p++) {
        const char *rep;
        switch (*p) {
        case '&':  rep = "&amp;";  break;
        case '<':  rep = "&lt;";   break;
        case '>':  rep = "&gt;";   break;
        case '"':  rep = "&quot;"; break;
        case '\'': rep = "&#39;";  break;
        default:   continue;
        }
        buf_append(b, run, (size_t)(p - run));
        buf_puts(b, rep);
        run = p + 1;
    }
    buf_append(b, run, (size_t)(p - run));
    return b->failed ? PG_ERR_NOMEM : PG_OK;
}

pg_err buf_append_json_string(buf_t *b, const char *s)
{
    static const char hex_lower[] = "0123456789abcdef";
    buf_putc(b, '"');
    const char *run = s;
    const char *p;
    for (p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        char esc[7];
        size_t esc_len = 2;
        esc[0] = '\\';
        switch (c) {
        case '"':  esc[1] = '"';  break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n';  break;
        case '\r': esc[1] = 'r';  break;
        case '\t': esc[1] = 't';  break;
        case '\b': esc[1] = 'b';  break;
        case '\f': esc[1] = 'f';  break;
        default:
            if (c >= 0x20)
                continue;   /* UTF-8 and printable ASCII pass through */
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex_lower[c >> 4];
            esc[5] = hex_lower[c & 0x0F];
            esc_len = 6;
            break;
        }
        buf_append(b, run, (size_t)(p - run));
        buf_append(b, esc, esc_len);
        run = p + 1;
    }
    buf_append(b, run, (size_t)(p - run));
    buf_putc(b, '"');
    return b->failed ? PG_ERR_NOMEM : PG_OK;
}

void buf_set_error(buf_t *err, const char *fmt, ...)
{
    va_list ap;
    if (err == NULL)
        return;
    buf_clear(err);
    va_start(ap, fmt);
    (void)buf_vprintf(err, fmt, ap);
    va_end(ap);
}
