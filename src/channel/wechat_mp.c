/* wechat_mp: see include/channel/wechat_mp.h. */
#include "wechat_mp.h"

#include <string.h>

#include <jansson.h>

#include "crypto.h"
#include "metrics.h"

#define CREDENTIAL_MAX 512
#define EXPIRES_MAX 86400
#define ERRMSG_MAX 120

bool wxmp_is_token_error(int64_t errcode)
{
    return errcode == 40001 || errcode == 40014 || errcode == 42001;
}

static bool credential_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > CREDENTIAL_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] <= ' ' || s[i] > '~')
            return false;
    return true;
}

/* errcode/errmsg of a refusal; true when the reply is one. */
static bool refusal(json_t *root, wxmp_credential_t *out, buf_t *err)
{
    json_t *code = json_object_get(root, "errcode");
    const char *msg = json_string_value(json_object_get(root, "errmsg"));
    if (!json_is_integer(code) || json_integer_value(code) == 0)
        return false;
    out->errcode = json_integer_value(code);
    buf_set_error(err, "WeChat refused: errcode %lld: %.*s", (long long)out->errcode, ERRMSG_MAX,
                  msg ? msg : "");
    return true;
}

static pg_err parse_credential(arena_t *a, const char *body, size_t len, const char *key,
                               wxmp_credential_t *out, buf_t *err)
{
    json_error_t je;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je), *exp;
    const char *value;
    pg_err rc = PG_ERR_BAD_INPUT;
    memset(out, 0, sizeof *out);
    if (!json_is_object(root)) {
        buf_set_error(err, "WeChat's reply is not a JSON object");
        goto done;
    }
    if (refusal(root, out, err)) {
        rc = PG_ERR_UPSTREAM;
        goto done;
    }
    value = json_string_value(json_object_get(root, key));
    exp = json_object_get(root, "expires_in");
    if (!credential_ok(value) || !json_is_integer(exp) || json_integer_value(exp) < 1 ||
        json_integer_value(exp) > EXPIRES_MAX) {
        buf_set_error(err, "WeChat's reply has no usable %s/expires_in", key);
        goto done;
    }
    out->value = arena_strdup(a, value);
    out->expires_in = json_integer_value(exp);
    rc = out->value ? PG_OK : PG_ERR_NOMEM;
done:
    json_decref(root);
    return rc;
}

pg_err wxmp_parse_token_reply(arena_t *a, const char *body, size_t len, wxmp_credential_t *out, buf_t *err)
{
    return parse_credential(a, body, len, "access_token", out, err);
}

pg_err wxmp_parse_ticket_reply(arena_t *a, const char *body, size_t len, wxmp_credential_t *out, buf_t *err)
{
    return parse_credential(a, body, len, "ticket", out, err);
}

static pg_err reply(arena_t *a, const char *op, long long t0, pg_err rc, const httpc_response_t *resp,
                    pg_err (*parse)(arena_t *, const char *, size_t, wxmp_credential_t *, buf_t *),
                    wxmp_credential_t *out, buf_t *err)
{
    bool replied = false;
    if (rc == PG_OK && resp->status != 200) {
        buf_set_error(err, "WeChat answered HTTP %ld", resp->status);
        rc = PG_ERR_UPSTREAM;
    } else if (rc == PG_OK) {
        replied = true;
        rc = parse(a, resp->body.data ? resp->body.data : "", resp->body.len, out, err);
    }
    metrics_provider_call("wechat", op, metrics_call_outcome(replied, !replied && resp->status != 0, rc),
                          metrics_now_us() - t0);
    return rc;
}

pg_err wxmp_fetch_access_token(arena_t *a, const wxmp_client_t *c, wxmp_credential_t *out, buf_t *err)
{
    buf_t url, body;
    httpc_response_t resp;
    long long t0 = metrics_now_us();
    pg_err rc;
    memset(out, 0, sizeof *out);
    memset(&resp, 0, sizeof resp);
    buf_init(&url, a);
    buf_init(&body, NULL);
    buf_printf(&url, "%s/cgi-bin/stable_token", c->api_base);
    buf_puts(&body, "{\"grant_type\":\"client_credential\",\"appid\":");
    buf_append_json_string(&body, c->appid);
    buf_puts(&body, ",\"secret\":");
    buf_append_json_string(&body, c->secret);
    rc = buf_puts(&body, ",\"force_refresh\":false}");
    if (rc == PG_OK && url.data)
        rc = httpc_post(a, url.data, "application/json", body.data, body.len, &c->http, &resp, err);
    else
        rc = PG_ERR_NOMEM;
    buf_wipe(&body);
    return reply(a, "/cgi-bin/stable_token", t0, rc, &resp, wxmp_parse_token_reply, out, err);
}

pg_err wxmp_fetch_jsapi_ticket(arena_t *a, const wxmp_client_t *c, const char *access_token,
                               wxmp_credential_t *out, buf_t *err)
{
    buf_t url;
    httpc_response_t resp;
    long long t0 = metrics_now_us();
    pg_err rc;
    memset(out, 0, sizeof *out);
    memset(&resp, 0, sizeof resp);
    buf_init(&url, NULL);
    buf_printf(&url, "%s/cgi-bin/ticket/getticket?access_token=", c->api_base);
    buf_append_urlencoded(&url, access_token);
    rc = buf_puts(&url, "&type=jsapi");
    if (rc == PG_OK)
        rc = httpc_get(a, url.data, &c->http, &resp, err);
    buf_wipe(&url);
    /* curl's reason may quote the URL: it holds the token */
    if (rc != PG_OK && err)
        buf_set_error(err, "getticket: %s", rc == PG_ERR_TIMEOUT ? "timed out" : "connection failed");
    return reply(a, "/cgi-bin/ticket/getticket", t0, rc, &resp, wxmp_parse_ticket_reply, out, err);
}

pg_err wxmp_jssdk_signature(const char *ticket, const char *noncestr, int64_t timestamp, const char *url,
                            char out[41])
{
    buf_t s;
    size_t url_len;
    pg_err rc;
    out[0] = '\0';
    if (!ticket || !*ticket || !noncestr || !*noncestr || !url || !*url || timestamp < 0)
        return PG_ERR_BAD_INPUT;
    url_len = strcspn(url, "#");
    buf_init(&s, NULL);
    buf_printf(&s, "jsapi_ticket=%s&noncestr=%s&timestamp=%lld&url=", ticket, noncestr, (long long)timestamp);
    rc = buf_append(&s, url, url_len);
    if (rc == PG_OK)
        crypto_sha1_hex(s.data, s.len, out);
    buf_wipe(&s);
    return rc;
}
