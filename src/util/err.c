/* util/err.c: the error message writer (util/err.h). */
#include "util/err.h"

#include <stdio.h>

int belt__verrf(char *msg, size_t msg_size, int code, const char *fmt,
                va_list ap)
{
    if (msg != NULL && msg_size > 0)
        vsnprintf(msg, msg_size, fmt, ap);
    return code;
}

int belt__errf(char *msg, size_t msg_size, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    belt__verrf(msg, msg_size, code, fmt, ap);
    va_end(ap);
    return code;
}
