/* wechat_mp: the WeChat Official Account (公众号) calls behind the JS-SDK's
 * wx.config, which the payee's confirmation page needs before
 * requestMerchantTransfer works in WeChat's browser:
 *   POST {mp_api_base}/cgi-bin/stable_token {grant_type client_credential,
 *        appid, secret} -> {access_token, expires_in}   (normal mode: does not
 *        invalidate a token another process holds; force_refresh is never sent)
 *   GET  {mp_api_base}/cgi-bin/ticket/getticket?access_token=..&type=jsapi
 *        -> {errcode 0, errmsg "ok", ticket, expires_in}
 *   errors: {errcode, errmsg}; 40001/40014/42001 = the access token is
 *   invalid or expired (fetch a new token, once).
 * And the JS-SDK signature (JS-SDK 说明文档, 附录1 签名算法):
 *   hex(SHA1("jsapi_ticket=T&noncestr=N&timestamp=S&url=U")), U the page's URL
 *   without its #fragment.
 * Bytes in, facts out: no database, no FastCGI. The secret, the token and the
 * ticket are never put into err. */
#ifndef WECHAT_MP_H
#define WECHAT_MP_H
#include <stdbool.h>
#include <stdint.h>
#include "arena.h"
#include "buf.h"
#include "httpc.h"
#include "pg_err.h"

typedef struct wxmp_client {
    const char *api_base;      /* https://api.weixin.qq.com, or the sandbox's; no trailing slash */
    const char *appid;
    const char *secret;        /* the Official Account's AppSecret */
    httpc_opts_t http;
} wxmp_client_t;

/* A credential WeChat issued: value (arena) and its lifetime in seconds. */
typedef struct wxmp_credential {
    const char *value;
    int64_t expires_in;
    int64_t errcode;           /* WeChat's errcode when refused (PG_ERR_UPSTREAM), else 0 */
} wxmp_credential_t;

/* PG_OK; PG_ERR_UPSTREAM when WeChat refused (out->errcode, err "errcode N: errmsg")
 * or answered something that is not its reply; PG_ERR_TIMEOUT; PG_ERR_BAD_INPUT
 * for a reply that does not parse. */
pg_err wxmp_fetch_access_token(arena_t *a, const wxmp_client_t *c, wxmp_credential_t *out, buf_t *err);
pg_err wxmp_fetch_jsapi_ticket(arena_t *a, const wxmp_client_t *c, const char *access_token,
                               wxmp_credential_t *out, buf_t *err);
/* The reply parsers (unit tests, fuzzing): body of the HTTP 200 reply. */
pg_err wxmp_parse_token_reply(arena_t *a, const char *body, size_t len, wxmp_credential_t *out, buf_t *err);
pg_err wxmp_parse_ticket_reply(arena_t *a, const char *body, size_t len, wxmp_credential_t *out, buf_t *err);
/* errcode says the access token is invalid or expired: 40001, 40014, 42001. */
bool   wxmp_is_token_error(int64_t errcode);
/* The JS-SDK signature (40 lowercase hex + NUL). PG_ERR_BAD_INPUT when an
 * argument is empty; the URL's #fragment, if any, is left out. */
pg_err wxmp_jssdk_signature(const char *ticket, const char *noncestr, int64_t timestamp, const char *url,
                            char out[41]);

#endif
