/* pki: X.509 chains and ECDSA P-256 (ES256) signatures, the second OpenSSL
 * adapter beside crypto (which owns RSA/HMAC/AES): loading a trusted root,
 * verifying a leaf + intermediate up to it at a given time with required
 * extension OIDs, JOSE ES256 (raw r||s) verification and signing. Nothing
 * here knows a provider; the App Store adapter names the OIDs. */
#ifndef PKI_H
#define PKI_H
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include "buf.h"
#include "pg_err.h"

typedef struct pki_cert pki_cert_t;     /* wraps X509 */
typedef struct pki_pubkey pki_pubkey_t; /* wraps EVP_PKEY (EC P-256) */
typedef struct pki_privkey pki_privkey_t;

/* A certificate from PEM or DER bytes, or from a file holding either. */
pg_err pki_cert_parse(const void *data, size_t len, pki_cert_t **out, buf_t *err);
pg_err pki_cert_load(const char *path, pki_cert_t **out, buf_t *err);
void   pki_cert_free(pki_cert_t *c);

/* What a chain must satisfy besides building to the root. */
typedef struct pki_chain_rules {
    const char *leaf_oid;           /* an extension the leaf must carry (dotted) */
    const char *intermediate_oid;   /* an extension the intermediate must carry */
    time_t at;                      /* validity of all three is checked at this time */
} pki_chain_rules_t;

/* leaf_der is issued by inter_der, which is a CA issued by root (and nothing
 * else: the chain is exactly leaf, intermediate, root), every certificate
 * valid at rules->at, each carrying its OID; the leaf's key is EC P-256.
 * PG_OK with the leaf's key in *leaf_key (free with pki_pubkey_free);
 * PG_ERR_BAD_SIGNATURE with err saying which check failed; PG_ERR_BAD_INPUT
 * for certificates that do not parse. */
pg_err pki_chain_verify(const pki_cert_t *root, const void *leaf_der, size_t leaf_len,
                        const void *inter_der, size_t inter_len, const pki_chain_rules_t *rules,
                        pki_pubkey_t **leaf_key, buf_t *err);
pki_pubkey_t *pki_pubkey_ref(pki_pubkey_t *k);   /* one more owner */
void   pki_pubkey_free(pki_pubkey_t *k);

/* ES256 as JOSE writes it: sig is exactly 64 bytes r||s (big-endian, 32
 * each). PG_OK or PG_ERR_BAD_SIGNATURE. */
pg_err pki_es256_verify(const pki_pubkey_t *key, const void *data, size_t len, const void *sig, size_t sig_len);

/* An EC P-256 private key from PEM (PKCS#8 "BEGIN PRIVATE KEY", Apple's .p8)
 * and an ES256 JOSE signature of data (64 bytes r||s) appended to out. */
pg_err pki_privkey_load(const char *path, pki_privkey_t **out, buf_t *err);
pg_err pki_privkey_parse(const void *pem, size_t len, pki_privkey_t **out, buf_t *err);
void   pki_privkey_free(pki_privkey_t *k);
pg_err pki_es256_sign(const pki_privkey_t *key, const void *data, size_t len, buf_t *out_sig64);

/* SHA-256 of data into out (32 bytes). */
void   pki_sha256(const void *data, size_t len, unsigned char out[32]);

#endif
