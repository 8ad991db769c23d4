/* pki: X.509 chain verification and ES256 (see pki.h). OpenSSL 3, EVP and
 * X509 APIs only; ECDSA_SIG converts between JOSE r||s and DER. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "pki.h"

#define ES256_HALF 32

struct pki_cert { X509 *x; };
struct pki_pubkey { EVP_PKEY *k; };
struct pki_privkey { EVP_PKEY *k; };

static X509 *x509_from_der(const void *der, size_t len)
{
    const unsigned char *p = der;
    if (!der || len == 0 || len > 16384)
        return NULL;
    X509 *x = d2i_X509(NULL, &p, (long)len);
    if (x && p != (const unsigned char *)der + len) {   /* trailing bytes */
        X509_free(x);
        return NULL;
    }
    return x;
}

pg_err pki_cert_parse(const void *data, size_t len, pki_cert_t **out, buf_t *err)
{
    X509 *x = NULL;
    *out = NULL;
    if (len > 10 && memcmp(data, "-----BEGIN", 10) == 0) {
        BIO *bio = BIO_new_mem_buf(data, (int)len);
        if (!bio)
            return PG_ERR_NOMEM;
        x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        BIO_free(bio);
    } else {
        x = x509_from_der(data, len);
    }
    if (!x) {
        buf_set_error(err, "not an X.509 certificate (PEM or DER)");
        return PG_ERR_BAD_INPUT;
    }
    pki_cert_t *c = calloc(1, sizeof(*c));
    if (!c) {
        X509_free(x);
        return PG_ERR_NOMEM;
    }
    c->x = x;
    *out = c;
    return PG_OK;
}

static pg_err read_file(const char *path, buf_t *out, buf_t *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        buf_set_error(err, "cannot read %s", path);
        return PG_ERR_CONFIG;
    }
    char chunk[4096];
    size_t n;
    pg_err rc = PG_OK;
    while (rc == PG_OK && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        rc = out->len + n > 65536 ? PG_ERR_TOO_LARGE : buf_append(out, chunk, n);
    fclose(f);
    if (rc != PG_OK)
        buf_set_error(err, "cannot read %s", path);
    return rc;
}

pg_err pki_cert_load(const char *path, pki_cert_t **out, buf_t *err)
{
    buf_t b;
    buf_init(&b, NULL);
    pg_err rc = read_file(path, &b, err);
    if (rc == PG_OK)
        rc = pki_cert_parse(b.data, b.len, out, err);
    if (rc == PG_ERR_BAD_INPUT)
        buf_set_error(err, "%s: not an X.509 certificate (PEM or DER)", path);
    buf_free(&b);
    return rc == PG_ERR_BAD_INPUT ? PG_ERR_CONFIG : rc;
}

void pki_cert_free(pki_cert_t *c)
{
    if (!c)
        return;
    X509_free(c->x);
    free(c);
}

static bool has_ext(X509 *x, const char *oid)
{
    ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
    bool found = obj && X509_get_ext_by_OBJ(x, obj, -1) >= 0;
    ASN1_OBJECT_free(obj);
    return found;
}

static bool is_p256(EVP_PKEY *k)
{
    char group[64];
    size_t glen = 0;
    if (!k || !EVP_PKEY_is_a(k, "EC"))
        return false;
    if (EVP_PKEY_get_group_name(k, group, sizeof(group), &glen) != 1)
        return false;
    return strcmp(group, SN_X9_62_prime256v1) == 0;
}

/* X509_verify_cert with only the root trusted and the intermediate offered. */
static pg_err build_chain(X509 *root, X509 *leaf, X509 *inter, time_t at, buf_t *err)
{
    pg_err rc = PG_ERR_NOMEM;
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    STACK_OF(X509) *untrusted = sk_X509_new_null();
    if (!store || !ctx || !untrusted || X509_STORE_add_cert(store, root) != 1 ||
        !sk_X509_push(untrusted, inter) || X509_STORE_CTX_init(ctx, store, leaf, untrusted) != 1)
        goto done;
    X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx), at);
    rc = PG_ERR_BAD_SIGNATURE;
    if (X509_verify_cert(ctx) != 1) {
        buf_set_error(err, "certificate chain: %s",
                      X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
        goto done;
    }
    STACK_OF(X509) *chain = X509_STORE_CTX_get0_chain(ctx);
    if (sk_X509_num(chain) != 3 || X509_cmp(sk_X509_value(chain, 1), inter) != 0 ||
        X509_cmp(sk_X509_value(chain, 2), root) != 0) {
        buf_set_error(err, "certificate chain is not leaf, intermediate, configured root");
        goto done;
    }
    rc = PG_OK;
done:
    if (untrusted)
        sk_X509_free(untrusted);   /* the intermediate itself is freed by the caller */
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    return rc;
}

static pg_err check_chain_rules(X509 *leaf, X509 *inter, const pki_chain_rules_t *rules, buf_t *err)
{
    if (X509_check_ca(inter) != 1) {
        buf_set_error(err, "intermediate is not a CA");
        return PG_ERR_BAD_SIGNATURE;
    }
    if (X509_check_ca(leaf) != 0) {
        buf_set_error(err, "leaf is a CA");
        return PG_ERR_BAD_SIGNATURE;
    }
    if (rules->leaf_oid && !has_ext(leaf, rules->leaf_oid)) {
        buf_set_error(err, "leaf lacks extension %s", rules->leaf_oid);
        return PG_ERR_BAD_SIGNATURE;
    }
    if (rules->intermediate_oid && !has_ext(inter, rules->intermediate_oid)) {
        buf_set_error(err, "intermediate lacks extension %s", rules->intermediate_oid);
        return PG_ERR_BAD_SIGNATURE;
    }
    if (!is_p256(X509_get0_pubkey(leaf))) {
        buf_set_error(err, "leaf key is not EC P-256");
        return PG_ERR_BAD_SIGNATURE;
    }
    return PG_OK;
}

pg_err pki_chain_verify(const pki_cert_t *root, const void *leaf_der, size_t leaf_len,
                        const void *inter_der, size_t inter_len, const pki_chain_rules_t *rules,
                        pki_pubkey_t **leaf_key, buf_t *err)
{
    pg_err rc = PG_ERR_BAD_INPUT;
    X509 *leaf = x509_from_der(leaf_der, leaf_len);
    X509 *inter = x509_from_der(inter_der, inter_len);
    *leaf_key = NULL;
    if (!leaf || !inter) {
        buf_set_error(err, "x5c certificate does not parse");
        goto done;
    }
    rc = check_chain_rules(leaf, inter, rules, err);
    if (rc == PG_OK)
        rc = build_chain(root->x, leaf, inter, rules->at, err);
    if (rc != PG_OK)
        goto done;
    rc = PG_ERR_NOMEM;
    pki_pubkey_t *k = calloc(1, sizeof(*k));
    if (!k || !(k->k = X509_get_pubkey(leaf))) {
        free(k);
        goto done;
    }
    *leaf_key = k;
    rc = PG_OK;
done:
    X509_free(leaf);
    X509_free(inter);
    return rc;
}

pki_pubkey_t *pki_pubkey_ref(pki_pubkey_t *k)
{
    pki_pubkey_t *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    if (EVP_PKEY_up_ref(k->k) != 1) {
        free(r);
        return NULL;
    }
    r->k = k->k;
    return r;
}

void pki_pubkey_free(pki_pubkey_t *k)
{
    if (!k)
        return;
    EVP_PKEY_free(k->k);
    free(k);
}

/* JOSE r||s -> DER ECDSA-Sig-Value. */
static int jose_to_der(const unsigned char *sig, unsigned char **der)
{
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, ES256_HALF, NULL);
    BIGNUM *s = BN_bin2bn(sig + ES256_HALF, ES256_HALF, NULL);
    int len = -1;
    if (!es || !r || !s || ECDSA_SIG_set0(es, r, s) != 1) {
        BN_free(r);
        BN_free(s);
        ECDSA_SIG_free(es);
        return -1;
    }
    *der = NULL;
    len = i2d_ECDSA_SIG(es, der);
    ECDSA_SIG_free(es);
    return len;
}

pg_err pki_es256_verify(const pki_pubkey_t *key, const void *data, size_t len, const void *sig, size_t sig_len)
{
    if (!key || sig_len != 2 * ES256_HALF)
        return PG_ERR_BAD_SIGNATURE;
    unsigned char *der = NULL;
    int der_len = jose_to_der(sig, &der);
    if (der_len <= 0)
        return PG_ERR_BAD_SIGNATURE;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = md && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key->k) == 1 &&
             EVP_DigestVerify(md, der, (size_t)der_len, data, len) == 1;
    EVP_MD_CTX_free(md);
    OPENSSL_free(der);
    return ok ? PG_OK : PG_ERR_BAD_SIGNATURE;
}

pg_err pki_privkey_parse(const void *pem, size_t len, pki_privkey_t **out, buf_t *err)
{
    *out = NULL;
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    if (!bio)
        return PG_ERR_NOMEM;
    EVP_PKEY *k = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    BIO_free(bio);
    if (!is_p256(k)) {
        EVP_PKEY_free(k);
        buf_set_error(err, "not an EC P-256 private key (PKCS#8 PEM)");
        return PG_ERR_CONFIG;
    }
    pki_privkey_t *p = calloc(1, sizeof(*p));
    if (!p) {
        EVP_PKEY_free(k);
        return PG_ERR_NOMEM;
    }
    p->k = k;
    *out = p;
    return PG_OK;
}

pg_err pki_privkey_load(const char *path, pki_privkey_t **out, buf_t *err)
{
    buf_t b;
    buf_init(&b, NULL);
    pg_err rc = read_file(path, &b, err);
    if (rc == PG_OK)
        rc = pki_privkey_parse(b.data, b.len, out, err);
    if (rc == PG_ERR_CONFIG && *out == NULL && b.len)
        buf_set_error(err, "%s: not an EC P-256 private key (PKCS#8 PEM)", path);
    buf_wipe(&b);
    return rc;
}

void pki_privkey_free(pki_privkey_t *k)
{
    if (!k)
        return;
    EVP_PKEY_free(k->k);
    free(k);
}

pg_err pki_es256_sign(const pki_privkey_t *key, const void *data, size_t len, buf_t *out_sig64)
{
    pg_err rc = PG_ERR_INTERNAL;
    unsigned char der[128], raw[2 * ES256_HALF];
    size_t der_len = sizeof(der);
    const unsigned char *p = der;
    ECDSA_SIG *es = NULL;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key->k) != 1 ||
        EVP_DigestSign(md, der, &der_len, data, len) != 1)
        goto done;
    es = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
    if (!es || BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, ES256_HALF) != ES256_HALF ||
        BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + ES256_HALF, ES256_HALF) != ES256_HALF)
        goto done;
    rc = buf_append(out_sig64, raw, sizeof(raw));
done:
    ECDSA_SIG_free(es);
    EVP_MD_CTX_free(md);
    return rc;
}

void pki_sha256(const void *data, size_t len, unsigned char out[32])
{
    unsigned int n = 32;
    if (EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) != 1)
        memset(out, 0, 32);
}
