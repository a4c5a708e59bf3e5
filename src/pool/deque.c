/* pool/deque.c: the Chase-Lev work-stealing deque under C11 atomics.
 *
 * Source: D. Chase and Y. Lev, "Dynamic Circular Work-Stealing Deque",
 * SPAA 2005 (the algorithm, growable circular arrays); the memory orderings
 * are those of N. M. Lê, A. Pop, A. Cohen and F. Zappa Nardelli, "Correct
 * and Efficient Work-Stealing for Weak Memory Models", PPoPP 2013, Fig. 1
 * (proved correct for the C11 model).  push, take and steal below follow
 * that code line by line, with two deliberate differences:
 *   - indices are signed (int64_t), as in Chase and Lev's original: with the
 *     paper's size_t, take() on an empty deque with bottom == 0 computes
 *     b = SIZE_MAX and wrongly sees `t <= b`.  2^63 pushes never happen.
 *   - the paper's memory_order_consume on the array pointer is
 *     memory_order_acquire (what every compiler turns consume into anyway).
 *
 * Representation: elements live in slot[i % size] for top <= i < bottom.
 * The owner moves bottom (push +1, take -1 then maybe back); thieves, and the
 * owner for the last element, move top forward by CAS, so each element is
 * taken by exactly one thread: whoever advances top past it, or the owner
 * taking index b > top without any CAS (no thief can reach b: a thief needs
 * t < bottom, and the owner's seq_cst fence in take orders its bottom store
 * before its top load against the thief's fence between its top and bottom
 * loads).
 *
 * Orderings (why each non-relaxed operation is there, per Lê et al.):
 *   push:  acquire load of top     pairs with the thieves' CAS, so the slot
 *                                  we are about to reuse was read by them;
 *          release fence           publishes the slot (and what x points
 *                                  to) before the bottom store that makes it
 *                                  visible; pairs with steal's acquire load
 *                                  of bottom;
 *   take:  seq_cst fence           between the store of bottom-1 and the load
 *                                  of top: with steal's fence, the owner and
 *                                  a thief cannot both miss each other's
 *                                  claim (a store-buffering pattern);
 *          seq_cst CAS on top      the race for the last element;
 *   steal: acquire load of top,    see take;
 *          seq_cst fence,
 *          acquire load of bottom  (pairs with push's release fence);
 *          acquire load of array   pairs with the release store in grow();
 *          seq_cst CAS on top      claims the element.
 *
 * ThreadSanitizer does not model atomic_thread_fence (GCC even rejects it
 * under -fsanitize=thread), so it would not see push's release fence
 * synchronise with a thief's acquire load of bottom and would report the
 * pointed-to data as a race (a false positive).  In a TSan build only:
 *   - push stores bottom with memory_order_release and has no fence:
 *     strictly stronger than fence + relaxed store, and TSan understands it;
 *   - each seq_cst fence (take's and steal's, which pair with each other)
 *     becomes a seq_cst fetch_add of 0 on the deque's own `tsan_fence`
 *     word.  Both sides of the pair do it, so the two RMWs are ordered in
 *     that word's modification order and the later one reads from the
 *     earlier (release/acquire): the first thread's store before its RMW
 *     happens-before the second's load after its RMW, which is at least
 *     what the fence pair guarantees.
 * Every other build runs the paper's code unchanged.
 *
 * Memory: grow() (owner only, from push) copies top..bottom into an array
 * twice the size and publishes it; a thief that loaded the old array pointer
 * before that may still read a slot of it, and the old slot still holds the
 * right element (the owner never writes an old array again; any element
 * overwritten before the growth was taken, and the thief's CAS on top then
 * fails).  Old arrays are therefore never freed while the deque lives: they
 * are kept on a list and freed by destroy().  The sizes double, so the
 * retired arrays together are smaller than the current one: at most 2x the
 * peak, no reclamation scheme needed.
 */
#include "pool/deque.h"

#include <stdlib.h>

#include "belt/error.h"

#if defined(__SANITIZE_THREAD__)
#define DEQUE_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define DEQUE_TSAN 1
#endif
#endif

#ifdef DEQUE_TSAN
#define FENCE_SEQ_CST(q)                                                   \
    ((void)atomic_fetch_add_explicit(&(q)->tsan_fence, 0,                  \
                                     memory_order_seq_cst))
#else
#define FENCE_SEQ_CST(q) atomic_thread_fence(memory_order_seq_cst)
#endif

static belt__deque_array *array_new(size_t size)
{
    belt__deque_array *a =
        malloc(sizeof *a + size * sizeof(_Atomic(void *)));
    if (a == NULL)
        return NULL;
    a->prev = NULL;
    a->size = size;
    for (size_t i = 0; i < size; i++)
        atomic_init(&a->slot[i], NULL);
    return a;
}

int belt__deque_init(belt__deque *q, size_t capacity)
{
    size_t size = 2;
    while (size < capacity && size <= SIZE_MAX / 4)
        size *= 2;
    belt__deque_array *a = array_new(size);
    if (a == NULL)
        return BELT_ENOMEM;
    atomic_init(&q->top, 0);
    atomic_init(&q->bottom, 0);
    atomic_init(&q->array, a);
    atomic_init(&q->tsan_fence, 0);
    return BELT_OK;
}

void belt__deque_destroy(belt__deque *q)
{
    belt__deque_array *a =
        atomic_load_explicit(&q->array, memory_order_relaxed);
    while (a != NULL) {
        belt__deque_array *prev = a->prev;
        free(a);
        a = prev;
    }
    atomic_store_explicit(&q->array, NULL, memory_order_relaxed);
}

/* Owner only.  Doubles the array holding [t, b).  NULL on ENOMEM (the old
 * array stays current). */
static belt__deque_array *grow(belt__deque *q, belt__deque_array *a,
                               int64_t t, int64_t b)
{
    if (a->size > SIZE_MAX / 2 / sizeof(void *))
        return NULL;
    belt__deque_array *n = array_new(a->size * 2);
    if (n == NULL)
        return NULL;
    for (int64_t i = t; i < b; i++) {
        void *x = atomic_load_explicit(&a->slot[(size_t)i % a->size],
                                       memory_order_relaxed);
        atomic_store_explicit(&n->slot[(size_t)i % n->size], x,
                              memory_order_relaxed);
    }
    n->prev = a;
    /* Publishes the copied slots; pairs with steal's acquire load. */
    atomic_store_explicit(&q->array, n, memory_order_release);
    return n;
}

int belt__deque_push(belt__deque *q, void *x)
{
    int64_t b = atomic_load_explicit(&q->bottom, memory_order_relaxed);
    int64_t t = atomic_load_explicit(&q->top, memory_order_acquire);
    belt__deque_array *a =
        atomic_load_explicit(&q->array, memory_order_relaxed);
    if (b - t > (int64_t)a->size - 1) { /* full */
        a = grow(q, a, t, b);
        if (a == NULL)
            return BELT_ENOMEM;
    }
    atomic_store_explicit(&a->slot[(size_t)b % a->size], x,
                          memory_order_relaxed);
#ifdef DEQUE_TSAN
    atomic_store_explicit(&q->bottom, b + 1, memory_order_release);
#else
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&q->bottom, b + 1, memory_order_relaxed);
#endif
    return BELT_OK;
}

void *belt__deque_take(belt__deque *q)
{
    int64_t b = atomic_load_explicit(&q->bottom, memory_order_relaxed) - 1;
    belt__deque_array *a =
        atomic_load_explicit(&q->array, memory_order_relaxed);
    atomic_store_explicit(&q->bottom, b, memory_order_relaxed);
    FENCE_SEQ_CST(q);
    int64_t t = atomic_load_explicit(&q->top, memory_order_relaxed);
    void *x;
    if (t <= b) { /* non-empty */
        x = atomic_load_explicit(&a->slot[(size_t)b % a->size],
                                 memory_order_relaxed);
        if (t == b) { /* the last element: race the thieves for it */
            if (!atomic_compare_exchange_strong_explicit(
                    &q->top, &t, t + 1, memory_order_seq_cst,
                    memory_order_relaxed))
                x = NULL; /* a thief got it */
            atomic_store_explicit(&q->bottom, b + 1, memory_order_relaxed);
        }
    } else { /* empty */
        x = NULL;
        atomic_store_explicit(&q->bottom, b + 1, memory_order_relaxed);
    }
    return x;
}

void *belt__deque_steal(belt__deque *q, int *lost)
{
    if (lost != NULL)
        *lost = 0;
    int64_t t = atomic_load_explicit(&q->top, memory_order_acquire);
    FENCE_SEQ_CST(q);
    int64_t b = atomic_load_explicit(&q->bottom, memory_order_acquire);
    if (t >= b)
        return NULL; /* empty */
    belt__deque_array *a =
        atomic_load_explicit(&q->array, memory_order_acquire);
    void *x = atomic_load_explicit(&a->slot[(size_t)t % a->size],
                                   memory_order_relaxed);
    if (!atomic_compare_exchange_strong_explicit(&q->top, &t, t + 1,
                                                 memory_order_seq_cst,
                                                 memory_order_relaxed)) {
        if (lost != NULL)
            *lost = 1; /* the owner or another thief took it */
        return NULL;
    }
    return x;
}

size_t belt__deque_size(belt__deque *q)
{
    int64_t b = atomic_load_explicit(&q->bottom, memory_order_relaxed);
    int64_t t = atomic_load_explicit(&q->top, memory_order_relaxed);
    return b > t ? (size_t)(b - t) : 0;
}
