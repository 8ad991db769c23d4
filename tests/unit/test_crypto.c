/* crypto: key formats, SHA256withRSA against an openssl-CLI vector, HMAC and
 * MD5 vectors (including WeChat's documented example), base64, constant-time
 * comparison and random tokens. Fixtures: tests/fixtures/keys (see README). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "crypto.h"

#define KEYS "../fixtures/keys/"
#define VECTORS "../fixtures/vectors/"

/* WeChat Pay v2 documented example (PROTOCOLS.md): the string to sign,
 * which already ends with "&key=<API key>", and the API key itself. */
#define WX_STRING "appid=wxd930ea5d5a258f4f&body=test&device_info=1000&mch_id=10000100&nonce_str=ibuaiVcKdpRxkhJA&key=192006250b4c09247ec02edce69f6a2d"
#define WX_KEY "192006250b4c09247ec02edce69f6a2d"

static void read_fixture(const char *path, buf_t *out)
{
    buf_init(out, NULL);
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open fixture %s (run from tests/unit)", path);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        assert_int_equal(buf_append(out, chunk, n), PG_OK);
    fclose(f);
}

static crypto_key_t *load_priv(const char *path)
{
    crypto_key_t *k = NULL;
    buf_t err;
    buf_init(&err, NULL);
    if (crypto_key_load_private(path, &k, &err) != PG_OK)
        fail_msg("load_private %s: %s", path, err.data);
    buf_free(&err);
    return k;
}

static crypto_key_t *load_pub(const char *path)
{
    crypto_key_t *k = NULL;
    buf_t err;
    buf_init(&err, NULL);
    if (crypto_key_load_public(path, &k, &err) != PG_OK)
        fail_msg("load_public %s: %s", path, err.data);
    buf_free(&err);
    return k;
}

/* ---- RSA -------------------------------------------------------------- */

static void assert_signs_vector(const char *priv_path)
{
    buf_t msg, want, got;
    read_fixture(VECTORS "rsa_sha256.txt", &msg);
    read_fixture(VECTORS "rsa_sha256.sig.b64", &want);
    while (want.len && (want.data[want.len - 1] == '\n' || want.data[want.len - 1] == '\r'))
        want.data[--want.len] = '\0';
    crypto_key_t *k = load_priv(priv_path);
    buf_init(&got, NULL);
    assert_int_equal(crypto_rsa_sha256_sign_b64(k, msg.data, msg.len, &got), PG_OK);
    assert_string_equal(got.data, want.data);
    crypto_key_free(k);
    buf_free(&msg);
    buf_free(&want);
    buf_free(&got);
}

static void test_crypto_sign_matches_openssl_vector_pkcs1_pem(void **state)
{
    (void)state;
    assert_signs_vector(KEYS "app_private_pkcs1.pem");
}

static void test_crypto_sign_matches_openssl_vector_pkcs8_pem(void **state)
{
    (void)state;
    assert_signs_vector(KEYS "app_private_pkcs8.pem");
}

static void test_crypto_sign_matches_openssl_vector_bare_base64(void **state)
{
    (void)state;
    assert_signs_vector(KEYS "app_private_bare.txt");
}

static void test_crypto_private_key_parses_from_memory_wrapped_base64(void **state)
{
    (void)state;
    /* bare base64 pasted with line breaks every 64 chars still parses */
    buf_t bare, wrapped, err;
    read_fixture(KEYS "app_private_bare.txt", &bare);
    buf_init(&wrapped, NULL);
    buf_init(&err, NULL);
    for (size_t i = 0; i < bare.len; i++) {
        if (i && i % 64 == 0)
            buf_puts(&wrapped, "\r\n");
        buf_putc(&wrapped, bare.data[i]);
    }
    crypto_key_t *k = NULL;
    assert_int_equal(crypto_key_parse_private(wrapped.data, wrapped.len, &k, &err), PG_OK);
    assert_non_null(k);
    crypto_key_free(k);
    buf_free(&bare);
    buf_free(&wrapped);
    buf_free(&err);
}

static void test_crypto_keys_parse_with_crlf_line_ends(void **state)
{
    (void)state;
    /* keys edited on Windows arrive with CRLF line ends */
    static const char *const files[] = { KEYS "app_private_pkcs1.pem", KEYS "app_public.pem" };
    for (size_t f = 0; f < 2; f++) {
        buf_t text, crlf, err;
        read_fixture(files[f], &text);
        buf_init(&crlf, NULL);
        buf_init(&err, NULL);
        for (size_t i = 0; i < text.len; i++) {
            if (text.data[i] == '\n')
                buf_putc(&crlf, '\r');
            buf_putc(&crlf, text.data[i]);
        }
        crypto_key_t *k = NULL;
        pg_err rc = f == 0 ? crypto_key_parse_private(crlf.data, crlf.len, &k, &err)
                           : crypto_key_parse_public(crlf.data, crlf.len, &k, &err);
        if (rc != PG_OK)
            fail_msg("%s with CRLF: %s", files[f], err.data);
        crypto_key_free(k);
        buf_free(&text);
        buf_free(&crlf);
        buf_free(&err);
    }
}

static void assert_verifies_vector(const char *pub_path)
{
    buf_t msg, sig;
    read_fixture(VECTORS "rsa_sha256.txt", &msg);
    read_fixture(VECTORS "rsa_sha256.sig.b64", &sig);
    while (sig.len && (sig.data[sig.len - 1] == '\n'))
        sig.data[--sig.len] = '\0';
    crypto_key_t *k = load_pub(pub_path);
    assert_int_equal(crypto_rsa_sha256_verify_b64(k, msg.data, msg.len, sig.data), PG_OK);
    crypto_key_free(k);
    buf_free(&msg);
    buf_free(&sig);
}

static void test_crypto_verify_accepts_vector_with_every_public_format(void **state)
{
    (void)state;
    assert_verifies_vector(KEYS "app_public.pem");
    assert_verifies_vector(KEYS "app_public_bare.txt");
    assert_verifies_vector(KEYS "app_public_rsa.pem");
    assert_verifies_vector(KEYS "app_cert.pem");
}

static void test_crypto_verify_rejects_changed_message_and_signature(void **state)
{
    (void)state;
    buf_t msg, sig;
    read_fixture(VECTORS "rsa_sha256.txt", &msg);
    read_fixture(VECTORS "rsa_sha256.sig.b64", &sig);
    while (sig.len && sig.data[sig.len - 1] == '\n')
        sig.data[--sig.len] = '\0';
    crypto_key_t *k = load_pub(KEYS "app_public.pem");

    /* one byte of the message changed */
    msg.data[10] ^= 0x01;
    assert_int_equal(crypto_rsa_sha256_verify_b64(k, msg.data, msg.len, sig.data), PG_ERR_BAD_SIGNATURE);
    msg.data[10] ^= 0x01;
    /* one byte less of the message */
    assert_int_equal(crypto_rsa_sha256_verify_b64(k, msg.data, msg.len - 1, sig.data), PG_ERR_BAD_SIGNATURE);

    /* one byte of the signature changed (decode, flip, re-encode) */
    buf_t raw, bad;
    buf_init(&raw, NULL);
    buf_init(&bad, NULL);
    assert_int_equal(crypto_base64_decode(sig.data, sig.len, &raw), PG_OK);
    assert_int_equal(raw.len, 256);
    raw.data[100] ^= 0x40;
    assert_int_equal(crypto_base64_encode(raw.data, raw.len, &bad), PG_OK);
    assert_int_equal(crypto_rsa_sha256_verify_b64(k, msg.data, msg.len, bad.data), PG_ERR_BAD_SIGNATURE);

    /* truncated signature */
    buf_clear(&bad);
    crypto_base64_encode(raw.data, 255, &bad);
    assert_int_equal(crypto_rsa_sha256_verify_b64(k, msg.data, msg.len, bad.data), PG_ERR_BAD_SIGNATURE);

    /* still fine untouched */
    assert_int_equal(crypto_rsa_sha256_verify_b64(k, msg.data, msg.len, sig.data), PG_OK);

    crypto_key_free(k);
    buf_free(&raw);
    buf_free(&bad);
    buf_free(&msg);
    buf_free(&sig);
}

static void test_crypto_verify_rejects_junk_base64(void **state)
{
    (void)state;
    crypto_key_t *k = load_pub(KEYS "app_public.pem");
    static const char msg[] = "hello";
    assert_int_equal(crypto_rsa_sha256_verify_b64(k, msg, 5, "not base64!!"), PG_ERR_BAD_SIGNATURE);
    assert_int_equal(crypto_rsa_sha256_verify_b64(k, msg, 5, ""), PG_ERR_BAD_SIGNATURE);
    assert_int_equal(crypto_rsa_sha256_verify_b64(k, msg, 5, "AAAA"), PG_ERR_BAD_SIGNATURE);
    assert_int_equal(crypto_rsa_sha256_verify_b64(k, msg, 5, "abc"), PG_ERR_BAD_SIGNATURE);
    assert_int_equal(crypto_rsa_sha256_verify_b64(k, msg, 5, NULL), PG_ERR_BAD_SIGNATURE);
    crypto_key_free(k);
}

static void test_crypto_verify_rejects_signature_from_other_key(void **state)
{
    (void)state;
    crypto_key_t *other = load_priv(KEYS "other_private.pem");
    crypto_key_t *pub = load_pub(KEYS "app_public.pem");
    buf_t sig;
    buf_init(&sig, NULL);
    assert_int_equal(crypto_rsa_sha256_sign_b64(other, "m", 1, &sig), PG_OK);
    assert_int_equal(crypto_rsa_sha256_verify_b64(pub, "m", 1, sig.data), PG_ERR_BAD_SIGNATURE);
    crypto_key_free(other);
    crypto_key_free(pub);
    buf_free(&sig);
}

static void test_crypto_sign_then_verify_round_trip_utf8(void **state)
{
    (void)state;
    crypto_key_t *priv = load_priv(KEYS "app_private_pkcs8.pem");
    crypto_key_t *pub = load_pub(KEYS "app_public.pem");
    const char *msg = "subject=课程&total_amount=0.01";
    buf_t sig;
    buf_init(&sig, NULL);
    assert_int_equal(crypto_rsa_sha256_sign_b64(priv, msg, strlen(msg), &sig), PG_OK);
    assert_int_equal(sig.len, 344);   /* 256 bytes of 2048-bit signature */
    assert_int_equal(crypto_rsa_sha256_verify_b64(pub, msg, strlen(msg), sig.data), PG_OK);
    crypto_key_free(priv);
    crypto_key_free(pub);
    buf_free(&sig);
}

static void test_crypto_key_pair_matches_true_and_false(void **state)
{
    (void)state;
    crypto_key_t *app_priv = load_priv(KEYS "app_private_pkcs1.pem");
    crypto_key_t *app_pub = load_pub(KEYS "app_public.pem");
    crypto_key_t *app_cert = load_pub(KEYS "app_cert.pem");
    crypto_key_t *other_priv = load_priv(KEYS "other_private.pem");
    crypto_key_t *other_pub = load_pub(KEYS "other_public.pem");
    assert_true(crypto_key_pair_matches(app_priv, app_pub));
    assert_true(crypto_key_pair_matches(app_priv, app_cert));
    assert_true(crypto_key_pair_matches(other_priv, other_pub));
    assert_false(crypto_key_pair_matches(app_priv, other_pub));
    assert_false(crypto_key_pair_matches(other_priv, app_pub));
    assert_false(crypto_key_pair_matches(NULL, app_pub));
    assert_false(crypto_key_pair_matches(app_priv, NULL));
    crypto_key_free(app_priv);
    crypto_key_free(app_pub);
    crypto_key_free(app_cert);
    crypto_key_free(other_priv);
    crypto_key_free(other_pub);
}

static void assert_parse_fails(bool private_key, const char *text, const char *reason_part)
{
    crypto_key_t *k = (crypto_key_t *)&k;   /* any non-NULL sentinel */
    buf_t err;
    buf_init(&err, NULL);
    pg_err rc = private_key ? crypto_key_parse_private(text, strlen(text), &k, &err)
                            : crypto_key_parse_public(text, strlen(text), &k, &err);
    assert_int_equal(rc, PG_ERR_BAD_INPUT);
    assert_null(k);
    assert_true(err.len > 0);
    if (!strstr(err.data, reason_part))
        fail_msg("reason \"%s\" lacks \"%s\"", err.data, reason_part);
    buf_free(&err);
}

static void test_crypto_parse_errors_give_a_reason(void **state)
{
    (void)state;
    assert_parse_fails(true, "", "empty");
    assert_parse_fails(true, "hello world", "base64");
    assert_parse_fails(true, "QUJD", "private key");   /* valid base64, not a key */
    assert_parse_fails(true, "-----BEGIN PRIVATE KEY-----\nQUJD\n-----END PRIVATE KEY-----\n", "private key");
    assert_parse_fails(true, "-----BEGIN PRIVATE KEY-----\nQUJD\n", "PEM");   /* no END line */
    assert_parse_fails(true, "-----BEGIN ENCRYPTED PRIVATE KEY-----\nQUJD\n-----END ENCRYPTED PRIVATE KEY-----\n", "encrypted");
    assert_parse_fails(false, "", "empty");
    assert_parse_fails(false, "%%%%", "base64");
    assert_parse_fails(false, "-----BEGIN CERTIFICATE-----\nQUJD\n-----END CERTIFICATE-----\n", "public key");
    assert_parse_fails(false, "-----BEGIN FOO-----\nQUJD\n-----END FOO-----\n", "BEGIN FOO");
}

static void test_crypto_public_parser_refuses_private_key(void **state)
{
    (void)state;
    buf_t text;
    read_fixture(KEYS "app_private_pkcs1.pem", &text);
    assert_parse_fails(false, text.data, "private key");
    buf_free(&text);
    read_fixture(KEYS "app_private_pkcs8.pem", &text);
    assert_parse_fails(false, text.data, "private key");
    buf_free(&text);
}

static void test_crypto_private_parser_refuses_public_key(void **state)
{
    (void)state;
    buf_t text;
    read_fixture(KEYS "app_public.pem", &text);
    assert_parse_fails(true, text.data, "BEGIN PUBLIC KEY");
    buf_free(&text);
    read_fixture(KEYS "app_public_bare.txt", &text);
    assert_parse_fails(true, text.data, "private key");
    buf_free(&text);
}

static void test_crypto_parsers_refuse_non_rsa_keys(void **state)
{
    (void)state;
    buf_t text;
    read_fixture(KEYS "ec_private.pem", &text);
    assert_parse_fails(true, text.data, "not an RSA key");
    buf_free(&text);
    read_fixture(KEYS "ec_public.pem", &text);
    assert_parse_fails(false, text.data, "not an RSA key");
    buf_free(&text);
}

static void test_crypto_load_missing_file_names_the_path(void **state)
{
    (void)state;
    crypto_key_t *k = NULL;
    buf_t err;
    buf_init(&err, NULL);
    assert_int_equal(crypto_key_load_private(KEYS "does_not_exist.pem", &k, &err), PG_ERR_CONFIG);
    assert_null(k);
    assert_non_null(strstr(err.data, "does_not_exist.pem"));
    buf_clear(&err);
    assert_int_equal(crypto_key_load_public(KEYS "README", &k, &err), PG_ERR_BAD_INPUT);
    assert_non_null(strstr(err.data, "README"));
    buf_free(&err);
}

static void test_crypto_parse_accepts_null_err_buffer(void **state)
{
    (void)state;
    crypto_key_t *k = NULL;
    assert_int_equal(crypto_key_parse_private("junk", 4, &k, NULL), PG_ERR_BAD_INPUT);
    assert_int_equal(crypto_key_parse_public("junk", 4, &k, NULL), PG_ERR_BAD_INPUT);
    crypto_key_free(NULL);
}

/* ---- digests ---------------------------------------------------------- */

static void test_crypto_md5_wechat_documented_vector(void **state)
{
    (void)state;
    char out[33];
    /* printf '%s' "$WX_STRING" | openssl dgst -md5 */
    crypto_md5_hex(WX_STRING, strlen(WX_STRING), true, out);
    assert_string_equal(out, "9A0A8659F005D6984697E2CA0A9CF3B7");
    crypto_md5_hex(WX_STRING, strlen(WX_STRING), false, out);
    assert_string_equal(out, "9a0a8659f005d6984697e2ca0a9cf3b7");
}

static void test_crypto_hmac_sha256_wechat_documented_vector(void **state)
{
    (void)state;
    char out[65];
    /* printf '%s' "$WX_STRING" | openssl dgst -sha256 -hmac 192006250b4c09247ec02edce69f6a2d
     * (the HMAC key is the API key; the string still ends with &key=...) */
    crypto_hmac_sha256_hex(WX_KEY, strlen(WX_KEY), WX_STRING, strlen(WX_STRING), true, out);
    assert_string_equal(out, "6A9AE1657590FD6257D693A078E1C3E4BB6BA4DC30B23E0EE2496E54170DACD6");
}

static void test_crypto_hmac_sha256_cli_vectors(void **state)
{
    (void)state;
    char out[65];
    /* printf '%s' "The quick brown fox jumps over the lazy dog" | openssl dgst -sha256 -hmac key */
    const char *fox = "The quick brown fox jumps over the lazy dog";
    crypto_hmac_sha256_hex("key", 3, fox, strlen(fox), false, out);
    assert_string_equal(out, "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8");
    /* printf '' | openssl dgst -sha256 -hmac "" */
    crypto_hmac_sha256_hex("", 0, "", 0, false, out);
    assert_string_equal(out, "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
}

static void test_crypto_md5_and_sha256_cli_vectors(void **state)
{
    (void)state;
    char md5[33], sha[65];
    /* printf '' | openssl dgst -md5 */
    crypto_md5_hex("", 0, false, md5);
    assert_string_equal(md5, "d41d8cd98f00b204e9800998ecf8427e");
    /* printf 'abc' | openssl dgst -sha256 */
    crypto_sha256_hex("abc", 3, sha);
    assert_string_equal(sha, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    /* printf 'abc' | openssl dgst -sha1 (WeChat v3 bills' hash_value) */
    crypto_sha1_hex("abc", 3, sha);
    assert_string_equal(sha, "a9993e364706816aba3e25717850c26c9cd0d89d");
}

/* ---- base64 ----------------------------------------------------------- */

static void assert_b64(const char *raw, size_t raw_len, const char *enc)
{
    buf_t out, back;
    buf_init(&out, NULL);
    buf_init(&back, NULL);
    assert_int_equal(crypto_base64_encode(raw, raw_len, &out), PG_OK);
    assert_string_equal(out.data, enc);
    assert_int_equal(crypto_base64_decode(out.data, out.len, &back), PG_OK);
    assert_int_equal(back.len, raw_len);
    assert_memory_equal(back.data, raw, raw_len);
    buf_free(&out);
    buf_free(&back);
}

static void test_crypto_base64_round_trip(void **state)
{
    (void)state;
    /* RFC 4648 section 10 */
    assert_b64("", 0, "");
    assert_b64("f", 1, "Zg==");
    assert_b64("fo", 2, "Zm8=");
    assert_b64("foo", 3, "Zm9v");
    assert_b64("foob", 4, "Zm9vYg==");
    assert_b64("fooba", 5, "Zm9vYmE=");
    assert_b64("foobar", 6, "Zm9vYmFy");
    assert_b64("\xfb\xff\x00", 3, "+/8A");
    unsigned char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    buf_t enc, dec;
    buf_init(&enc, NULL);
    buf_init(&dec, NULL);
    crypto_base64_encode(all, sizeof(all), &enc);
    assert_int_equal(crypto_base64_decode(enc.data, enc.len, &dec), PG_OK);
    assert_int_equal(dec.len, 256);
    assert_memory_equal(dec.data, all, 256);
    buf_free(&enc);
    buf_free(&dec);
}

static void test_crypto_base64_rejects_junk(void **state)
{
    (void)state;
    static const char *const junk[] = {
        "Zg=", "Zg", "Z", "Zm9vY", "Zm 9v", "Zm9v\n", "Zm-v", "Zm_v",
        "=Zg=", "Z===", "Zg=a", "Zg==Zm9v", "Zm9v====", "Zh==", "Zm9=",
        "\xc3\xa9\xc3\xa9",
    };
    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
        buf_t out;
        buf_init(&out, NULL);
        buf_puts(&out, "keep");
        if (crypto_base64_decode(junk[i], strlen(junk[i]), &out) != PG_ERR_BAD_INPUT)
            fail_msg("accepted junk base64 \"%s\"", junk[i]);
        assert_string_equal(out.data, "keep");   /* nothing half-appended */
        buf_free(&out);
    }
}

/* ---- comparison and randomness ---------------------------------------- */

static void test_crypto_ct_equal(void **state)
{
    (void)state;
    assert_true(crypto_ct_equal("abc", 3, "abc", 3));
    assert_false(crypto_ct_equal("abc", 3, "abd", 3));
    assert_false(crypto_ct_equal("abc", 3, "abcd", 4));
    assert_false(crypto_ct_equal("abc", 3, "ab", 2));
    assert_false(crypto_ct_equal("", 0, "", 0));   /* empty never matches */
    assert_false(crypto_ct_equal(NULL, 0, NULL, 0));
    assert_true(crypto_ct_equal("a\0b", 3, "a\0b", 3));
    assert_false(crypto_ct_equal("a\0b", 3, "a\0c", 3));
    assert_true(crypto_ct_streq("9A0A", "9A0A"));
    assert_false(crypto_ct_streq("9A0A", "9a0a"));
    assert_false(crypto_ct_streq("9A0A", "9A0"));
    assert_false(crypto_ct_streq("", "x"));
    assert_false(crypto_ct_streq("", ""));
    assert_false(crypto_ct_streq(NULL, ""));
    assert_false(crypto_ct_streq("", NULL));
}

static bool is_alnum_ascii(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static void test_crypto_random_alnum_charset_and_length(void **state)
{
    (void)state;
    char out[33];
    memset(out, 'x', sizeof(out));
    assert_int_equal(crypto_random_alnum(out, 32), PG_OK);
    assert_int_equal(strlen(out), 32);
    for (int i = 0; i < 32; i++)
        assert_true(is_alnum_ascii(out[i]));

    char zero[1] = { 'x' };
    assert_int_equal(crypto_random_alnum(zero, 0), PG_OK);
    assert_int_equal(zero[0], '\0');

    /* over many draws, every one of the 62 characters turns up */
    char big[20001];
    assert_int_equal(crypto_random_alnum(big, 20000), PG_OK);
    assert_int_equal(strlen(big), 20000);
    int seen[256] = { 0 };
    for (int i = 0; i < 20000; i++) {
        assert_true(is_alnum_ascii(big[i]));
        seen[(unsigned char)big[i]]++;
    }
    int distinct = 0;
    for (int c = 0; c < 256; c++)
        if (seen[c]) {
            distinct++;
            /* expected ~322 each; a bias like % 62 without rejection would
             * still pass this loose bound, but a broken generator would not */
            assert_in_range(seen[c], 200, 450);
        }
    assert_int_equal(distinct, 62);
}

static void test_crypto_random_alnum_differs_between_calls(void **state)
{
    (void)state;
    char a[33], b[33];
    assert_int_equal(crypto_random_alnum(a, 32), PG_OK);
    assert_int_equal(crypto_random_alnum(b, 32), PG_OK);
    assert_string_not_equal(a, b);
}

static void test_crypto_wipe_zeroes(void **state)
{
    (void)state;
    char secret[] = "192006250b4c09247ec02edce69f6a2d";
    crypto_wipe(secret, sizeof(secret));
    for (size_t i = 0; i < sizeof(secret); i++)
        assert_int_equal(secret[i], 0);
    crypto_wipe(NULL, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crypto_sign_matches_openssl_vector_pkcs1_pem),
        cmocka_unit_test(test_crypto_sign_matches_openssl_vector_pkcs8_pem),
        cmocka_unit_test(test_crypto_sign_matches_openssl_vector_bare_base64),
        cmocka_unit_test(test_crypto_private_key_parses_from_memory_wrapped_base64),
        cmocka_unit_test(test_crypto_keys_parse_with_crlf_line_ends),
        cmocka_unit_test(test_crypto_verify_accepts_vector_with_every_public_format),
        cmocka_unit_test(test_crypto_verify_rejects_changed_message_and_signature),
        cmocka_unit_test(test_crypto_verify_rejects_junk_base64),
        cmocka_unit_test(test_crypto_verify_rejects_signature_from_other_key),
        cmocka_unit_test(test_crypto_sign_then_verify_round_trip_utf8),
        cmocka_unit_test(test_crypto_key_pair_matches_true_and_false),
        cmocka_unit_test(test_crypto_parse_errors_give_a_reason),
        cmocka_unit_test(test_crypto_public_parser_refuses_private_key),
        cmocka_unit_test(test_crypto_private_parser_refuses_public_key),
        cmocka_unit_test(test_crypto_parsers_refuse_non_rsa_keys),
        cmocka_unit_test(test_crypto_load_missing_file_names_the_path),
        cmocka_unit_test(test_crypto_parse_accepts_null_err_buffer),
        cmocka_unit_test(test_crypto_md5_wechat_documented_vector),
        cmocka_unit_test(test_crypto_hmac_sha256_wechat_documented_vector),
        cmocka_unit_test(test_crypto_hmac_sha256_cli_vectors),
        cmocka_unit_test(test_crypto_md5_and_sha256_cli_vectors),
        cmocka_unit_test(test_crypto_base64_round_trip),
        cmocka_unit_test(test_crypto_base64_rejects_junk),
        cmocka_unit_test(test_crypto_ct_equal),
        cmocka_unit_test(test_crypto_random_alnum_charset_and_length),
        cmocka_unit_test(test_crypto_random_alnum_differs_between_calls),
        cmocka_unit_test(test_crypto_wipe_zeroes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
