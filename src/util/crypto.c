/* crypto: the one file that includes OpenSSL. EVP interfaces only.
 *
 * Keys arrive from configuration in whatever shape the provider console
 * produced (PEM of several kinds, or bare base64 of the DER), so the parsers
 * accept those forms and explain in plain words what was wrong otherwise.
 * Nothing here ever prompts for a pass phrase: encrypted keys are refused.
 * The OpenSSL error queue is cleared after every failure so a stale error
 * cannot be blamed on a later, unrelated call. */
#include "crypto.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

/* Key files are a few KiB; anything this large is not a key. */
#define CRYPTO_KEY_TEXT_MAX ((size_t)1 << 20)

struct crypto_key {
    EVP_PKEY *pkey;
};

/* ---- helpers ---------------------------------------------------------- */

static void crypto_reason(buf_t *err, const char *what)
{
    if (!err)
        return;
    unsigned long e = ERR_peek_last_error();
    const char *lib_reason = e ? ERR_reason_error_string(e) : NULL;
    if (lib_reason)
        buf_printf(err, "%s (%s)", what, lib_reason);
    else
        buf_puts(err, what);
}

static pg_err crypto_wrap(EVP_PKEY *pkey, crypto_key_t **out, buf_t *err)
{
    if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA) {
        EVP_PKEY_free(pkey);
        crypto_reason(err, "key is not an RSA key");
        return PG_ERR_BAD_INPUT;
    }
    crypto_key_t *k = OPENSSL_zalloc(sizeof(*k));
    if (!k) {
        EVP_PKEY_free(pkey);
        return PG_ERR_NOMEM;
    }
    k->pkey = pkey;
    *out = k;
    return PG_OK;
}

static bool crypto_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* Strips whitespace (keys are often pasted wrapped) and decodes strictly. */
static pg_err crypto_decode_bare(const char *text, size_t len, buf_t *der)
{
    buf_t compact;
    buf_init(&compact, NULL);
    for (size_t i = 0; i < len; i++)
        if (!crypto_is_space(text[i]))
            buf_putc(&compact, text[i]);
    pg_err rc = compact.failed ? PG_ERR_NOMEM
                               : crypto_base64_decode(compact.data, compact.len, der);
    buf_wipe(&compact);
    return rc;
}

/* Finds a PEM armour line; text need not be NUL-terminated. */
static bool crypto_looks_pem(const char *text, size_t len)
{
    return memmem(text, len, "-----BEGIN ", 11) != NULL;
}

/* Reads the first PEM block. name/data are OpenSSL allocations. */
static pg_err crypto_read_pem(const char *text, size_t len, char **name,
                              unsigned char **data, long *data_len, bool *encrypted,
                              buf_t *err)
{
    char *header = NULL;
    BIO *bio = BIO_new_mem_buf(text, (int)len);
    if (!bio)
        return PG_ERR_NOMEM;
    int ok = PEM_read_bio(bio, name, &header, data, data_len);
    BIO_free(bio);
    if (!ok) {
        crypto_reason(err, "PEM block could not be read");
        ERR_clear_error();
        return PG_ERR_BAD_INPUT;
    }
    /* Legacy encrypted PEM carries "Proc-Type: 4,ENCRYPTED" headers. */
    *encrypted = header && header[0] != '\0';
    OPENSSL_free(header);
    return PG_OK;
}

/* ---- key parsing ------------------------------------------------------ */

static EVP_PKEY *crypto_der_private(const unsigned char *der, long der_len)
{
    const unsigned char *p = der;
    /* d2i_AutoPrivateKey takes PKCS#8 PrivateKeyInfo and PKCS#1 RSAPrivateKey. */
    EVP_PKEY *pkey = d2i_AutoPrivateKey(NULL, &p, der_len);
    if (pkey && p != der + der_len) {   /* trailing bytes: not one clean key */
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
    return pkey;
}

static EVP_PKEY *crypto_der_public(const unsigned char *der, long der_len, bool rsa_pkcs1)
{
    const unsigned char *p = der;
    EVP_PKEY *pkey = rsa_pkcs1 ? d2i_PublicKey(EVP_PKEY_RSA, NULL, &p, der_len)
                               : d2i_PUBKEY(NULL, &p, der_len);
    if (pkey && p != der + der_len) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
    return pkey;
}

static EVP_PKEY *crypto_der_cert_key(const unsigned char *der, long der_len)
{
    const unsigned char *p = der;
    X509 *cert = d2i_X509(NULL, &p, der_len);
    if (!cert)
        return NULL;
    EVP_PKEY *pkey = X509_get_pubkey(cert);   /* own reference */
    X509_free(cert);
    return pkey;
}

pg_err crypto_key_parse_private(const char *text, size_t len, crypto_key_t **out, buf_t *err)
{
    pg_err rc = PG_ERR_BAD_INPUT;
    EVP_PKEY *pkey = NULL;
    char *name = NULL;
    unsigned char *data = NULL;
    long data_len = 0;
    buf_t der;
    buf_init(&der, NULL);
    *out = NULL;

    if (!text || len == 0) {
        crypto_reason(err, "private key is empty");
        goto done;
    }
    if (len > CRYPTO_KEY_TEXT_MAX) {
        crypto_reason(err, "private key text is too large");
        rc = PG_ERR_TOO_LARGE;
        goto done;
    }

    if (crypto_looks_pem(text, len)) {
        bool encrypted = false;
        rc = crypto_read_pem(text, len, &name, &data, &data_len, &encrypted, err);
        if (rc != PG_OK)
            goto done;
        rc = PG_ERR_BAD_INPUT;
        if (encrypted || strcmp(name, "ENCRYPTED PRIVATE KEY") == 0) {
            crypto_reason(err, "encrypted private keys are not supported; store it unencrypted with restricted file permissions");
            goto done;
        }
        if (strcmp(name, "RSA PRIVATE KEY") != 0 && strcmp(name, "PRIVATE KEY") != 0) {
            if (err)
                buf_printf(err, "expected a private key PEM, found \"BEGIN %s\"", name);
            goto done;
        }
        pkey = crypto_der_private(data, data_len);
    } else {
        rc = crypto_decode_bare(text, len, &der);
        if (rc == PG_ERR_NOMEM)
            goto done;
        rc = PG_ERR_BAD_INPUT;
        if (der.len == 0 || der.failed) {
            crypto_reason(err, "private key is neither PEM nor valid base64");
            goto done;
        }
        pkey = crypto_der_private((const unsigned char *)der.data, (long)der.len);
    }

    if (!pkey) {
        crypto_reason(err, "private key DER is not a PKCS#8 or PKCS#1 RSA private key");
        goto done;
    }
    rc = crypto_wrap(pkey, out, err);

done:
    ERR_clear_error();
    OPENSSL_free(name);
    if (data)
        OPENSSL_clear_free(data, (size_t)data_len);
    buf_wipe(&der);
    return rc;
}

pg_err crypto_key_parse_public(const char *text, size_t len, crypto_key_t **out, buf_t *err)
{
    pg_err rc = PG_ERR_BAD_INPUT;
    EVP_PKEY *pkey = NULL;
    char *name = NULL;
    unsigned char *data = NULL;
    long data_len = 0;
    buf_t der;
    buf_init(&der, NULL);
    *out = NULL;

    if (!text || len == 0) {
        crypto_reason(err, "public key is empty");
        goto done;
    }
    if (len > CRYPTO_KEY_TEXT_MAX) {
        crypto_reason(err, "public key text is too large");
        rc = PG_ERR_TOO_LARGE;
        goto done;
    }

    if (crypto_looks_pem(text, len)) {
        bool encrypted = false;
        rc = crypto_read_pem(text, len, &name, &data, &data_len, &encrypted, err);
        if (rc != PG_OK)
            goto done;
        rc = PG_ERR_BAD_INPUT;
        if (strcmp(name, "PUBLIC KEY") == 0) {
            pkey = crypto_der_public(data, data_len, false);
        } else if (strcmp(name, "RSA PUBLIC KEY") == 0) {
            pkey = crypto_der_public(data, data_len, true);
        } else if (strcmp(name, "CERTIFICATE") == 0) {
            pkey = crypto_der_cert_key(data, data_len);
        } else if (strstr(name, "PRIVATE KEY")) {
            /* The classic mix-up: our own private key pasted where the
             * provider's public key belongs. */
            crypto_reason(err, "found a private key where a public key was expected");
            goto done;
        } else {
            if (err)
                buf_printf(err, "expected a public key or certificate PEM, found \"BEGIN %s\"", name);
            goto done;
        }
    } else {
        rc = crypto_decode_bare(text, len, &der);
        if (rc == PG_ERR_NOMEM)
            goto done;
        rc = PG_ERR_BAD_INPUT;
        if (der.len == 0 || der.failed) {
            crypto_reason(err, "public key is neither PEM nor valid base64");
            goto done;
        }
        const unsigned char *d = (const unsigned char *)der.data;
        pkey = crypto_der_public(d, (long)der.len, false);
        if (!pkey)
            pkey = crypto_der_public(d, (long)der.len, true);
        if (!pkey)
            pkey = crypto_der_cert_key(d, (long)der.len);
    }

    if (!pkey) {
        crypto_reason(err, "public key DER is not an RSA public key (SPKI, PKCS#1) or certificate");
        goto done;
    }
    rc = crypto_wrap(pkey, out, err);

done:
    ERR_clear_error();
    OPENSSL_free(name);
    OPENSSL_free(data);
    buf_free(&der);
    return rc;
}

/* Reads a whole key file; the caller wipes it. */
static pg_err crypto_read_file(const char *path, buf_t *text, buf_t *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (err)
            buf_printf(err, "cannot open %s: %s", path, strerror(errno));
        return PG_ERR_CONFIG;
    }
    pg_err rc = PG_OK;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (text->len + n > CRYPTO_KEY_TEXT_MAX) {
            if (err)
                buf_printf(err, "%s is too large to be a key file", path);
            rc = PG_ERR_TOO_LARGE;
            break;
        }
        if (buf_append(text, chunk, n) != PG_OK) {
            rc = PG_ERR_NOMEM;
            break;
        }
    }
    if (rc == PG_OK && ferror(f)) {
        if (err)
            buf_printf(err, "cannot read %s", path);
        rc = PG_ERR_CONFIG;
    }
    OPENSSL_cleanse(chunk, sizeof(chunk));
    fclose(f);
    return rc;
}

static pg_err crypto_key_load(const char *path, bool private_key, crypto_key_t **out, buf_t *err)
{
    buf_t text;
    buf_init(&text, NULL);
    *out = NULL;
    pg_err rc = crypto_read_file(path, &text, err);
    if (rc == PG_OK) {
        size_t mark = err ? err->len : 0;
        rc = private_key ? crypto_key_parse_private(text.data, text.len, out, err)
                         : crypto_key_parse_public(text.data, text.len, out, err);
        if (rc != PG_OK && err && err->len > mark)
            buf_printf(err, " in %s", path);
    }
    buf_wipe(&text);
    return rc;
}

pg_err crypto_key_load_private(const char *path, crypto_key_t **out, buf_t *err)
{
    return crypto_key_load(path, true, out, err);
}

pg_err crypto_key_load_public(const char *path, crypto_key_t **out, buf_t *err)
{
    return crypto_key_load(path, false, out, err);
}

void crypto_key_free(crypto_key_t *k)
{
    if (!k)
        return;
    EVP_PKEY_free(k->pkey);
    OPENSSL_free(k);
}

bool crypto_key_pair_matches(const crypto_key_t *priv, const crypto_key_t *pub)
{
    static const char probe[] = "paygate key pair check";
    if (!priv || !pub)
        return false;
    buf_t sig;
    buf_init(&sig, NULL);
    bool match = crypto_rsa_sha256_sign_b64(priv, probe, sizeof(probe) - 1, &sig) == PG_OK &&
                 crypto_rsa_sha256_verify_b64(pub, probe, sizeof(probe) - 1, sig.data) == PG_OK;
    buf_free(&sig);
    return match;
}

/* ---- signatures ------------------------------------------------------- */

pg_err crypto_rsa_sha256_sign_b64(const crypto_key_t *priv, const void *data, size_t len, buf_t *out_b64)
{
    pg_err rc = PG_ERR_INTERNAL;
    unsigned char *sig = NULL;
    size_t sig_len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx) {
        rc = PG_ERR_NOMEM;
        goto done;
    }
    /* RSA keys default to PKCS#1 v1.5 padding, which is what SHA256withRSA
     * (Alipay RSA2) means; set it anyway so a changed default cannot bite. */
    EVP_PKEY_CTX *pctx = NULL;
    if (EVP_DigestSignInit(ctx, &pctx, EVP_sha256(), NULL, priv->pkey) != 1 ||
        EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1)
        goto done;
    if (EVP_DigestSign(ctx, NULL, &sig_len, data, len) != 1)
        goto done;
    sig = OPENSSL_malloc(sig_len);
    if (!sig) {
        rc = PG_ERR_NOMEM;
        goto done;
    }
    if (EVP_DigestSign(ctx, sig, &sig_len, data, len) != 1)
        goto done;
    rc = crypto_base64_encode(sig, sig_len, out_b64);

done:
    ERR_clear_error();
    OPENSSL_free(sig);
    EVP_MD_CTX_free(ctx);
    return rc;
}

/* RSAES-OAEP with SHA-1 and MGF1-SHA-1 (OpenSSL's OAEP defaults, set
 * explicitly): what WeChat Pay calls RSA_PKCS1_OAEP_PADDING. */
static pg_err oaep_sha1_ctx(EVP_PKEY_CTX *pctx, bool encrypt)
{
    if ((encrypt ? EVP_PKEY_encrypt_init(pctx) : EVP_PKEY_decrypt_init(pctx)) != 1 ||
        EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_OAEP_PADDING) != 1 ||
        EVP_PKEY_CTX_set_rsa_oaep_md(pctx, EVP_sha1()) != 1 || EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha1()) != 1)
        return PG_ERR_INTERNAL;
    return PG_OK;
}

pg_err crypto_rsa_oaep_sha1_encrypt_b64(const crypto_key_t *pub, const void *data, size_t len, buf_t *out_b64)
{
    EVP_PKEY_CTX *pctx = NULL;
    unsigned char *ct = NULL;
    size_t ct_len = 0;
    pg_err rc = PG_ERR_BAD_INPUT;
    if (!pub || !pub->pkey || EVP_PKEY_get_base_id(pub->pkey) != EVP_PKEY_RSA)
        return PG_ERR_CONFIG;
    /* OAEP-SHA1 carries at most modulus - 42 bytes */
    if (!data || len == 0 || (int)len > EVP_PKEY_get_size(pub->pkey) - 42)
        return PG_ERR_BAD_INPUT;
    rc = PG_ERR_INTERNAL;
    if ((pctx = EVP_PKEY_CTX_new(pub->pkey, NULL)) == NULL) {
        rc = PG_ERR_NOMEM;
        goto done;
    }
    if (oaep_sha1_ctx(pctx, true) != PG_OK || EVP_PKEY_encrypt(pctx, NULL, &ct_len, data, len) != 1)
        goto done;
    if ((ct = OPENSSL_malloc(ct_len)) == NULL) {
        rc = PG_ERR_NOMEM;
        goto done;
    }
    if (EVP_PKEY_encrypt(pctx, ct, &ct_len, data, len) != 1)
        goto done;
    rc = crypto_base64_encode(ct, ct_len, out_b64);
done:
    ERR_clear_error();
    OPENSSL_free(ct);
    EVP_PKEY_CTX_free(pctx);
    return rc;
}

pg_err crypto_rsa_oaep_sha1_decrypt_b64(const crypto_key_t *priv, const char *b64, buf_t *out)
{
    EVP_PKEY_CTX *pctx = NULL;
    unsigned char *pt = NULL;
    size_t pt_len = 0;
    buf_t ct;
    pg_err rc = PG_ERR_BAD_INPUT;
    buf_init(&ct, NULL);
    if (!priv || !priv->pkey || !b64)
        goto done;
    if (crypto_base64_decode(b64, strlen(b64), &ct) != PG_OK || ct.len == 0)
        goto done;
    rc = PG_ERR_INTERNAL;
    if ((pctx = EVP_PKEY_CTX_new(priv->pkey, NULL)) == NULL || oaep_sha1_ctx(pctx, false) != PG_OK ||
        EVP_PKEY_decrypt(pctx, NULL, &pt_len, (const unsigned char *)ct.data, ct.len) != 1)
        goto done;
    if ((pt = OPENSSL_malloc(pt_len + 1)) == NULL) {
        rc = PG_ERR_NOMEM;
        goto done;
    }
    rc = EVP_PKEY_decrypt(pctx, pt, &pt_len, (const unsigned char *)ct.data, ct.len) == 1 ? PG_OK
                                                                                          : PG_ERR_BAD_SIGNATURE;
    if (rc == PG_OK)
        rc = buf_append(out, pt, pt_len);
done:
    ERR_clear_error();
    if (pt)
        OPENSSL_clear_free(pt, pt_len + 1);
    EVP_PKEY_CTX_free(pctx);
    buf_free(&ct);
    return rc;
}

pg_err crypto_rsa_sha256_verify_b64(const crypto_key_t *pub, const void *data, size_t len, const char *sig_b64)
{
    pg_err rc = PG_ERR_BAD_SIGNATURE;
    EVP_MD_CTX *ctx = NULL;
    buf_t sig;
    buf_init(&sig, NULL);
    if (!pub || !sig_b64)
        goto done;
    pg_err drc = crypto_base64_decode(sig_b64, strlen(sig_b64), &sig);
    if (drc == PG_ERR_NOMEM) {
        rc = drc;
        goto done;
    }
    if (drc != PG_OK || sig.len == 0)
        goto done;
    ctx = EVP_MD_CTX_new();
    if (!ctx) {
        rc = PG_ERR_NOMEM;
        goto done;
    }
    EVP_PKEY_CTX *pctx = NULL;
    if (EVP_DigestVerifyInit(ctx, &pctx, EVP_sha256(), NULL, pub->pkey) != 1 ||
        EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1) {
        rc = PG_ERR_INTERNAL;
        goto done;
    }
    /* 1 is the only success; 0 is a mismatch and <0 a malformed signature. */
    if (EVP_DigestVerify(ctx, (const unsigned char *)sig.data, sig.len, data, len) == 1)
        rc = PG_OK;

done:
    ERR_clear_error();
    EVP_MD_CTX_free(ctx);
    buf_free(&sig);
    return rc;
}

/* ---- digests ---------------------------------------------------------- */

static void crypto_hex(const unsigned char *md, size_t n, bool upper, char *out)
{
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[md[i] >> 4];
        out[2 * i + 1] = digits[md[i] & 0x0F];
    }
    out[2 * n] = '\0';
}

void crypto_hmac_sha256_hex(const void *key, size_t key_len, const void *data, size_t len, bool upper, char out[65])
{
    unsigned char md[32];
    size_t md_len = 0;
    bool ok = false;
    /* A zero-length key must still be a key, not "reuse the previous one". */
    static const unsigned char empty_key[1] = { 0 };
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
    if (ctx) {
        char digest[] = "SHA256";
        OSSL_PARAM params[2];
        params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0);
        params[1] = OSSL_PARAM_construct_end();
        ok = EVP_MAC_init(ctx, key_len ? key : empty_key, key_len, params) == 1 &&
             EVP_MAC_update(ctx, data, len) == 1 &&
             EVP_MAC_final(ctx, md, &md_len, sizeof(md)) == 1 &&
             md_len == sizeof(md);
    }
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    if (ok)
        crypto_hex(md, sizeof(md), upper, out);
    else
        out[0] = '\0';   /* an empty digest never equals a real signature */
    ERR_clear_error();
}

static void crypto_digest_hex(const EVP_MD *type, size_t want, const void *data, size_t len, bool upper, char *out)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (EVP_Digest(data, len, md, &md_len, type, NULL) == 1 && md_len == want)
        crypto_hex(md, md_len, upper, out);
    else
        out[0] = '\0';
    ERR_clear_error();
}

void crypto_md5_hex(const void *data, size_t len, bool upper, char out[33])
{
    crypto_digest_hex(EVP_md5(), 16, data, len, upper, out);
}

void crypto_sha256_hex(const void *data, size_t len, char out[65])
{
    crypto_digest_hex(EVP_sha256(), 32, data, len, false, out);
}

void crypto_sha1_hex(const void *data, size_t len, char out[41])
{
    crypto_digest_hex(EVP_sha1(), 20, data, len, false, out);
}

/* ---- base64 ----------------------------------------------------------- */

static const char crypto_b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pg_err crypto_base64_encode(const void *data, size_t len, buf_t *out)
{
    const unsigned char *p = data;
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        char q[4] = { crypto_b64_alphabet[v >> 18], crypto_b64_alphabet[(v >> 12) & 63],
                      crypto_b64_alphabet[(v >> 6) & 63], crypto_b64_alphabet[v & 63] };
        buf_append(out, q, 4);
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        char q[4] = { crypto_b64_alphabet[v >> 18], crypto_b64_alphabet[(v >> 12) & 63], '=', '=' };
        buf_append(out, q, 4);
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        char q[4] = { crypto_b64_alphabet[v >> 18], crypto_b64_alphabet[(v >> 12) & 63],
                      crypto_b64_alphabet[(v >> 6) & 63], '=' };
        buf_append(out, q, 4);
    }
    if (len == 0)
        buf_append(out, "", 0);   /* still guarantees allocated, NUL-terminated */
    return out->failed ? PG_ERR_NOMEM : PG_OK;
}

static int crypto_b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Strict RFC 4648 standard alphabet: length a multiple of 4, padding only at
 * the end, no whitespace, and unused bits zero (one encoding per value, so
 * a signature cannot be presented in two spellings). */
pg_err crypto_base64_decode(const char *b64, size_t len, buf_t *out)
{
    if (len % 4 != 0)
        return PG_ERR_BAD_INPUT;
    size_t start_len = out->len;
    const unsigned char *s = (const unsigned char *)b64;
    for (size_t i = 0; i < len; i += 4) {
        bool last = i + 4 == len;
        int v[4];
        int pad = 0;
        for (int j = 0; j < 4; j++) {
            if (s[i + j] == '=' && last && j >= 2) {
                v[j] = 0;
                pad++;
                continue;
            }
            if (pad)   /* data after '=' */
                goto junk;
            v[j] = crypto_b64_value(s[i + j]);
            if (v[j] < 0)
                goto junk;
        }
        uint32_t bits = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        unsigned char bytes[3] = { (unsigned char)(bits >> 16), (unsigned char)(bits >> 8), (unsigned char)bits };
        if ((pad == 1 && (bits & 0xFF)) || (pad == 2 && (bits & 0xFFFF)))
            goto junk;
        if (buf_append(out, bytes, (size_t)(3 - pad)) != PG_OK)
            return PG_ERR_NOMEM;
    }
    if (len == 0 && buf_append(out, "", 0) != PG_OK)
        return PG_ERR_NOMEM;
    return PG_OK;

junk:
    out->len = start_len;
    if (out->cap)
        out->data[start_len] = '\0';
    return PG_ERR_BAD_INPUT;
}

/* ---- comparison, randomness, wiping ----------------------------------- */

bool crypto_ct_equal(const void *a, size_t a_len, const void *b, size_t b_len)
{
    /* Nothing is not a signature: two empty values (a failed digest, an
     * unset key) must never compare equal. */
    if (a_len != b_len || a_len == 0 || !a || !b)
        return false;
    return CRYPTO_memcmp(a, b, a_len) == 0;
}

bool crypto_ct_streq(const char *a, const char *b)
{
    if (!a || !b)
        return false;
    return crypto_ct_equal(a, strlen(a), b, strlen(b));
}

pg_err crypto_random_alnum(char *out, size_t n)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    /* 62 * 4 = 248: bytes at or above it are thrown away so every character
     * is equally likely (a plain % 62 would favour the first eight). */
    enum { ALPHABET_LEN = 62, ACCEPT_BELOW = 248 };
    unsigned char pool[64];
    size_t have = 0, used = 0, filled = 0;
    while (filled < n) {
        if (used == have) {
            if (RAND_bytes(pool, (int)sizeof(pool)) != 1) {
                ERR_clear_error();
                OPENSSL_cleanse(pool, sizeof(pool));
                out[0] = '\0';
                return PG_ERR_INTERNAL;
            }
            have = sizeof(pool);
            used = 0;
        }
        unsigned char r = pool[used++];
        if (r < ACCEPT_BELOW)
            out[filled++] = alphabet[r % ALPHABET_LEN];
    }
    out[n] = '\0';
    OPENSSL_cleanse(pool, sizeof(pool));
    return PG_OK;
}

void crypto_wipe(void *p, size_t n)
{
    if (p && n)
        OPENSSL_cleanse(p, n);
}

/* ---- symmetric -------------------------------------------------------- */

pg_err crypto_aes256_ecb_decrypt(const void *key32, const void *in, size_t len, buf_t *out)
{
    enum { AES_BLOCK = 16 };
    if (!key32 || !in || len == 0 || len % AES_BLOCK != 0 || len > (size_t)INT32_MAX)
        return PG_ERR_BAD_INPUT;
    unsigned char *plain = OPENSSL_malloc(len + AES_BLOCK);
    if (!plain)
        return PG_ERR_NOMEM;
    pg_err rc = PG_ERR_BAD_INPUT;
    int n1 = 0, n2 = 0;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (!ctx) {
        rc = PG_ERR_NOMEM;
        goto done;
    }
    /* EVP keeps PKCS#7 padding on by default: DecryptFinal checks that the
     * last n bytes all equal n (1..16) and strips them. */
    if (EVP_DecryptInit_ex(ctx, EVP_aes_256_ecb(), NULL, key32, NULL) != 1 ||
        EVP_CIPHER_CTX_set_padding(ctx, 1) != 1) {
        rc = PG_ERR_INTERNAL;
        goto done;
    }
    if (EVP_DecryptUpdate(ctx, plain, &n1, in, (int)len) != 1 ||
        EVP_DecryptFinal_ex(ctx, plain + n1, &n2) != 1)
        goto done;   /* bad padding */
    rc = buf_append(out, plain, (size_t)n1 + (size_t)n2) == PG_OK ? PG_OK : PG_ERR_NOMEM;
done:
    EVP_CIPHER_CTX_free(ctx);
    OPENSSL_clear_free(plain, len + AES_BLOCK);
    ERR_clear_error();
    return rc;
}
