/* http: request splitting and reply helpers. See include/http.h. */
#include "http.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

void http_response_init(http_response_t *r, arena_t *a)
{
    memset(r, 0, sizeof *r);
    r->status = 200;
    r->content_type = "text/plain; charset=utf-8";
    buf_init(&r->headers, a);
    buf_init(&r->body, a);
}

pg_err http_request_route_path(http_request_t *r, arena_t *a, const char *base_path)
{
    const char *uri = r->request_uri ? r->request_uri : "/";
    const char *q = strchr(uri, '?');
    size_t path_len = q ? (size_t)(q - uri) : strlen(uri);
    size_t base_len = strlen(base_path);
    const char *qs = q ? q + 1 : (r->query_string ? r->query_string : "");
    kv_init(&r->query, a);
    if (path_len < base_len || strncmp(uri, base_path, base_len) != 0)
        return PG_ERR_NOT_FOUND;
    if (path_len > base_len && uri[base_len] != '/')
        return PG_ERR_NOT_FOUND;   /* "/payment" is not under "/pay" */
    r->path = path_len == base_len ? "/" : arena_strndup(a, uri + base_len, path_len - base_len);
    r->query_string = qs;
    if (!r->path)
        return PG_ERR_NOMEM;
    return form_parse(qs, strlen(qs), &r->query);
}

static bool content_type_is(const char *ct, const char *want)
{
    size_t n = strlen(want);
    return ct && strncasecmp(ct, want, n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

static pg_err json_fields(const http_request_t *r, kv_list_t *fields)
{
    json_error_t jerr;
    json_t *root = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &jerr);
    const char *key;
    json_t *val;
    pg_err rc = PG_OK;
    if (!root || !json_is_object(root)) {
        json_decref(root);
        return PG_ERR_BAD_INPUT;
    }
    json_object_foreach(root, key, val) {
        char num[32];
        if (json_is_string(val)) {
            rc = kv_add(fields, key, json_string_value(val));
        } else if (json_is_integer(val)) {
            snprintf(num, sizeof num, "%lld", (long long)json_integer_value(val));
            rc = kv_add(fields, key, num);
        } else {
            rc = PG_ERR_BAD_INPUT;
        }
        if (rc != PG_OK)
            break;
    }
    json_decref(root);
    return rc;
}

pg_err http_request_fields(const http_request_t *r, arena_t *a, kv_list_t *fields)
{
    kv_init(fields, a);
    for (size_t i = 0; i < r->query.count; i++) {
        pg_err rc = kv_add(fields, r->query.items[i].key, r->query.items[i].value);
        if (rc != PG_OK)
            return rc;
    }
    if (r->body_len == 0)
        return PG_OK;
    if (content_type_is(r->content_type, "application/json"))
        return json_fields(r, fields);
    if (content_type_is(r->content_type, "application/x-www-form-urlencoded") || !r->content_type ||
        !*r->content_type)
        return form_parse(r->body, r->body_len, fields);
    return PG_ERR_UNSUPPORTED;
}

const char *http_bearer_token(const http_request_t *r)
{
    const char *h = r->authorization;
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return NULL;
    h += 7;
    while (*h == ' ')
        h++;
    return *h ? h : NULL;
}

void http_reply_json_error(http_response_t *res, int status, const char *code, const char *message)
{
    res->status = status;
    res->content_type = "application/json";
    buf_clear(&res->body);
    buf_puts(&res->body, "{\"error\":{\"code\":");
    buf_append_json_string(&res->body, code);
    buf_puts(&res->body, ",\"message\":");
    buf_append_json_string(&res->body, message ? message : code);
    buf_puts(&res->body, "}}\n");
}

void http_reply_text(http_response_t *res, int status, const char *text)
{
    res->status = status;
    res->content_type = "text/plain; charset=utf-8";
    buf_clear(&res->body);
    buf_puts(&res->body, text);
}

void http_reply_redirect(http_response_t *res, const char *location)
{
    res->status = 302;
    res->content_type = "text/html; charset=utf-8";
    buf_puts(&res->headers, "Location: ");
    buf_puts(&res->headers, location);
    buf_puts(&res->headers, "\r\n");
    buf_clear(&res->body);
    buf_puts(&res->body, "<!doctype html><p>Continue to <a href=\"");
    buf_append_html(&res->body, location);
    buf_puts(&res->body, "\">the payment page</a>.</p>\n");
}

void http_html_begin(http_response_t *res, int status, const char *title)
{
    http_html_begin_lang(res, status, "en", title);
}

void http_html_begin_lang(http_response_t *res, int status, const char *lang, const char *title)
{
    res->status = status;
    res->content_type = "text/html; charset=utf-8";
    buf_clear(&res->body);
    buf_puts(&res->body, "<!doctype html>\n<html lang=\"");
    buf_append_html(&res->body, lang);
    buf_puts(&res->body,
             "\"><head><meta charset=\"utf-8\">"
             "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>");
    buf_append_html(&res->body, title);
    buf_puts(&res->body,
             "</title><style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;"
             "padding:0 1rem;color:#222}h1{font-size:1.4rem}.status{font-weight:bold}"
             "table{border-collapse:collapse}td,th{padding:.3rem .6rem;border-bottom:1px solid #ddd;text-align:left}"
             "a.button{display:inline-block;padding:.3rem .7rem;margin:.1rem;border:1px solid #1677ff;"
             "border-radius:4px;text-decoration:none;color:#1677ff}</style></head><body>\n<h1>");
    buf_append_html(&res->body, title);
    buf_puts(&res->body, "</h1>\n");
}

void http_html_end(http_response_t *res)
{
    buf_puts(&res->body, "</body></html>\n");
}
