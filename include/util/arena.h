/* arena: per-request memory. Everything a request allocates comes from its
 * arena and is released in one place, by arena_reset/arena_free. */
#ifndef ARENA_H
#define ARENA_H
#include <stddef.h>

typedef struct arena_block arena_block_t;
typedef struct arena {
    arena_block_t *head;   /* newest block first */
    size_t block_size;     /* default size of new blocks */
} arena_t;

void  arena_init(arena_t *a, size_t block_size);   /* block_size 0 = 16 KiB */
/* Returns NULL only when malloc fails; memory is 16-byte aligned, not zeroed. */
void *arena_alloc(arena_t *a, size_t n);
void *arena_calloc(arena_t *a, size_t n);
char *arena_strdup(arena_t *a, const char *s);
char *arena_strndup(arena_t *a, const char *s, size_t n);
char *arena_printf(arena_t *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Frees all blocks but the first, which is kept for reuse (cheap per request). */
void  arena_reset(arena_t *a);
void  arena_free(arena_t *a);

#endif
