/* stripe: form encoding, Stripe-Signature verification (vectors made with
 * the official `stripe` npm package's webhooks.generateTestHeaderString,
 * sandbox/interop/stripe_interop.js), event parsing, and one call against
 * a fake gateway (headers, body, reply and error mapping). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "fake_gw.h"
#include "stripe.h"

/* node stripe_interop.js '{"op":"sign","body":"{\"id\":\"evt_1\",\"object\":\"event\"}",
 *                          "secret":"whsec_test_secret","timestamp":1700000000}' */
#define NPM_BODY "{\"id\":\"evt_1\",\"object\":\"event\"}"
#define NPM_SECRET "whsec_test_secret"
#define NPM_T 1700000000
#define NPM_V1 "0c8670ed117751cc551a20e35839447075c42800ea3cf3e8a2fbda99cd1e6edd"

static int setup_arena(void **state)
{
    static arena_t a;
    arena_init(&a, 0);
    *state = &a;
    return 0;
}

static int teardown_arena(void **state)
{
    arena_free(*state);
    return 0;
}

static pg_err verify(arena_t *a, const char *secret, const char *header, const char *body, time_t now)
{
    buf_t why;
    buf_init(&why, a);
    return stripe_verify_signature(secret, header, body, strlen(body), now, STRIPE_SIGNATURE_TOLERANCE_S, &why);
}

static void test_form_keeps_brackets_encodes_values(void **state)
{
    kv_list_t f;
    buf_t out;
    kv_init(&f, *state);
    buf_init(&out, *state);
    kv_add(&f, "line_items[0][price_data][unit_amount]", "9900");
    kv_add(&f, "success_url", "https://shop.example/r?payment_no=A&x=1");
    kv_add(&f, "line_items[0][price_data][product_data][name]", "Go & C 课程");
    assert_int_equal(stripe_form_encode(&f, &out), PG_OK);
    assert_string_equal(out.data, "line_items[0][price_data][unit_amount]=9900"
                                  "&success_url=https%3A%2F%2Fshop.example%2Fr%3Fpayment_no%3DA%26x%3D1"
                                  "&line_items[0][price_data][product_data][name]=Go%20%26%20C%20%E8%AF%BE%E7%A8%8B");
}

static void test_signature_npm_vector_verifies(void **state)
{
    assert_int_equal(verify(*state, NPM_SECRET, "t=1700000000,v1=" NPM_V1, NPM_BODY, NPM_T), PG_OK);
    assert_int_equal(verify(*state, NPM_SECRET, "t=1700000000,v1=" NPM_V1, NPM_BODY, NPM_T + 300), PG_OK);
}

static void test_signature_header_matches_npm(void **state)
{
    buf_t h;
    buf_init(&h, *state);
    assert_int_equal(stripe_signature_header(NPM_SECRET, NPM_T, NPM_BODY, strlen(NPM_BODY), &h), PG_OK);
    assert_string_equal(h.data, "t=1700000000,v1=" NPM_V1);
}

static void test_signature_any_v1_may_match(void **state)
{
    const char *h = "t=1700000000,v1=" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                    ",v0=zzz,v1=" NPM_V1;
    assert_int_equal(verify(*state, NPM_SECRET, h, NPM_BODY, NPM_T), PG_OK);
}

static void test_signature_refusals(void **state)
{
    arena_t *a = *state;
    /* stale and future timestamps */
    assert_int_equal(verify(a, NPM_SECRET, "t=1700000000,v1=" NPM_V1, NPM_BODY, NPM_T + 301), PG_ERR_BAD_SIGNATURE);
    assert_int_equal(verify(a, NPM_SECRET, "t=1700000000,v1=" NPM_V1, NPM_BODY, NPM_T - 301), PG_ERR_BAD_SIGNATURE);
    /* tampered body, other secret, empty secret, empty/missing v1, only v0 */
    assert_int_equal(verify(a, NPM_SECRET, "t=1700000000,v1=" NPM_V1, "{\"id\":\"evt_2\",\"object\":\"event\"}", NPM_T),
                     PG_ERR_BAD_SIGNATURE);
    assert_int_equal(verify(a, "whsec_other", "t=1700000000,v1=" NPM_V1, NPM_BODY, NPM_T), PG_ERR_BAD_SIGNATURE);
    assert_int_equal(verify(a, "", "t=1700000000,v1=" NPM_V1, NPM_BODY, NPM_T), PG_ERR_BAD_SIGNATURE);
    assert_int_equal(verify(a, NPM_SECRET, "t=1700000000,v1=", NPM_BODY, NPM_T), PG_ERR_BAD_SIGNATURE);
    assert_int_equal(verify(a, NPM_SECRET, "t=1700000000", NPM_BODY, NPM_T), PG_ERR_BAD_SIGNATURE);
    assert_int_equal(verify(a, NPM_SECRET, "t=1700000000,v0=" NPM_V1, NPM_BODY, NPM_T), PG_ERR_BAD_SIGNATURE);
    assert_int_equal(verify(a, NPM_SECRET, "", NPM_BODY, NPM_T), PG_ERR_BAD_SIGNATURE);
    /* no timestamp, two timestamps, junk timestamp, uppercase hex */
    assert_int_equal(verify(a, NPM_SECRET, "v1=" NPM_V1, NPM_BODY, NPM_T), PG_ERR_BAD_SIGNATURE);
    assert_int_equal(verify(a, NPM_SECRET, "t=1700000000,t=1700000001,v1=" NPM_V1, NPM_BODY, NPM_T),
                     PG_ERR_BAD_SIGNATURE);
    assert_int_equal(verify(a, NPM_SECRET, "t=17e8,v1=" NPM_V1, NPM_BODY, NPM_T), PG_ERR_BAD_SIGNATURE);
    assert_int_equal(verify(a, NPM_SECRET, "t=1700000000,v1=0C8670ED117751CC551A20E35839447075C42800EA3CF3E8A2FBDA99CD1E6EDD",
                            NPM_BODY, NPM_T),
                     PG_ERR_BAD_SIGNATURE);
}

static void test_signature_empty_body_npm_vector(void **state)
{
    assert_int_equal(verify(*state, "whsec_other",
                            "t=1700000123,v1=9d8e9ad503e46c171a5bbb876b8c98ae531787c00fed1c664967baea5282e3ec", "",
                            1700000123),
                     PG_OK);
}

static const char *EV_COMPLETED =
    "{\"id\":\"evt_1\",\"object\":\"event\",\"type\":\"checkout.session.completed\",\"created\":1700000000,"
    "\"livemode\":false,\"data\":{\"object\":{\"id\":\"cs_test_1\",\"object\":\"checkout.session\","
    "\"status\":\"complete\",\"payment_status\":\"paid\",\"payment_intent\":\"pi_1\","
    "\"client_reference_id\":\"P1\",\"metadata\":{\"payment_no\":\"P1\"},\"currency\":\"cny\","
    "\"amount_total\":9900}}}";

static void test_event_completed_parsed(void **state)
{
    stripe_event_t e;
    buf_t why;
    buf_init(&why, *state);
    assert_int_equal(stripe_event_parse(*state, EV_COMPLETED, strlen(EV_COMPLETED), &e, &why), PG_OK);
    assert_int_equal(e.kind, STRIPE_EVENT_SESSION_COMPLETED);
    assert_string_equal(e.id, "evt_1");
    assert_int_equal(e.created, 1700000000);
    assert_false(e.livemode);
    assert_null(e.account);
    assert_string_equal(e.session.id, "cs_test_1");
    assert_string_equal(e.session.payment_status, "paid");
    assert_string_equal(e.session.client_reference_id, "P1");
    assert_string_equal(e.session.payment_no, "P1");
    assert_string_equal(e.session.payment_intent, "pi_1");
    assert_int_equal(e.session.amount_total, 9900);
}

static void test_event_refund_and_unknown(void **state)
{
    const char *refund = "{\"id\":\"evt_2\",\"object\":\"event\",\"type\":\"refund.updated\",\"created\":1,"
                         "\"account\":\"acct_9\",\"data\":{\"object\":{\"id\":\"re_1\",\"object\":\"refund\","
                         "\"status\":\"succeeded\",\"amount\":300,\"currency\":\"cny\",\"payment_intent\":\"pi_1\","
                         "\"metadata\":{\"refund_no\":\"R1\",\"payment_no\":\"P1\",\"payment_amount\":\"9900\"}}}}";
    const char *other = "{\"id\":\"evt_3\",\"object\":\"event\",\"type\":\"customer.created\",\"data\":{\"object\":{}}}";
    stripe_event_t e;
    buf_t why;
    buf_init(&why, *state);
    assert_int_equal(stripe_event_parse(*state, refund, strlen(refund), &e, &why), PG_OK);
    assert_int_equal(e.kind, STRIPE_EVENT_REFUND);
    assert_string_equal(e.account, "acct_9");
    assert_string_equal(e.refund.refund_no, "R1");
    assert_int_equal(e.refund.amount, 300);
    assert_int_equal(e.refund.payment_amount, 9900);
    assert_int_equal(stripe_event_parse(*state, other, strlen(other), &e, &why), PG_OK);
    assert_int_equal(e.kind, STRIPE_EVENT_OTHER);
}

static void test_event_malformed_refused(void **state)
{
    const char *bad[] = {
        "", "[]", "{\"object\":\"event\"}", "{\"id\":\"e\",\"object\":\"charge\",\"type\":\"x\",\"data\":{}}",
        "{\"id\":\"e\",\"id\":\"f\",\"object\":\"event\",\"type\":\"x\",\"data\":{}}",
        /* a session event carrying another object */
        "{\"id\":\"e\",\"object\":\"event\",\"type\":\"checkout.session.completed\",\"data\":{\"object\":"
        "{\"id\":\"re_1\",\"object\":\"refund\",\"status\":\"succeeded\"}}}",
        /* negative and fractional amounts are not amounts */
        "{\"id\":\"e\",\"object\":\"event\",\"type\":\"refund.updated\",\"data\":{\"object\":"
        "{\"object\":\"refund\",\"status\":\"succeeded\"}}}",
    };
    stripe_event_t e;
    buf_t why;
    buf_init(&why, *state);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(stripe_event_parse(*state, bad[i], strlen(bad[i]), &e, &why), PG_ERR_BAD_INPUT);
}

static void test_event_negative_amount_is_absent(void **state)
{
    const char *ev = "{\"id\":\"e\",\"object\":\"event\",\"type\":\"checkout.session.completed\",\"data\":{\"object\":"
                     "{\"id\":\"cs_1\",\"object\":\"checkout.session\",\"amount_total\":-5}}}";
    stripe_event_t e;
    buf_t why;
    buf_init(&why, *state);
    assert_int_equal(stripe_event_parse(*state, ev, strlen(ev), &e, &why), PG_OK);
    assert_int_equal(e.session.amount_total, -1);
}

static void test_currencies(void **state)
{
    (void)state;
    assert_true(stripe_currency_zero_decimal("jpy"));
    assert_false(stripe_currency_zero_decimal("cny"));
    assert_int_equal(stripe_currency_min_amount("cny"), 400);
    assert_int_equal(stripe_currency_min_amount("usd"), 50);
    assert_true(stripe_currency_valid("usd"));
    assert_false(stripe_currency_valid("USD"));
    assert_false(stripe_currency_valid("us"));
}

static stripe_client_t fake_client(arena_t *a, const fake_gw_t *g)
{
    stripe_client_t c;
    memset(&c, 0, sizeof c);
    c.secret_key = "sk_test_unit";
    c.api_base = arena_printf(a, "http://127.0.0.1:%d", g->port);
    c.currency = "cny";
    c.max_attempts = 1;
    return c;
}

static void test_session_create_request_and_reply(void **state)
{
    arena_t *a = *state;
    fake_gw_t g;
    stripe_client_t c;
    stripe_session_req_t r = { "PAYNO1", 9900, "Course", "course-c", 1700003600, "https://s/ok", "https://s/no" };
    stripe_session_t s;
    stripe_error_t e;
    buf_t err;
    char *raw;
    buf_init(&err, a);
    fake_gw_start(&g, 200, "application/json",
                  "{\"id\":\"cs_test_x\",\"object\":\"checkout.session\",\"url\":\"https://pay/x\","
                  "\"status\":\"open\",\"payment_status\":\"unpaid\",\"payment_intent\":null,"
                  "\"client_reference_id\":\"PAYNO1\",\"currency\":\"cny\",\"amount_total\":9900}",
                  0);
    c = fake_client(a, &g);
    assert_int_equal(stripe_session_create(&c, a, &r, &s, &e, &err), PG_OK);
    raw = fake_gw_finish(&g, a, 0);
    assert_non_null(strstr(raw, "POST /v1/checkout/sessions HTTP/1.1"));
    assert_non_null(strstr(raw, "Authorization: Bearer sk_test_unit\r\n"));
    assert_non_null(strstr(raw, "Stripe-Version: " STRIPE_API_VERSION "\r\n"));
    assert_non_null(strstr(raw, "Idempotency-Key: paygate-checkout-PAYNO1\r\n"));
    assert_non_null(strstr(raw, "mode=payment&line_items[0][price_data][currency]=cny"
                                "&line_items[0][price_data][unit_amount]=9900"));
    assert_non_null(strstr(raw, "&client_reference_id=PAYNO1&metadata[payment_no]=PAYNO1"
                                "&payment_intent_data[metadata][payment_no]=PAYNO1&expires_at=1700003600"));
    assert_string_equal(s.id, "cs_test_x");
    assert_string_equal(s.url, "https://pay/x");
    assert_null(s.payment_intent);
    assert_int_equal(s.amount_total, 9900);
}

static void test_error_mapped_with_code_and_message(void **state)
{
    arena_t *a = *state;
    fake_gw_t g;
    stripe_client_t c;
    stripe_session_t s;
    stripe_error_t e;
    buf_t err;
    buf_init(&err, a);
    fake_gw_start(&g, 404, "application/json",
                  "{\"error\":{\"type\":\"invalid_request_error\",\"code\":\"resource_missing\","
                  "\"message\":\"No such checkout.session: 'cs_x'\",\"param\":\"id\"}}",
                  0);
    c = fake_client(a, &g);
    assert_int_equal(stripe_session_retrieve(&c, a, "cs_x", &s, &e, &err), PG_ERR_NOT_FOUND);
    (void)fake_gw_finish(&g, a, 0);
    assert_string_equal(e.code, "resource_missing");
    assert_int_equal(e.status, 404);
    assert_non_null(strstr(err.data, "No such checkout.session"));
    /* an id that could change the path is never sent */
    assert_int_equal(stripe_session_retrieve(&c, a, "../v1/refunds", &s, &e, &err), PG_ERR_BAD_INPUT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_form_keeps_brackets_encodes_values, setup_arena, teardown_arena),
        cmocka_unit_test_setup_teardown(test_signature_npm_vector_verifies, setup_arena, teardown_arena),
        cmocka_unit_test_setup_teardown(test_signature_header_matches_npm, setup_arena, teardown_arena),
        cmocka_unit_test_setup_teardown(test_signature_any_v1_may_match, setup_arena, teardown_arena),
        cmocka_unit_test_setup_teardown(test_signature_refusals, setup_arena, teardown_arena),
        cmocka_unit_test_setup_teardown(test_signature_empty_body_npm_vector, setup_arena, teardown_arena),
        cmocka_unit_test_setup_teardown(test_event_completed_parsed, setup_arena, teardown_arena),
        cmocka_unit_test_setup_teardown(test_event_refund_and_unknown, setup_arena, teardown_arena),
        cmocka_unit_test_setup_teardown(test_event_malformed_refused, setup_arena, teardown_arena),
        cmocka_unit_test_setup_teardown(test_event_negative_amount_is_absent, setup_arena, teardown_arena),
        cmocka_unit_test(test_currencies),
        cmocka_unit_test_setup_teardown(test_session_create_request_and_reply, setup_arena, teardown_arena),
        cmocka_unit_test_setup_teardown(test_error_mapped_with_code_and_message, setup_arena, teardown_arena),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
