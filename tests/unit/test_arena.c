/* arena: alignment, growth, large allocations, reset reuse, string helpers. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include "arena.h"

static void test_arena_returns_16_byte_aligned_memory(void **state)
{
    (void)state;
    arena_t a;
    arena_init(&a, 0);
    for (size_t n = 0; n < 100; n++) {
        void *p = arena_alloc(&a, n % 37 + 1);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % 16, 0);
    }
    arena_free(&a);
}

static void test_arena_allocations_do_not_overlap(void **state)
{
    (void)state;
    arena_t a;
    arena_init(&a, 256);
    unsigned char *ptrs[200];
    for (size_t i = 0; i < 200; i++) {
        ptrs[i] = arena_alloc(&a, 40);
        assert_non_null(ptrs[i]);
        memset(ptrs[i], (int)i, 40);
    }
    for (size_t i = 0; i < 200; i++)
        for (size_t j = 0; j < 40; j++)
            assert_int_equal(ptrs[i][j], (unsigned char)i);
    arena_free(&a);
}

static void test_arena_serves_allocations_larger_than_a_block(void **state)
{
    (void)state;
    arena_t a;
    arena_init(&a, 64);
    char *small1 = arena_alloc(&a, 16);
    char *big = arena_alloc(&a, 10000);
    char *small2 = arena_alloc(&a, 16);
    assert_non_null(small1);
    assert_non_null(big);
    assert_non_null(small2);
    memset(big, 'b', 10000);
    memset(small1, 's', 16);
    memset(small2, 't', 16);
    assert_int_equal(big[0], 'b');
    assert_int_equal(big[9999], 'b');
    /* the small allocation after the big one still uses the head block */
    assert_ptr_equal(small2, small1 + 16);
    arena_free(&a);
}

static void test_arena_big_first_allocation(void **state)
{
    (void)state;
    arena_t a;
    arena_init(&a, 64);
    char *big = arena_alloc(&a, 1000);
    assert_non_null(big);
    memset(big, 1, 1000);
    char *next = arena_alloc(&a, 8);
    assert_non_null(next);
    arena_reset(&a);
    assert_non_null(arena_alloc(&a, 8));
    arena_free(&a);
}

static void test_arena_calloc_zeroes(void **state)
{
    (void)state;
    arena_t a;
    arena_init(&a, 128);
    unsigned char *p = arena_alloc(&a, 64);
    memset(p, 0xAB, 64);
    arena_reset(&a);
    unsigned char *z = arena_calloc(&a, 64);   /* reuses the dirty block */
    assert_ptr_equal(z, p);
    for (size_t i = 0; i < 64; i++)
        assert_int_equal(z[i], 0);
    arena_free(&a);
}

static void test_arena_reset_keeps_first_block_for_reuse(void **state)
{
    (void)state;
    arena_t a;
    arena_init(&a, 128);
    for (int i = 0; i < 50; i++)
        assert_non_null(arena_alloc(&a, 100));
    assert_non_null(a.head);
    arena_reset(&a);
    assert_non_null(a.head);
    void *again = arena_alloc(&a, 32);
    assert_non_null(again);
    for (int round = 0; round < 3; round++) {
        arena_reset(&a);
        assert_ptr_equal(arena_alloc(&a, 32), again);
    }
    arena_free(&a);
    assert_null(a.head);
}

static void test_arena_reset_and_free_on_empty_arena(void **state)
{
    (void)state;
    arena_t a;
    arena_init(&a, 0);
    arena_reset(&a);
    arena_free(&a);
    arena_free(&a);   /* idempotent */
    assert_null(a.head);
}

static void test_arena_zero_size_allocations_are_distinct(void **state)
{
    (void)state;
    arena_t a;
    arena_init(&a, 0);
    void *p = arena_alloc(&a, 0);
    void *q = arena_alloc(&a, 0);
    assert_non_null(p);
    assert_non_null(q);
    assert_ptr_not_equal(p, q);
    arena_free(&a);
}

static void test_arena_refuses_impossible_sizes(void **state)
{
    (void)state;
    arena_t a;
    arena_init(&a, 0);
    assert_null(arena_alloc(&a, SIZE_MAX));
    assert_null(arena_alloc(&a, SIZE_MAX - 8));
    arena_free(&a);
}

static void test_arena_strdup_and_strndup_copy(void **state)
{
    (void)state;
    arena_t a;
    arena_init(&a, 0);
    char src[] = "hello world";
    char *d = arena_strdup(&a, src);
    src[0] = 'J';
    assert_string_equal(d, "hello world");
    assert_string_equal(arena_strndup(&a, "hello world", 5), "hello");
    assert_string_equal(arena_strndup(&a, "hi", 10), "hi");   /* stops at NUL */
    assert_string_equal(arena_strdup(&a, ""), "");
    arena_free(&a);
}

static void test_arena_printf_formats_any_length(void **state)
{
    (void)state;
    arena_t a;
    arena_init(&a, 64);
    assert_string_equal(arena_printf(&a, "%s-%d-%04x", "x", 42, 255u), "x-42-00ff");
    char long_s[3000];
    memset(long_s, 'q', sizeof(long_s) - 1);
    long_s[sizeof(long_s) - 1] = '\0';
    char *p = arena_printf(&a, "<%s>", long_s);
    assert_int_equal(strlen(p), 3001);
    assert_int_equal(p[0], '<');
    assert_int_equal(p[3000], '>');
    assert_string_equal(arena_printf(&a, "%s", ""), "");
    arena_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arena_returns_16_byte_aligned_memory),
        cmocka_unit_test(test_arena_allocations_do_not_overlap),
        cmocka_unit_test(test_arena_serves_allocations_larger_than_a_block),
        cmocka_unit_test(test_arena_big_first_allocation),
        cmocka_unit_test(test_arena_calloc_zeroes),
        cmocka_unit_test(test_arena_reset_keeps_first_block_for_reuse),
        cmocka_unit_test(test_arena_reset_and_free_on_empty_arena),
        cmocka_unit_test(test_arena_zero_size_allocations_are_distinct),
        cmocka_unit_test(test_arena_refuses_impossible_sizes),
        cmocka_unit_test(test_arena_strdup_and_strndup_copy),
        cmocka_unit_test(test_arena_printf_formats_any_length),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
