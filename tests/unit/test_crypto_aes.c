/* crypto_aes256_ecb_decrypt tests. Every ciphertext below was made by the
 * openssl CLI, never by our code:
 *
 *   K=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
 *   printf %s "$P" | openssl enc -aes-256-ecb -K $K -nosalt | xxd -p -c 200
 *
 * and, for the bad-padding cases, the same with -nopad on a raw 16-byte
 * block. The WeChat req_info fixture (tests/fixtures/wechat/req_info.b64)
 * is covered in test_wechat.c. Run with cwd tests/unit. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "crypto.h"

static const unsigned char KEY[32] = {
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
    0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
};

/* hex -> bytes appended to out */
static void unhex(const char *hex, buf_t *out)
{
    size_t i, n = strlen(hex);
    assert_int_equal(n % 2, 0);
    for (i = 0; i < n; i += 2) {
        char pair[3] = { hex[i], hex[i + 1], '\0' };
        char *end = NULL;
        unsigned long v = strtoul(pair, &end, 16);
        assert_true(end == pair + 2);
        buf_putc(out, (char)v);
    }
    assert_false(out->failed);
}

static pg_err decrypt_hex(const unsigned char *key, const char *hex, buf_t *plain)
{
    buf_t cipher;
    pg_err rc;
    buf_init(&cipher, NULL);
    unhex(hex, &cipher);
    rc = crypto_aes256_ecb_decrypt(key, cipher.data, cipher.len, plain);
    buf_free(&cipher);
    return rc;
}

static void expect_plain(const char *hex, const char *want)
{
    buf_t plain;
    buf_init(&plain, NULL);
    assert_int_equal(decrypt_hex(KEY, hex, &plain), PG_OK);
    assert_int_equal(plain.len, strlen(want));
    assert_memory_equal(plain.data, want, plain.len);
    buf_free(&plain);
}

static void test_aes_decrypts_openssl_vectors(void **state)
{
    (void)state;
    /* empty plaintext = one block of 16 x 0x10 padding */
    expect_plain("9f3b7504926f8bd36e3118e903a4cd4a", "");
    expect_plain("698b1ef914d6a078115d53a0b9a68927", "fifteen bytes!!");
    /* a full block of plaintext gets a whole padding block */
    expect_plain("6f117868aa6f86a3ec5c6489f17132539f3b7504926f8bd36e3118e903a4cd4a", "exactly16bytes!!");
    expect_plain("c040de9a36e605f894a3aad2199d0bbbdc1fb2be5d5d8de2d1aa943a1fc6103e"
                 "44c6f51e4ee9247555dfa22173824709",
                 "thirty-three bytes of plaintext..");
}

static void test_aes_appends_to_existing_buffer(void **state)
{
    buf_t plain;
    (void)state;
    buf_init(&plain, NULL);
    buf_puts(&plain, ">>");
    assert_int_equal(decrypt_hex(KEY, "698b1ef914d6a078115d53a0b9a68927", &plain), PG_OK);
    assert_string_equal(plain.data, ">>fifteen bytes!!");
    buf_free(&plain);
}

static void test_aes_rejects_bad_padding(void **state)
{
    buf_t plain;
    (void)state;
    buf_init(&plain, NULL);
    /* printf '0123456789abcdef' | openssl enc ... -nopad: last byte 0x66 > 16 */
    assert_int_equal(decrypt_hex(KEY, "d8c95758e3353e530fa52bd10e73b986", &plain), PG_ERR_BAD_INPUT);
    /* printf '0123456789abcd\x03\x03': says 3 bytes of padding, only 2 agree */
    assert_int_equal(decrypt_hex(KEY, "6e3399b7d25a65b9dcb2ef53145951e0", &plain), PG_ERR_BAD_INPUT);
    /* printf '0123456789abcde\x00': zero padding length */
    assert_int_equal(decrypt_hex(KEY, "dbadfb3d536571ea663f9ae089487471", &plain), PG_ERR_BAD_INPUT);
    assert_int_equal(plain.len, 0);
    buf_free(&plain);
}

static void test_aes_wrong_key_is_refused(void **state)
{
    unsigned char other[32];
    buf_t plain;
    (void)state;
    memcpy(other, KEY, sizeof other);
    other[0] = 0x10;
    buf_init(&plain, NULL);
    /* Made with the right key; with this wrong key the final block's
     * padding does not check out (deterministic for this vector). */
    assert_int_equal(decrypt_hex(other,
                                 "c040de9a36e605f894a3aad2199d0bbbdc1fb2be5d5d8de2d1aa943a1fc6103e"
                                 "44c6f51e4ee9247555dfa22173824709",
                                 &plain),
                     PG_ERR_BAD_INPUT);
    assert_int_equal(plain.len, 0);
    /* and the reverse: made with `other` (-K 1001...1f), decrypts with it */
    assert_int_equal(decrypt_hex(other,
                                 "338ac0385e83a3dcdf8b70225abcb715dcdd0b6071fa41576f952dc1bfb716bd"
                                 "a453970a613cdd3eb2f76414425c9167",
                                 &plain),
                     PG_OK);
    assert_string_equal(plain.data, "thirty-three bytes of plaintext..");
    buf_free(&plain);
}

static void test_aes_rejects_bad_lengths(void **state)
{
    unsigned char block[32] = { 0 };
    buf_t plain;
    (void)state;
    buf_init(&plain, NULL);
    assert_int_equal(crypto_aes256_ecb_decrypt(KEY, block, 0, &plain), PG_ERR_BAD_INPUT);
    assert_int_equal(crypto_aes256_ecb_decrypt(KEY, block, 15, &plain), PG_ERR_BAD_INPUT);
    assert_int_equal(crypto_aes256_ecb_decrypt(KEY, block, 17, &plain), PG_ERR_BAD_INPUT);
    assert_int_equal(crypto_aes256_ecb_decrypt(NULL, block, 16, &plain), PG_ERR_BAD_INPUT);
    assert_int_equal(plain.len, 0);
    buf_free(&plain);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_aes_decrypts_openssl_vectors),
        cmocka_unit_test(test_aes_appends_to_existing_buffer),
        cmocka_unit_test(test_aes_rejects_bad_padding),
        cmocka_unit_test(test_aes_wrong_key_is_refused),
        cmocka_unit_test(test_aes_rejects_bad_lengths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
