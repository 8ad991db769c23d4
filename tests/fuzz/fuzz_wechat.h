/* fuzz_wechat: the test merchant of tests/fixtures/wechat and the re-signing
 * step shared by the WeChat targets. */
#ifndef FUZZ_WECHAT_H
#define FUZZ_WECHAT_H
#include "fuzz_common.h"
#include "wechat.h"
#include "xml.h"

#define FUZZ_WX_API_KEY "192006250b4c09247ec02edce69f6a2d"
#define FUZZ_WX_APPID "wxd930ea5d5a258f4f"
#define FUZZ_WX_MCH_ID "10000100"

static inline wechat_client_t fuzz_wechat_client(wechat_sign_type_t configured)
{
    wechat_client_t c;
    memset(&c, 0, sizeof c);
    c.appid = FUZZ_WX_APPID;
    c.mch_id = FUZZ_WX_MCH_ID;
    c.api_key = FUZZ_WX_API_KEY;
    c.sign_type = configured;
    return c;
}

/* The same message with a correct sign, as the exact-size heap text of a
 * flat XML document (the caller frees it), or NULL when the body is not a
 * signable message: it does not parse, names an unknown sign_type, or holds
 * a '\r' (which XML would turn into '\n' on the way back, changing what is
 * signed). */
static inline char *fuzz_wechat_resign(arena_t *a, const char *body, size_t len,
                                       wechat_sign_type_t configured, size_t *len_out)
{
    kv_list_t parsed, fields;
    wechat_sign_type_t t = configured;
    const char *named;
    char sign[65];
    buf_t out;
    size_t i;

    if (xml_parse_flat(a, body, len, &parsed, NULL) != PG_OK)
        return NULL;
    for (i = 0; i < parsed.count; i++)
        if (strchr(parsed.items[i].value, '\r') != NULL)
            return NULL;
    named = kv_get(&parsed, "sign_type");
    if (named != NULL && *named != '\0') {
        if (strcmp(named, "MD5") == 0)
            t = WECHAT_SIGN_MD5;
        else if (strcmp(named, "HMAC-SHA256") == 0)
            t = WECHAT_SIGN_HMAC_SHA256;
        else
            return NULL;
    }
    fuzz_kv_copy_without(&fields, a, &parsed, "sign");
    if (wechat_sign(&fields, FUZZ_WX_API_KEY, t, sign) != PG_OK)
        return NULL;
    FUZZ_ASSERT(kv_add(&fields, "sign", sign) == PG_OK);
    buf_init(&out, a);
    FUZZ_ASSERT(xml_build_flat(&fields, &out) == PG_OK);
    *len_out = out.len;
    return fuzz_exact_copy((const uint8_t *)out.data, out.len);
}

#endif
