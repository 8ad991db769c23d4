/* certs: X.509 certificate facts (see include/util/certs.h). Besides
 * crypto.c, the only user of OpenSSL; read-only facts, no provider rules. */
#include "certs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

/* Certificate files are a few KiB; a root bundle a few more. */
#define CERTS_FILE_MAX ((size_t)1 << 20)

struct x509_bundle {
    X509 *certs[CERTS_BUNDLE_MAX];
    size_t count;
};

void x509_bundle_free(x509_bundle_t *b)
{
    size_t i;
    if (b == NULL)
        return;
    for (i = 0; i < b->count; i++)
        X509_free(b->certs[i]);
    free(b);
}

size_t x509_bundle_count(const x509_bundle_t *b)
{
    return b != NULL ? b->count : 0;
}

pg_err x509_bundle_parse(const char *text, size_t len, x509_bundle_t **out, buf_t *err)
{
    x509_bundle_t *b = NULL;
    BIO *bio = NULL;
    pg_err rc = PG_ERR_BAD_INPUT;
    X509 *x;

    *out = NULL;
    if (text == NULL || len == 0 || len > CERTS_FILE_MAX || len > (size_t)0x7fffffff) {
        buf_set_error(err, "certificate text is empty or too large");
        return len > CERTS_FILE_MAX ? PG_ERR_TOO_LARGE : PG_ERR_BAD_INPUT;
    }
    b = calloc(1, sizeof *b);
    bio = BIO_new_mem_buf(text, (int)len);
    if (b == NULL || bio == NULL) {
        rc = PG_ERR_NOMEM;
        goto done;
    }
    while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
        if (b->count == CERTS_BUNDLE_MAX) {
            X509_free(x);
            buf_set_error(err, "more than %d certificates", CERTS_BUNDLE_MAX);
            rc = PG_ERR_TOO_LARGE;
            goto done;
        }
        b->certs[b->count++] = x;
    }
    /* PEM_read stops at the end or at a block it cannot read: only the
     * former is acceptable (a damaged certificate is not skipped). */
    if (ERR_GET_REASON(ERR_peek_last_error()) != PEM_R_NO_START_LINE) {
        buf_set_error(err, "a certificate block does not parse (certificate %zu)", b->count + 1);
        goto done;
    }
    ERR_clear_error();
    if (b->count == 0) {
        buf_set_error(err, "no \"BEGIN CERTIFICATE\" block");
        goto done;
    }
    *out = b;
    b = NULL;
    rc = PG_OK;
done:
    ERR_clear_error();
    BIO_free(bio);
    x509_bundle_free(b);
    return rc;
}

pg_err x509_bundle_load(const char *path, x509_bundle_t **out, buf_t *err)
{
    FILE *f;
    buf_t text;
    char chunk[4096];
    size_t n;
    pg_err rc = PG_OK;

    *out = NULL;
    f = fopen(path, "rb");
    if (f == NULL) {
        buf_set_error(err, "cannot open %s", path);
        return PG_ERR_CONFIG;
    }
    buf_init(&text, NULL);
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (text.len + n > CERTS_FILE_MAX) {
            rc = PG_ERR_TOO_LARGE;
            break;
        }
        if ((rc = buf_append(&text, chunk, n)) != PG_OK)
            break;
    }
    if (rc == PG_OK && ferror(f))
        rc = PG_ERR_CONFIG;
    fclose(f);
    if (rc == PG_OK)
        rc = x509_bundle_parse(text.data, text.len, out, err);
    else
        buf_set_error(err, "cannot read %s", path);
    buf_free(&text);
    return rc;
}

static X509 *cert_at(const x509_bundle_t *b, size_t i)
{
    return b != NULL && i < b->count ? b->certs[i] : NULL;
}

size_t x509_issuer_count(const x509_bundle_t *b, size_t i)
{
    X509 *x = cert_at(b, i);
    int n = x != NULL ? X509_NAME_entry_count(X509_get_issuer_name(x)) : 0;
    return n > 0 ? (size_t)n : 0;
}

pg_err x509_issuer_entry(const x509_bundle_t *b, size_t i, size_t j, char oid[64], buf_t *value)
{
    X509 *x = cert_at(b, i);
    X509_NAME_ENTRY *e;
    unsigned char *utf8 = NULL;
    int n;
    pg_err rc;

    oid[0] = '\0';
    if (x == NULL || j >= x509_issuer_count(b, i))
        return PG_ERR_BAD_INPUT;
    e = X509_NAME_get_entry(X509_get_issuer_name(x), (int)j);
    if (e == NULL || OBJ_obj2txt(oid, 64, X509_NAME_ENTRY_get_object(e), 1) <= 0)
        return PG_ERR_BAD_INPUT;
    n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(e));
    if (n < 0)
        return PG_ERR_BAD_INPUT;
    rc = buf_append(value, utf8, (size_t)n);
    OPENSSL_free(utf8);
    return rc;
}

pg_err x509_serial_decimal(const x509_bundle_t *b, size_t i, buf_t *out)
{
    X509 *x = cert_at(b, i);
    BIGNUM *bn;
    char *dec;
    pg_err rc;

    if (x == NULL)
        return PG_ERR_BAD_INPUT;
    bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    if (bn == NULL)
        return PG_ERR_NOMEM;
    BN_set_negative(bn, 0);
    dec = BN_bn2dec(bn);
    BN_free(bn);
    if (dec == NULL)
        return PG_ERR_NOMEM;
    rc = buf_puts(out, dec);
    OPENSSL_free(dec);
    return rc;
}

pg_err x509_signature_oid(const x509_bundle_t *b, size_t i, char out[64])
{
    X509 *x = cert_at(b, i);
    const X509_ALGOR *alg = NULL;
    const ASN1_OBJECT *obj = NULL;

    out[0] = '\0';
    if (x == NULL)
        return PG_ERR_BAD_INPUT;
    X509_get0_signature(NULL, &alg, x);
    if (alg == NULL)
        return PG_ERR_BAD_INPUT;
    X509_ALGOR_get0(&obj, NULL, NULL, alg);
    if (obj == NULL || OBJ_obj2txt(out, 64, obj, 1) <= 0)
        return PG_ERR_BAD_INPUT;
    return PG_OK;
}

pg_err x509_not_after(const x509_bundle_t *b, size_t i, time_t *out)
{
    X509 *x = cert_at(b, i);
    struct tm tm;

    *out = 0;
    if (x == NULL || ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) != 1)
        return PG_ERR_BAD_INPUT;
    *out = timegm(&tm);
    return PG_OK;
}

pg_err x509_public_key(const x509_bundle_t *b, size_t i, crypto_key_t **out, buf_t *err)
{
    X509 *x = cert_at(b, i);
    BIO *bio;
    BUF_MEM *mem = NULL;
    pg_err rc;

    *out = NULL;
    if (x == NULL)
        return PG_ERR_BAD_INPUT;
    bio = BIO_new(BIO_s_mem());
    if (bio == NULL || PEM_write_bio_X509(bio, x) != 1) {
        BIO_free(bio);
        ERR_clear_error();
        return PG_ERR_NOMEM;
    }
    BIO_get_mem_ptr(bio, &mem);
    rc = crypto_key_parse_public(mem->data, mem->length, out, err);
    BIO_free(bio);
    return rc;
}

bool x509_chains_to(const x509_bundle_t *leaf, const x509_bundle_t *roots)
{
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    STACK_OF(X509) *chain = sk_X509_new_null();
    bool ok = false;
    size_t i;

    if (store == NULL || ctx == NULL || chain == NULL || leaf == NULL || roots == NULL ||
        leaf->count == 0)
        goto done;
    for (i = 0; i < roots->count; i++)
        if (X509_STORE_add_cert(store, roots->certs[i]) != 1)
            goto done;
    for (i = 1; i < leaf->count; i++)
        if (sk_X509_push(chain, leaf->certs[i]) <= 0)
            goto done;
    X509_STORE_set_flags(store, X509_V_FLAG_NO_CHECK_TIME);
    if (X509_STORE_CTX_init(ctx, store, leaf->certs[0], chain) != 1)
        goto done;
    ok = X509_verify_cert(ctx) == 1;
done:
    ERR_clear_error();
    sk_X509_free(chain);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    return ok;
}
