/* util/error.c: belt_strerror(), belt_err_name() and belt_version(), all built
 * from the single lists in include/belt/error.h and version.h. */
#include "belt/error.h"
#include "belt/version.h"

const char *belt_strerror(int code)
{
    switch (code) {
#define BELT__ERR_MSG(name, value, msg) case BELT_##name: return msg;
        BELT_ERRNO_MAP(BELT__ERR_MSG)
#undef BELT__ERR_MSG
    }
    return "unknown error";
}

const char *belt_err_name(int code)
{
    switch (code) {
#define BELT__ERR_NAME(name, value, msg) case BELT_##name: return #name;
        BELT_ERRNO_MAP(BELT__ERR_NAME)
#undef BELT__ERR_NAME
    }
    return "UNKNOWN";
}

const char *belt_version(void)
{
    return BELT_VERSION_STRING;
}
