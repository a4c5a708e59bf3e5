/* config/jsonload.h: what every JSON loader of belt shares: the job config
 * (config/load.c), the pipeline config (pipeline/config.c) and the
 * experiment config (experiment/experiment.c).  Internal: never installed.
 *
 * A loader reads its file with belt__config_read(), parses it with
 * belt__json_parse() (duplicate keys rejected), then validates the tree,
 * carrying a belt__lctx and the JSON path of what it looks at.  A failure
 * is reported once, through belt__fail(): it fills the caller's
 * belt_config_error (jansson's json_error_t plus the path) with the line
 * and column of the offending value, found again in the text, and returns
 * BELT_ECONFIG for the loader to pass up.  This is belt's error convention
 * (src/README.md: an int code plus an optional message) with the message
 * in the public struct the config API hands back.
 */
#ifndef BELT_CONFIG_JSONLOAD_H
#define BELT_CONFIG_JSONLOAD_H

#include <stdbool.h>
#include <stddef.h>

#include "belt/config.h"
#include "util/buf.h"
#include "util/suggest.h"

/* ---- errors with JSON paths ------------------------------------------- */

/* A JSON path: keys and array indices from the root. */
typedef struct belt__jpath {
    struct {
        const char *key;      /* NULL: an array index */
        size_t index;
    } seg[8];
    int n;
} belt__jpath;

/* What a loader passes around while validating. */
typedef struct belt__lctx {
    const char *text;         /* the JSON text, to locate errors in */
    size_t len;
    belt_config_error *err;   /* may be NULL */
    belt_config *cfg;         /* the job config being built (config/load.c);
                               * NULL for the other loaders */
} belt__lctx;

/* Fills c->err (source already set) with the path p (NULL: root), its
 * line and column in the text, and the formatted text.  When at_key the
 * error is about the last key of p itself (unknown, badly named): the
 * position is the key's and the path printed is its object's.  Returns
 * BELT_ECONFIG. */
int belt__fail(belt__lctx *c, const belt__jpath *p, bool at_key,
               const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Sets e->text to raw with control characters escaped (\n, \t, \xHH), so
 * that the message stays one line (jansson quotes input in its errors). */
void belt__error_text(belt_config_error *e, const char *raw);

/* p (NULL: the root) extended by object key `key` (borrowed: it must
 * outlive the path) or by array index i.  A path already 8 deep is returned
 * unchanged.  Can't fail. */
belt__jpath belt__jp_key(const belt__jpath *p, const char *key);
belt__jpath belt__jp_idx(const belt__jpath *p, size_t i);

/* Stores 0, 0, "" and "out of memory" in e (may be NULL).  Returns
 * BELT_ENOMEM. */
int belt__fail_oom(belt_config_error *e);

/* Whether s is one of the NULL-terminated list. */
bool belt__in_list(const char *s, const char *const *list);

/* Writes the NULL-terminated list as "a, b, c" into buf (truncated to
 * size).  Can't fail: on allocation failure buf is left empty. */
void belt__list_join(char *buf, size_t size, const char *const *list);

/* The JSON type of v as an error message names it: "object", "array",
 * "string", "integer", "number", "boolean" or "null". */
struct json_t;
const char *belt__jtype(const struct json_t *v);

/* A name other tools use for one of our keys, suggested before edit
 * distance. */
typedef struct belt__alias {
    const char *alias, *key;
} belt__alias;

/* The hint for unknown key `key` of an object whose keys are `allowed`: the
 * last alias of `key` whose target is allowed, else belt__suggest(), else
 * NULL. */
const char *belt__key_hint(const char *key, const char *const *allowed,
                           const belt__alias *aliases, size_t naliases);

/* Writes the text of an error about an unknown name into buf (truncated to
 * size): 'unknown <what> "<name>" (did you mean "<hint>"?)' where hint is
 * the one given or, when NULL, belt__suggest(name, known); with no hint,
 * 'unknown <what> "<name>" (expected one of: <known, joined>)'.  Can't
 * fail. */
void belt__unknown_text(char *buf, size_t size, const char *what,
                        const char *name, const char *const *known,
                        const char *hint);

/* belt__fail(c, p, at_key, ...) with the text of belt__unknown_text().
 * Returns BELT_ECONFIG. */
int belt__fail_unknown(belt__lctx *c, const belt__jpath *p, bool at_key,
                       const char *what, const char *name,
                       const char *const *known, const char *hint);

/* Clears e (may be NULL: nothing happens), sets its source and, unless
 * NULL, its text.  Can't fail. */
void belt__error_start(belt_config_error *e, const char *source,
                       const char *text);

/* The first step of every file loader: starts e for path and reads the
 * whole file into b (empty, the caller's; freed on failure).  Returns
 * BELT_OK, or with e's text set: BELT_EINVAL (path NULL: "no config file
 * given"), BELT_ENOENT ("cannot open: ..." / "cannot read: ..."),
 * BELT_ENOMEM. */
int belt__config_read(const char *path, belt__buf *b, belt_config_error *e);

/* The first step of every string loader: *source NULL becomes "<string>";
 * json NULL starts e (may be NULL) with "no config text" and returns
 * BELT_EINVAL; otherwise returns BELT_OK. */
int belt__config_string(const char *json, const char **source,
                        belt_config_error *e);

/* Parses text[0..len) as any JSON value, duplicate keys rejected.  Returns
 * the tree (the caller's reference), or NULL with e's line, column and text
 * set from jansson's error (e's source is left alone). */
struct json_t *belt__json_parse(const char *text, size_t len,
                                belt_config_error *e);

/* Writes path p as "jobs[3].env.NAME" (keys that are not plain words as
 * ["key"]) into buf.  Can't fail. */
void belt__jpath_format(const belt__jpath *p, char *buf, size_t size);

/* Finds the value (or, if at_key, the key) at p in a JSON text that jansson
 * parsed, and stores its 1-based line and column (in characters, as jansson
 * counts).  Stores 0, 0 when it cannot be found.  Can't fail. */
void belt__json_locate(const char *text, size_t len, const belt__jpath *p,
                       bool at_key, int *line, int *column);

#endif /* BELT_CONFIG_JSONLOAD_H */
