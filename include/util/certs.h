/* certs: facts read from X.509 certificates in PEM files (OpenSSL, like
 * crypto.c): issuer attributes in encoded order, serial number in decimal,
 * signature algorithm OID, expiry, public key, and whether a certificate
 * chains to a set of roots. No knowledge of any provider's rules. */
#ifndef CERTS_H
#define CERTS_H
#include <stdbool.h>
#include <stddef.h>
#include <time.h>
#include "buf.h"
#include "crypto.h"
#include "pg_err.h"

#define CERTS_BUNDLE_MAX 16     /* certificates read from one file at most */

typedef struct x509_bundle x509_bundle_t;

/* Every "BEGIN CERTIFICATE" block of the file (or text), in file order.
 * PG_ERR_BAD_INPUT when there is none or one does not parse (err says
 * which), PG_ERR_TOO_LARGE beyond CERTS_BUNDLE_MAX. */
pg_err x509_bundle_load(const char *path, x509_bundle_t **out, buf_t *err);
pg_err x509_bundle_parse(const char *text, size_t len, x509_bundle_t **out, buf_t *err);
void   x509_bundle_free(x509_bundle_t *b);
size_t x509_bundle_count(const x509_bundle_t *b);

/* The issuer's attributes in the order they are encoded (RDN sequence,
 * multi-valued RDNs flattened): attribute type OID as dotted text and value
 * as UTF-8. j runs from 0 to x509_issuer_count - 1. */
size_t x509_issuer_count(const x509_bundle_t *b, size_t i);
pg_err x509_issuer_entry(const x509_bundle_t *b, size_t i, size_t j, char oid[64], buf_t *value);

/* Serial number as an unsigned decimal string. */
pg_err x509_serial_decimal(const x509_bundle_t *b, size_t i, buf_t *out);
/* The certificate's signature algorithm OID, dotted ("1.2.840.113549.1.1.11"). */
pg_err x509_signature_oid(const x509_bundle_t *b, size_t i, char out[64]);
/* notAfter as a Unix time. */
pg_err x509_not_after(const x509_bundle_t *b, size_t i, time_t *out);
/* Certificate i's public key (RSA only, as crypto_key_parse_public). */
pg_err x509_public_key(const x509_bundle_t *b, size_t i, crypto_key_t **out, buf_t *err);
/* true when certificate 0 of leaf (with leaf's other certificates as
 * intermediates) chains to a certificate of roots; validity periods are not
 * judged here (see x509_not_after). */
bool   x509_chains_to(const x509_bundle_t *leaf, const x509_bundle_t *roots);

#endif
