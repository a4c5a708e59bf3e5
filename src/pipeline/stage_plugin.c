/* pipeline/stage_plugin.c: loading a plugin stage (the ABI is in belt/stage.h).
 *
 * dlopen(RTLD_NOW | RTLD_LOCAL): every undefined symbol is resolved at
 * load time, so a plugin that cannot work fails here, in `belt validate`,
 * with dlerror()'s text, not in the middle of a run; LOCAL keeps two
 * plugins' symbols apart.  Then the stage function and the ABI constant
 * <symbol>_belt_abi are required, <symbol>_init, _fini and _strerror
 * optional.  Each loaded stage holds its own handle (dlopen reference
 * counts a library loaded twice).
 *
 * dlsym returns a void *; converting it to a function pointer is what
 * POSIX requires to work; memcpy does it without the cast ISO C frowns on.
 */
#include "pipeline/internal.h"
#include "util/err.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

/* Looks up prefix+suffix; stores the address (NULL if absent) in *out. */
static void *lookup(void *dl, const char *symbol, const char *suffix)
{
    char name[512];
    snprintf(name, sizeof name, "%s%s", symbol, suffix);
    dlerror();
    return dlsym(dl, name);
}

#define AS_FN(dst, ptr) memcpy(&(dst), &(ptr), sizeof(dst))

int belt__plugin_load(const belt__stage_config *sc, belt__fnstage *fs,
                      char *msg, size_t size)
{
    memset(fs, 0, sizeof *fs);
    dlerror();
    void *dl = dlopen(sc->plugin, RTLD_NOW | RTLD_LOCAL);
    if (dl == NULL) {
        const char *e = dlerror();
        return belt__errf(msg, size, BELT_ECONFIG,
                          "cannot load plugin: %s", e != NULL ? e : sc->plugin);
    }
    void *f = lookup(dl, sc->symbol, "");
    if (f == NULL) {
        const char *e = dlerror();
        snprintf(msg, size, "symbol \"%s\" not found in plugin %s: %s", sc->symbol,
                 sc->plugin, e != NULL ? e : "it is NULL");
        dlclose(dl);
        return BELT_ECONFIG;
    }
    const int *abi = lookup(dl, sc->symbol, "_belt_abi");
    if (abi == NULL) {
        snprintf(msg, size, "symbol \"%s_belt_abi\" not found in plugin %s: put "
                            "BELT_STAGE_DECLARE(%s); in its source (see belt/stage.h)",
                 sc->symbol, sc->plugin, sc->symbol);
        dlclose(dl);
        return BELT_ECONFIG;
    }
    if (*abi != BELT_STAGE_ABI) {
        snprintf(msg, size, "plugin %s was built for stage ABI %d, this belt has "
                            "ABI %d: rebuild it against this belt's belt/stage.h",
                 sc->plugin, *abi, BELT_STAGE_ABI);
        dlclose(dl);
        return BELT_ECONFIG;
    }
    void *init = lookup(dl, sc->symbol, "_init");
    void *fini = lookup(dl, sc->symbol, "_fini");
    void *err = lookup(dl, sc->symbol, "_strerror");
    AS_FN(fs->fn, f);
    AS_FN(fs->init, init);
    AS_FN(fs->fini, fini);
    AS_FN(fs->strerror_fn, err);
    fs->dl = dl;
    return BELT_OK;
}

void belt__plugin_unload(belt__fnstage *fs)
{
    if (fs->dl != NULL)
        dlclose(fs->dl);
    memset(fs, 0, sizeof *fs);
}
