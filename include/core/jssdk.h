/* jssdk: what a page needs for the WeChat JS-SDK's wx.config (the payee's
 * confirmation page: requestMerchantTransfer works in WeChat's browser only
 * after wx.config with the jsApiList naming it). The jsapi_ticket comes from
 * the Official Account of [wechat] appid ([wechat] app_secret): fetched once
 * for every process and host (store_wxmp), fetched again shortly before it
 * expires, and once more with a new access token when WeChat calls the
 * token invalid or expired (40001/40014/42001). The ticket never leaves this
 * module: the page gets the signature. */
#ifndef JSSDK_H
#define JSSDK_H
#include <stdint.h>
#include "app.h"

typedef struct jssdk_config {
    const char *appid;
    int64_t timestamp;          /* unix seconds */
    char noncestr[17];
    char signature[41];         /* hex SHA1 of the JS-SDK's string to sign */
} jssdk_config_t;

/* wx.config's fields for the page at page_url (the URL the browser shows,
 * its #fragment left out). PG_ERR_CONFIG when [wechat] app_secret is not set;
 * PG_ERR_UPSTREAM/PG_ERR_TIMEOUT when WeChat refused or did not answer,
 * PG_ERR_DB; each failure is logged (never the secret, token or ticket). */
pg_err jssdk_page_config(pg_app_t *app, arena_t *a, const char *page_url, jssdk_config_t *out);

#endif
