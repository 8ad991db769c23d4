/* crypto: the only user of OpenSSL (EVP only). RSA keys, SHA256withRSA,
 * HMAC-SHA256, MD5, base64, random tokens, constant-time comparison. */
#ifndef CRYPTO_H
#define CRYPTO_H
#include <stddef.h>
#include <stdbool.h>
#include "buf.h"
#include "pg_err.h"

typedef struct crypto_key crypto_key_t;   /* wraps EVP_PKEY */

/* Private key from PEM (PKCS#1 "BEGIN RSA PRIVATE KEY" or PKCS#8 "BEGIN
 * PRIVATE KEY") or bare base64 of the DER (PKCS#8 or PKCS#1). err gets a
 * human reason. */
pg_err crypto_key_parse_private(const char *text, size_t len, crypto_key_t **out, buf_t *err);
/* Public key from PEM ("BEGIN PUBLIC KEY" SPKI or "BEGIN RSA PUBLIC KEY"),
 * from an X.509 certificate PEM, or bare base64 of the SPKI DER. */
pg_err crypto_key_parse_public(const char *text, size_t len, crypto_key_t **out, buf_t *err);
pg_err crypto_key_load_private(const char *path, crypto_key_t **out, buf_t *err);
pg_err crypto_key_load_public(const char *path, crypto_key_t **out, buf_t *err);
void   crypto_key_free(crypto_key_t *k);
/* true when priv signs something that pub verifies (check-config's key-pair test). */
bool   crypto_key_pair_matches(const crypto_key_t *priv, const crypto_key_t *pub);

/* SHA256withRSA, PKCS#1 v1.5, standard base64 appended to out_b64. */
pg_err crypto_rsa_sha256_sign_b64(const crypto_key_t *priv, const void *data, size_t len, buf_t *out_b64);
/* PG_OK or PG_ERR_BAD_SIGNATURE (also for undecodable base64). */
pg_err crypto_rsa_sha256_verify_b64(const crypto_key_t *pub, const void *data, size_t len, const char *sig_b64);

/* RSAES-OAEP, SHA-1 and MGF1-SHA-1 (WeChat Pay's encryption of sensitive
 * fields such as a transfer's user_name): base64 of the ciphertext appended
 * to out_b64. PG_ERR_CONFIG for a non-RSA key, PG_ERR_BAD_INPUT for an
 * empty text or one too long for the key (modulus bytes - 42). */
pg_err crypto_rsa_oaep_sha1_encrypt_b64(const crypto_key_t *pub, const void *data, size_t len, buf_t *out_b64);
/* The reverse with the private key (tests, tools): PG_ERR_BAD_INPUT for bad
 * base64, PG_ERR_BAD_SIGNATURE / PG_ERR_INTERNAL when it does not decrypt. */
pg_err crypto_rsa_oaep_sha1_decrypt_b64(const crypto_key_t *priv, const char *b64, buf_t *out);

/* Hex digests; lowercase unless upper is true. out must hold 65 (HMAC) / 33 (MD5) bytes. */
void   crypto_hmac_sha256_hex(const void *key, size_t key_len, const void *data, size_t len, bool upper, char out[65]);
void   crypto_md5_hex(const void *data, size_t len, bool upper, char out[33]);
void   crypto_sha256_hex(const void *data, size_t len, char out[65]);
void   crypto_sha1_hex(const void *data, size_t len, char out[41]);   /* WeChat v3 bills' hash_value */

pg_err crypto_base64_encode(const void *data, size_t len, buf_t *out);
pg_err crypto_base64_decode(const char *b64, size_t len, buf_t *out);   /* PG_ERR_BAD_INPUT on junk */

/* Constant-time equality; different lengths are unequal (length may leak),
 * and an empty value equals nothing, not even another empty one. */
bool   crypto_ct_equal(const void *a, size_t a_len, const void *b, size_t b_len);
bool   crypto_ct_streq(const char *a, const char *b);
/* Random [A-Za-z0-9] string of n chars (+NUL) from the OS CSPRNG. */
pg_err crypto_random_alnum(char *out, size_t n);
void   crypto_wipe(void *p, size_t n);

/* AES-256-ECB decryption with PKCS#7 padding checked (WeChat refund
 * notifications' req_info). key32 is 32 bytes; len must be a non-zero
 * multiple of 16. Plaintext is appended to out. PG_ERR_BAD_INPUT for a bad
 * length or bad padding (which is also what a wrong key usually gives). */
pg_err crypto_aes256_ecb_decrypt(const void *key32, const void *in, size_t len, buf_t *out);

#endif
