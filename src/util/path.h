/* util/path.h: file paths relative to a folder.  Internal: never
 * installed.
 *
 * What configs need: a relative path written in a config file means a path
 * in that file's folder, whatever belt's working directory (belt.json(5),
 * belt-pipeline(5)).  Paths are joined as strings ("dir/rel"); nothing is
 * looked up or made canonical, so a path that does not exist yet (an
 * output file) joins the same way.
 */
#ifndef BELT_UTIL_PATH_H
#define BELT_UTIL_PATH_H

#include <stddef.h>

#include "util/buf.h"

/* The folder of path, malloc'd, into *out: "a/b.json" gives "a",
 * "/x.json" gives "/", and a bare "x.json" gives NULL (the working
 * directory already).  Returns BELT_OK, or BELT_ENOMEM (*out NULL). */
int belt__path_dir(const char *path, char **out);

/* When *path (malloc'd) is relative and dir is not NULL, replaces it with
 * "dir/<path>" (freeing the old string).  Returns BELT_OK, or BELT_ENOMEM
 * (*path unchanged, still the caller's). */
int belt__path_resolve(char **path, const char *dir);

/* The same on the string that starts at b->p[start] and runs to b->len:
 * "dir/" is inserted before it when it is relative and dir is not NULL.
 * Running out of memory sets b->oom. */
void belt__path_resolve_buf(belt__buf *b, size_t start, const char *dir);

#endif /* BELT_UTIL_PATH_H */
