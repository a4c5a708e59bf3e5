/* check_deque.c: tests of the Chase-Lev work-stealing deque (src/pool/deque.c).
 *
 * TCases:
 *   core    empty deque, LIFO take and FIFO steal, the owner stealing from
 *           itself, mixed ends, growth past the initial capacity (with
 *           elements wrapping around the ring), size
 *   stress  one owner pushing and taking while three thieves steal: every
 *           item comes out exactly once (a per-item counter), thieves take
 *           items in increasing order per thief (FIFO from the top), and
 *           the deque ends empty; with a tiny initial capacity so that it
 *           grows while thieves read it.  Sizes shrink under sanitizers
 *           (tu_scaled).
 */
#include "test_util.h"

#include "pool/deque.h"

/* Items are small integers encoded as non-NULL pointers. */
static void *item(size_t i)
{
    return (void *)(uintptr_t)(i + 1);
}

static size_t index_of(void *x)
{
    return (size_t)(uintptr_t)x - 1;
}

/* ---- core --------------------------------------------------------------- */

START_TEST(test_empty)
{
    belt__deque q;
    ck_assert_rc(belt__deque_init(&q, 4), BELT_OK);
    int lost = 7;
    ck_assert_ptr_null(belt__deque_take(&q));
    ck_assert_ptr_null(belt__deque_steal(&q, &lost));
    ck_assert_int_eq(lost, 0);
    ck_assert_uint_eq(belt__deque_size(&q), 0);
    /* Take on empty must not leave bottom behind top. */
    ck_assert_ptr_null(belt__deque_take(&q));
    ck_assert_rc(belt__deque_push(&q, item(0)), BELT_OK);
    ck_assert_uint_eq(belt__deque_size(&q), 1);
    ck_assert_ptr_eq(belt__deque_take(&q), item(0));
    ck_assert_ptr_null(belt__deque_take(&q));
    belt__deque_destroy(&q);
}
END_TEST

START_TEST(test_lifo_take_fifo_steal)
{
    belt__deque q;
    ck_assert_rc(belt__deque_init(&q, 8), BELT_OK);
    for (size_t i = 0; i < 6; i++)
        ck_assert_rc(belt__deque_push(&q, item(i)), BELT_OK);
    ck_assert_uint_eq(belt__deque_size(&q), 6);
    ck_assert_ptr_eq(belt__deque_take(&q), item(5)); /* newest */
    ck_assert_ptr_eq(belt__deque_steal(&q, NULL), item(0)); /* oldest */
    ck_assert_ptr_eq(belt__deque_take(&q), item(4));
    ck_assert_ptr_eq(belt__deque_steal(&q, NULL), item(1));
    ck_assert_uint_eq(belt__deque_size(&q), 2);
    ck_assert_ptr_eq(belt__deque_steal(&q, NULL), item(2));
    ck_assert_ptr_eq(belt__deque_take(&q), item(3)); /* the last one */
    ck_assert_ptr_null(belt__deque_take(&q));
    ck_assert_ptr_null(belt__deque_steal(&q, NULL));
    ck_assert_uint_eq(belt__deque_size(&q), 0);
    belt__deque_destroy(&q);
}
END_TEST

/* The pool's owner runs its own deque oldest first via steal. */
START_TEST(test_owner_fifo)
{
    belt__deque q;
    ck_assert_rc(belt__deque_init(&q, 2), BELT_OK);
    for (size_t round = 0; round < 3; round++) {
        for (size_t i = 0; i < 5; i++)
            ck_assert_rc(belt__deque_push(&q, item(round * 10 + i)), BELT_OK);
        for (size_t i = 0; i < 5; i++)
            ck_assert_ptr_eq(belt__deque_steal(&q, NULL), item(round * 10 + i));
        ck_assert_ptr_null(belt__deque_steal(&q, NULL));
    }
    belt__deque_destroy(&q);
}
END_TEST

/* Growth with the live elements wrapped around the ring's end. */
START_TEST(test_growth_wrapped)
{
    belt__deque q;
    ck_assert_rc(belt__deque_init(&q, 4), BELT_OK);
    size_t next_in = 0, next_out = 0;
    /* Move top and bottom to 3 so the ring wraps at the next pushes. */
    for (int i = 0; i < 3; i++) {
        ck_assert_rc(belt__deque_push(&q, item(next_in++)), BELT_OK);
        ck_assert_ptr_eq(belt__deque_steal(&q, NULL), item(next_out++));
    }
    enum { N = 1000 };
    for (int i = 0; i < N; i++)
        ck_assert_rc(belt__deque_push(&q, item(next_in++)), BELT_OK);
    ck_assert_uint_eq(belt__deque_size(&q), N);
    /* Half from the top in order, half from the bottom in reverse. */
    for (int i = 0; i < N / 2; i++)
        ck_assert_ptr_eq(belt__deque_steal(&q, NULL), item(next_out++));
    for (int i = 0; i < N / 2; i++)
        ck_assert_ptr_eq(belt__deque_take(&q), item(--next_in));
    ck_assert_uint_eq(next_in, next_out);
    ck_assert_ptr_null(belt__deque_take(&q));
    belt__deque_destroy(&q);
}
END_TEST

/* ---- stress ------------------------------------------------------------- */

struct stress {
    belt__deque q;
    size_t n;
    _Atomic unsigned char *seen; /* n counters */
    _Atomic int done;            /* the owner has pushed everything */
    _Atomic size_t stolen;
};

static void mark(struct stress *s, void *x)
{
    size_t i = index_of(x);
    if (TU_CHECK(i < s->n, "item %zu out of range", i))
        atomic_fetch_add_explicit(&s->seen[i], 1, memory_order_relaxed);
}

static void *thief_main(void *arg)
{
    struct stress *s = arg;
    size_t last = 0;
    bool any = false;
    for (;;) {
        int lost;
        void *x = belt__deque_steal(&s->q, &lost);
        if (x != NULL) {
            /* A thief sees the top move forward only. */
            TU_CHECK(!any || index_of(x) > last, "thief went back: %zu after %zu",
                     index_of(x), last);
            last = index_of(x);
            any = true;
            mark(s, x);
            atomic_fetch_add_explicit(&s->stolen, 1, memory_order_relaxed);
            continue;
        }
        if (!lost && atomic_load_explicit(&s->done, memory_order_acquire) &&
            belt__deque_size(&s->q) == 0)
            break;
        sched_yield(); /* the test's own contention, not the deque's */
    }
    return NULL;
}

START_TEST(test_owner_and_three_thieves)
{
    enum { THIEVES = 3 };
    struct stress s;
    s.n = (size_t)tu_scaled(200000, 2000);
    s.seen = calloc(s.n, 1);
    ck_assert_ptr_nonnull(s.seen);
    atomic_init(&s.done, 0);
    atomic_init(&s.stolen, 0);
    ck_assert_rc(belt__deque_init(&s.q, 2), BELT_OK); /* grows under steals */

    pthread_t t[THIEVES];
    for (int i = 0; i < THIEVES; i++)
        tu_spawn(&t[i], thief_main, &s);

    /* The owner pushes in bursts and takes about a third back. */
    size_t taken = 0;
    for (size_t i = 0; i < s.n; i++) {
        ck_assert_rc(belt__deque_push(&s.q, item(i)), BELT_OK);
        if (i % 3 == 2) {
            void *x = belt__deque_take(&s.q);
            if (x != NULL) {
                mark(&s, x);
                taken++;
            }
        }
    }
    void *x;
    while ((x = belt__deque_take(&s.q)) != NULL) {
        mark(&s, x);
        taken++;
    }
    atomic_store_explicit(&s.done, 1, memory_order_release);
    for (int i = 0; i < THIEVES; i++)
        tu_join(t[i]);
    tu_assert_threads_ok();

    size_t stolen = atomic_load(&s.stolen);
    ck_assert_uint_eq(taken + stolen, s.n);
    for (size_t i = 0; i < s.n; i++)
        ck_assert_msg(atomic_load(&s.seen[i]) == 1, "item %zu taken %d times",
                      i, (int)atomic_load(&s.seen[i]));
    ck_assert_uint_eq(belt__deque_size(&s.q), 0);
    belt__deque_destroy(&s.q);
    free((void *)s.seen);
}
END_TEST

/* ======================================================================== main */

static void setup(void)
{
    tu_reset_failures();
}

static Suite *deque_suite(void)
{
    Suite *s = suite_create("deque");

    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_empty);
    tcase_add_test(tc, test_lifo_take_fifo_steal);
    tcase_add_test(tc, test_owner_fifo);
    tcase_add_test(tc, test_growth_wrapped);
    suite_add_tcase(s, tc);

    tc = tcase_create("stress");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_set_timeout(tc, tu_timeout(20));
    tcase_add_test(tc, test_owner_and_three_thieves);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(deque_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
