/* pwhash: libsodium's crypto_pwhash (Argon2id). See include/util/pwhash.h. */
#include "pwhash.h"

#include <sodium.h>
#include <string.h>

_Static_assert(PWHASH_STR_MAX >= crypto_pwhash_STRBYTES, "PWHASH_STR_MAX too small");

static bool initialised;
static char dummy_hash[crypto_pwhash_STRBYTES];

pg_err pwhash_init(void)
{
    if (initialised)
        return PG_OK;
    if (sodium_init() < 0)
        return PG_ERR_INTERNAL;
    initialised = true;
    return PG_OK;
}

pg_err pwhash_hash(const char *password, char out[PWHASH_STR_MAX])
{
    size_t n = password ? strlen(password) : 0;
    if (n < PWHASH_PASSWORD_MIN || n > PWHASH_PASSWORD_MAX)
        return PG_ERR_BAD_INPUT;
    if (pwhash_init() != PG_OK)
        return PG_ERR_INTERNAL;
    if (crypto_pwhash_str(out, password, n, crypto_pwhash_OPSLIMIT_INTERACTIVE,
                          crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
        return PG_ERR_NOMEM;
    return PG_OK;
}

/* A hash of a random password, made once per process: verifying against it
 * costs what a real verification costs. */
static const char *dummy(void)
{
    unsigned char pw[32];
    if (dummy_hash[0])
        return dummy_hash;
    randombytes_buf(pw, sizeof pw);
    if (crypto_pwhash_str(dummy_hash, (const char *)pw, sizeof pw, crypto_pwhash_OPSLIMIT_INTERACTIVE,
                          crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
        dummy_hash[0] = '\0';
    sodium_memzero(pw, sizeof pw);
    return dummy_hash;
}

bool pwhash_verify(const char *stored, const char *password)
{
    size_t n = password ? strlen(password) : 0;
    bool ok;
    if (pwhash_init() != PG_OK)
        return false;
    (void)dummy();   /* made before the first verification, known account or not */
    if (n > PWHASH_PASSWORD_MAX)
        n = PWHASH_PASSWORD_MAX;   /* still do the work, then refuse */
    if (!stored || !*stored) {
        const char *d = dummy();
        volatile int sink = *d ? crypto_pwhash_str_verify(d, password ? password : "", n) : -1;
        (void)sink;
        return false;
    }
    ok = crypto_pwhash_str_verify(stored, password ? password : "", n) == 0;
    return ok && password && strlen(password) <= PWHASH_PASSWORD_MAX;
}
