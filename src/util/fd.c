/* util/fd.c: file-descriptor helpers (util/fd.h). */
#include "util/fd.h"

#include "belt/error.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

int belt__fd_above_stdio(int fd)
{
    if (fd < 0 || fd > 2)
        return fd;
    int nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    int e = errno;
    close(fd);
    errno = e;
    return nfd;
}

int belt__writev_full(int fd, struct iovec *iov, int iovcnt, int wake_fd)
{
    for (;;) {
        while (iovcnt > 0 && iov->iov_len == 0) {
            iov++;
            iovcnt--;
        }
        if (iovcnt == 0)
            return BELT_OK;
        ssize_t k = writev(fd, iov, iovcnt);
        if (k > 0) {
            /* Skip what went out; a buffer cut in the middle goes on from
             * where it was cut. */
            size_t done = (size_t)k;
            while (iovcnt > 0 && done > 0 && done >= iov->iov_len) {
                done -= iov->iov_len;
                iov->iov_len = 0;
                iov++;
                iovcnt--;
            }
            if (done > 0) {
                iov->iov_base = (char *)iov->iov_base + done;
                iov->iov_len -= done;
            }
            continue;
        }
        if (k < 0 && errno == EINTR)
            continue;
        if (k == 0) {
            errno = EIO;
            return BELT_EIO;
        }
        if (errno != EAGAIN)
            return BELT_EIO;
        struct pollfd pf[2] = { { .fd = fd, .events = POLLOUT },
                                { .fd = wake_fd, .events = POLLIN } };
        int k2 = poll(pf, wake_fd >= 0 ? 2 : 1, -1);
        if (k2 < 0 && errno != EINTR)
            return BELT_EIO;
        if (k2 > 0 && wake_fd >= 0 && (pf[1].revents & POLLIN))
            return BELT_ECANCELED;
    }
}

int belt__write_full(int fd, const void *buf, size_t len, int wake_fd)
{
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
    return belt__writev_full(fd, &iov, 1, wake_fd);
}

int belt__wait_readable(int fd, int wake_fd)
{
    for (;;) {
        struct pollfd pf[2] = {{.fd = fd, .events = POLLIN},
                               {.fd = wake_fd, .events = POLLIN}};
        int k = poll(pf, wake_fd >= 0 ? 2 : 1, -1);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return BELT_ESYS;
        if (wake_fd >= 0 && pf[1].revents)
            return BELT_ECANCELED;
        return BELT_OK;
    }
}
