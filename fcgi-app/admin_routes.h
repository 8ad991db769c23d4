/* admin_routes: the operator's console under /admin/ (README "Operator
 * console"): sign-in, pages and actions. Every page needs a session, every
 * POST its CSRF token, every action its role; actions go through the same
 * use cases as the API and into the audit log. */
#ifndef ADMIN_ROUTES_H
#define ADMIN_ROUTES_H
#include <stdbool.h>
#include "app.h"
#include "http.h"

/* true for "/admin" and anything under "/admin/". */
bool admin_routes_match(const char *path);
void admin_routes_handle(pg_app_t *app, arena_t *a, http_request_t *req, http_response_t *res);

#endif
