/* util/hash.h: the one string hash of belt.  Internal: never installed. */
#ifndef BELT_UTIL_HASH_H
#define BELT_UTIL_HASH_H

#include <stddef.h>
#include <stdint.h>

/* A 64-bit hash of s[0..n): FNV-1a, then murmur3's 64-bit finaliser so that
 * every output bit depends on every input byte (the id index takes its top
 * 32 bits as a fingerprint, its low bits as the slot).  Not for
 * adversaries: use a keyed MAC where input is hostile.  Can't fail. */
uint64_t belt__hash(const char *s, size_t n);

#endif /* BELT_UTIL_HASH_H */
