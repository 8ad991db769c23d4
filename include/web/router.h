/* router: matches a method and a path (relative to base_url) against a
 * table of patterns. A '*' segment matches one non-empty path segment and
 * is handed to the handler. No FastCGI here: unit-tested on its own. */
#ifndef ROUTER_H
#define ROUTER_H
#include <stddef.h>

typedef struct route {
    const char *method;    /* "GET", "POST", or "GET|POST" */
    const char *pattern;   /* "/orders/ *" without the space */
    int id;
} route_t;

typedef struct route_match {
    int id;                /* -1: no path matched */
    int method_allowed;    /* 0: the path matched but not with this method (405) */
    const char *param;     /* the '*' segment (points into path), or NULL */
    size_t param_len;
    const char *pattern;   /* the matched route's pattern (a metrics label), or NULL */
} route_match_t;

void router_match(const route_t *routes, size_t n, const char *method, const char *path,
                  route_match_t *out);

#endif
