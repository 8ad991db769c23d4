/* fuzz_http: the request side of src/http.c: splitting REQUEST_URI into path
 * and decoded query (http_request_route_path), the fields of a POST body,
 * form-encoded or flat JSON (http_request_fields), and the Bearer token.
 *
 * Input: one flag byte, then the REQUEST_URI, a '\n', and the body.
 *   bits 0-2  Content-Type (table below)
 *   bit 3     base path "" instead of "/paygate"
 * Properties: a routed path starts with '/' and the query string is the
 * text after the first '?'; the fields start with the query's pairs, in
 * order; the token has no leading space. */
#include "fuzz_common.h"
#include "http.h"

static const char *const content_types[] = {
    NULL,
    "",
    "application/x-www-form-urlencoded",
    "application/json",
    "application/json; charset=utf-8",
    "APPLICATION/X-WWW-FORM-URLENCODED;charset=UTF-8",
    "text/plain",
    "application/jsonx",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    http_request_t r;
    arena_t a;
    kv_list_t fields;
    const uint8_t *nl;
    const char *base, *tok;
    char *uri, *body;
    size_t uri_len, body_len, i;
    uint8_t flags;
    pg_err rc;

    if (size < 1)
        return 0;
    flags = data[0];
    data++;
    size--;
    nl = memchr(data, '\n', size);
    uri_len = nl != NULL ? (size_t)(nl - data) : size;
    body_len = nl != NULL ? size - uri_len - 1 : 0;
    base = (flags & 8) ? "" : "/paygate";

    fuzz_arena_init(&a);
    uri = fuzz_cstr(&a, data, uri_len);
    body = fuzz_exact_copy(nl != NULL ? nl + 1 : data, body_len);

    memset(&r, 0, sizeof r);
    r.method = "POST";
    r.request_uri = uri;
    r.content_type = content_types[flags & 7];
    r.authorization = uri;
    r.body = body;
    r.body_len = body_len;

    rc = http_request_route_path(&r, &a, base);
    if (rc == PG_OK) {
        FUZZ_ASSERT(r.path != NULL && r.path[0] == '/');
        FUZZ_ASSERT(strchr(r.path, '?') == NULL);
        if (strchr(uri, '?') != NULL)
            FUZZ_ASSERT(r.query_string == strchr(uri, '?') + 1);
    }
    rc = http_request_fields(&r, &a, &fields);
    if (rc == PG_OK || fields.count >= r.query.count) {
        for (i = 0; i < r.query.count && i < fields.count; i++) {
            FUZZ_ASSERT(strcmp(fields.items[i].key, r.query.items[i].key) == 0);
            FUZZ_ASSERT(strcmp(fields.items[i].value, r.query.items[i].value) == 0);
        }
    }
    tok = http_bearer_token(&r);
    if (tok != NULL)
        FUZZ_ASSERT(*tok != ' ' && *tok != '\0');

    free(body);
    arena_free(&a);
    return 0;
}
