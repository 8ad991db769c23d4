/* alipay_cert: Alipay's public-key certificate mode (SPEC §12.2). The
 * certificate SNs exactly as Alipay's official SDKs compute them:
 *   SN(cert) = lowercase hex MD5 of issuer + serial, where issuer is the
 *   issuer's attributes in reverse encoded order written "SHORT=value"
 *   joined by ',' (CN, C, L, ST, O, OU, E; any other attribute type has an
 *   empty short name, "=value"), and serial is the serial number in decimal;
 *   root SN = the SNs of the root bundle's certificates whose signature
 *   algorithm OID starts with 1.2.840.113549.1.1 (RSA PKCS#1: sha1/sha256/
 *   ... WithRSA) joined by '_'; other certificates (EC, SM2) are left out.
 * (npm alipay-sdk antcertutil getSN / getRootCertSN.) */
#ifndef ALIPAY_CERT_H
#define ALIPAY_CERT_H
#include "buf.h"
#include "certs.h"
#include "pg_err.h"

#define ALIPAY_CERT_SN_LEN 32

/* SN of certificate i of b. out holds 33 bytes. */
pg_err alipay_cert_sn_of(const x509_bundle_t *b, size_t i, char out[ALIPAY_CERT_SN_LEN + 1]);
/* Root SN of a bundle; PG_ERR_NOT_FOUND when no certificate qualifies. */
pg_err alipay_root_cert_sn_of(const x509_bundle_t *b, buf_t *out);

/* The same from files: the first certificate of path / every one of it. */
pg_err alipay_cert_sn_file(const char *path, char out[ALIPAY_CERT_SN_LEN + 1], buf_t *err);
pg_err alipay_root_cert_sn_file(const char *path, buf_t *out, buf_t *err);

#endif
