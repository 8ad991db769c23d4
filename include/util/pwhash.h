/* pwhash: the only user of libsodium. Operator passwords are stored as
 * crypto_pwhash_str strings (Argon2id with its own random salt and the
 * "interactive" limits); verification is libsodium's, constant-time. */
#ifndef PWHASH_H
#define PWHASH_H
#include <stdbool.h>
#include <stddef.h>
#include "pg_err.h"

#define PWHASH_STR_MAX 128   /* crypto_pwhash_STRBYTES */
#define PWHASH_PASSWORD_MIN 10
#define PWHASH_PASSWORD_MAX 1024

/* Initialises libsodium (idempotent). PG_ERR_INTERNAL when it cannot. */
pg_err pwhash_init(void);
/* Hashes password into out (NUL-terminated). PG_ERR_BAD_INPUT when the
 * password is shorter than PWHASH_PASSWORD_MIN or longer than the max. */
pg_err pwhash_hash(const char *password, char out[PWHASH_STR_MAX]);
/* true when password matches stored. stored NULL: a fixed dummy hash is
 * verified instead (the same work), and false returned, so that an unknown
 * account takes as long as a wrong password. */
bool   pwhash_verify(const char *stored, const char *password);

#endif
