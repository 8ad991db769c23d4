/* kv: ordered key/value list in an arena, and the strict form decoder.
 * Strictness matters here: these strings feed signature checks, so anything
 * a lenient decoder would guess at (a stray '%', a NUL smuggled as %00) is
 * refused, and decoding happens exactly once ("%2541" is "%41", never "A"). */
#include "kv.h"

#include <stdint.h>
#include <string.h>

#define KV_MIN_CAP 16

void kv_init(kv_list_t *l, arena_t *arena)
{
    l->items = NULL;
    l->count = 0;
    l->cap = 0;
    l->arena = arena;
}

pg_err kv_add(kv_list_t *l, const char *key, const char *value)
{
    if (l->count == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : KV_MIN_CAP;
        if (cap > SIZE_MAX / sizeof(kv_pair_t))
            return PG_ERR_NOMEM;
        kv_pair_t *items = arena_alloc(l->arena, cap * sizeof(kv_pair_t));
        if (!items)
            return PG_ERR_NOMEM;
        if (l->count)
            memcpy(items, l->items, l->count * sizeof(kv_pair_t));
        l->items = items;
        l->cap = cap;
    }
    char *k = arena_strdup(l->arena, key);
    char *v = arena_strdup(l->arena, value);
    if (!k || !v)
        return PG_ERR_NOMEM;
    l->items[l->count].key = k;
    l->items[l->count].value = v;
    l->count++;
    return PG_OK;
}

const char *kv_get(const kv_list_t *l, const char *key)
{
    for (size_t i = 0; i < l->count; i++)
        if (strcmp(l->items[i].key, key) == 0)
            return l->items[i].value;
    return NULL;
}

size_t kv_count_key(const kv_list_t *l, const char *key)
{
    size_t n = 0;
    for (size_t i = 0; i < l->count; i++)
        if (strcmp(l->items[i].key, key) == 0)
            n++;
    return n;
}

static int kv_hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Control bytes have no business in form values; tab and line breaks are
 * allowed because free-text fields (subject, remarks) may carry them. */
static int kv_byte_allowed(unsigned char c)
{
    return c >= 0x20 || c == '\t' || c == '\r' || c == '\n';
}

/* Decodes s[0..len) into dst, which has room for len bytes plus NUL. */
static pg_err kv_decode_into(const char *s, size_t len, bool plus_is_space, char *dst)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%') {
            if (len - i < 3)
                return PG_ERR_BAD_INPUT;
            int hi = kv_hex_value((unsigned char)s[i + 1]);
            int lo = kv_hex_value((unsigned char)s[i + 2]);
            if (hi < 0 || lo < 0)
                return PG_ERR_BAD_INPUT;
            c = (unsigned char)(hi * 16 + lo);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        }
        if (!kv_byte_allowed(c))
            return PG_ERR_BAD_INPUT;
        dst[o++] = (char)c;
    }
    dst[o] = '\0';
    return PG_OK;
}

pg_err url_decode(arena_t *a, const char *s, size_t len, bool plus_is_space, char **out)
{
    *out = NULL;
    if (len == SIZE_MAX)
        return PG_ERR_TOO_LARGE;
    char *dst = arena_alloc(a, len + 1);
    if (!dst)
        return PG_ERR_NOMEM;
    pg_err rc = kv_decode_into(s, len, plus_is_space, dst);
    if (rc != PG_OK)
        return rc;
    *out = dst;
    return PG_OK;
}

pg_err form_parse(const char *s, size_t len, kv_list_t *l)
{
    size_t pos = 0;
    while (pos < len) {
        const char *pair = s + pos;
        const char *amp = memchr(pair, '&', len - pos);
        size_t pair_len = amp ? (size_t)(amp - pair) : len - pos;
        pos += pair_len + 1;   /* may step one past len at the end: loop ends */
        if (pair_len == 0)
            continue;

        const char *eq = memchr(pair, '=', pair_len);
        size_t key_len = eq ? (size_t)(eq - pair) : pair_len;
        const char *val = eq ? eq + 1 : pair + pair_len;
        size_t val_len = eq ? pair_len - key_len - 1 : 0;

        char *key_dec, *val_dec;
        pg_err rc = url_decode(l->arena, pair, key_len, true, &key_dec);
        if (rc != PG_OK)
            return rc;
        rc = url_decode(l->arena, val, val_len, true, &val_dec);
        if (rc != PG_OK)
            return rc;
        rc = kv_add(l, key_dec, val_dec);
        if (rc != PG_OK)
            return rc;
    }
    return PG_OK;
}
