/* util/path.c: file paths relative to a folder (util/path.h). */
#include "util/path.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "belt/error.h"

int belt__path_dir(const char *path, char **out)
{
    *out = NULL;
    const char *slash = path ? strrchr(path, '/') : NULL;
    if (slash == NULL)
        return BELT_OK;
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    if ((*out = strndup(path, n)) == NULL)
        return BELT_ENOMEM;
    return BELT_OK;
}

int belt__path_resolve(char **path, const char *dir)
{
    if (*path == NULL || dir == NULL || (*path)[0] == '/')
        return BELT_OK;
    size_t dl = strlen(dir);
    bool root = dl > 0 && dir[dl - 1] == '/';
    size_t n = dl + strlen(*path) + 2;
    char *joined = malloc(n);
    if (joined == NULL)
        return BELT_ENOMEM;
    snprintf(joined, n, "%s%s%s", dir, root ? "" : "/", *path);
    free(*path);
    *path = joined;
    return BELT_OK;
}

void belt__path_resolve_buf(belt__buf *b, size_t start, const char *dir)
{
    if (dir == NULL || b->oom || start > b->len ||
        (b->p != NULL && b->p[start] == '/'))
        return;
    size_t dl = strlen(dir);
    bool root = dl > 0 && dir[dl - 1] == '/';
    size_t add = dl + (root ? 0 : 1), n = b->len - start;
    if (!belt__buf_reserve(b, add))
        return;
    memmove(b->p + start + add, b->p + start, n + 1);
    memcpy(b->p + start, dir, dl);
    if (!root)
        b->p[start + dl] = '/';
    b->len += add;
}
