/* arena: a chain of blocks with a bump pointer. Requests allocate freely and
 * release everything at once; a large request gets a block of its own so the
 * default block size only bounds the common case. */
#include "arena.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_ALIGN 16
#define ARENA_DEFAULT_BLOCK ((size_t)16 * 1024)

struct arena_block {
    arena_block_t *next;
    size_t size;   /* usable bytes in data[] */
    size_t used;
    /* Keeps data[] 16-byte aligned whatever the header size. */
    _Alignas(ARENA_ALIGN) unsigned char data[];
};

void arena_init(arena_t *a, size_t block_size)
{
    a->head = NULL;
    a->block_size = block_size ? block_size : ARENA_DEFAULT_BLOCK;
}

static arena_block_t *arena_new_block(size_t size)
{
    if (size > SIZE_MAX - sizeof(arena_block_t))
        return NULL;
    arena_block_t *blk = malloc(sizeof(arena_block_t) + size);
    if (!blk)
        return NULL;
    blk->next = NULL;
    blk->size = size;
    blk->used = 0;
    return blk;
}

void *arena_alloc(arena_t *a, size_t n)
{
    if (n == 0)
        n = 1;   /* distinct non-NULL pointers for zero-sized requests */
    if (n > SIZE_MAX - (ARENA_ALIGN - 1))
        return NULL;
    size_t rounded = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);

    arena_block_t *blk = a->head;
    if (blk && blk->size - blk->used >= rounded) {
        void *p = blk->data + blk->used;
        blk->used += rounded;
        return p;
    }

    if (rounded > a->block_size) {
        /* Oversized: own block, linked behind the head so the head's free
         * space stays usable for later small allocations. */
        arena_block_t *big = arena_new_block(rounded);
        if (!big)
            return NULL;
        big->used = rounded;
        if (blk) {
            big->next = blk->next;
            blk->next = big;
        } else {
            a->head = big;
        }
        return big->data;
    }

    arena_block_t *fresh = arena_new_block(a->block_size);
    if (!fresh)
        return NULL;
    fresh->next = a->head;
    a->head = fresh;
    fresh->used = rounded;
    return fresh->data;
}

void *arena_calloc(arena_t *a, size_t n)
{
    void *p = arena_alloc(a, n);
    if (p)
        memset(p, 0, n);
    return p;
}

char *arena_strndup(arena_t *a, const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = arena_alloc(a, len + 1);
    if (!p)
        return NULL;
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

char *arena_strdup(arena_t *a, const char *s)
{
    return arena_strndup(a, s, strlen(s));
}

char *arena_printf(arena_t *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int need = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (need < 0)
        return NULL;
    char *p = arena_alloc(a, (size_t)need + 1);
    if (!p)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(p, (size_t)need + 1, fmt, ap);
    va_end(ap);
    return p;
}

void arena_reset(arena_t *a)
{
    arena_block_t *keep = a->head;
    if (!keep)
        return;
    arena_block_t *blk = keep->next;
    while (blk) {
        arena_block_t *next = blk->next;
        free(blk);
        blk = next;
    }
    /* An oversized head is not worth keeping: it would pin a large buffer
     * for the life of the process. */
    if (keep->size > a->block_size) {
        free(keep);
        a->head = NULL;
        return;
    }
    keep->next = NULL;
    keep->used = 0;
}

void arena_free(arena_t *a)
{
    arena_block_t *blk = a->head;
    while (blk) {
        arena_block_t *next = blk->next;
        free(blk);
        blk = next;
    }
    a->head = NULL;
}
