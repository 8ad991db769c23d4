/* wechat_v3_transfer: see include/channel/wechat_v3_transfer.h. */
#include "wechat_v3_transfer.h"

#include <string.h>

#include <jansson.h>

#include "money.h"

#define BILL_NO_MIN 5
#define BILL_NO_MAX 32
#define REMARK_MAX 32                    /* characters */
#define REPORT_MAX 32                    /* characters of info_content */
#define FIELD_MAX 512

static bool bill_no_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n < BILL_NO_MIN || n > BILL_NO_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')))
            return false;
    }
    return true;
}

static bool text_ok(const char *s)
{
    return s != NULL && *s != '\0' && strlen(s) <= FIELD_MAX;
}

/* Bytes of the first max UTF-8 characters of s. */
static size_t utf8_chars(const char *s, size_t max)
{
    size_t i = 0, chars = 0;
    while (s[i] != '\0') {
        if (((unsigned char)s[i] & 0xC0) != 0x80) {
            if (chars == max)
                break;
            chars++;
        }
        i++;
    }
    return i;
}

static pg_err put(json_t *obj, const char *key, json_t *v)
{
    if (v == NULL)
        return PG_ERR_BAD_INPUT;   /* json_string refuses invalid UTF-8 */
    return json_object_set_new(obj, key, v) == 0 ? PG_OK : PG_ERR_NOMEM;
}

static pg_err report_info(json_t *list, const char *type, const char *content)
{
    json_t *o = json_object();
    pg_err rc;
    if (o == NULL)
        return PG_ERR_NOMEM;
    if (json_array_append_new(list, o) != 0)
        return PG_ERR_NOMEM;
    rc = put(o, "info_type", json_string(type));
    if (rc == PG_OK)
        rc = put(o, "info_content", json_stringn(content, utf8_chars(content, REPORT_MAX)));
    return rc;
}

static pg_err transfer_fields(const wxv3_client_t *c, const wxv3_transfer_req_t *r, json_t *root)
{
    json_t *infos = json_array();
    pg_err rc = put(root, "appid", json_string(c->appid));
    if (rc == PG_OK)
        rc = put(root, "out_bill_no", json_string(r->out_bill_no));
    if (rc == PG_OK)
        rc = put(root, "transfer_scene_id", json_string(r->scene_id));
    if (rc == PG_OK)
        rc = put(root, "openid", json_string(r->openid));
    if (rc == PG_OK && r->user_name_cipher != NULL)
        rc = put(root, "user_name", json_string(r->user_name_cipher));
    if (rc == PG_OK)
        rc = put(root, "transfer_amount", json_integer((json_int_t)r->amount_fen));
    if (rc == PG_OK)
        rc = put(root, "transfer_remark", json_stringn(r->remark, utf8_chars(r->remark, REMARK_MAX)));
    if (rc == PG_OK && r->notify_url != NULL && *r->notify_url != '\0')
        rc = put(root, "notify_url", json_string(r->notify_url));
    if (rc == PG_OK)
        rc = put(root, "transfer_scene_report_infos", json_incref(infos));
    if (rc == PG_OK)
        rc = report_info(infos, r->report_type1, r->report_content1);
    if (rc == PG_OK && r->report_type2 != NULL)
        rc = report_info(infos, r->report_type2, r->report_content2);
    json_decref(infos);
    return rc;
}

pg_err wxv3_build_transfer(const wxv3_client_t *c, const wxv3_transfer_req_t *r, buf_t *path, buf_t *body)
{
    json_t *root;
    char *text = NULL;
    pg_err rc;

    if (c == NULL || !text_ok(c->appid))
        return PG_ERR_CONFIG;
    if (r == NULL || !bill_no_ok(r->out_bill_no) || !text_ok(r->openid) || r->amount_fen < 1 ||
        r->amount_fen > MONEY_MAX_FEN || !text_ok(r->scene_id) || !text_ok(r->remark) ||
        !text_ok(r->report_type1) || !text_ok(r->report_content1) ||
        (r->report_type2 != NULL && (!text_ok(r->report_type2) || !text_ok(r->report_content2))) ||
        (r->user_name_cipher != NULL && (!text_ok(r->user_name_cipher))) ||
        (r->notify_url != NULL && strlen(r->notify_url) > 256))
        return PG_ERR_BAD_INPUT;
    if ((root = json_object()) == NULL)
        return PG_ERR_NOMEM;
    rc = transfer_fields(c, r, root);
    if (rc == PG_OK && (text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER)) == NULL)
        rc = PG_ERR_NOMEM;
    if (rc == PG_OK)
        rc = buf_puts(body, text);
    if (rc == PG_OK)
        rc = buf_puts(path, "/v3/fund-app/mch-transfer/transfer-bills");
    free(text);
    json_decref(root);
    return rc;
}

/* ------------------------------------------------------------------ */
/* replies                                                             */

static pg_err member_str(arena_t *a, const json_t *root, const char *key, bool required, const char **out)
{
    const json_t *v = json_object_get(root, key);
    size_t n;
    *out = NULL;
    if (v == NULL || json_is_null(v))
        return required ? PG_ERR_BAD_INPUT : PG_OK;
    if (!json_is_string(v))
        return PG_ERR_BAD_INPUT;
    n = json_string_length(v);
    if (n > FIELD_MAX || strlen(json_string_value(v)) != n || (required && n == 0))
        return PG_ERR_BAD_INPUT;
    if (n == 0)
        return PG_OK;
    *out = arena_strndup(a, json_string_value(v), n);
    return *out ? PG_OK : PG_ERR_NOMEM;
}

static const struct { const char *name; wxv3_bill_state_t state; } bill_states[] = {
    { "ACCEPTED", WXV3_BILL_PENDING }, { "PROCESSING", WXV3_BILL_PENDING },
    { "TRANSFERING", WXV3_BILL_PENDING }, { "WAIT_USER_CONFIRM", WXV3_BILL_WAIT_USER },
    /* being cancelled (撤销中): not final yet, the payee can no longer confirm */
    { "CANCELING", WXV3_BILL_PENDING },
    { "SUCCESS", WXV3_BILL_SUCCESS }, { "FAIL", WXV3_BILL_FAIL }, { "CANCELLED", WXV3_BILL_CANCELLED },
};

static pg_err bill_fields(arena_t *a, const wxv3_client_t *c, const json_t *root, wxv3_bill_t *b)
{
    const char *mch_id, *appid;
    const json_t *amount = json_object_get(root, "transfer_amount");
    size_t i, n = sizeof bill_states / sizeof bill_states[0];
    pg_err rc;
    if ((rc = member_str(a, root, "out_bill_no", true, &b->out_bill_no)) != PG_OK ||
        (rc = member_str(a, root, "state", true, &b->state_name)) != PG_OK ||
        (rc = member_str(a, root, "transfer_bill_no", false, &b->transfer_bill_no)) != PG_OK ||
        (rc = member_str(a, root, "package_info", false, &b->package_info)) != PG_OK ||
        (rc = member_str(a, root, "fail_reason", false, &b->fail_reason)) != PG_OK ||
        (rc = member_str(a, root, "mch_id", false, &mch_id)) != PG_OK ||
        (rc = member_str(a, root, "appid", false, &appid)) != PG_OK)
        return rc;
    if (amount != NULL) {
        if (!json_is_integer(amount) || json_integer_value(amount) < 1 || json_integer_value(amount) > MONEY_MAX_FEN)
            return PG_ERR_BAD_INPUT;
        b->amount_fen = (int64_t)json_integer_value(amount);
    }
    if ((mch_id != NULL && strcmp(mch_id, c->mchid) != 0) || (appid != NULL && strcmp(appid, c->appid) != 0))
        return PG_ERR_MISMATCH;
    for (i = 0; i < n && strcmp(b->state_name, bill_states[i].name) != 0; i++)
        ;
    if (i == n)
        return PG_ERR_BAD_INPUT;
    b->state = bill_states[i].state;
    return PG_OK;
}

pg_err wxv3_parse_bill(arena_t *a, const wxv3_client_t *c, const char *json, size_t len, wxv3_bill_t *out,
                       buf_t *reason)
{
    json_error_t jerr;
    json_t *root = NULL;
    pg_err rc = PG_ERR_BAD_INPUT;

    memset(out, 0, sizeof *out);
    out->amount_fen = -1;
    if (c == NULL || json == NULL || len > WXV3_BODY_MAX)
        goto done;
    root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL || !json_is_object(root))
        goto done;
    rc = bill_fields(a, c, root, out);
done:
    if (rc != PG_OK) {
        buf_set_error(reason, rc == PG_ERR_MISMATCH ? "transfer bill: mch_id or appid not ours"
                                                    : "transfer bill: a field is missing or malformed");
        memset(out, 0, sizeof *out);
        out->amount_fen = -1;
    }
    json_decref(root);
    return rc;
}

/* ------------------------------------------------------------------ */
/* calls                                                               */

static void set_code(char code[WXV3_CODE_MAX])
{
    if (code != NULL)
        code[0] = '\0';
}

/* user_name encrypted into a copy of the request; *serial names the key. */
static pg_err with_user_name(arena_t *a, const wxv3_client_t *c, const wxv3_transfer_req_t *r,
                             wxv3_transfer_req_t *copy, const char **serial, buf_t *err)
{
    buf_t cipher;
    pg_err rc;
    *copy = *r;
    copy->user_name_cipher = NULL;
    *serial = NULL;
    if (r->user_name == NULL || *r->user_name == '\0') {
        copy->user_name = NULL;
        if (r->amount_fen >= WXV3_TRANSFER_NAME_REQUIRED_FEN) {
            buf_set_error(err, "transfer: the payee's real name is required from 2000 yuan");
            return PG_ERR_BAD_INPUT;
        }
        return PG_OK;
    }
    buf_init(&cipher, a);
    rc = wxv3_encrypt_field(c, r->user_name, &cipher, serial);
    if (rc == PG_OK && cipher.failed)
        rc = PG_ERR_NOMEM;
    if (rc != PG_OK) {
        buf_set_error(err, rc == PG_ERR_CONFIG ? "transfer: no WeChat Pay public key or platform certificate "
                                                 "to encrypt user_name with"
                                               : "transfer: user_name cannot be encrypted");
        return rc;
    }
    copy->user_name_cipher = cipher.data;
    return PG_OK;
}

pg_err wxv3_transfer(arena_t *a, const wxv3_client_t *c, const wxv3_transfer_req_t *r, time_t now,
                     wxv3_bill_t *out, char code[WXV3_CODE_MAX], buf_t *err)
{
    wxv3_transfer_req_t req;
    wxv3_reply_t reply;
    const char *serial = NULL;
    buf_t path, body;
    pg_err rc;

    memset(out, 0, sizeof *out);
    out->amount_fen = -1;
    set_code(code);
    buf_init(&path, a);
    buf_init(&body, a);
    if (c == NULL || r == NULL)
        return PG_ERR_CONFIG;
    if ((rc = with_user_name(a, c, r, &req, &serial, err)) != PG_OK)
        return rc;
    if ((rc = wxv3_build_transfer(c, &req, &path, &body)) != PG_OK)
        return rc;
    if (path.failed || body.failed)
        return PG_ERR_NOMEM;
    rc = wxv3_call_serial(a, c, "POST", path.data, body.data, body.len, serial, now, &reply, code, err);
    if (rc == PG_OK) {
        if (reply.status != 200 || wxv3_parse_bill(a, c, reply.body, reply.len, out, err) != PG_OK ||
            strcmp(out->out_bill_no, r->out_bill_no) != 0) {
            memset(out, 0, sizeof *out);
            out->amount_fen = -1;
            buf_set_error(err, "transfer: the reply cannot be read as our bill: outcome unknown");
            return PG_ERR_TIMEOUT;
        }
        return PG_OK;
    }
    if (rc == PG_ERR_CONFIG || rc == PG_ERR_BAD_INPUT || rc == PG_ERR_NOMEM)
        return rc;
    return wxv3_unsent_or_unknown(rc, &reply);
}

pg_err wxv3_transfer_query(arena_t *a, const wxv3_client_t *c, const char *out_bill_no, time_t now,
                           wxv3_bill_t *out, char code[WXV3_CODE_MAX], buf_t *err)
{
    wxv3_reply_t reply;
    buf_t path;
    pg_err rc;

    memset(out, 0, sizeof *out);
    out->amount_fen = -1;
    set_code(code);
    if (!bill_no_ok(out_bill_no))
        return PG_ERR_BAD_INPUT;
    buf_init(&path, a);
    buf_puts(&path, "/v3/fund-app/mch-transfer/transfer-bills/out-bill-no/");
    buf_puts(&path, out_bill_no);   /* letters and digits only */
    if (path.failed)
        return PG_ERR_NOMEM;
    rc = wxv3_call(a, c, "GET", path.data, NULL, 0, now, &reply, code, err);
    if (rc == PG_ERR_UPSTREAM && reply.status == 404 && code != NULL && strcmp(code, "NOT_FOUND") == 0)
        return PG_ERR_NOT_FOUND;
    if (rc == PG_ERR_UPSTREAM && (reply.status == 0 || reply.status >= 500 || reply.status == 429))
        return PG_ERR_TIMEOUT;
    if (rc != PG_OK)
        return rc;
    if (reply.status != 200 || (rc = wxv3_parse_bill(a, c, reply.body, reply.len, out, err)) != PG_OK)
        return rc == PG_ERR_MISMATCH ? rc : PG_ERR_UPSTREAM;
    if (strcmp(out->out_bill_no, out_bill_no) != 0) {
        buf_set_error(err, "transfer query: the reply is for another out_bill_no");
        memset(out, 0, sizeof *out);
        out->amount_fen = -1;
        return PG_ERR_MISMATCH;
    }
    return PG_OK;
}

/* ------------------------------------------------------------------ */
/* MCHTRANSFER.BILL.FINISHED                                           */

pg_err wxv3_parse_bill_notification(arena_t *a, const wxv3_client_t *c, const char *json, size_t len,
                                    wxv3_bill_t *out, buf_t *reason)
{
    const char *mch_id = NULL;
    json_error_t jerr;
    json_t *root = NULL;
    pg_err rc = wxv3_parse_bill(a, c, json, len, out, reason);
    if (rc != PG_OK)
        return rc;
    rc = PG_ERR_BAD_INPUT;
    root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL || member_str(a, root, "mch_id", true, &mch_id) != PG_OK)
        buf_set_error(reason, "transfer notification: mch_id is missing");
    else if (out->transfer_bill_no == NULL || out->amount_fen < 1)
        buf_set_error(reason, "transfer notification: transfer_bill_no or transfer_amount is missing");
    else if (out->state != WXV3_BILL_SUCCESS && out->state != WXV3_BILL_FAIL && out->state != WXV3_BILL_CANCELLED)
        buf_set_error(reason, "transfer notification: state %s is not final", out->state_name);
    else
        rc = PG_OK;
    json_decref(root);
    if (rc != PG_OK) {
        memset(out, 0, sizeof *out);
        out->amount_fen = -1;
    }
    return rc;
}
