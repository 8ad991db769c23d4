/* fuzz_form: application/x-www-form-urlencoded decoding (form_parse,
 * url_decode), the first thing every notification and query string meets.
 *
 * Properties beyond "no crash": decoded text never holds a NUL or a control
 * byte other than \t \r \n; decoding never grows; and a decoded list,
 * encoded again with buf_append_urlencoded, decodes to the same pairs
 * (decoding happens exactly once, with nothing lost). */
#include "fuzz_common.h"

static int bytes_clean(const char *s)
{
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 && c != '\t' && c != '\r' && c != '\n')
            return 0;
    }
    return 1;
}

static void check_round_trip(arena_t *a, const kv_list_t *l)
{
    buf_t enc;
    kv_list_t again;
    size_t i;

    buf_init(&enc, a);
    for (i = 0; i < l->count; i++) {
        if (i > 0)
            buf_putc(&enc, '&');
        buf_append_urlencoded(&enc, l->items[i].key);
        buf_putc(&enc, '=');
        buf_append_urlencoded(&enc, l->items[i].value);
    }
    FUZZ_ASSERT(!enc.failed);
    kv_init(&again, a);
    FUZZ_ASSERT(form_parse(enc.data, enc.len, &again) == PG_OK);
    /* An empty key with an empty value encodes as "=", which is a pair. */
    FUZZ_ASSERT(again.count == l->count);
    for (i = 0; i < l->count; i++) {
        FUZZ_ASSERT(strcmp(again.items[i].key, l->items[i].key) == 0);
        FUZZ_ASSERT(strcmp(again.items[i].value, l->items[i].value) == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    arena_t a;
    kv_list_t l;
    char *in = fuzz_exact_copy(data, size);
    char *out;
    size_t i;
    int plus;

    fuzz_arena_init(&a);
    kv_init(&l, &a);
    if (form_parse(in, size, &l) == PG_OK) {
        for (i = 0; i < l.count; i++) {
            FUZZ_ASSERT(l.items[i].key != NULL && l.items[i].value != NULL);
            FUZZ_ASSERT(bytes_clean(l.items[i].key) && bytes_clean(l.items[i].value));
            FUZZ_ASSERT(strlen(l.items[i].key) + strlen(l.items[i].value) <= size);
        }
        if (l.count > 0) {
            FUZZ_ASSERT(kv_get(&l, l.items[0].key) == l.items[0].value);
            FUZZ_ASSERT(kv_count_key(&l, l.items[0].key) >= 1);
        }
        check_round_trip(&a, &l);
    }
    for (plus = 0; plus < 2; plus++) {
        if (url_decode(&a, in, size, plus != 0, &out) == PG_OK) {
            FUZZ_ASSERT(out != NULL && strlen(out) <= size);
            FUZZ_ASSERT(bytes_clean(out));
        } else {
            FUZZ_ASSERT(out == NULL);
        }
    }
    arena_free(&a);
    free(in);
    return 0;
}
