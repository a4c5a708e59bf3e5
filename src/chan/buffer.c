/* chan/buffer.c: the element buffers behind a channel.
 *
 * Array flavour (bounded, capacity > 0): a ring of `cap` slots allocated once;
 * `head` is the oldest slot and the newest is head + count - 1 (mod cap).
 *
 * List flavour (unbounded): a singly linked list of blocks of `block_slots`
 * slots each, as crossbeam-channel's list flavour; elements are written at
 * (tblock, tpos) and read at (hblock, hpos).  Blocks are mapped with mmap and
 * unmapped as soon as the reader leaves them (keeping one spare), so the
 * memory of a channel that filled up and drained goes back to the system at
 * once, whatever malloc's trimming heuristics would have done.
 *
 * Rendezvous channels (capacity 0) have no buffer; these functions are never
 * called for them except belt__chbuf_full(), which says "full".
 *
 * Every function here runs under the channel's lock.
 */
#include "chan/internal.h"

#include <stdlib.h>
#include <sys/mman.h>

#define BELT__BLOCK_BYTES ((size_t)64 * 1024) /* target block size */
#define BELT__BLOCK_MIN_SLOTS 4

static belt__block *block_new(belt_chan *ch)
{
    if (ch->spare) {
        belt__block *b = ch->spare;
        ch->spare = NULL;
        b->next = NULL;
        return b;
    }
    size_t bytes = sizeof(belt__block) + ch->block_slots * ch->elem_size;
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    belt__block *b = p;
    b->next = NULL;
    b->bytes = bytes;
    return b;
}

static void block_free(belt__block *b)
{
    munmap(b, b->bytes);
}

/* Retires an emptied head block: keep it as the spare or unmap it. */
static void block_retire(belt_chan *ch, belt__block *b)
{
    if (!ch->spare)
        ch->spare = b;
    else
        block_free(b);
}

int belt__chbuf_init(belt_chan *ch)
{
    switch (ch->flavor) {
    case BELT__ARRAY:
        ch->ring = malloc(ch->cap * ch->elem_size);
        return ch->ring ? BELT_OK : BELT_ENOMEM;
    case BELT__LIST: {
        size_t slots = BELT__BLOCK_BYTES / ch->elem_size;
        if (slots < BELT__BLOCK_MIN_SLOTS)
            slots = BELT__BLOCK_MIN_SLOTS;
        ch->block_slots = slots;
        return BELT_OK; /* the first block is mapped on the first send */
    }
    default:
        return BELT_OK;
    }
}

void belt__chbuf_destroy(belt_chan *ch)
{
    free(ch->ring);
    ch->ring = NULL;
    belt__block *b = ch->hblock;
    while (b) {
        belt__block *next = b->next;
        block_free(b);
        b = next;
    }
    if (ch->spare)
        block_free(ch->spare);
    ch->hblock = ch->tblock = ch->spare = NULL;
}

bool belt__chbuf_full(const belt_chan *ch)
{
    switch (ch->flavor) {
    case BELT__ARRAY:
        return atomic_load_explicit(&ch->count, memory_order_relaxed) >= ch->cap;
    case BELT__LIST:
        return false;
    default:
        return true;
    }
}

int belt__chbuf_push(belt_chan *ch, const void *elem)
{
    size_t count = atomic_load_explicit(&ch->count, memory_order_relaxed);
    if (ch->flavor == BELT__ARRAY) {
        size_t slot = ch->head + count;
        if (slot >= ch->cap)
            slot -= ch->cap;
        belt__copy(ch->ring + slot * ch->elem_size, elem, ch->elem_size);
    } else {
        if (!ch->tblock || ch->tpos == ch->block_slots) {
            belt__block *b = block_new(ch);
            if (!b)
                return BELT_ENOMEM;
            if (ch->tblock)
                ch->tblock->next = b;
            else
                ch->hblock = b, ch->hpos = 0;
            ch->tblock = b;
            ch->tpos = 0;
        }
        belt__copy(ch->tblock->slots + ch->tpos * ch->elem_size, elem,
                   ch->elem_size);
        ch->tpos++;
    }
    atomic_store_explicit(&ch->count, count + 1, memory_order_relaxed);
    return BELT_OK;
}

void belt__chbuf_pop(belt_chan *ch, void *out)
{
    size_t count = atomic_load_explicit(&ch->count, memory_order_relaxed);
    if (ch->flavor == BELT__ARRAY) {
        belt__copy(out, ch->ring + ch->head * ch->elem_size, ch->elem_size);
        if (++ch->head == ch->cap)
            ch->head = 0;
    } else {
        belt__block *b = ch->hblock;
        belt__copy(out, b->slots + ch->hpos * ch->elem_size, ch->elem_size);
        ch->hpos++;
        if (count == 1) {
            /* Drained: rewind to the start of the head block and let go of
             * the blocks after it (there are none: tail == head here). */
            ch->hpos = 0;
            ch->tpos = 0;
        } else if (ch->hpos == ch->block_slots) {
            ch->hblock = b->next;
            ch->hpos = 0;
            block_retire(ch, b);
        }
    }
    atomic_store_explicit(&ch->count, count - 1, memory_order_relaxed);
}
