/* routes_iap: the in-app purchase endpoints (SPEC 12.5). */
#ifndef ROUTES_IAP_H
#define ROUTES_IAP_H
#include "app.h"
#include "http.h"

void routes_iap_notify_appstore(pg_app_t *app, arena_t *a, const char *source, http_request_t *req,
                                http_response_t *res);
void routes_iap_post_appstore(pg_app_t *app, arena_t *a, http_request_t *req, http_response_t *res);
void routes_iap_notify_googleplay(pg_app_t *app, arena_t *a, const char *source, http_request_t *req,
                                  http_response_t *res);
void routes_iap_post_googleplay(pg_app_t *app, arena_t *a, http_request_t *req, http_response_t *res);
void routes_iap_account_token(pg_app_t *app, arena_t *a, http_request_t *req, http_response_t *res);

#endif
