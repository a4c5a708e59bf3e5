/* util/fd.h: file-descriptor helpers every module shares.  Internal: never
 * installed. */
#ifndef BELT_UTIL_FD_H
#define BELT_UTIL_FD_H

#include <stddef.h>
#include <sys/uio.h>

/* Returns fd itself when it is >= 3 (or negative), else a close-on-exec
 * duplicate >= 3, closing fd, so that a child's dup2() onto 0-2 can't
 * clobber it and really clears close-on-exec.  On failure returns -1 with
 * errno set; fd is closed either way. */
int belt__fd_above_stdio(int fd);

/* Writes all of iov[0..iovcnt) to fd, retrying short writes and EINTR.  On
 * a non-blocking fd that is full it waits in poll() for room; when wake_fd
 * is >= 0 that poll() also watches wake_fd, and wake_fd becoming readable
 * (a fired cancel token) ends the write.  iov is consumed as it goes (its
 * entries are updated).  Returns BELT_OK; BELT_ECANCELED (wake_fd became
 * readable; part may have been written); BELT_EIO (errno says why: EPIPE
 * when nobody reads, or EIO for a write that took nothing). */
int belt__writev_full(int fd, struct iovec *iov, int iovcnt, int wake_fd);

/* Waits in poll() until fd is readable (or at its end, or in error), or
 * until wake_fd (>= 0; -1: none) is readable, retrying EINTR.  Returns
 * BELT_OK (read fd now), BELT_ECANCELED (wake_fd), or BELT_ESYS (errno). */
int belt__wait_readable(int fd, int wake_fd);

/* belt__writev_full() of one buffer. */
int belt__write_full(int fd, const void *buf, size_t len, int wake_fd);

#endif /* BELT_UTIL_FD_H */
