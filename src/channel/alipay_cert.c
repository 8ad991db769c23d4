/* alipay_cert: certificate SNs (see include/channel/alipay_cert.h). */
#include "alipay_cert.h"

#include <string.h>
#include "crypto.h"

/* The short names the official SDK knows (its x509 parser's table). */
static const char *short_name(const char *oid)
{
    static const struct { const char *oid, *name; } names[] = {
        { "2.5.4.3", "CN" },  { "2.5.4.6", "C" },   { "2.5.4.7", "L" },
        { "2.5.4.8", "ST" },  { "2.5.4.10", "O" },  { "2.5.4.11", "OU" },
        { "1.2.840.113549.1.9.1", "E" },
    };
    size_t i;
    for (i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(oid, names[i].oid) == 0)
            return names[i].name;
    return "";
}

/* "CN=...,OU=...,O=...,C=..." : the issuer's attributes, last first. */
static pg_err issuer_text(const x509_bundle_t *b, size_t i, buf_t *out)
{
    size_t n = x509_issuer_count(b, i), j;
    char oid[64];
    pg_err rc;

    for (j = n; j > 0; j--) {
        buf_t value;
        buf_init(&value, NULL);
        rc = x509_issuer_entry(b, i, j - 1, oid, &value);
        if (rc == PG_OK) {
            if (j != n)
                buf_putc(out, ',');
            buf_puts(out, short_name(oid));
            buf_putc(out, '=');
            buf_append(out, value.data != NULL ? value.data : "", value.len);
        }
        buf_free(&value);
        if (rc != PG_OK)
            return rc;
    }
    return out->failed ? PG_ERR_NOMEM : PG_OK;
}

pg_err alipay_cert_sn_of(const x509_bundle_t *b, size_t i, char out[ALIPAY_CERT_SN_LEN + 1])
{
    buf_t text;
    pg_err rc;

    out[0] = '\0';
    if (i >= x509_bundle_count(b))
        return PG_ERR_BAD_INPUT;
    buf_init(&text, NULL);
    rc = issuer_text(b, i, &text);
    if (rc == PG_OK)
        rc = x509_serial_decimal(b, i, &text);
    if (rc == PG_OK && text.failed)
        rc = PG_ERR_NOMEM;
    if (rc == PG_OK)
        crypto_md5_hex(text.data, text.len, false, out);
    buf_free(&text);
    return rc;
}

/* Signature algorithm in the RSA PKCS#1 arc (1.2.840.113549.1.1.x). */
static int rsa_signed(const x509_bundle_t *b, size_t i)
{
    static const char arc[] = "1.2.840.113549.1.1.";
    char oid[64];
    return x509_signature_oid(b, i, oid) == PG_OK && strncmp(oid, arc, sizeof arc - 1) == 0;
}

pg_err alipay_root_cert_sn_of(const x509_bundle_t *b, buf_t *out)
{
    char sn[ALIPAY_CERT_SN_LEN + 1];
    size_t i, used = 0;
    pg_err rc;

    for (i = 0; i < x509_bundle_count(b); i++) {
        if (!rsa_signed(b, i))
            continue;
        if ((rc = alipay_cert_sn_of(b, i, sn)) != PG_OK)
            return rc;
        if (used++ > 0)
            buf_putc(out, '_');
        buf_puts(out, sn);
    }
    if (out->failed)
        return PG_ERR_NOMEM;
    return used > 0 ? PG_OK : PG_ERR_NOT_FOUND;
}

pg_err alipay_cert_sn_file(const char *path, char out[ALIPAY_CERT_SN_LEN + 1], buf_t *err)
{
    x509_bundle_t *b = NULL;
    pg_err rc = x509_bundle_load(path, &b, err);
    out[0] = '\0';
    if (rc == PG_OK)
        rc = alipay_cert_sn_of(b, 0, out);
    x509_bundle_free(b);
    return rc;
}

pg_err alipay_root_cert_sn_file(const char *path, buf_t *out, buf_t *err)
{
    x509_bundle_t *b = NULL;
    pg_err rc = x509_bundle_load(path, &b, err);
    if (rc == PG_OK) {
        rc = alipay_root_cert_sn_of(b, out);
        if (rc == PG_ERR_NOT_FOUND)
            buf_set_error(err, "%s holds no RSA-signed certificate", path);
    }
    x509_bundle_free(b);
    return rc;
}
