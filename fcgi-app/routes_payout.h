/* routes_payout: the payee's page of a WeChat payout (SPEC 12.3). */
#ifndef ROUTES_PAYOUT_H
#define ROUTES_PAYOUT_H
#include "app.h"
#include "http.h"

/* GET /payouts/{payout_no}/confirm?token=...: while the WeChat transfer
 * waits for the payee (PENDING with WeChat's package_info), a page that
 * calls requestMerchantTransfer in WeChat's browser; else what became of
 * the payout. A token that is not the payout's (payout_confirm_token) and
 * an unknown payout both answer the same 404. */
void routes_payout_confirm(pg_app_t *app, arena_t *a, http_request_t *req, const char *param, size_t param_len,
                           http_response_t *res);

#endif
