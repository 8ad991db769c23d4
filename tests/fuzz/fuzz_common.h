/* fuzz_common: what every libFuzzer target in tests/fuzz/ shares.
 *
 * Each target is built twice from the same source: with clang's libFuzzer
 * (`make fuzz`, main from -fsanitize=fuzzer) and with the normal compiler
 * plus replay_main.c (`make fuzz-regress`, replays the committed corpus and
 * regression inputs under ASan+UBSan). Both run from the repository root, so
 * fixture paths are relative to it.
 *
 * Rules for targets: one arena per input, freed before returning (leak
 * detection is on); no randomness and no clock (a crash must replay); keys
 * and clients are loaded once in LLVMFuzzerInitialize and live for the
 * process. A broken property is reported with FUZZ_ASSERT, which aborts so
 * that libFuzzer keeps the input as a crash. */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "buf.h"
#include "crypto.h"
#include "kv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_ASSERT(cond)                                                                   \
    do {                                                                                    \
        if (!(cond)) {                                                                      \
            fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #cond);     \
            abort();                                                                        \
        }                                                                                   \
    } while (0)

/* An arena whose every allocation is its own malloc block: ASan then sees
 * an overrun of any arena object (a normal arena would hide it inside a
 * 16 KiB block). */
static inline void fuzz_arena_init(arena_t *a)
{
    arena_init(a, 1);
}

/* A NUL-terminated arena copy of the input, for APIs that take C strings. */
static inline char *fuzz_cstr(arena_t *a, const uint8_t *data, size_t size)
{
    char *s = arena_alloc(a, size + 1);
    if (s == NULL)
        abort();
    if (size > 0)
        memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

/* An exact-size heap copy (no terminator), so reading one byte past the
 * end is an ASan report. The caller frees it. */
static inline char *fuzz_exact_copy(const uint8_t *data, size_t size)
{
    char *p = malloc(size > 0 ? size : 1);
    if (p == NULL)
        abort();
    if (size > 0)
        memcpy(p, data, size);
    return p;
}

static inline char *fuzz_read_file(const char *path, size_t *len_out)
{
    FILE *f = fopen(path, "rb");
    char *data;
    long n;

    if (f == NULL) {
        fprintf(stderr, "fuzz: cannot open %s (run from the repository root)\n", path);
        exit(2);
    }
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0) {
        fprintf(stderr, "fuzz: cannot size %s\n", path);
        exit(2);
    }
    rewind(f);
    data = malloc((size_t)n + 1);
    if (data == NULL || fread(data, 1, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "fuzz: cannot read %s\n", path);
        exit(2);
    }
    data[n] = '\0';
    fclose(f);
    if (len_out != NULL)
        *len_out = (size_t)n;
    return data;
}

static inline crypto_key_t *fuzz_load_key(const char *path, int is_private)
{
    crypto_key_t *k = NULL;
    buf_t err;
    pg_err rc;

    buf_init(&err, NULL);
    rc = is_private ? crypto_key_load_private(path, &k, &err) : crypto_key_load_public(path, &k, &err);
    if (rc != PG_OK) {
        fprintf(stderr, "fuzz: cannot load %s: %s\n", path, err.data);
        exit(2);
    }
    buf_free(&err);
    return k;
}

/* Copies src into dst (initialised with arena a) without any pair whose
 * key is `drop`. */
static inline void fuzz_kv_copy_without(kv_list_t *dst, arena_t *a, const kv_list_t *src,
                                        const char *drop)
{
    size_t i;
    kv_init(dst, a);
    for (i = 0; i < src->count; i++) {
        if (strcmp(src->items[i].key, drop) == 0)
            continue;
        if (kv_add(dst, src->items[i].key, src->items[i].value) != PG_OK)
            abort();
    }
}

#endif
