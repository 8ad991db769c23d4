/* fuzz_googleplay_rtdn: a Pub/Sub push body through googleplay_parse_rtdn
 * (JSON, base64 message.data, the RTDN inside), and the same bytes as the
 * push's OIDC token through googleplay_verify_oidc (no network: keys from
 * tests/fixtures/googleplay/jwks.json, fixed clock).
 *
 * Input: one flag byte, then the bytes. bit 0: the bytes are the token.
 * Properties: no crash, leak or UB; a parsed purchase notification has its
 * token and product; a token never verifies unless signed by the key. */
#include "fuzz_common.h"
#include "googleplay.h"

#define FUZZ_NOW ((time_t)1767229200)
static googleplay_client_t client;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    FILE *f = fopen("tests/fixtures/googleplay/jwks.json", "rb");
    char text[8192];
    size_t n = f ? fread(text, 1, sizeof text, f) : 0;
    if (f)
        fclose(f);
    client.package_name = "com.example.shop";
    client.push_audience = "https://shop.example.com/pay/notify/googleplay";
    client.push_email = "play-rtdn@example-project.iam.gserviceaccount.com";
    if (n == 0 || googleplay_set_jwks(&client, text, n, FUZZ_NOW + 3600, NULL) != PG_OK) {
        fprintf(stderr, "fuzz_googleplay_rtdn: no JWKS (run from the repository root)\n");
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    arena_t a;
    fuzz_arena_init(&a);
    buf_t err;
    buf_init(&err, &a);
    if (data[0] & 1) {
        char *jwt = fuzz_cstr(&a, data + 1, size - 1);
        pg_err rc = googleplay_verify_oidc(&client, &a, jwt, FUZZ_NOW, false, &err);
        FUZZ_ASSERT(rc == PG_OK || rc == PG_ERR_UNAUTHORIZED);
    } else {
        char *body = fuzz_exact_copy(data + 1, size - 1);
        googleplay_rtdn_t n;
        if (googleplay_parse_rtdn(&client, &a, body, size - 1, &n, &err) == PG_OK && n.kind == GP_RTDN_PURCHASED)
            FUZZ_ASSERT(n.purchase_token && n.product_id);
        free(body);
    }
    arena_free(&a);
    return 0;
}
