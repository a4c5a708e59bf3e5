/* belt/error.h: the error codes every libbelt function returns.
 *
 * Functions that return int return BELT_OK (0) or a negative code below; a few
 * return a non-negative result (an index, a count).  Functions that return a
 * pointer return NULL on failure and say which code applies in their comment.
 * The list is one X-macro so that the enum, belt_strerror() and
 * belt_err_name() cannot drift apart (the libuv way).
 */
#ifndef BELT_ERROR_H
#define BELT_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

/* XX(name, value, message) */
#define BELT_ERRNO_MAP(XX)                                                    \
    XX(OK, 0, "success")                                                      \
    XX(CLOSED, -1, "channel closed")                                          \
    XX(EMPTY, -2, "channel empty")                                            \
    XX(FULL, -3, "channel full")                                              \
    XX(TIMEOUT, -4, "timed out")                                              \
    XX(EINVAL, -5, "invalid argument")                                        \
    XX(ENOMEM, -6, "out of memory")                                           \
    XX(ESYS, -7, "system call failed (see errno)")                            \
    XX(ECONFIG, -8, "invalid configuration")                                  \
    XX(ENOENT, -9, "no such file or entry")                                   \
    XX(EIO, -10, "input/output error")                                        \
    XX(ECANCELED, -11, "operation canceled")                                  \
    XX(EBUSY, -12, "resource busy")                                           \
    XX(ENOTSUP, -13, "operation not supported")

typedef enum belt_status {
#define BELT__ERR_ENUM(name, value, msg) BELT_##name = (value),
    BELT_ERRNO_MAP(BELT__ERR_ENUM)
#undef BELT__ERR_ENUM
} belt_status;

/* Returns a static, human-readable message for code (e.g. "channel closed").
 * Unknown codes give "unknown error".  This function can't fail. */
const char *belt_strerror(int code);

/* Returns the constant's name without the prefix for code (e.g. "CLOSED").
 * Unknown codes give "UNKNOWN".  This function can't fail. */
const char *belt_err_name(int code);

#ifdef __cplusplus
}
#endif

#endif /* BELT_ERROR_H */
