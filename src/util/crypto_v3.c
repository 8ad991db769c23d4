/* crypto_v3: AES-256-GCM and X.509 facts for WeChat Pay API v3 (see
 * include/crypto_v3.h). OpenSSL through EVP and the X.509 reader only. */
#include "crypto_v3.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

/* ---- AES-256-GCM ------------------------------------------------------ */

static pg_err gcm_check_sizes(size_t nonce_len, size_t aad_len, size_t in_len)
{
    if (in_len > CRYPTO_GCM_CIPHER_MAX || aad_len > CRYPTO_GCM_AAD_MAX ||
        nonce_len > CRYPTO_GCM_NONCE_MAX)
        return PG_ERR_TOO_LARGE;
    if (nonce_len == 0 || in_len < CRYPTO_GCM_TAG_LEN)
        return PG_ERR_BAD_INPUT;
    return PG_OK;
}

static pg_err gcm_init(EVP_CIPHER_CTX *ctx, const void *key32, const void *nonce, size_t nonce_len,
                       const void *aad, size_t aad_len, const unsigned char *tag)
{
    int n = 0;
    if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, (int)nonce_len, NULL) != 1 ||
        EVP_DecryptInit_ex(ctx, NULL, NULL, key32, nonce) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, CRYPTO_GCM_TAG_LEN, (void *)(uintptr_t)tag) != 1)
        return PG_ERR_INTERNAL;
    if (aad_len > 0 && EVP_DecryptUpdate(ctx, NULL, &n, aad, (int)aad_len) != 1)
        return PG_ERR_INTERNAL;
    return PG_OK;
}

pg_err crypto_aes256_gcm_decrypt(const void *key32, const void *nonce, size_t nonce_len,
                                 const void *aad, size_t aad_len, const void *in, size_t in_len,
                                 buf_t *out)
{
    pg_err rc = PG_ERR_BAD_INPUT;
    unsigned char *plain = NULL;
    size_t body_len;
    int n1 = 0, n2 = 0;
    EVP_CIPHER_CTX *ctx = NULL;

    if (key32 == NULL || nonce == NULL || in == NULL || out == NULL || (aad == NULL && aad_len > 0))
        return PG_ERR_BAD_INPUT;
    if ((rc = gcm_check_sizes(nonce_len, aad_len, in_len)) != PG_OK)
        return rc;
    body_len = in_len - CRYPTO_GCM_TAG_LEN;
    plain = OPENSSL_malloc(body_len + 1);
    ctx = EVP_CIPHER_CTX_new();
    if (plain == NULL || ctx == NULL) {
        rc = PG_ERR_NOMEM;
        goto done;
    }
    rc = gcm_init(ctx, key32, nonce, nonce_len, aad, aad_len, (const unsigned char *)in + body_len);
    if (rc != PG_OK)
        goto done;
    if (body_len > 0 && EVP_DecryptUpdate(ctx, plain, &n1, in, (int)body_len) != 1) {
        rc = PG_ERR_INTERNAL;
        goto done;
    }
    /* The tag is checked here: no plaintext leaves before it held. */
    if (EVP_DecryptFinal_ex(ctx, plain + n1, &n2) != 1) {
        rc = PG_ERR_BAD_SIGNATURE;
        goto done;
    }
    rc = buf_append(out, plain, (size_t)n1 + (size_t)n2) == PG_OK ? PG_OK : PG_ERR_NOMEM;
done:
    EVP_CIPHER_CTX_free(ctx);
    if (plain != NULL)
        OPENSSL_clear_free(plain, body_len + 1);
    ERR_clear_error();
    return rc;
}

/* ---- X.509 ------------------------------------------------------------ */

static X509 *x509_read(const char *pem, size_t len, buf_t *err)
{
    BIO *bio;
    X509 *x;

    if (pem == NULL || len == 0 || len > INT32_MAX) {
        buf_set_error(err, "no certificate text");
        return NULL;
    }
    bio = BIO_new_mem_buf(pem, (int)len);
    if (bio == NULL) {
        buf_set_error(err, "out of memory");
        return NULL;
    }
    x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    BIO_free(bio);
    if (x == NULL)
        buf_set_error(err, "not a PEM certificate");
    ERR_clear_error();
    return x;
}

pg_err crypto_x509_serial_hex(const char *pem, size_t len, char out[CRYPTO_X509_SERIAL_MAX + 1],
                              buf_t *err)
{
    pg_err rc = PG_ERR_BAD_INPUT;
    X509 *x = x509_read(pem, len, err);
    BIGNUM *bn = NULL;
    char *hex = NULL;

    out[0] = '\0';
    if (x == NULL)
        return PG_ERR_BAD_INPUT;
    bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    if (bn == NULL || BN_is_negative(bn) || BN_is_zero(bn)) {
        buf_set_error(err, "certificate serial is not a positive number");
        goto done;
    }
    /* BN_bn2hex: upper case, whole bytes, what `openssl x509 -serial` prints. */
    hex = BN_bn2hex(bn);
    if (hex == NULL || strlen(hex) > CRYPTO_X509_SERIAL_MAX) {
        buf_set_error(err, "certificate serial too long");
        goto done;
    }
    memcpy(out, hex, strlen(hex) + 1);
    rc = PG_OK;
done:
    OPENSSL_free(hex);
    BN_free(bn);
    X509_free(x);
    ERR_clear_error();
    return rc;
}

static pg_err asn1_time_to_unix(const ASN1_TIME *t, time_t *out)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
        return PG_ERR_BAD_INPUT;
    *out = timegm(&tm);
    return PG_OK;
}

pg_err crypto_x509_validity(const char *pem, size_t len, time_t *not_before, time_t *not_after,
                            buf_t *err)
{
    pg_err rc;
    X509 *x = x509_read(pem, len, err);

    if (x == NULL)
        return PG_ERR_BAD_INPUT;
    rc = asn1_time_to_unix(X509_get0_notBefore(x), not_before);
    if (rc == PG_OK)
        rc = asn1_time_to_unix(X509_get0_notAfter(x), not_after);
    if (rc != PG_OK)
        buf_set_error(err, "certificate validity unreadable");
    X509_free(x);
    ERR_clear_error();
    return rc;
}
