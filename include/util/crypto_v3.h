/* crypto_v3: the OpenSSL primitives WeChat Pay API v3 needs beside those in
 * crypto.h (same rule: EVP only, the only other OpenSSL user): AES-256-GCM
 * decryption of notification resources and platform certificates, and the
 * serial number and validity of an X.509 certificate. A file of its own so
 * that crypto.c stays as it is. */
#ifndef CRYPTO_V3_H
#define CRYPTO_V3_H
#include <stddef.h>
#include <time.h>
#include "buf.h"
#include "pg_err.h"

#define CRYPTO_GCM_TAG_LEN 16
#define CRYPTO_GCM_NONCE_MAX 64          /* bytes; WeChat sends 12 */
#define CRYPTO_GCM_AAD_MAX 1024
#define CRYPTO_GCM_CIPHER_MAX (256 * 1024)   /* ciphertext + tag, bytes */
#define CRYPTO_X509_SERIAL_MAX 64        /* hex digits of a serial, NUL excluded */

/* AES-256-GCM: in = ciphertext followed by the 16-byte tag. The tag is
 * checked before any plaintext is appended to out. key32 is 32 bytes; nonce
 * 1..CRYPTO_GCM_NONCE_MAX bytes; aad 0..CRYPTO_GCM_AAD_MAX bytes (NULL with
 * aad_len 0 = none); in_len CRYPTO_GCM_TAG_LEN..CRYPTO_GCM_CIPHER_MAX.
 * PG_ERR_TOO_LARGE / PG_ERR_BAD_INPUT for sizes out of bounds,
 * PG_ERR_BAD_SIGNATURE when the tag does not verify (wrong key, nonce, aad,
 * or tampered bytes). out is unchanged on every failure. */
pg_err crypto_aes256_gcm_decrypt(const void *key32, const void *nonce, size_t nonce_len,
                                 const void *aad, size_t aad_len, const void *in, size_t in_len,
                                 buf_t *out);

/* The serial number of a PEM certificate as `openssl x509 -serial` prints
 * it (and as WeChat Pay shows it): upper-case hex, two digits a byte, no
 * leading zero bytes. PG_ERR_BAD_INPUT when the text is no certificate. */
pg_err crypto_x509_serial_hex(const char *pem, size_t len, char out[CRYPTO_X509_SERIAL_MAX + 1],
                              buf_t *err);

/* notBefore / notAfter of a PEM certificate as Unix time. */
pg_err crypto_x509_validity(const char *pem, size_t len, time_t *not_before, time_t *not_after,
                            buf_t *err);

#endif
