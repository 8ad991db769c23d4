/* router: see include/router.h. */
#include "router.h"

#include <stdbool.h>
#include <string.h>

static bool method_listed(const char *list, const char *method)
{
    size_t n = strlen(method);
    const char *p = list;
    while (p && *p) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && !strncmp(p, method, n))
            return true;
        p = bar ? bar + 1 : NULL;
    }
    return false;
}

/* Matches pattern against path; a '*' segment captures one segment. */
static bool pattern_match(const char *pattern, const char *path, const char **param, size_t *param_len)
{
    const char *p = pattern, *s = path;
    *param = NULL;
    *param_len = 0;
    while (*p && *s) {
        if (*p == '*') {
            const char *end = strchr(s, '/');
            size_t len = end ? (size_t)(end - s) : strlen(s);
            if (len == 0)
                return false;
            *param = s;
            *param_len = len;
            s += len;
            p++;
            continue;
        }
        if (*p != *s)
            return false;
        p++;
        s++;
    }
    return *p == '\0' && *s == '\0';
}

void router_match(const route_t *routes, size_t n, const char *method, const char *path,
                  route_match_t *out)
{
    out->id = -1;
    out->method_allowed = 0;
    out->param = NULL;
    out->param_len = 0;
    out->pattern = NULL;
    for (size_t i = 0; i < n; i++) {
        const char *param;
        size_t len;
        if (!pattern_match(routes[i].pattern, path, &param, &len))
            continue;
        out->id = routes[i].id;
        out->param = param;
        out->param_len = len;
        out->pattern = routes[i].pattern;
        if (method_listed(routes[i].method, method)) {
            out->method_allowed = 1;
            return;
        }
    }
}
