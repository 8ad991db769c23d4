/* kv: ordered list of key/value strings (form fields, query, XML leaves),
 * and the strict application/x-www-form-urlencoded decoder. */
#ifndef KV_H
#define KV_H
#include <stddef.h>
#include <stdbool.h>
#include "arena.h"
#include "pg_err.h"

typedef struct kv_pair {
    const char *key;
    const char *value;
} kv_pair_t;

typedef struct kv_list {
    kv_pair_t *items;
    size_t count;
    size_t cap;
    arena_t *arena;
} kv_list_t;

void        kv_init(kv_list_t *l, arena_t *arena);
pg_err      kv_add(kv_list_t *l, const char *key, const char *value);   /* copies both into the arena */
const char *kv_get(const kv_list_t *l, const char *key);                /* first match or NULL */
size_t      kv_count_key(const kv_list_t *l, const char *key);

/* Decodes `a=1&b=x%20y` into l. '+' is a space; %XX must be two hex digits
 * (else PG_ERR_BAD_INPUT); %00 and any control byte < 0x20 other than \t \r \n
 * are rejected; a pair without '=' gets the empty value; empty pairs ("a=1&&b=2")
 * are skipped; repeated keys are all kept in order. Decoding happens once. */
pg_err form_parse(const char *s, size_t len, kv_list_t *l);

/* Percent-decodes one component (same rules) into a new arena string. */
pg_err url_decode(arena_t *a, const char *s, size_t len, bool plus_is_space, char **out);

#endif
