/* belt/version.h: the library's version. */
#ifndef BELT_VERSION_H
#define BELT_VERSION_H

#ifdef __cplusplus
extern "C" {
#endif

#define BELT_VERSION_MAJOR 0
#define BELT_VERSION_MINOR 1
#define BELT_VERSION_PATCH 0
#define BELT_VERSION_STRING "0.1.0"

/* Returns the version of the library actually linked, e.g. "0.1.0".
 * Can't fail; the string is static. */
const char *belt_version(void);

#ifdef __cplusplus
}
#endif

#endif /* BELT_VERSION_H */
