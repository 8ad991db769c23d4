/* wechat_v3_certs: platform certificates kept on disk (see
 * include/wechat_v3_certs.h). */
#include "wechat_v3_certs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WXV3_CERT_FILE_MAX (64 * 1024)

static bool serial_file_name(const char *name, char serial[CRYPTO_X509_SERIAL_MAX + 1])
{
    size_t n = strlen(name);
    if (n < 6 || n > CRYPTO_X509_SERIAL_MAX + 4 || strcmp(name + n - 4, ".pem") != 0)
        return false;
    for (size_t i = 0; i < n - 4; i++)
        if (!((name[i] >= '0' && name[i] <= '9') || (name[i] >= 'A' && name[i] <= 'F')))
            return false;
    memcpy(serial, name, n - 4);
    serial[n - 4] = '\0';
    return true;
}

static const wxv3_cert_t *find(const wxv3_certstore_t *s, const char *serial)
{
    for (size_t i = 0; i < s->count; i++)
        if (strcmp(s->certs[i].serial, serial) == 0)
            return &s->certs[i];
    return NULL;
}

/* Adds one PEM certificate whose serial must be `serial`. */
static pg_err add_pem(wxv3_certstore_t *s, const char *serial, const char *pem, size_t len, buf_t *err)
{
    char got[CRYPTO_X509_SERIAL_MAX + 1];
    wxv3_cert_t c;

    memset(&c, 0, sizeof c);
    if (find(s, serial) != NULL)
        return PG_OK;
    if (s->count >= WXV3_CERTS_KEEP) {
        buf_set_error(err, "more than %d platform certificates", WXV3_CERTS_KEEP);
        return PG_ERR_TOO_LARGE;
    }
    if (crypto_x509_serial_hex(pem, len, got, err) != PG_OK ||
        crypto_x509_validity(pem, len, &c.not_before, &c.not_after, err) != PG_OK)
        return PG_ERR_BAD_INPUT;
    if (strcmp(got, serial) != 0) {
        buf_set_error(err, "certificate %s is filed as %s", got, serial);
        return PG_ERR_MISMATCH;
    }
    if (crypto_key_parse_public(pem, len, &c.key, err) != PG_OK)
        return PG_ERR_BAD_INPUT;
    memcpy(c.serial, got, sizeof c.serial);
    s->certs[s->count++] = c;
    return PG_OK;
}

static pg_err load_file(wxv3_certstore_t *s, const char *name, const char *serial, buf_t *err)
{
    char path[1024];
    char *data = NULL;
    size_t len = 0;
    FILE *f;
    pg_err rc = PG_ERR_CONFIG;

    snprintf(path, sizeof path, "%s/%s", s->dir, name);
    f = fopen(path, "rb");
    data = malloc(WXV3_CERT_FILE_MAX + 1);
    if (f == NULL || data == NULL) {
        buf_set_error(err, "cannot read %s", path);
        goto done;
    }
    len = fread(data, 1, WXV3_CERT_FILE_MAX + 1, f);
    if (len > WXV3_CERT_FILE_MAX) {
        buf_set_error(err, "%s is too large", path);
        goto done;
    }
    if (add_pem(s, serial, data, len, err) != PG_OK)
        goto done;
    rc = PG_OK;
done:
    if (f != NULL)
        fclose(f);
    free(data);
    return rc;
}

pg_err wxv3_certstore_open(wxv3_certstore_t *s, const char *dir, buf_t *err)
{
    char serial[CRYPTO_X509_SERIAL_MAX + 1];
    struct dirent *e;
    DIR *d;
    pg_err rc = PG_OK;

    memset(s, 0, sizeof *s);
    if (dir == NULL || strlen(dir) >= sizeof s->dir) {
        buf_set_error(err, "platform_cert_dir missing or too long");
        return PG_ERR_CONFIG;
    }
    memcpy(s->dir, dir, strlen(dir) + 1);
    d = opendir(dir);
    if (d == NULL) {
        buf_set_error(err, "cannot open %s: %s", dir, strerror(errno));
        return PG_ERR_CONFIG;
    }
    while (rc == PG_OK && (e = readdir(d)) != NULL)
        if (serial_file_name(e->d_name, serial))
            rc = load_file(s, e->d_name, serial, err);
    closedir(d);
    if (rc != PG_OK)
        wxv3_certstore_close(s);
    return rc;
}

void wxv3_certstore_close(wxv3_certstore_t *s)
{
    for (size_t i = 0; i < s->count; i++)
        crypto_key_free(s->certs[i].key);
    s->count = 0;
}

void wxv3_certstore_attach(wxv3_certstore_t *s, wxv3_client_t *c, time_t now)
{
    size_t n = 0;
    for (size_t i = 0; i < s->count; i++) {
        if (now < s->certs[i].not_before || now > s->certs[i].not_after)
            continue;
        s->valid[n].serial = s->certs[i].serial;
        s->valid[n].key = s->certs[i].key;
        n++;
    }
    c->platform = s->valid;
    c->platform_count = n;
}

bool wxv3_certstore_due(const wxv3_certstore_t *s, time_t now)
{
    bool any_valid = false;
    for (size_t i = 0; i < s->count; i++)
        if (now >= s->certs[i].not_before && now <= s->certs[i].not_after)
            any_valid = true;
    return !any_valid || s->last_fetch == 0 || now - s->last_fetch >= WXV3_CERTS_REFRESH_S;
}

/* dir/<SERIAL>.pem written whole or not at all. */
static pg_err write_cert(const wxv3_certstore_t *s, const wxv3_cert_entry_t *e, buf_t *err)
{
    char path[1024], tmp[1100];
    int fd;
    ssize_t w;
    bool ok;

    snprintf(path, sizeof path, "%s/%s.pem", s->dir, e->serial_no);
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        buf_set_error(err, "cannot write %s: %s", tmp, strerror(errno));
        return PG_ERR_INTERNAL;
    }
    w = write(fd, e->pem, e->pem_len);
    ok = w == (ssize_t)e->pem_len && fsync(fd) == 0;
    if (close(fd) != 0)
        ok = false;
    if (ok && rename(tmp, path) != 0)
        ok = false;
    if (!ok) {
        unlink(tmp);
        buf_set_error(err, "cannot write %s", path);
        return PG_ERR_INTERNAL;
    }
    return PG_OK;
}

/* A first fetch: the reply's serial is one of the certificates inside it,
 * which the api_v3_key authenticated; verify the reply with that one. */
static pg_err bootstrap_verify(arena_t *a, const wxv3_client_t *c, const wxv3_reply_t *reply,
                               wxv3_cert_entry_t *entries, size_t n, time_t now, buf_t *err)
{
    wxv3_client_t only = *c;
    wxv3_platform_key_t one;
    crypto_key_t *key = NULL;
    pg_err rc = PG_ERR_BAD_SIGNATURE;

    (void)a;
    for (size_t i = 0; i < n; i++) {
        if (reply->headers.serial == NULL || strcmp(entries[i].serial_no, reply->headers.serial) != 0)
            continue;
        if (crypto_key_parse_public(entries[i].pem, entries[i].pem_len, &key, err) != PG_OK)
            return PG_ERR_BAD_SIGNATURE;
        one.serial = entries[i].serial_no;
        one.key = key;
        only.pubkey_id = NULL;
        only.pubkey = NULL;
        only.platform = &one;
        only.platform_count = 1;
        rc = wxv3_verify(&only, &reply->headers, reply->body, reply->len, now, err);
        crypto_key_free(key);
        break;
    }
    return rc;
}

pg_err wxv3_certstore_refresh(wxv3_certstore_t *s, arena_t *a, wxv3_client_t *c, time_t now, buf_t *err)
{
    wxv3_reply_t reply;
    wxv3_cert_entry_t *entries = NULL;
    char code[WXV3_CODE_MAX];
    size_t n = 0;
    pg_err rc;

    s->last_attempt = now;
    wxv3_certstore_attach(s, c, now);
    rc = wxv3_call(a, c, "GET", "/v3/certificates", NULL, 0, now, &reply, code, err);
    if (rc == PG_OK || (rc == PG_ERR_NOT_FOUND && reply.status == 200)) {
        pg_err parsed = wxv3_parse_certificates(a, c, reply.body, reply.len, &entries, &n, err);
        if (parsed != PG_OK)
            return parsed;
        if (rc == PG_ERR_NOT_FOUND && (rc = bootstrap_verify(a, c, &reply, entries, n, now, err)) != PG_OK)
            return rc;
    }
    if (rc != PG_OK)
        return rc;
    for (size_t i = 0; i < n; i++) {
        if (find(s, entries[i].serial_no) != NULL)
            continue;
        if ((rc = write_cert(s, &entries[i], err)) != PG_OK ||
            (rc = add_pem(s, entries[i].serial_no, entries[i].pem, entries[i].pem_len, err)) != PG_OK)
            return rc;
    }
    s->last_fetch = now;
    wxv3_certstore_attach(s, c, now);
    return PG_OK;
}

pg_err wxv3_certstore_verify(wxv3_certstore_t *s, arena_t *a, wxv3_client_t *c,
                             const wxv3_sig_headers_t *h, const char *body, size_t len, time_t now,
                             buf_t *reason)
{
    pg_err rc;

    wxv3_certstore_attach(s, c, now);
    rc = wxv3_verify(c, h, body, len, now, reason);
    if (rc != PG_ERR_NOT_FOUND || (s->last_attempt != 0 && now - s->last_attempt < WXV3_CERTS_RETRY_S))
        return rc;
    if (wxv3_certstore_refresh(s, a, c, now, reason) != PG_OK)
        return PG_ERR_NOT_FOUND;
    return wxv3_verify(c, h, body, len, now, reason);
}
