/* fuzz_xml: the hardened flat XML reader (xml_parse_flat, and
 * xml_parse_flat_root with the req_info roots) on arbitrary bytes.
 *
 * Properties: what is accepted has unique keys of [A-Za-z0-9_] and values
 * without NUL; the writer (xml_build_flat) accepts every message the reader
 * accepted, and reading the written text gives the same pairs back (values
 * holding '\r' excepted: XML turns a written CR into LF, which is why
 * WeChat never sends one). */
#include "fuzz_common.h"
#include "xml.h"

static const char *const roots[] = { "root", "xml", NULL };

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    xml_global_init();
    return 0;
}

static int valid_key(const char *k)
{
    if (*k == '\0')
        return 0;
    for (; *k != '\0'; k++)
        if (!((*k >= 'A' && *k <= 'Z') || (*k >= 'a' && *k <= 'z') || (*k >= '0' && *k <= '9') || *k == '_'))
            return 0;
    return 1;
}

static int cmp_str(const void *x, const void *y)
{
    return strcmp(*(const char *const *)x, *(const char *const *)y);
}

static void check_accepted(arena_t *a, const kv_list_t *l)
{
    buf_t out, err;
    kv_list_t again;
    const char **keys;
    size_t i;
    int has_cr = 0;
    pg_err rc;

    keys = malloc((l->count + 1) * sizeof *keys);
    FUZZ_ASSERT(keys != NULL);
    for (i = 0; i < l->count; i++) {
        FUZZ_ASSERT(valid_key(l->items[i].key));
        keys[i] = l->items[i].key;
        if (strchr(l->items[i].value, '\r') != NULL)
            has_cr = 1;
    }
    qsort(keys, l->count, sizeof *keys, cmp_str);
    for (i = 0; i + 1 < l->count; i++)
        FUZZ_ASSERT(strcmp(keys[i], keys[i + 1]) != 0);
    free(keys);
    buf_init(&out, a);
    FUZZ_ASSERT(xml_build_flat(l, &out) == PG_OK);
    buf_init(&err, a);
    rc = xml_parse_flat(a, out.data, out.len, &again, &err);
    if (rc == PG_ERR_TOO_LARGE)
        return;   /* many "]]>" splits can push a 64 KiB message over */
    if (rc != PG_OK) {
        /* e.g. a value naming "<!DOCTYPE" in text: refused by the byte scan
         * once written into CDATA. Only the scan may refuse. */
        FUZZ_ASSERT(strstr(err.data, "DOCTYPE/ENTITY") != NULL);
        return;
    }
    FUZZ_ASSERT(again.count == l->count);
    for (i = 0; i < l->count; i++) {
        FUZZ_ASSERT(strcmp(again.items[i].key, l->items[i].key) == 0);
        if (!has_cr)
            FUZZ_ASSERT(strcmp(again.items[i].value, l->items[i].value) == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    arena_t a;
    kv_list_t l;
    buf_t err;
    char *doc = fuzz_exact_copy(data, size);
    pg_err rc;

    fuzz_arena_init(&a);
    buf_init(&err, &a);
    rc = xml_parse_flat(&a, doc, size, &l, &err);
    if (rc == PG_OK)
        check_accepted(&a, &l);
    else
        FUZZ_ASSERT(l.count == 0);
    rc = xml_parse_flat_root(&a, doc, size, roots, &l, NULL);
    if (rc == PG_OK)
        check_accepted(&a, &l);
    free(doc);
    arena_free(&a);
    return 0;
}
