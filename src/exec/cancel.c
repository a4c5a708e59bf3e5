/* exec/cancel.c: the cancel token (exec/exec.h): an atomic flag plus an eventfd.
 *
 * Protocol: fire() stores the flag (release) and then writes the eventfd;
 * a waiter includes wake_fd in its poll() set and, when it wakes, reads the
 * flag (acquire).  The eventfd is never read, so once written it stays
 * readable for every waiter, including ones that start waiting later: a
 * cancel can't be missed between a waiter's flag check and its poll().
 */
#include "exec/exec.h"
#include "belt/error.h"

#include <errno.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

int belt__cancel_init(belt__cancel *c)
{
    atomic_init(&c->canceled, 0);
    c->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    return c->wake_fd < 0 ? BELT_ESYS : BELT_OK;
}

void belt__cancel_fire(belt__cancel *c)
{
    /* Release: whatever the canceller did before is visible to a waiter that
     * sees the flag.  The flag is set before the wake so that a woken waiter
     * always finds it. */
    if (atomic_exchange_explicit(&c->canceled, 1, memory_order_acq_rel))
        return;
    if (c->wake_fd >= 0) {
        int saved = errno; /* for callers in signal handlers */
        uint64_t one = 1;
        ssize_t n;
        do
            n = write(c->wake_fd, &one, sizeof one);
        while (n < 0 && errno == EINTR);
        /* EAGAIN can't happen: the counter is written once. */
        errno = saved;
    }
}

bool belt__cancel_fired(belt__cancel *c)
{
    return c != NULL && atomic_load_explicit(&c->canceled, memory_order_acquire);
}

void belt__cancel_destroy(belt__cancel *c)
{
    if (c->wake_fd >= 0)
        close(c->wake_fd);
    c->wake_fd = -1;
}
