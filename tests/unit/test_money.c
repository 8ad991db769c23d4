/* money: strict yuan/fen parsing, formatting, and half-up fee rounding. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include "money.h"

static void assert_yuan_rejected(const char *s)
{
    int64_t fen = -12345;
    if (money_parse_yuan(s, MONEY_MAX_FEN, &fen) != PG_ERR_BAD_INPUT)
        fail_msg("accepted yuan \"%s\"", s);
    assert_int_equal(fen, -12345);   /* output untouched on failure */
}

static void assert_yuan_parses(const char *s, int64_t want)
{
    int64_t fen = -1;
    if (money_parse_yuan(s, MONEY_MAX_FEN, &fen) != PG_OK)
        fail_msg("rejected yuan \"%s\"", s);
    assert_int_equal(fen, want);
}

static void test_money_parses_two_decimals(void **state)
{
    (void)state;
    assert_yuan_parses("99.00", 9900);
    assert_yuan_parses("0.01", 1);
    assert_yuan_parses("0.00", 0);
    assert_yuan_parses("1.10", 110);
    assert_yuan_parses("12345.67", 1234567);
}

static void test_money_accepts_exactly_the_max(void **state)
{
    (void)state;
    assert_yuan_parses("100000000.00", MONEY_MAX_FEN);
}

static void test_money_rejects_over_max(void **state)
{
    (void)state;
    assert_yuan_rejected("100000000.01");
    assert_yuan_rejected("999999999.99");
    int64_t fen;
    assert_int_equal(money_parse_yuan("10.01", 1000, &fen), PG_ERR_BAD_INPUT);
    assert_int_equal(money_parse_yuan("10.00", 1000, &fen), PG_OK);
}

static void test_money_rejects_one_decimal(void **state)
{
    (void)state;
    assert_yuan_rejected("12.3");
}

static void test_money_rejects_three_decimals(void **state)
{
    (void)state;
    assert_yuan_rejected("12.345");
    assert_yuan_rejected("12.340");
}

static void test_money_rejects_exponent(void **state)
{
    (void)state;
    assert_yuan_rejected("1e3");
    assert_yuan_rejected("1e3.00");
    assert_yuan_rejected("1.00e3");
}

static void test_money_rejects_signs(void **state)
{
    (void)state;
    assert_yuan_rejected("-1");
    assert_yuan_rejected("-1.00");
    assert_yuan_rejected("+1");
    assert_yuan_rejected("+1.00");
}

static void test_money_rejects_whitespace(void **state)
{
    (void)state;
    assert_yuan_rejected(" 1");
    assert_yuan_rejected(" 1.00");
    assert_yuan_rejected("1.00 ");
    assert_yuan_rejected("1 ");
    assert_yuan_rejected("1.00\n");
    assert_yuan_rejected("1. 00");
}

static void test_money_rejects_leading_zero(void **state)
{
    (void)state;
    assert_yuan_rejected("01.00");
    assert_yuan_rejected("00.00");
    assert_yuan_rejected("00.01");
}

static void test_money_rejects_missing_integer_part(void **state)
{
    (void)state;
    assert_yuan_rejected(".50");
    assert_yuan_rejected(".");
}

static void test_money_rejects_empty_and_null(void **state)
{
    (void)state;
    assert_yuan_rejected("");
    int64_t fen;
    assert_int_equal(money_parse_yuan(NULL, MONEY_MAX_FEN, &fen), PG_ERR_BAD_INPUT);
    assert_int_equal(money_parse_fen(NULL, MONEY_MAX_FEN, &fen), PG_ERR_BAD_INPUT);
}

static void test_money_rejects_integer_without_decimals(void **state)
{
    (void)state;
    assert_yuan_rejected("1");
    assert_yuan_rejected("1.");
    assert_yuan_rejected("100");
}

static void test_money_rejects_other_junk(void **state)
{
    (void)state;
    assert_yuan_rejected("1,00");
    assert_yuan_rejected("1.0a");
    assert_yuan_rejected("0x10.00");
    assert_yuan_rejected("1..00");
    assert_yuan_rejected("1.00.00");
    assert_yuan_rejected("１.00");   /* fullwidth digit */
}

static void test_money_yuan_overflow_is_rejected_not_wrapped(void **state)
{
    (void)state;
    int64_t fen = 0;
    /* INT64_MAX is 9223372036854775807: these would wrap without checks. */
    assert_int_equal(money_parse_yuan("92233720368547758.07", INT64_MAX, &fen), PG_OK);
    assert_int_equal(fen, INT64_MAX);
    assert_int_equal(money_parse_yuan("92233720368547758.08", INT64_MAX, &fen), PG_ERR_BAD_INPUT);
    assert_int_equal(money_parse_yuan("92233720368547759.00", INT64_MAX, &fen), PG_ERR_BAD_INPUT);
    assert_int_equal(money_parse_yuan("9223372036854775808.00", INT64_MAX, &fen), PG_ERR_BAD_INPUT);
    assert_int_equal(money_parse_yuan("99999999999999999999999999.00", INT64_MAX, &fen), PG_ERR_BAD_INPUT);
}

static void test_money_parses_fen(void **state)
{
    (void)state;
    int64_t fen = -1;
    assert_int_equal(money_parse_fen("9900", MONEY_MAX_FEN, &fen), PG_OK);
    assert_int_equal(fen, 9900);
    assert_int_equal(money_parse_fen("0", MONEY_MAX_FEN, &fen), PG_OK);
    assert_int_equal(fen, 0);
    assert_int_equal(money_parse_fen("1", MONEY_MAX_FEN, &fen), PG_OK);
    assert_int_equal(fen, 1);
    assert_int_equal(money_parse_fen("10000000000", MONEY_MAX_FEN, &fen), PG_OK);
    assert_int_equal(fen, MONEY_MAX_FEN);
}

static void test_money_fen_rejects_non_digits(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "", "01", "00", "-1", "+1", " 1", "1 ", "1.00", "1e3", "12a", "0x1",
        "10000000001", "9223372036854775808", "99999999999999999999999",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t fen = -7;
        if (money_parse_fen(bad[i], MONEY_MAX_FEN, &fen) != PG_ERR_BAD_INPUT)
            fail_msg("accepted fen \"%s\"", bad[i]);
        assert_int_equal(fen, -7);
    }
}

static void assert_format(int64_t fen, const char *want)
{
    char out[MONEY_YUAN_BUFSZ];
    memset(out, 'x', sizeof(out));
    money_format_yuan(fen, out);
    assert_string_equal(out, want);
}

static void test_money_formats_yuan(void **state)
{
    (void)state;
    assert_format(0, "0.00");
    assert_format(1, "0.01");
    assert_format(10, "0.10");
    assert_format(9900, "99.00");
    assert_format(123456, "1234.56");
    assert_format(MONEY_MAX_FEN, "100000000.00");
}

static void test_money_formats_negatives_with_minus(void **state)
{
    (void)state;
    assert_format(-1, "-0.01");
    assert_format(-9900, "-99.00");
    assert_format(-123456, "-1234.56");
    assert_format(INT64_MIN, "-92233720368547758.08");
    assert_format(INT64_MAX, "92233720368547758.07");
}

static void test_money_format_round_trips_through_parse(void **state)
{
    (void)state;
    static const int64_t samples[] = { 0, 1, 9, 10, 99, 100, 101, 9900, 123456789, MONEY_MAX_FEN };
    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
        char out[MONEY_YUAN_BUFSZ];
        int64_t back = -1;
        money_format_yuan(samples[i], out);
        assert_int_equal(money_parse_yuan(out, MONEY_MAX_FEN, &back), PG_OK);
        assert_int_equal(back, samples[i]);
    }
}

static void test_money_fee_rounds_down_below_half(void **state)
{
    (void)state;
    assert_int_equal(money_fee_fen(9900, 60), 59);     /* 59.4 */
    assert_int_equal(money_fee_fen(25, 20), 0);        /* 0.05 */
    assert_int_equal(money_fee_fen(1, 4999), 0);       /* 0.4999 */
}

static void test_money_fee_rounds_half_up(void **state)
{
    (void)state;
    assert_int_equal(money_fee_fen(50, 100), 1);       /* 0.5 */
    assert_int_equal(money_fee_fen(150, 100), 2);      /* 1.5 */
    assert_int_equal(money_fee_fen(25, 6000), 15);     /* 15.0 exactly */
    assert_int_equal(money_fee_fen(25, 6200), 16);     /* 15.5 */
    assert_int_equal(money_fee_fen(1, 5000), 1);       /* 0.5 */
    assert_int_equal(money_fee_fen(9950, 60), 60);     /* 59.7 */
    assert_int_equal(money_fee_fen(9925, 60), 60);     /* 59.55 */
    assert_int_equal(money_fee_fen(9908, 60), 59);     /* 59.448 */
    assert_int_equal(money_fee_fen(9925, 40), 40);     /* 39.7 */
}

static void test_money_fee_exact_and_zero(void **state)
{
    (void)state;
    assert_int_equal(money_fee_fen(0, 60), 0);
    assert_int_equal(money_fee_fen(9900, 0), 0);
    assert_int_equal(money_fee_fen(10000, 60), 60);
    assert_int_equal(money_fee_fen(10000, 10000), 10000);   /* 100% */
    assert_int_equal(money_fee_fen(MONEY_MAX_FEN, 60), 60000000);
    assert_int_equal(money_fee_fen(MONEY_MAX_FEN, 10000), MONEY_MAX_FEN);
}

static void test_money_fee_large_values_do_not_overflow(void **state)
{
    (void)state;
    /* The naive amount*rate would overflow int64 here; the split does not. */
    assert_int_equal(money_fee_fen(INT64_MAX / 100, 100), (INT64_MAX / 100 + 50) / 100);
    assert_int_equal(money_fee_fen(INT64_MAX, 1), INT64_MAX / 10000 + 1);   /* ...5807/10000 rounds up */
    assert_int_equal(money_fee_fen(INT64_MAX, 10000), INT64_MAX);
    assert_int_equal(money_fee_fen(INT64_MAX, 20000), INT64_MAX);           /* saturates */
    assert_int_equal(money_fee_fen(MONEY_MAX_FEN, 123456789), 123456789000000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_money_parses_two_decimals),
        cmocka_unit_test(test_money_accepts_exactly_the_max),
        cmocka_unit_test(test_money_rejects_over_max),
        cmocka_unit_test(test_money_rejects_one_decimal),
        cmocka_unit_test(test_money_rejects_three_decimals),
        cmocka_unit_test(test_money_rejects_exponent),
        cmocka_unit_test(test_money_rejects_signs),
        cmocka_unit_test(test_money_rejects_whitespace),
        cmocka_unit_test(test_money_rejects_leading_zero),
        cmocka_unit_test(test_money_rejects_missing_integer_part),
        cmocka_unit_test(test_money_rejects_empty_and_null),
        cmocka_unit_test(test_money_rejects_integer_without_decimals),
        cmocka_unit_test(test_money_rejects_other_junk),
        cmocka_unit_test(test_money_yuan_overflow_is_rejected_not_wrapped),
        cmocka_unit_test(test_money_parses_fen),
        cmocka_unit_test(test_money_fen_rejects_non_digits),
        cmocka_unit_test(test_money_formats_yuan),
        cmocka_unit_test(test_money_formats_negatives_with_minus),
        cmocka_unit_test(test_money_format_round_trips_through_parse),
        cmocka_unit_test(test_money_fee_rounds_down_below_half),
        cmocka_unit_test(test_money_fee_rounds_half_up),
        cmocka_unit_test(test_money_fee_exact_and_zero),
        cmocka_unit_test(test_money_fee_large_values_do_not_overflow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
