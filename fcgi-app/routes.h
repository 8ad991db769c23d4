/* routes: the HTTP endpoints of SPEC §4, each a handler that turns an
 * http_request_t into an http_response_t through the use cases in src/. */
#ifndef ROUTES_H
#define ROUTES_H
#include "app.h"
#include "http.h"

void routes_handle(pg_app_t *app, arena_t *a, http_request_t *req, http_response_t *res);

#endif
